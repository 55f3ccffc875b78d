package azure_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/azure"
)

// TestCABundle checks that cfg.CABundle reaches the client's transport: a
// TLS endpoint signed by a private CA is trusted with the bundle and refused
// without it.
func TestCABundle(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What Azure answers a Get Blob Properties for a missing blob.
		w.Header().Set("x-ms-error-code", "BlobNotFound")
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := drivers.Config{
		Name: "private-ca", Type: azure.Type, Bucket: "backups", Endpoint: srv.URL + "/acct",
		Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey),
	}
	stat := func(cfg drivers.Config) error {
		b, err := drivers.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		_, err = b.Stat(context.Background(), "k")
		return err
	}
	if err := stat(cfg); drivers.CodeOf(err) != drivers.Permanent {
		t.Fatalf("Stat over TLS without the CA = %v (code %v), want a Permanent certificate error", err, drivers.CodeOf(err))
	}
	cfg.CABundle = bundle
	if err := stat(cfg); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Stat over TLS with the CA bundle = %v, want NotFound from the server", err)
	}
}

func TestEmptyKey(t *testing.T) {
	b, err := drivers.Open(context.Background(), drivers.Config{
		Name: "keys", Type: azure.Type, Bucket: "backups", Endpoint: "http://127.0.0.1:1/acct",
		Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	_, statErr := b.Stat(ctx, "")
	_, readErr := b.NewRangeReader(ctx, "", 0, -1)
	_, upErr := b.NewUpload(ctx, "")
	for _, err := range []error{statErr, readErr, upErr, b.Delete(ctx, "")} {
		if drivers.CodeOf(err) != drivers.Permanent {
			t.Errorf("empty key: %v (code %v), want Permanent", err, drivers.CodeOf(err))
		}
	}
}

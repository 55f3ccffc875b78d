package azure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/azure"
)

// TestAzurite checks what the conformance suite cannot see from the
// contract alone: each credential kind against a real service, that a SAS
// token never reaches an error, and the edges of ranged reads. One Azurite
// process serves every subtest.
func TestAzurite(t *testing.T) {
	base := emulators.Azurite(t)
	base.Name = "azurite-driver-test"
	ctx := context.Background()

	open := func(t *testing.T, cfg drivers.Config) *drivers.Bucket {
		t.Helper()
		b, err := drivers.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	// fresh opens a new container with the well-known shared key.
	fresh := func(t *testing.T) (drivers.Config, *drivers.Bucket) {
		cfg := base
		cfg.Bucket = emulators.NewContainerName()
		return cfg, open(t, cfg)
	}

	t.Run("WrongSASSignatureNeverLeaks", func(t *testing.T) {
		cfg, _ := fresh(t)
		const sig = "AbC+dEf/GhIjKlMnOpQrStUvWxYz0123456789AbCdE="
		token := "sv=2021-10-04&spr=https%2Chttp&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwdl&sig=" + url.QueryEscape(sig)
		sasCfg := drivers.Config{
			Name: "azurite-sas", Type: azure.Type, Bucket: cfg.Bucket, Endpoint: cfg.Endpoint,
			Secrets: drivers.SecretsFromStrings(map[string]string{azure.SecretSasToken: token}),
		}
		b := open(t, sasCfg)
		forbidden := []string{token, sig, url.QueryEscape(sig), url.PathEscape(sig), "sig="}
		for _, kv := range strings.Split(token, "&") {
			forbidden = append(forbidden, kv)
		}
		check := func(what string, err error, want drivers.Code) {
			t.Helper()
			if err == nil {
				t.Fatalf("%s with a wrong SAS signature succeeded", what)
			}
			if got := drivers.CodeOf(err); got != want {
				t.Errorf("%s: code %v, want %v (%v)", what, got, want, err)
			}
			for _, f := range forbidden {
				if strings.Contains(err.Error(), f) {
					t.Errorf("%s: error text carries %q of the SAS token: %s", what, f, err)
				}
			}
		}
		key := "backups/leak/data.zst"
		_, err := b.Stat(ctx, key)
		check("Stat", err, drivers.PermissionDenied)
		_, err = b.NewRangeReader(ctx, key, 0, -1)
		check("NewRangeReader", err, drivers.PermissionDenied)
		_, err = b.List(ctx, "backups/")
		check("List", err, drivers.PermissionDenied)
		_, err = b.ListUploads(ctx, "backups/")
		check("ListUploads", err, drivers.PermissionDenied)
		check("Delete", b.Delete(ctx, key), drivers.PermissionDenied)
		u, err := b.NewUpload(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		check("PutPart", u.PutPart(ctx, 1, []byte("data")), drivers.PermissionDenied)
		check("Complete", u.Complete(ctx, 0), drivers.PermissionDenied)
		check("AbortUpload", b.AbortUpload(ctx, drivers.PendingUpload{Key: key}), drivers.PermissionDenied)

		// Opening with CreateBucket fails on the first request, and the
		// error says so without the token either.
		sasCfg.CreateBucket = true
		_, err = drivers.Open(ctx, sasCfg)
		check("Open with CreateBucket", err, drivers.PermissionDenied)
		// A connection refused (nothing listens on port 1) carries the
		// request URL in net/http's error; the query must be gone.
		sasCfg.CreateBucket = false
		sasCfg.Endpoint = "http://127.0.0.1:1/" + emulators.AzuriteAccount
		// Transient: the portable layer retries; keep its budget short.
		sasCfg.Retry = drivers.RetryPolicy{InitialBackoff: time.Millisecond, Budget: 200 * time.Millisecond}
		_, err = open(t, sasCfg).Stat(ctx, key)
		check("Stat with nothing listening", err, drivers.Transient)
	})

	t.Run("ValidSASToken", func(t *testing.T) {
		cfg, _ := fresh(t)
		cred, err := container.NewSharedKeyCredential(emulators.AzuriteAccount, emulators.AzuriteKey)
		if err != nil {
			t.Fatal(err)
		}
		perms := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
		q, err := sas.BlobSignatureValues{
			Protocol:      sas.ProtocolHTTPSandHTTP,
			ExpiryTime:    time.Now().Add(time.Hour).UTC(),
			Permissions:   perms.String(),
			ContainerName: cfg.Bucket,
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		b := open(t, drivers.Config{
			Name: "azurite-sas", Type: azure.Type, Bucket: cfg.Bucket, Endpoint: cfg.Endpoint,
			Secrets: drivers.SecretsFromStrings(map[string]string{azure.SecretSasToken: q.Encode()}),
		})
		roundTrip(t, b)
	})

	t.Run("ConnectionString", func(t *testing.T) {
		cfg, _ := fresh(t)
		conn := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
			emulators.AzuriteAccount, emulators.AzuriteKey, cfg.Endpoint)
		b := open(t, drivers.Config{
			Name: "azurite-conn", Type: azure.Type, Bucket: cfg.Bucket,
			Secrets: drivers.SecretsFromStrings(map[string]string{azure.SecretConnectionString: conn}),
		})
		roundTrip(t, b)
	})

	t.Run("WrongAccountKeyIsPermissionDenied", func(t *testing.T) {
		cfg, _ := fresh(t)
		cfg.CreateBucket = false
		wrong := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
		cfg.Secrets = drivers.SecretsFromStrings(map[string]string{azure.SecretAccountName: emulators.AzuriteAccount, azure.SecretAccountKey: wrong})
		_, err := open(t, cfg).Stat(ctx, "k")
		if drivers.CodeOf(err) != drivers.PermissionDenied || strings.Contains(err.Error(), wrong) {
			t.Fatalf("Stat with a wrong key = %v (code %v), want PermissionDenied without the key", err, drivers.CodeOf(err))
		}
	})

	t.Run("MissingContainerIsNotFound", func(t *testing.T) {
		cfg := base
		cfg.Bucket = emulators.NewContainerName()
		cfg.CreateBucket = false
		b := open(t, cfg)
		if _, err := b.Stat(ctx, "k"); !errors.Is(err, drivers.ErrNotFound) {
			t.Fatalf("Stat in a missing container = %v, want NotFound", err)
		}
		// Deleting from a container that is not there is a broken repo,
		// not a key already gone.
		if err := b.Delete(ctx, "k"); !errors.Is(err, drivers.ErrNotFound) {
			t.Fatalf("Delete in a missing container = %v, want a NotFound error", err)
		}
	})

	t.Run("ReadEdges", func(t *testing.T) {
		_, b := fresh(t)
		data := []byte("0123456789")
		put(t, b, "obj", data)
		put(t, b, "empty", nil)
		reads := []struct {
			key            string
			offset, length int64
			want           string
		}{
			{"obj", 0, 0, ""},
			{"obj", 10, 0, ""},
			{"obj", 10, -1, ""},
			{"obj", 10, 5, ""},
			{"obj", 9, 5, "9"},
			{"obj", 3, 4, "3456"},
			{"empty", 0, -1, ""},
			{"empty", 0, 10, ""},
		}
		for _, r := range reads {
			rc, err := b.NewRangeReader(ctx, r.key, r.offset, r.length)
			if err != nil {
				t.Fatalf("NewRangeReader(%q, %d, %d): %v", r.key, r.offset, r.length, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != r.want {
				t.Errorf("read %q at %d+%d = %q, %v; want %q", r.key, r.offset, r.length, got, err, r.want)
			}
		}
		for _, r := range []struct {
			key            string
			offset, length int64
		}{{"obj", 11, -1}, {"obj", 11, 0}, {"obj", 100, 5}, {"empty", 1, -1}} {
			_, err := b.NewRangeReader(ctx, r.key, r.offset, r.length)
			if drivers.CodeOf(err) != drivers.Permanent {
				t.Errorf("read %q past the end at %d+%d = %v (code %v), want Permanent", r.key, r.offset, r.length, err, drivers.CodeOf(err))
			}
		}
		for _, length := range []int64{-1, 0, 5} {
			if _, err := b.NewRangeReader(ctx, "missing", 0, length); !errors.Is(err, drivers.ErrNotFound) {
				t.Errorf("read of a missing key with length %d = %v, want NotFound", length, err)
			}
		}
	})

	t.Run("EmptyLastPartIsLeftOut", func(t *testing.T) {
		_, b := fresh(t)
		u, err := b.NewUpload(ctx, "obj")
		if err != nil {
			t.Fatal(err)
		}
		for n, d := range [][]byte{[]byte("abc"), nil} {
			if err := u.PutPart(ctx, n+1, d); err != nil {
				t.Fatalf("PutPart(%d, %d bytes): %v", n+1, len(d), err)
			}
		}
		if err := u.Complete(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if got := read(t, b, "obj"); string(got) != "abc" {
			t.Fatalf("content %q, want %q", got, "abc")
		}
	})

	t.Run("AbortedOverwriteLeavesNoEmptyBlob", func(t *testing.T) {
		// An abort where an object exists must refuse its empty commit;
		// one where none exists must leave no empty blob behind.
		_, b := fresh(t)
		put(t, b, "kept", []byte("old"))
		for _, key := range []string{"kept", "new"} {
			u, err := b.NewUpload(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := u.PutPart(ctx, 1, []byte("new data")); err != nil {
				t.Fatal(err)
			}
			if err := u.Abort(ctx); err != nil {
				t.Fatalf("Abort(%q): %v", key, err)
			}
		}
		if got := read(t, b, "kept"); string(got) != "old" {
			t.Fatalf("aborted overwrite changed the object to %q", got)
		}
		objs, err := b.List(ctx, "")
		if err != nil || len(objs) != 1 || objs[0].Key != "kept" {
			t.Fatalf("List = %+v, %v; want only %q", objs, err, "kept")
		}
		pending, err := b.ListUploads(ctx, "")
		if err != nil || len(pending) != 0 {
			t.Fatalf("ListUploads = %+v, %v; want none", pending, err)
		}
	})
}

func put(t *testing.T, b *drivers.Bucket, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	if len(data) > 0 {
		parts = 1
		if err := u.PutPart(ctx, 1, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Complete(ctx, parts); err != nil {
		t.Fatalf("Complete(%q): %v", key, err)
	}
}

func read(t *testing.T, b *drivers.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.NewRangeReader(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("NewRangeReader(%q): %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// roundTrip writes, reads, lists, aborts and deletes through b: every call a
// credential kind must allow.
func roundTrip(t *testing.T, b *drivers.Bucket) {
	t.Helper()
	ctx := context.Background()
	data := bytes.Repeat([]byte("dbarchive "), 1000)
	put(t, b, "dir/obj", data)
	if got := read(t, b, "dir/obj"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(data))
	}
	objs, err := b.List(ctx, "dir/")
	if err != nil || len(objs) != 1 || objs[0].Size != int64(len(data)) {
		t.Fatalf("List = %+v, %v", objs, err)
	}
	u, err := b.NewUpload(ctx, "dir/aborted")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, data); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := b.Delete(ctx, "dir/obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "dir/obj"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want NotFound", err)
	}
}

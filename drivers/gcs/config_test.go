package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

var (
	testKeyOnce sync.Once
	testKeyPEM  string
)

// testPrivateKey is a throwaway RSA key in the PEM form key files carry.
func testPrivateKey(t *testing.T) string {
	t.Helper()
	testKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		testKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return testKeyPEM
}

// serviceAccountJSON builds a key file; edit changes fields before encoding.
func serviceAccountJSON(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"type":           "service_account",
		"project_id":     "dbarchive-test",
		"private_key_id": "0123456789abcdef0123456789abcdef01234567",
		"private_key":    testPrivateKey(t),
		"client_email":   "backup@dbarchive-test.iam.gserviceaccount.com",
		"client_id":      "123456789012345678901",
		"token_uri":      "https://oauth2.googleapis.com/token",
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secretFragments are pieces of a secret that must never be printed: the
// whole value, and each line of a PEM key inside it.
func secretFragments(s drivers.Secrets) []string {
	var out []string
	for _, v := range s.Values() {
		out = append(out, v)
		var m map[string]any
		if json.Unmarshal([]byte(v), &m) == nil {
			if k, ok := m["private_key"].(string); ok {
				for line := range strings.SplitSeq(k, "\n") {
					if len(line) > 20 && !strings.HasPrefix(line, "-----") {
						out = append(out, line)
					}
				}
			}
		}
	}
	return out
}

func TestConfigErrors(t *testing.T) {
	emu := emulators.GCS(t)
	tests := []struct {
		name      string
		cfg       drivers.Config
		field     string
		reasonHas string
	}{
		{
			name:  "missing bucket",
			cfg:   drivers.Config{},
			field: "bucket", reasonHas: "required",
		},
		{
			name:  "bucket is a URL",
			cfg:   drivers.Config{Bucket: "gs://backups"},
			field: "bucket", reasonHas: "not a GCS bucket name",
		},
		{
			name:  "endpoint not a URL",
			cfg:   drivers.Config{Bucket: "backups", Endpoint: "storage.googleapis.com"},
			field: "endpoint", reasonHas: "http",
		},
		{
			name:  "endpoint with another scheme",
			cfg:   drivers.Config{Bucket: "backups", Endpoint: "ftp://storage.example.com/"},
			field: "endpoint", reasonHas: "http",
		},
		{
			name:  "endpoint with credentials",
			cfg:   drivers.Config{Bucket: "backups", Endpoint: "https://user:hunter2@storage.example.com/"},
			field: "endpoint", reasonHas: "credentials",
		},
		{
			name:  "negative list page size",
			cfg:   drivers.Config{Bucket: "backups", ListPageSize: -1},
			field: "listPageSize", reasonHas: "negative",
		},
		{
			name:  "CA bundle without a certificate",
			cfg:   drivers.Config{Bucket: "backups", CABundle: []byte("not a certificate")},
			field: "caBundle", reasonHas: "PEM",
		},
		{
			name: "service account JSON cut short",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, nil)[:200],
			})},
			field: "secret key ServiceAccountJson", reasonHas: "not valid JSON",
		},
		{
			name: "service account JSON with a bad character",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: `{"type": "service_account", "private_key": "` + testPrivateKey(t) + `"}`,
			})},
			field: "secret key ServiceAccountJson", reasonHas: "not valid JSON",
		},
		{
			name: "not a service account",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, func(m map[string]any) { m["type"] = "external_account" }),
			})},
			field: "secret key ServiceAccountJson", reasonHas: "service_account",
		},
		{
			name: "private key mangled",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, func(m map[string]any) {
					m["private_key"] = strings.Replace(testPrivateKey(t), "M", "x", 3)
				}),
			})},
			field: "secret key ServiceAccountJson", reasonHas: "private_key",
		},
		{
			name: "no client email",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, func(m map[string]any) { delete(m, "client_email") }),
			})},
			field: "secret key ServiceAccountJson", reasonHas: "client_email",
		},
		{
			name: "token_uri elsewhere",
			cfg: drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, func(m map[string]any) { m["token_uri"] = "https://collect.example.com/token" }),
			})},
			field: "secret key ServiceAccountJson", reasonHas: "token_uri",
		},
		{
			name: "key sent to a plain http endpoint",
			cfg: drivers.Config{Bucket: "backups", Endpoint: "http://gcs.example.com:4443", Secrets: drivers.SecretsFromStrings(map[string]string{
				SecretServiceAccountJSON: serviceAccountJSON(t, nil),
			})},
			field: "endpoint", reasonHas: "http://",
		},
		{
			name: "bucket to create without a project",
			cfg: drivers.Config{Bucket: "not-there-yet", Endpoint: emu.Endpoint, CreateBucket: true, Secrets: drivers.SecretsFromStrings(map[string]string{
				"unrelated": "hunter2-unrelated-secret",
			})},
			field: "secret key ProjectId", reasonHas: "not-there-yet",
		},
	}

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	textLogger := slog.New(slog.NewTextHandler(&logs, nil))
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(logger) // catches anything the driver or SDK logs through slog

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Name, cfg.Type = "prod-backups", Type
			b, err := drivers.Open(context.Background(), cfg)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			var ce *drivers.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v (%T), want a *drivers.ConfigError", err, err)
			}
			if ce.Repo != cfg.Name || ce.Field != tc.field {
				t.Errorf("ConfigError names repo %q field %q, want %q and %q", ce.Repo, ce.Field, cfg.Name, tc.field)
			}
			msg := err.Error()
			t.Log(msg)
			for _, want := range []string{`"prod-backups"`, tc.field, tc.reasonHas} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if !errors.Is(err, drivers.ErrPermanent) {
				t.Errorf("errors.Is(err, ErrPermanent) = false: a bad setting must not be retried")
			}
			// What an operator's log line would carry.
			logger.Error("open repo failed", "err", err, "config", cfg)
			textLogger.Error("open repo failed", "err", err, "config", cfg)
			for _, s := range secretFragments(cfg.Secrets) {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains a secret value", msg)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q echoes the endpoint's password", msg)
			}
		})
	}

	out := logs.String()
	if !strings.Contains(out, "prod-backups") {
		t.Fatal("the log capture saw nothing; the leak check below would prove nothing")
	}
	for _, tc := range tests {
		for _, s := range secretFragments(tc.cfg.Secrets) {
			if strings.Contains(out, s) {
				t.Errorf("%s: log output contains a secret value", tc.name)
			}
		}
	}
}

// TestConfigCredentials opens buckets with each kind of credential. None of
// them makes a request: the client is built, and tokens are fetched lazily.
func TestConfigCredentials(t *testing.T) {
	ctx := context.Background()
	key := serviceAccountJSON(t, nil)
	pemCA := func() []byte {
		// Any certificate will do as an extra root; use a fresh self-signed one.
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}()

	t.Run("service account key", func(t *testing.T) {
		openOK(t, drivers.Config{Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{SecretServiceAccountJSON: key})})
		if d, err := drivers.OpenDriver(ctx, drivers.Config{Name: "r", Type: Type, Bucket: "backups", Secrets: drivers.SecretsFromStrings(map[string]string{SecretServiceAccountJSON: key})}); err != nil || d.(*Bucket).name != "backups" {
			t.Fatal("wrong bucket")
		}
	})
	t.Run("service account key with custom roots", func(t *testing.T) {
		openOK(t, drivers.Config{Bucket: "backups", Endpoint: "https://gcs.internal.example.com", CABundle: pemCA,
			Secrets: drivers.SecretsFromStrings(map[string]string{SecretServiceAccountJSON: key})})
	})
	t.Run("application default credentials", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "adc.json")
		if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
		openOK(t, drivers.Config{Bucket: "backups"})
	})
	t.Run("application default credentials missing", func(t *testing.T) {
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
		_, err := drivers.Open(ctx, drivers.Config{Name: "r", Type: Type, Bucket: "backups"})
		var ce *drivers.ConfigError
		if !errors.As(err, &ce) || ce.Field != "secret key "+SecretServiceAccountJSON || !strings.Contains(err.Error(), "application default credentials") {
			t.Fatalf("Open without any credentials = %v, want a ConfigError about application default credentials", err)
		}
	})
	t.Run("emulator creates the bucket", func(t *testing.T) {
		cfg := emulators.GCS(t)
		cfg.Bucket = "made-by-the-driver"
		cfg.CreateBucket = true
		cfg.Secrets = drivers.SecretsFromStrings(map[string]string{SecretProjectID: "dbarchive-test"})
		b := openOK(t, cfg)
		putObject(t, b, "hello", []byte("world"))
		// Opening again finds the bucket and needs no project.
		cfg.Secrets = nil
		b2 := openOK(t, cfg)
		if info, err := b2.Stat(ctx, "hello"); err != nil || info.Size != 5 {
			t.Fatalf("Stat through a second Open = %+v, %v", info, err)
		}
	})
	t.Run("emulator endpoint without the API path", func(t *testing.T) {
		cfg := emulators.GCS(t)
		cfg.Endpoint = strings.TrimSuffix(cfg.Endpoint, "/storage/v1/")
		b := openOK(t, cfg)
		putObject(t, b, "k", []byte("v"))
	})
}

func openOK(t *testing.T, cfg drivers.Config) *drivers.Bucket {
	t.Helper()
	cfg.Name, cfg.Type = "test-repo", Type
	b, err := drivers.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func putObject(t *testing.T, b *drivers.Bucket, key string, data []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, data); err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

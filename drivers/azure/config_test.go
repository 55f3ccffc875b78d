package azure_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/azure"
)

// Distinctive credential values, so a leak is easy to spot. The key is valid
// base64, as an account key must be.
const (
	testKey  = "c2VjcmV0LWFjY291bnQta2V5LXZhbHVlLWZvci10ZXN0cw=="
	testSAS  = "sv=2024-01-01&sp=rwdl&sr=c&se=2099-01-01T00%3A00%3A00Z&sig=SeCrEtSiGnAtUrE%2Bvalue%3D"
	testConn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net"
)

func secrets(kv ...string) drivers.Secrets {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return drivers.SecretsFromStrings(m)
}

func TestConfigErrors(t *testing.T) {
	sharedKey := secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey)
	cases := []struct {
		name  string
		cfg   drivers.Config
		field string
	}{
		{"missing container", drivers.Config{Secrets: sharedKey}, "bucket"},
		{"container name with capitals", drivers.Config{Bucket: "Backups", Secrets: sharedKey}, "bucket"},
		{"container name with double hyphen", drivers.Config{Bucket: "back--ups", Secrets: sharedKey}, "bucket"},
		{"endpoint not a URL", drivers.Config{Bucket: "backups", Endpoint: "not a url", Secrets: sharedKey}, "endpoint"},
		{"endpoint with another scheme", drivers.Config{Bucket: "backups", Endpoint: "ftp://acct.blob.core.windows.net", Secrets: sharedKey}, "endpoint"},
		{"endpoint carrying a SAS token", drivers.Config{Bucket: "backups", Endpoint: "https://acct.blob.core.windows.net/?" + testSAS, Secrets: sharedKey}, "endpoint"},
		{"AccountName without AccountKey", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct")}, "secret key AccountKey"},
		{"AccountKey without AccountName", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountKey, testKey)}, "secret key AccountName"},
		{"AccountKey not base64", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, "not base64: secret-value-!!")}, "secret key AccountKey"},
		{"shared key and SAS token", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey, azure.SecretSasToken, testSAS)}, "secret"},
		{"SAS token and connection string", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretSasToken, testSAS, azure.SecretConnectionString, testConn)}, "secret"},
		{"no credential", drivers.Config{Bucket: "backups", Endpoint: "https://acct.blob.core.windows.net"}, "secret"},
		{"SAS token without sig", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretSasToken, "sv=2024-01-01&sp=r&secretish=value1234")}, "secret key SasToken"},
		{"SAS token with nowhere to go", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretSasToken, testSAS)}, "endpoint"},
		{"account name not valid", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "Not_An_Account", azure.SecretAccountKey, testKey)}, "secret key AccountName"},
		{"connection string malformed", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretConnectionString, "garbage-with-secret-"+testKey)}, "secret key ConnectionString"},
		{"connection string and endpoint", drivers.Config{Bucket: "backups", Endpoint: "https://acct.blob.core.windows.net", Secrets: secrets(azure.SecretConnectionString, testConn)}, "endpoint"},
		{"connection string and AccountName", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretConnectionString, testConn, azure.SecretAccountName, "acct")}, "secret key AccountName"},
		{"CA bundle without certificates", drivers.Config{Bucket: "backups", CABundle: []byte("no pem here"), Secrets: sharedKey}, "caBundle"},
		{"negative list page size", drivers.Config{Bucket: "backups", ListPageSize: -1, Secrets: sharedKey}, "listPageSize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Name = "nightly-azure"
			cfg.Type = azure.Type
			logs := captureLogs(t)

			b, err := drivers.Open(context.Background(), cfg)
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded; want an error about %s", c.field)
			}
			var ce *drivers.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is a %T, want a *drivers.ConfigError", err, err)
			}
			if ce.Repo != cfg.Name || ce.Field != c.field {
				t.Errorf("ConfigError names repo %q field %q, want %q and %q (%v)", ce.Repo, ce.Field, cfg.Name, c.field, err)
			}
			text := err.Error()
			if !strings.Contains(text, cfg.Name) || !strings.Contains(text, c.field) {
				t.Errorf("error %q does not name the repo and the field", text)
			}
			if !errors.Is(err, drivers.ErrPermanent) {
				t.Errorf("a config error must be Permanent: %v", err)
			}
			// The driver's own log lines and the error must not carry the
			// signature that one case puts into the endpoint.
			requireNoSecret(t, drivers.SecretsFromStrings(map[string]string{"sig": "SeCrEtSiGnAtUrE"}), text, logs.String())
			// Nor may a caller that logs the error and the config leak a
			// value from the Secret.
			slog.Error("open failed", "err", err, "config", cfg)
			requireNoSecret(t, cfg.Secrets, text, logs.String())
		})
	}
}

// TestConfigValid opens one repo per credential kind; none of them sends a
// request, so no service is needed.
func TestConfigValid(t *testing.T) {
	cases := []struct {
		name string
		cfg  drivers.Config
	}{
		{"shared key, public endpoint", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey)}},
		{"shared key, custom endpoint", drivers.Config{Bucket: "backups", Endpoint: "https://blob.example.internal/acct", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretAccountKey, testKey)}},
		{"SAS token with account", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretAccountName, "acct", azure.SecretSasToken, "?"+testSAS)}},
		{"SAS token with endpoint", drivers.Config{Bucket: "backups", Endpoint: "https://acct.blob.core.windows.net", Secrets: secrets(azure.SecretSasToken, testSAS)}},
		{"connection string", drivers.Config{Bucket: "backups", Secrets: secrets(azure.SecretConnectionString, testConn)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Name = "nightly-azure"
			cfg.Type = azure.Type
			logs := captureLogs(t)
			b, err := drivers.Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer b.Close()
			if !strings.Contains(logs.String(), "opened azure repo") {
				t.Errorf("no debug line for the opened repo in %q", logs.String())
			}
			requireNoSecret(t, cfg.Secrets, logs.String())
			if l := b.Limits(); l.MaxParts != 50000 || l.MinPartSize != 1 || l.MaxPartSize != 4000<<20 {
				t.Errorf("Limits() = %+v", l)
			}
		})
	}
}

// captureLogs sends the default slog logger, at debug level, to a buffer
// for the rest of the test.
func captureLogs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

func requireNoSecret(t *testing.T, s drivers.Secrets, texts ...string) {
	t.Helper()
	for _, v := range s.Values() {
		if len(v) < 8 {
			continue // account names like "acct" are not secret
		}
		for _, text := range texts {
			if strings.Contains(text, v) {
				t.Errorf("a secret value leaked into %q", text)
			}
		}
	}
}

package s3

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
)

// Values that must never appear in an error or a log line.
const (
	testKeyID  = "AKIASECRETKEYID00042"
	testSecret = "very-secret-access-key-value-0042"
	testToken  = "very-secret-session-token-0042"
)

// captureLogs sends slog's default logger to a buffer, at debug level, for the
// rest of the test.
func captureLogs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

func TestConfigValidation(t *testing.T) {
	logs := captureLogs(t)
	secrets := func(kv ...string) drivers.Secrets {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return drivers.SecretsFromStrings(m)
	}
	full := secrets(SecretAccessKeyID, testKeyID, SecretSecretAccessKey, testSecret, SecretSessionToken, testToken)
	base := func(mod func(*drivers.Config)) drivers.Config {
		c := drivers.Config{Name: "prod-backups", Type: Type, Bucket: "b", Endpoint: "https://s3.example.test", Secrets: full}
		mod(&c)
		return c
	}
	cases := []struct {
		name  string
		cfg   drivers.Config
		field string // "" when the config is valid
	}{
		{"valid", base(func(c *drivers.Config) {}), ""},
		{"valid_default_chain", base(func(c *drivers.Config) { c.Secrets = nil }), ""},
		{"missing_bucket", base(func(c *drivers.Config) { c.Bucket = " " }), "bucket"},
		{"endpoint_not_a_url", base(func(c *drivers.Config) { c.Endpoint = "s3.example.test:9000" }), "endpoint"},
		{"endpoint_wrong_scheme", base(func(c *drivers.Config) { c.Endpoint = "ftp://s3.example.test" }), "endpoint"},
		{"endpoint_with_credentials", base(func(c *drivers.Config) { c.Endpoint = "https://" + testKeyID + ":" + testSecret + "@s3.example.test" }), "endpoint"},
		{"only_access_key_id", base(func(c *drivers.Config) { c.Secrets = secrets(SecretAccessKeyID, testKeyID) }), "secret key " + SecretSecretAccessKey},
		{"only_secret_access_key", base(func(c *drivers.Config) { c.Secrets = secrets(SecretSecretAccessKey, testSecret) }), "secret key " + SecretAccessKeyID},
		{"session_token_alone", base(func(c *drivers.Config) { c.Secrets = secrets(SecretSessionToken, testToken) }), "secret key " + SecretSessionToken},
		{"bad_ca_bundle", base(func(c *drivers.Config) { c.CABundle = []byte("-----BEGIN CERTIFICATE-----\n" + testSecret + "\n") }), "caBundle"},
		{"negative_page_size", base(func(c *drivers.Config) { c.ListPageSize = -1 }), "listPageSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := drivers.Open(context.Background(), tc.cfg)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Open = %v, want success", err)
				}
				b.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded, want an error about %s", tc.field)
			}
			var ce *drivers.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || ce.Repo != tc.cfg.Name {
				t.Fatalf("Open = %v, want a ConfigError for repo %q field %q", err, tc.cfg.Name, tc.field)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.cfg.Name) || !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name the repo and the field", msg)
			}
			if !errors.Is(err, drivers.ErrPermanent) {
				t.Errorf("config error %v is not Permanent", err)
			}
			assertNoSecret(t, "error", err.Error())
		})
	}
	if !strings.Contains(logs.String(), "opened s3 repo") {
		t.Errorf("captured log lacks the open line; is the capture working? %q", logs.String())
	}
	assertNoSecret(t, "log", logs.String())
}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{testKeyID, testSecret, testToken} {
		if strings.Contains(text, s) {
			t.Errorf("%s carries a secret value: %q", what, text)
		}
	}
}

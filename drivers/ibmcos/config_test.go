package ibmcos

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
	testKeyID      = "HMACSECRETKEYID00042"
	testSecret     = "very-secret-hmac-secret-value-0042"
	testAPIKey     = "very-secret-iam-api-key-0042"
	testInstanceID = "crn:v1:bluemix:public:cloud-object-storage:global:a/secret0042::"
)

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
	hmac := secrets(SecretHmacAccessKeyID, testKeyID, SecretHmacSecretAccessKey, testSecret)
	apiKey := secrets(SecretAPIKey, testAPIKey, SecretServiceInstanceID, testInstanceID)
	base := func(mod func(*drivers.Config)) drivers.Config {
		c := drivers.Config{Name: "cos-backups", Type: Type, Bucket: "b", Endpoint: "https://s3.us-south.cloud-object-storage.appdomain.cloud", Secrets: hmac}
		mod(&c)
		return c
	}
	cases := []struct {
		name  string
		cfg   drivers.Config
		field string // "" when the config is valid
	}{
		{"valid_hmac", base(func(c *drivers.Config) {}), ""},
		{"valid_api_key", base(func(c *drivers.Config) { c.Secrets = apiKey }), ""},
		{"missing_bucket", base(func(c *drivers.Config) { c.Bucket = "" }), "bucket"},
		{"missing_endpoint", base(func(c *drivers.Config) { c.Endpoint = "" }), "serviceEndpoint"},
		{"endpoint_not_a_url", base(func(c *drivers.Config) { c.Endpoint = "s3.us-south.cloud-object-storage.appdomain.cloud" }), "serviceEndpoint"},
		{"endpoint_with_credentials", base(func(c *drivers.Config) { c.Endpoint = "https://" + testKeyID + ":" + testSecret + "@cos.example.test" }), "serviceEndpoint"},
		{"bad_auth_endpoint", base(func(c *drivers.Config) { c.Secrets = apiKey; c.AuthEndpoint = "iam.example.test/identity/token" }), "authEndpoint"},
		{"only_hmac_access_key_id", base(func(c *drivers.Config) { c.Secrets = secrets(SecretHmacAccessKeyID, testKeyID) }), "secret key " + SecretHmacSecretAccessKey},
		{"only_hmac_secret", base(func(c *drivers.Config) { c.Secrets = secrets(SecretHmacSecretAccessKey, testSecret) }), "secret key " + SecretHmacAccessKeyID},
		{"api_key_without_instance_id", base(func(c *drivers.Config) { c.Secrets = secrets(SecretAPIKey, testAPIKey) }), "secret key " + SecretServiceInstanceID},
		{"hmac_and_api_key", base(func(c *drivers.Config) {
			c.Secrets = secrets(SecretHmacAccessKeyID, testKeyID, SecretHmacSecretAccessKey, testSecret, SecretAPIKey, testAPIKey, SecretServiceInstanceID, testInstanceID)
		}), "secret key " + SecretAPIKey},
		{"no_credentials", base(func(c *drivers.Config) { c.Secrets = nil }), "secret"},
		{"bad_ca_bundle", base(func(c *drivers.Config) { c.CABundle = []byte("not pem") }), "caBundle"},
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
	if !strings.Contains(logs.String(), "opened ibmcos repo") {
		t.Errorf("captured log lacks the open line; is the capture working? %q", logs.String())
	}
	assertNoSecret(t, "log", logs.String())
}

func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{testKeyID, testSecret, testAPIKey, testInstanceID} {
		if strings.Contains(text, s) {
			t.Errorf("%s carries a secret value: %q", what, text)
		}
	}
}

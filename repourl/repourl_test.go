package repourl

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/all"
)

// env holds a distinct value for every credential variable Parse reads, so
// a test can tell which one went where and that none reached an error.
var env = map[string]string{}

func init() {
	for _, vars := range EnvVars() {
		for _, v := range vars {
			env[v] = "envsecret-" + strings.ToLower(v) + "-7Hq2"
		}
	}
}

func getenv(k string) string { return env[k] }

func TestParse(t *testing.T) {
	cases := []struct {
		raw     string
		want    drivers.Config // Secrets: only the keys are compared
		prefix  string
		secrets []string
	}{
		{raw: "file:///var/backups/db", want: drivers.Config{Type: "fs", Path: "/var/backups/db", CreateBucket: true}},
		{raw: "file://localhost/var/b/../backups/", want: drivers.Config{Type: "fs", Path: "/var/backups", CreateBucket: true}},
		{raw: "/srv/repo", want: drivers.Config{Type: "fs", Path: "/srv/repo", CreateBucket: true}},
		{
			raw:     "s3://bucket/team/db/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1&path_style=true",
			want:    drivers.Config{Type: "s3", Bucket: "bucket", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", PathStyle: true},
			prefix:  "team/db",
			secrets: []string{"AccessKeyId", "SecretAccessKey", "SessionToken"},
		},
		{raw: "s3://bucket", want: drivers.Config{Type: "s3", Bucket: "bucket"}, secrets: []string{"AccessKeyId", "SecretAccessKey", "SessionToken"}},
		{
			raw:     "ibmcos://b/p?endpoint=https://s3.eu-de.cloud-object-storage.appdomain.cloud&auth_endpoint=https://iam.example/identity/token&create_bucket=1",
			want:    drivers.Config{Type: "ibmcos", Bucket: "b", Endpoint: "https://s3.eu-de.cloud-object-storage.appdomain.cloud", AuthEndpoint: "https://iam.example/identity/token", CreateBucket: true},
			prefix:  "p",
			secrets: []string{"ApiKey", "HmacAccessKeyId", "HmacSecretAccessKey", "ServiceInstanceId"},
		},
		{raw: "gs://b/x/y?endpoint=http://127.0.0.1:4443/storage/v1/", want: drivers.Config{Type: "gcs", Bucket: "b", Endpoint: "http://127.0.0.1:4443/storage/v1/"}, prefix: "x/y", secrets: []string{"ProjectId", "ServiceAccountJson"}},
		{raw: "azblob://container/p?endpoint=http://127.0.0.1:10000/devstoreaccount1", want: drivers.Config{Type: "azure", Bucket: "container", Endpoint: "http://127.0.0.1:10000/devstoreaccount1"}, prefix: "p", secrets: []string{"AccountKey", "AccountName", "ConnectionString", "SasToken"}},
	}
	for _, c := range cases {
		cfg, prefix, err := Parse(c.raw, getenv)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.raw, err)
			continue
		}
		if prefix != c.prefix {
			t.Errorf("Parse(%q) prefix %q, want %q", c.raw, prefix, c.prefix)
		}
		gotKeys := make([]string, 0, len(cfg.Secrets))
		for k, v := range cfg.Secrets {
			gotKeys = append(gotKeys, k)
			if v.Reveal() == "" || !strings.HasPrefix(v.Reveal(), "envsecret-") {
				t.Errorf("Parse(%q): secret %s = %q, want its variable's value", c.raw, k, v.Reveal())
			}
		}
		if strings.Join(slices.Sorted(slices.Values(gotKeys)), ",") != strings.Join(c.secrets, ",") {
			t.Errorf("Parse(%q) secrets %v, want %v", c.raw, gotKeys, c.secrets)
		}
		cfg.Secrets, cfg.Name = nil, ""
		if cfg.Type != c.want.Type || cfg.Bucket != c.want.Bucket || cfg.Path != c.want.Path || cfg.Endpoint != c.want.Endpoint ||
			cfg.Region != c.want.Region || cfg.AuthEndpoint != c.want.AuthEndpoint || cfg.PathStyle != c.want.PathStyle || cfg.CreateBucket != c.want.CreateBucket {
			t.Errorf("Parse(%q) = %+v, want %+v", c.raw, cfg, c.want)
		}
	}
}

func TestParseSecretsFromTheirVariables(t *testing.T) {
	cfg, _, err := Parse("s3://b", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Secrets.Get("SecretAccessKey").Reveal(); got != env["AWS_SECRET_ACCESS_KEY"] {
		t.Errorf("SecretAccessKey = %q, want AWS_SECRET_ACCESS_KEY's value", got)
	}
	cfg, _, err = Parse("s3://b", func(string) string { return "" })
	if err != nil || len(cfg.Secrets) != 0 {
		t.Errorf("with no variables set: secrets %v, err %v; want none (the SDK's defaults apply)", cfg.Secrets, err)
	}
}

// TestEveryDeclaredParamIsKnown: a parameter a driver declares must set
// something, and every registered type must be reachable by a URL.
func TestEveryDeclaredParamIsKnown(t *testing.T) {
	regs := drivers.Registrations()
	if len(regs) != len(drivers.Types()) || len(regs) < 5 {
		t.Fatalf("%d registrations for types %v", len(regs), drivers.Types())
	}
	for _, r := range regs {
		for _, p := range append(slices.Clone(r.Params), commonParams...) {
			if setters[p] == nil {
				t.Errorf("type %s declares URL parameter %q, which sets no config field", r.Type, p)
			}
		}
		if _, _, err := Parse(r.Scheme+"://b/p", getenv); err != nil && !strings.Contains(err.Error(), "file://") {
			t.Errorf("type %s: its scheme %s:// does not parse: %v", r.Type, r.Scheme, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"":                                     "cannot parse",
		"relative/dir":                         "cannot parse",
		"ftp://host/x":                         `unknown scheme "ftp"`,
		"file://host/x":                        "take no host",
		"file:relative":                        "absolute path",
		"file:///x?endpoint=http://e":          `unknown parameter "endpoint"`,
		"s3:///prefix":                         "needs a bucket",
		"s3://b?auth_endpoint=http://x":        `unknown parameter "auth_endpoint"`,
		"s3://b?path_style=maybe":              `path_style="maybe" is not true or false`,
		"gs://b?region=x":                      `unknown parameter "region"`,
		"s3://AKIA:hunter2@bucket/p":           "credentials do not belong in the URL",
		"s3://b?ca_bundle=/nonexistent/ca.pem": "ca_bundle",
		"s3://b/%zz":                           "cannot parse",
	}
	for raw, want := range cases {
		_, _, err := Parse(raw, getenv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q): error repeats the URL's password: %v", raw, err)
		}
	}
}

func TestParseCABundle(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Parse("s3://b?ca_bundle="+url.QueryEscape(file), getenv)
	if err != nil || string(cfg.CABundle) != "-----BEGIN CERTIFICATE-----\n" {
		t.Fatalf("ca_bundle: %q, %v", cfg.CABundle, err)
	}
}

// FuzzParse: Parse never panics, never puts a credential from the
// environment into an error, and what it accepts is a config a driver can
// be asked to open (a known type, a bucket or an absolute path, a prefix
// without edge slashes).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"file:///var/backups", "/srv/repo", "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
		"ibmcos://b/p?endpoint=https://e&auth_endpoint=https://iam/identity/token", "gs://b/p?endpoint=http://127.0.0.1:4443",
		"azblob://c/p?endpoint=http://127.0.0.1:10000/devstoreaccount1&create_bucket=true", "s3://u:p@b", "file://h/x", "s3:///p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// ca_bundle names a file Parse reads: the fuzzer must not point it
		// at /dev/zero or a terminal.
		if strings.Contains(raw, "ca_bundle") || strings.Contains(raw, "ca%5Fbundle") || strings.Contains(strings.ToLower(raw), "ca_bundl") {
			return
		}
		if u, err := url.Parse(raw); err == nil && u.Query().Has("ca_bundle") {
			return
		}
		cfg, prefix, err := Parse(raw, getenv)
		if err != nil {
			for name, v := range env {
				if strings.Contains(err.Error(), v) && !strings.Contains(raw, v) {
					t.Fatalf("Parse(%q): error holds %s: %v", raw, name, err)
				}
			}
			return
		}
		switch cfg.Type {
		case "fs":
			if !filepath.IsAbs(cfg.Path) || prefix != "" {
				t.Fatalf("Parse(%q): fs config with path %q, prefix %q", raw, cfg.Path, prefix)
			}
		case "s3", "ibmcos", "gcs", "azure":
			if cfg.Bucket == "" || strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") {
				t.Fatalf("Parse(%q): bucket %q, prefix %q", raw, cfg.Bucket, prefix)
			}
		default:
			t.Fatalf("Parse(%q): type %q", raw, cfg.Type)
		}
	})
}

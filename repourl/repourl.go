// Package repourl turns the repo URLs the CLI takes (file:///path,
// s3://bucket/prefix?endpoint=…, ibmcos://, gs://, azblob://) into a
// drivers.Config and a key prefix, reading credentials from each driver's
// documented environment variables.
//
// It knows URL syntax and variable names only; it never opens a bucket and
// never puts a credential into an error.
package repourl

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dbarchive/dbarchive/drivers"
)

// scheme describes one URL scheme: the repo type it opens, and which
// environment variable fills which secret key of that driver.
type scheme struct {
	repoType string
	env      map[string]string // secret key -> environment variable
	params   []string          // query parameters besides the common ones
}

var schemes = map[string]scheme{
	"file": {repoType: "fs"},
	"s3": {repoType: "s3", params: []string{"endpoint", "region", "path_style"}, env: map[string]string{
		"AccessKeyId": "AWS_ACCESS_KEY_ID", "SecretAccessKey": "AWS_SECRET_ACCESS_KEY", "SessionToken": "AWS_SESSION_TOKEN",
	}},
	"ibmcos": {repoType: "ibmcos", params: []string{"endpoint", "region", "path_style", "auth_endpoint"}, env: map[string]string{
		"HmacAccessKeyId":     "CLOUD_OBJECT_STORAGE_HMAC_ACCESS_KEY_ID",
		"HmacSecretAccessKey": "CLOUD_OBJECT_STORAGE_HMAC_SECRET_ACCESS_KEY",
		"ApiKey":              "CLOUD_OBJECT_STORAGE_API_KEY",
		"ServiceInstanceId":   "CLOUD_OBJECT_STORAGE_SERVICE_INSTANCE_ID",
	}},
	"gs": {repoType: "gcs", params: []string{"endpoint"}, env: map[string]string{
		"ServiceAccountJson": "DBARCHIVE_GCS_SERVICE_ACCOUNT_JSON",
	}},
	"azblob": {repoType: "azure", params: []string{"endpoint"}, env: map[string]string{
		"AccountName":      "AZURE_STORAGE_ACCOUNT",
		"AccountKey":       "AZURE_STORAGE_KEY",
		"SasToken":         "AZURE_STORAGE_SAS_TOKEN",
		"ConnectionString": "AZURE_STORAGE_CONNECTION_STRING",
	}},
}

// commonParams apply to every scheme but file.
var commonParams = []string{"create_bucket", "ca_bundle"}

// EnvVars lists, per URL scheme, the environment variables read for
// credentials, for the CLI's help text.
func EnvVars() map[string][]string {
	out := map[string][]string{}
	for name, s := range schemes {
		for _, v := range s.env {
			out[name] = append(out[name], v)
		}
		slices.Sort(out[name])
	}
	return out
}

// Parse turns a repo URL into a driver config and the key prefix of the
// repo's backups. A plain absolute path is taken as file://. getenv looks up
// credentials (os.Getenv in the CLI; a map in tests).
func Parse(raw string, getenv func(string) string) (drivers.Config, string, error) {
	cfg := drivers.Config{Name: "repo"}
	if strings.HasPrefix(raw, "/") {
		raw = "file://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return cfg, "", fmt.Errorf("repo URL: cannot parse (want file:///path, s3://bucket/prefix, ibmcos://, gs://, azblob://)")
	}
	s, ok := schemes[u.Scheme]
	if !ok {
		return cfg, "", fmt.Errorf("repo URL: unknown scheme %q; known: %s", u.Scheme, strings.Join(knownSchemes(), ", "))
	}
	if u.User != nil {
		return cfg, "", fmt.Errorf("repo URL: credentials do not belong in the URL; use the environment variables %s", strings.Join(EnvVars()[u.Scheme], ", "))
	}
	cfg.Type = s.repoType
	cfg.Name = u.Scheme + "://" + u.Host + u.Path // the URL minus its query: it names the repo in errors
	q := u.Query()
	for k := range q {
		if !slices.Contains(s.params, k) && (u.Scheme == "file" || !slices.Contains(commonParams, k)) {
			return cfg, "", fmt.Errorf("repo URL: unknown parameter %q for %s://", k, u.Scheme)
		}
	}
	if u.Scheme == "file" {
		if u.Host != "" && u.Host != "localhost" {
			return cfg, "", fmt.Errorf("repo URL: file:// URLs take no host (file:///absolute/path)")
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return cfg, "", fmt.Errorf("repo URL: file:// needs an absolute path")
		}
		cfg.Path = filepath.Clean(u.Path)
		cfg.CreateBucket = true
		return cfg, "", nil
	}
	cfg.Bucket = u.Host
	if cfg.Bucket == "" {
		return cfg, "", fmt.Errorf("repo URL: %s:// needs a bucket: %s://BUCKET/prefix", u.Scheme, u.Scheme)
	}
	prefix := strings.Trim(u.Path, "/")
	cfg.Endpoint = q.Get("endpoint")
	cfg.Region = q.Get("region")
	cfg.AuthEndpoint = q.Get("auth_endpoint")
	for name, target := range map[string]*bool{"path_style": &cfg.PathStyle, "create_bucket": &cfg.CreateBucket} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, "", fmt.Errorf("repo URL: parameter %s=%q is not true or false", name, v)
			}
			*target = b
		}
	}
	if file := q.Get("ca_bundle"); file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return cfg, "", fmt.Errorf("repo URL: ca_bundle: %w", err)
		}
		cfg.CABundle = pem
	}
	cfg.Secrets = drivers.Secrets{}
	for key, env := range s.env {
		if v := getenv(env); v != "" {
			cfg.Secrets[key] = drivers.NewSecret(v)
		}
	}
	return cfg, prefix, nil
}

func knownSchemes() []string {
	out := make([]string, 0, len(schemes))
	for s := range schemes {
		out = append(out, s+"://")
	}
	slices.Sort(out)
	return out
}

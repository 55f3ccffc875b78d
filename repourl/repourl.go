// Package repourl turns the repo URLs the CLI takes (file:///path,
// s3://bucket/prefix?endpoint=…, ibmcos://, gs://, azblob://) into a
// drivers.Config and a key prefix. Which scheme opens which repo type, which
// query parameters a type takes and which environment variable fills which
// Secret key are the drivers' to say (drivers.Registration); this package
// asks the driver table, so a new repo type needs no change here.
//
// It knows URL syntax only; it never opens a bucket and never puts a
// credential into an error. The binary must import drivers/all (or the
// drivers it wants) for the table to be filled.
package repourl

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/dbarchive/dbarchive/drivers"
)

// commonParams apply to every URL except file://, whatever its type.
var commonParams = []string{"create_bucket", "ca_bundle"}

// setters are the query parameters a driver may declare, and the Config
// field each one sets. A driver declaring one that is not here fails
// TestEveryDeclaredParamIsKnown.
var setters = map[string]func(cfg *drivers.Config, v string) error{
	"endpoint":      func(cfg *drivers.Config, v string) error { cfg.Endpoint = v; return nil },
	"region":        func(cfg *drivers.Config, v string) error { cfg.Region = v; return nil },
	"auth_endpoint": func(cfg *drivers.Config, v string) error { cfg.AuthEndpoint = v; return nil },
	"path_style":    func(cfg *drivers.Config, v string) error { return parseBool("path_style", v, &cfg.PathStyle) },
	"create_bucket": func(cfg *drivers.Config, v string) error { return parseBool("create_bucket", v, &cfg.CreateBucket) },
	"ca_bundle": func(cfg *drivers.Config, v string) error {
		pem, err := os.ReadFile(v)
		if err != nil {
			return fmt.Errorf("ca_bundle: %w", err)
		}
		cfg.CABundle = pem
		return nil
	},
}

func parseBool(name, v string, target *bool) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("parameter %s=%q is not true or false", name, v)
	}
	*target = b
	return nil
}

// EnvVars lists, per URL scheme, the environment variables read for
// credentials, for the CLI's help text. The driver table is the source.
func EnvVars() map[string][]string {
	out := map[string][]string{}
	for _, r := range drivers.Registrations() {
		for _, k := range r.Secrets {
			out[r.Scheme] = append(out[r.Scheme], k.Env)
		}
		slices.Sort(out[r.Scheme])
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
		return cfg, "", fmt.Errorf("repo URL: cannot parse (want %s)", strings.Join(examples(), ", "))
	}
	reg, ok := drivers.LookupScheme(u.Scheme)
	if !ok {
		return cfg, "", fmt.Errorf("repo URL: unknown scheme %q; known: %s", u.Scheme, strings.Join(knownSchemes(), ", "))
	}
	if u.User != nil {
		return cfg, "", fmt.Errorf("repo URL: credentials do not belong in the URL; use the environment variables %s", strings.Join(EnvVars()[u.Scheme], ", "))
	}
	cfg.Type = reg.Type
	cfg.Name = u.Scheme + "://" + u.Host + u.Path // the URL minus its query: it names the repo in errors
	allowed := reg.Params
	if reg.FromURL == nil {
		// Bucket URLs take the common parameters; a directory URL takes
		// only what its driver declares.
		allowed = append(slices.Clone(allowed), commonParams...)
	}
	q := u.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		set, known := setters[k]
		if !slices.Contains(allowed, k) || !known {
			return cfg, "", fmt.Errorf("repo URL: unknown parameter %q for %s://", k, u.Scheme)
		}
		if err := set(&cfg, q.Get(k)); err != nil {
			return cfg, "", fmt.Errorf("repo URL: %w", err)
		}
	}
	var prefix string
	if reg.FromURL != nil {
		if prefix, err = reg.FromURL(u, &cfg); err != nil {
			return cfg, "", fmt.Errorf("repo URL: %w", err)
		}
	} else {
		cfg.Bucket = u.Host
		if cfg.Bucket == "" {
			return cfg, "", fmt.Errorf("repo URL: %s:// needs a bucket: %s://BUCKET/prefix", u.Scheme, u.Scheme)
		}
		prefix = strings.Trim(u.Path, "/")
	}
	cfg.Secrets = drivers.Secrets{}
	for _, k := range reg.Secrets {
		if v := getenv(k.Env); v != "" {
			cfg.Secrets[k.Key] = drivers.NewSecret(v)
		}
	}
	return cfg, prefix, nil
}

func knownSchemes() []string {
	var out []string
	for _, r := range drivers.Registrations() {
		out = append(out, r.Scheme+"://")
	}
	slices.Sort(out)
	return out
}

func examples() []string {
	var out []string
	for _, s := range knownSchemes() {
		if s == "file://" {
			out = append(out, "file:///path")
		} else {
			out = append(out, s+"bucket/prefix")
		}
	}
	return out
}

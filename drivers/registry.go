package drivers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Factory opens a driver from a repo's Config. It validates the fields its
// type uses and returns a *ConfigError naming the first bad one. It builds
// its HTTP client with cfg.NewTransport or cfg.ConfigureTransport, so that
// cfg.Timeouts bound every request.
type Factory func(ctx context.Context, cfg Config) (driver.Bucket, error)

// SecretKey is one key of a repo's Secret that a driver reads, and the
// environment variable the CLI reads the same value from.
type SecretKey struct {
	Key string
	Env string
}

// Registration is what a driver package declares about its repo type, in
// the shape of gocloud.dev's URLOpener: everything outside the driver that
// depends on the type (repo URLs, the CLI's credential variables, the job's
// Secret keys) asks the table instead of keeping its own list.
type Registration struct {
	// Type is the repo type, as the API's repo-type enum spells it.
	Type string
	// Scheme is the repo URL scheme (s3 for s3://bucket/prefix).
	Scheme string
	// Params are the URL query parameters the type takes besides the ones
	// every URL takes; repourl knows which Config field each sets.
	Params []string
	// Secrets are the Secret keys the driver reads, with their variables.
	Secrets []SecretKey
	// FromURL fills cfg from a URL's host and path and returns the key
	// prefix. Nil means the usual bucket URL: host is the bucket, the path
	// the prefix.
	FromURL func(u *url.URL, cfg *Config) (prefix string, err error)
	// Open opens the driver.
	Open Factory
}

// SecretKeys returns the Secret key names, in declaration order.
func (r Registration) SecretKeys() []string {
	out := make([]string, len(r.Secrets))
	for i, s := range r.Secrets {
		out[i] = s.Key
	}
	return out
}

var (
	tableMu sync.RWMutex
	table   = map[string]Registration{}
)

// Register makes a driver available under its repo type and URL scheme. It
// panics when the type or scheme is empty or taken, or Open is nil: those
// are programming errors found at start-up.
func Register(r Registration) {
	tableMu.Lock()
	defer tableMu.Unlock()
	switch {
	case r.Type == "":
		panic("drivers: Register with an empty type")
	case r.Scheme == "":
		panic("drivers: Register of type " + r.Type + " with an empty URL scheme")
	case r.Open == nil:
		panic("drivers: Register of type " + r.Type + " with a nil factory")
	}
	for _, o := range table {
		if o.Type == r.Type {
			panic("drivers: Register called twice for type " + r.Type)
		}
		if o.Scheme == r.Scheme {
			panic("drivers: URL scheme " + r.Scheme + " registered by types " + o.Type + " and " + r.Type)
		}
	}
	table[r.Type] = r
}

// Types returns the registered repo types, sorted.
func Types() []string {
	tableMu.RLock()
	defer tableMu.RUnlock()
	out := make([]string, 0, len(table))
	for t := range table {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Lookup returns the registration of a repo type.
func Lookup(repoType string) (Registration, bool) {
	tableMu.RLock()
	defer tableMu.RUnlock()
	r, ok := table[repoType]
	return r, ok
}

// LookupScheme returns the registration whose URL scheme is scheme.
func LookupScheme(scheme string) (Registration, bool) {
	tableMu.RLock()
	defer tableMu.RUnlock()
	for _, r := range table {
		if r.Scheme == scheme {
			return r, true
		}
	}
	return Registration{}, false
}

// Registrations returns every registration, sorted by type.
func Registrations() []Registration {
	var out []Registration
	for _, t := range Types() {
		r, _ := Lookup(t)
		out = append(out, r)
	}
	return out
}

// Open opens the repo cfg describes with the driver registered for cfg.Type
// and wraps it in the portable Bucket. A factory that fails with a
// Transient error (creating a missing bucket against an endpoint that is
// restarting) is retried like any call.
func Open(ctx context.Context, cfg Config) (*Bucket, error) {
	d, err := OpenDriver(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewBucket(d, cfg), nil
}

// OpenDriver opens the bare driver for cfg, without the portable layer. Only
// benchmarks that measure the layer's cost, and tests that put a fault
// injector between driver and portable layer, want this.
func OpenDriver(ctx context.Context, cfg Config) (driver.Bucket, error) {
	if strings.TrimSpace(cfg.Name) == "" {
		return nil, cfg.Invalid("name", "is required")
	}
	r, ok := Lookup(cfg.Type)
	if !ok {
		if cfg.Type == "" {
			return nil, cfg.Invalid("type", "is required; known types: %s", strings.Join(Types(), ", "))
		}
		return nil, cfg.Invalid("type", "unknown type %q; known types: %s", cfg.Type, strings.Join(Types(), ", "))
	}
	var d driver.Bucket
	err := retryCall(ctx, cfg.Retry.withDefaults(), time.Now, sleep, slog.Default().With("repo", cfg.Name), "open repo", cfg.Name, func(ctx context.Context) (err error) {
		d, err = r.Open(ctx, cfg)
		return err
	}, nil)
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, ce // it names the repo already
	case err != nil:
		return nil, fmt.Errorf("repo %q: %w", cfg.Name, err)
	}
	return d, nil
}

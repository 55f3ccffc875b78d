package drivers

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
)

// Config is one repo's settings, as the DatabaseBackup resource or a repo URL
// gives them. Drivers read the fields that apply to them and validate those in
// their factory.
type Config struct {
	// Name is the repo's name, used in every error about it.
	Name string
	// Type selects the driver: fs, s3, ibmcos, gcs, azure.
	Type string
	// Bucket is the bucket (s3, ibmcos, gcs) or container (azure).
	Bucket string
	// Path is the root directory of an fs repo.
	Path string
	// Endpoint overrides the service's endpoint URL (S3-compatible stores,
	// IBM COS regions, emulators).
	Endpoint string
	// Region is the signing region (s3, ibmcos).
	Region string
	// AuthEndpoint is the IAM token endpoint (ibmcos with an API key).
	AuthEndpoint string
	// PathStyle selects path-style addressing (s3, ibmcos).
	PathStyle bool
	// CABundle is a PEM bundle of extra roots to trust for Endpoint and
	// AuthEndpoint.
	CABundle []byte
	// CreateBucket makes the driver create the bucket when it is missing.
	CreateBucket bool
	// ListPageSize caps the keys per list request; zero keeps the service's
	// default. Tests lower it to exercise paging.
	ListPageSize int
	// Secrets are the credential values, by the keys each driver documents.
	Secrets Secrets
	// Timeouts bound every request (zero fields: DefaultTimeouts).
	Timeouts Timeouts
	// Retry governs the retries of every call (zero fields: DefaultRetry).
	Retry RetryPolicy
}

// ConfigError is a repo setting that cannot work. It names the repo and the
// field, and never carries a secret value.
type ConfigError struct {
	Repo   string
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	repo := e.Repo
	if repo == "" {
		repo = "(unnamed)"
	}
	return fmt.Sprintf("repo %q: %s: %s", repo, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrPermanent) hold: a bad setting is never retried.
func (e *ConfigError) Is(target error) bool { return target == ErrPermanent }

// Invalid builds a ConfigError for this repo.
func (c Config) Invalid(field, format string, args ...any) error {
	return &ConfigError{Repo: c.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Require returns a ConfigError naming field when value is empty.
func (c Config) Require(field, value string) error {
	if strings.TrimSpace(value) == "" {
		return c.Invalid(field, "is required for type %s", c.Type)
	}
	return nil
}

// ValidEndpoint checks that a non-empty endpoint is an absolute http(s) URL.
// The value is never echoed back in full: an endpoint may carry a token in
// its query string.
func (c Config) ValidEndpoint(field, endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c.Invalid(field, "must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return c.Invalid(field, "must not carry credentials; put them in the repo's Secret")
	}
	return nil
}

// CertPool returns the system roots plus CABundle, or nil when no bundle is
// set (the SDK default applies).
func (c Config) CertPool() (*x509.CertPool, error) {
	if len(c.CABundle) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(c.CABundle) {
		return nil, c.Invalid("caBundle", "holds no PEM certificate")
	}
	return pool, nil
}

// SecretPair checks that two credentials that only work together are either
// both set or both empty, and reports whether they are set.
func (c Config) SecretPair(a, b string) (bool, error) {
	sa, sb := c.Secrets.Get(a), c.Secrets.Get(b)
	switch {
	case sa.IsZero() && sb.IsZero():
		return false, nil
	case sa.IsZero():
		return false, c.Invalid("secret key "+a, "is missing while %s is set; give both or neither", b)
	case sb.IsZero():
		return false, c.Invalid("secret key "+b, "is missing while %s is set; give both or neither", a)
	}
	return true, nil
}

// Package gcs is the driver for repos of type gcs: a Google Cloud Storage
// bucket, or an emulator of its JSON API (fake-gcs-server).
//
// # Multipart uploads
//
// GCS has no S3-style multipart upload, so the driver builds one out of plain
// objects. Each part is written as a temporary object under a hidden prefix,
//
//	.dbarchive-uploads/<upload-id>/part-000001
//
// next to a marker object .dbarchive-uploads/<upload-id>.upload whose
// metadata records the final key, so that ListUploads finds uploads a crashed
// backup left behind. Complete checks that parts 1..n all exist, then
// concatenates them with compose: at most 32 sources per call, in rounds
// (groups of 32 parts into intermediate objects, groups of those, ...), every
// intermediate under its own name so no object is written twice. Only the last
// compose writes the key, so the object appears whole or not at all. Complete
// and Abort delete every temporary object; the marker goes last, so an upload
// whose cleanup failed half-way is still listed and can be aborted again.
//
// The alternative, one resumable upload session per object, takes its bytes in
// order only: a caller putting parts concurrently and out of order would have
// to buffer every part that arrives early, and one slow part stalls the whole
// stream. Staging costs a compose call per 32 sources (about n/31 calls for n
// parts) and the deletes of the temporaries, but compose moves no data
// through the client: the server concatenates. BenchmarkUpload64MiB measures
// both ways against the emulator; they came out on par there (8 parts:
// ~1.3-1.5 s per 64 MiB either way, on 2 busy cores), so the choice rests on
// the contract, not on speed.
//
// # Configuration
//
//   - Bucket: the bucket name (required).
//   - Endpoint: the JSON API base URL, e.g. https://storage.googleapis.com/storage/v1/
//     (the default). An endpoint without a path gets /storage/v1/ appended. A
//     plain http:// endpoint is taken to be an emulator and gets no credentials
//     at all; a Secret with ServiceAccountJson is then refused, so a key is
//     never sent in clear text.
//   - Secret key ServiceAccountJson: a service account key file. It must be of
//     type service_account, and its token_uri (if any) must be Google's. Without
//     it, application default credentials apply (GOOGLE_APPLICATION_CREDENTIALS,
//     gcloud's well-known file, or the metadata server, e.g. GKE Workload
//     Identity).
//   - Secret key ProjectId: the project a bucket is created in when
//     CreateBucket is set; it defaults to project_id of the service account key.
//     It is only read when the bucket is missing and CreateBucket is set.
//   - CABundle: extra roots for Endpoint and for fetching tokens.
//   - CreateBucket: create the bucket when missing. Opening then reads the
//     bucket's metadata, which needs storage.buckets.get; without CreateBucket
//     the driver makes no request when it opens, so a service account that
//     holds only object permissions on the bucket is enough.
//
// # Limits
//
// 10,000 parts of 1 byte to 5 GiB. Compose has no minimum source size, so
// MinPartSize is 1. GCS objects are at most 5 TiB: 5 GiB parts keep a part in
// memory bounded while 1,024 of them already reach that size, and 10,000 parts
// (as S3) let a caller keep parts small for streams of unknown length. The
// composite object's component count is not limited any more (the 1,024 limit
// was lifted in 2019); the 32 sources per compose request are.
//
// # Retries
//
// The SDK's own retries are turned off (RetryNever), with one exception the
// SDK does not let us turn off: its reader reopens a body that breaks off,
// once per break, at the offset it reached (the conformance suite's
// ResetMidRangedRead logs it). Every error is classified
// once, in classify, and the portable layer (*drivers.Bucket) retries
// Transient ones with its backoff and budget; two retry loops on top of each
// other multiply the time a dead endpoint takes to fail and hide how often
// requests fail.
//
// The driver must not log, must not put a credential into an error, and must
// not let an SDK type out of this package.
//
// Repo URL: gs://bucket/prefix?endpoint=, the service account key's JSON in
// DBARCHIVE_GCS_SERVICE_ACCOUNT_JSON (or application default credentials).
package gcs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	authhttp "cloud.google.com/go/auth/httptransport"
	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Type is the repo type this driver registers.
const Type = "gcs"

// Secret keys this driver reads.
const (
	SecretServiceAccountJSON = "ServiceAccountJson"
	SecretProjectID          = "ProjectId"
)

// stagingPrefix holds pending uploads. It is hidden from List and cannot be
// used as a key.
const stagingPrefix = ".dbarchive-uploads/"

// maxComposeSources is the most sources one compose request takes.
const maxComposeSources = 32

// silent is handed to the SDK wherever it takes a logger.
var silent = slog.New(slog.DiscardHandler)

var limits = drivers.Limits{MaxParts: 10000, MinPartSize: 1, MaxPartSize: 5 << 30, MaxKeyLength: 1024}

func init() {
	drivers.Register(drivers.Registration{
		Type:   Type,
		Scheme: "gs",
		Params: []string{"endpoint"},
		Secrets: []drivers.SecretKey{
			{Key: SecretServiceAccountJSON, Env: "DBARCHIVE_GCS_SERVICE_ACCOUNT_JSON"},
			{Key: SecretProjectID, Env: "DBARCHIVE_GCS_PROJECT_ID"},
		},
		Open: New,
	})
}

// Bucket is a gcs repo.
type Bucket struct {
	client    *gcstorage.Client
	transport *http.Transport
	bucket    *gcstorage.BucketHandle
	name      string
	pageSize  int
}

// bucketName follows the GCS naming rules closely enough to catch typos and
// URLs pasted into the field; the service has the last word.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)

// New opens the bucket cfg.Bucket. It validates the configuration and builds
// the client without a request, unless cfg.CreateBucket asks it to create a
// missing bucket.
func New(ctx context.Context, cfg drivers.Config) (driver.Bucket, error) {
	if err := cfg.Require("bucket", cfg.Bucket); err != nil {
		return nil, err
	}
	if !bucketName.MatchString(cfg.Bucket) {
		return nil, cfg.Invalid("bucket", "%q is not a GCS bucket name (3-222 lowercase letters, digits, '-', '_' and '.')", cfg.Bucket)
	}
	if cfg.ListPageSize < 0 {
		return nil, cfg.Invalid("listPageSize", "must not be negative")
	}
	endpoint, plainHTTP, err := endpointURL(cfg)
	if err != nil {
		return nil, err
	}
	key, err := parseServiceAccount(cfg)
	if err != nil {
		return nil, err
	}
	if plainHTTP && key != nil {
		return nil, cfg.Invalid("endpoint", "is plain http://, which is for emulators only and never carries credentials; use https:// or drop secret key %s", SecretServiceAccountJSON)
	}

	// Our transport for storage and token requests alike: the CA bundle
	// and the timeouts apply to both.
	base, err := cfg.NewTransport()
	if err != nil {
		return nil, err
	}
	tokenClient := &http.Client{Transport: base}

	// With GOOGLE_SDK_GO_LOGGING_LEVEL set, the SDK logs requests and
	// responses, token exchanges included; a driver must not log, so the SDK
	// gets a logger that drops everything. (storage v1.70 does not pass it on
	// to its JSON API service, which still logs object requests, never the
	// token, to stderr under that variable.)
	opts := []option.ClientOption{option.WithLogger(silent)}
	if endpoint != "" {
		opts = append(opts, option.WithEndpoint(endpoint))
	}
	var creds *auth.Credentials
	if plainHTTP {
		opts = append(opts, option.WithoutAuthentication())
	} else {
		creds, err = credentialsFor(cfg, key, tokenClient)
		if err != nil {
			return nil, err
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	// A custom transport means the SDK no longer adds authentication
	// itself, so wrap the base transport with the credentials here.
	hc := &http.Client{Transport: base}
	if creds != nil {
		hc, err = authhttp.NewClient(&authhttp.Options{BaseRoundTripper: base, Credentials: creds, Logger: silent})
		if err != nil {
			return nil, cfg.Invalid("secret key "+SecretServiceAccountJSON, "cannot build an HTTP client: %v", err)
		}
	}
	opts = append(opts, option.WithHTTPClient(hc))

	client, err := gcstorage.NewClient(ctx, opts...)
	if err != nil {
		return nil, cfg.Invalid("endpoint", "cannot create a storage client: %v", err)
	}
	client.SetRetry(gcstorage.WithPolicy(gcstorage.RetryNever))
	b := &Bucket{client: client, transport: base, bucket: client.Bucket(cfg.Bucket), name: cfg.Bucket, pageSize: cfg.ListPageSize}
	if cfg.CreateBucket {
		if err := b.ensureBucket(ctx, cfg, key); err != nil {
			client.Close()
			return nil, err
		}
	}
	return b, nil
}

// endpointURL checks cfg.Endpoint and completes a bare host URL to the JSON
// API base path. It reports whether the endpoint is plain HTTP.
func endpointURL(cfg drivers.Config) (string, bool, error) {
	if cfg.Endpoint == "" {
		return "", false, nil
	}
	if err := cfg.ValidEndpoint("endpoint", cfg.Endpoint); err != nil {
		return "", false, err
	}
	u, _ := url.Parse(cfg.Endpoint) // ValidEndpoint parsed it already
	if u.Path == "" || u.Path == "/" {
		u.Path = "/storage/v1/"
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), u.Scheme == "http", nil
}

// serviceAccount is the part of a service account key file the driver checks
// before the SDK sees it.
type serviceAccount struct {
	Type           string `json:"type"`
	ProjectID      string `json:"project_id"`
	PrivateKey     string `json:"private_key"`
	ClientEmail    string `json:"client_email"`
	TokenURI       string `json:"token_uri"`
	UniverseDomain string `json:"universe_domain"`

	raw []byte
}

// parseServiceAccount validates the ServiceAccountJson secret, or returns nil
// when it is not set. The reasons it gives never quote the JSON: a syntax
// error is reported by its byte offset, never by its text.
func parseServiceAccount(cfg drivers.Config) (*serviceAccount, error) {
	secret := cfg.Secrets.Get(SecretServiceAccountJSON)
	if secret.IsZero() {
		return nil, nil
	}
	field := "secret key " + SecretServiceAccountJSON
	raw := []byte(secret.Reveal())
	var sa serviceAccount
	if err := json.Unmarshal(raw, &sa); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, cfg.Invalid(field, "is not valid JSON (syntax error at byte %d)", syn.Offset)
		}
		return nil, cfg.Invalid(field, "is not a JSON object with string fields")
	}
	switch {
	case sa.Type != "service_account":
		return nil, cfg.Invalid(field, "must be a service account key (type \"service_account\")")
	case sa.ClientEmail == "":
		return nil, cfg.Invalid(field, "has no client_email")
	case sa.PrivateKey == "":
		return nil, cfg.Invalid(field, "has no private_key")
	}
	if !validPrivateKey(sa.PrivateKey) {
		return nil, cfg.Invalid(field, "private_key is not a PEM-encoded RSA key")
	}
	// The key is exchanged for tokens at token_uri: a key file from elsewhere
	// must not send it to anyone but Google.
	if sa.TokenURI != "" {
		domain := sa.UniverseDomain
		if domain == "" {
			domain = "googleapis.com"
		}
		u, err := url.Parse(sa.TokenURI)
		if err != nil || u.Scheme != "https" || u.Host != "oauth2."+domain {
			return nil, cfg.Invalid(field, "token_uri must be https://oauth2.%s/token", domain)
		}
	}
	sa.raw = raw
	return &sa, nil
}

func validPrivateKey(s string) bool {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return false
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return true
	}
	_, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	return err == nil
}

// credentialsFor returns the service account's credentials, or application
// default credentials when there is no key. tokenClient, when set, fetches
// tokens through the custom roots.
func credentialsFor(cfg drivers.Config, sa *serviceAccount, tokenClient *http.Client) (*auth.Credentials, error) {
	opts := &credentials.DetectOptions{
		Scopes: []string{gcstorage.ScopeReadWrite},
		Client: tokenClient,
		Logger: silent,
	}
	if sa != nil {
		creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, sa.raw, opts)
		if err != nil {
			// The cause is not wrapped: it comes from parsing the key.
			return nil, cfg.Invalid("secret key "+SecretServiceAccountJSON, "is not a usable service account key")
		}
		return creds, nil
	}
	creds, err := credentials.DetectDefault(opts)
	if err != nil {
		return nil, cfg.Invalid("secret key "+SecretServiceAccountJSON,
			"is not set and no application default credentials were found: %v", err)
	}
	return creds, nil
}

// ensureBucket creates the bucket when it does not exist.
func (b *Bucket) ensureBucket(ctx context.Context, cfg drivers.Config, sa *serviceAccount) error {
	_, err := b.bucket.Attrs(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, gcstorage.ErrBucketNotExist) {
		return classify("check bucket", cfg.Bucket, err)
	}
	project := cfg.Secrets.Get(SecretProjectID).Reveal()
	if project == "" && sa != nil {
		project = sa.ProjectID
	}
	if project == "" {
		return cfg.Invalid("secret key "+SecretProjectID, "is required to create bucket %q (or use a service account key with project_id)", cfg.Bucket)
	}
	err = b.bucket.Create(ctx, project, nil)
	if httpStatus(err) == http.StatusConflict {
		return nil // created by someone else in the meantime
	}
	return classify("create bucket", cfg.Bucket, err)
}

func (b *Bucket) Limits() drivers.Limits { return limits }

func (b *Bucket) Close() error {
	b.transport.CloseIdleConnections()
	return b.client.Close()
}

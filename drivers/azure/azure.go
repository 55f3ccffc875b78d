// Package azure is the driver for repos of type azure: a container in Azure
// Blob Storage, or in Azurite for tests.
//
// An upload is a block blob built from staged blocks: PutPart stages one
// block per part (Put Block) and Complete commits the block list in part
// order (Put Block List), which makes the blob visible atomically. Azure has
// no call that aborts a block upload; the service keeps uncommitted blocks
// for seven days. Abort therefore discards them the only way the service
// offers: it commits an empty block list (which drops every uncommitted block
// of the blob) under If-None-Match: *, so that it can never replace an object
// that is already there, and then deletes that empty blob under If-Match. See
// discardUncommitted for what this leaves behind when an object already
// exists under the key.
//
// The driver is a thin translation layer: it maps every SDK error to a
// drivers.Code once, in classify, and strips request URLs and response
// bodies from what it wraps so a SAS token or an account key never reaches an
// error string. It must not retry (the portable layer, *drivers.Bucket,
// retries every call by class), validate ranges or part numbers (the portable
// layer does), log credentials, or let an SDK type cross the driver
// interface.
//
// Repo URL: azblob://container/prefix?endpoint=, credentials in
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, or AZURE_STORAGE_SAS_TOKEN, or
// AZURE_STORAGE_CONNECTION_STRING.
//
// Credentials come from the repo's Secret, exactly one way: AccountName with
// AccountKey (shared key), SasToken (with AccountName or an endpoint to say
// where), or ConnectionString (which carries its own endpoint).
package azure

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Type is the repo type this driver registers.
const Type = "azure"

// Secret keys this driver reads.
const (
	SecretAccountName      = "AccountName"
	SecretAccountKey       = "AccountKey"
	SecretSasToken         = "SasToken"
	SecretConnectionString = "ConnectionString"
)

// limits are Azure's block blob limits for service versions 2019-12-12 and
// later (the SDK speaks a newer one): at most 50,000 committed blocks of at
// most 4000 MiB each. Azure has no minimum block size, so MinPartSize is 1;
// a part of zero bytes is accepted too and simply left out of the block
// list, since an empty block adds nothing to the blob.
var limits = drivers.Limits{MaxParts: 50000, MinPartSize: 1, MaxPartSize: 4000 << 20, MaxKeyLength: 1024}

// maxListPage is the largest page List Blobs returns.
const maxListPage = 5000

func init() {
	drivers.Register(drivers.Registration{
		Type:   Type,
		Scheme: "azblob",
		Params: []string{"endpoint"},
		Secrets: []drivers.SecretKey{
			{Key: SecretAccountName, Env: "AZURE_STORAGE_ACCOUNT"},
			{Key: SecretAccountKey, Env: "AZURE_STORAGE_KEY"},
			{Key: SecretSasToken, Env: "AZURE_STORAGE_SAS_TOKEN"},
			{Key: SecretConnectionString, Env: "AZURE_STORAGE_CONNECTION_STRING"},
		},
		Open: New,
	})
}

// Bucket is an azure repo: one container.
type Bucket struct {
	client    *container.Client
	transport *http.Transport
	container string
	pageSize  int32
	// secrets are the credential strings (and their URL-escaped forms) that
	// must never appear in an error; scrub checks every error against them
	// as a last line of defence behind the structural redaction in classify.
	secrets []string
}

// containerName is Azure's rule for container names: 3 to 63 lowercase
// letters, digits and single hyphens, starting and ending with a letter or
// digit.
var containerName = regexp.MustCompile(`^[a-z0-9]([a-z0-9]|-[a-z0-9])+$`)

// accountName is Azure's rule for storage account names.
var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// New validates cfg and opens the container. No request is sent unless
// cfg.CreateBucket asks for the container to be created when missing.
func New(ctx context.Context, cfg drivers.Config) (driver.Bucket, error) {
	if err := cfg.Require("bucket", cfg.Bucket); err != nil {
		return nil, err
	}
	if len(cfg.Bucket) < 3 || len(cfg.Bucket) > 63 || !containerName.MatchString(cfg.Bucket) {
		return nil, cfg.Invalid("bucket", "container name %q must be 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit", cfg.Bucket)
	}
	if err := cfg.ValidEndpoint("endpoint", cfg.Endpoint); err != nil {
		return nil, err
	}
	if cfg.Endpoint != "" {
		if u, _ := url.Parse(cfg.Endpoint); u.RawQuery != "" || u.Fragment != "" {
			// A SAS token pasted into the endpoint would end up in logs and
			// resource specs; it belongs in the Secret.
			return nil, cfg.Invalid("endpoint", "must not carry a query string; put a SAS token in the repo's Secret under %s", SecretSasToken)
		}
	}
	if cfg.ListPageSize < 0 {
		return nil, cfg.Invalid("listPageSize", "must not be negative")
	}
	// A transport of our own, so Close can drop its idle connections and a
	// CA bundle applies to this repo only.
	transport, err := cfg.NewTransport()
	if err != nil {
		return nil, err
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &http.Client{Transport: transport},
		// One attempt per call: the portable layer retries Transient errors
		// with its backoff and budget. SDK retries underneath would multiply
		// the attempts and hide how long a part really took.
		Retry: policy.RetryOptions{MaxRetries: -1},
	}}

	client, source, secrets, err := newClient(cfg, opts)
	if err != nil {
		return nil, err
	}
	pageSize := int32(maxListPage)
	if cfg.ListPageSize > 0 {
		pageSize = int32(min(cfg.ListPageSize, maxListPage))
	}
	b := &Bucket{client: client, transport: transport, container: cfg.Bucket, pageSize: pageSize, secrets: secrets}
	slog.Debug("opened azure repo", "repo", cfg.Name, "container", cfg.Bucket, "credentials", source)
	if cfg.CreateBucket {
		if err := b.createContainer(ctx); err != nil {
			transport.CloseIdleConnections()
			return nil, err
		}
	}
	return b, nil
}

// newClient picks the one credential the Secret holds and builds the
// container client with it. It returns the credential kind for logging and
// the strings that must never appear in an error.
func newClient(cfg drivers.Config, opts *container.ClientOptions) (*container.Client, string, []string, error) {
	name := cfg.Secrets.Get(SecretAccountName)
	key := cfg.Secrets.Get(SecretAccountKey)
	sas := cfg.Secrets.Get(SecretSasToken)
	conn := cfg.Secrets.Get(SecretConnectionString)

	var kinds []string
	if !key.IsZero() {
		kinds = append(kinds, SecretAccountName+"+"+SecretAccountKey)
	}
	if !sas.IsZero() {
		kinds = append(kinds, SecretSasToken)
	}
	if !conn.IsZero() {
		kinds = append(kinds, SecretConnectionString)
	}
	switch {
	case len(kinds) > 1:
		return nil, "", nil, cfg.Invalid("secret", "holds %s; give exactly one way to authenticate", strings.Join(kinds, " and "))
	case len(kinds) == 0 && !name.IsZero():
		return nil, "", nil, cfg.Invalid("secret key "+SecretAccountKey, "is missing while %s is set; give both, or use %s or %s", SecretAccountName, SecretSasToken, SecretConnectionString)
	case len(kinds) == 0:
		return nil, "", nil, cfg.Invalid("secret", "holds no credential; set %s and %s, or %s, or %s", SecretAccountName, SecretAccountKey, SecretSasToken, SecretConnectionString)
	}

	switch {
	case !key.IsZero():
		if name.IsZero() {
			return nil, "", nil, cfg.Invalid("secret key "+SecretAccountName, "is missing while %s is set; give both", SecretAccountKey)
		}
		cred, err := container.NewSharedKeyCredential(name.Reveal(), key.Reveal())
		if err != nil {
			// The SDK's message is about base64; the key itself is not echoed,
			// but say it in our own words to be sure.
			return nil, "", nil, cfg.Invalid("secret key "+SecretAccountKey, "is not a base64-encoded account key")
		}
		endpoint, err := serviceURL(cfg, name)
		if err != nil {
			return nil, "", nil, err
		}
		client, err := container.NewClientWithSharedKeyCredential(runtime.JoinPaths(endpoint, cfg.Bucket), cred, opts)
		if err != nil {
			return nil, "", nil, cfg.Invalid("endpoint", "cannot build the container URL")
		}
		return client, "shared key", secretForms(key.Reveal()), nil

	case !sas.IsZero():
		token := strings.TrimPrefix(strings.TrimSpace(sas.Reveal()), "?")
		q, err := url.ParseQuery(token)
		if err != nil || q.Get("sig") == "" {
			return nil, "", nil, cfg.Invalid("secret key "+SecretSasToken, "is not a SAS token (a query string with a sig parameter)")
		}
		endpoint, err := serviceURL(cfg, name)
		if err != nil {
			return nil, "", nil, err
		}
		client, err := container.NewClientWithNoCredential(runtime.JoinPaths(endpoint, cfg.Bucket)+"?"+token, opts)
		if err != nil {
			return nil, "", nil, cfg.Invalid("endpoint", "cannot build the container URL")
		}
		secrets := secretForms(token)
		secrets = append(secrets, secretForms(q.Get("sig"))...)
		return client, "SAS token", secrets, nil

	default:
		if !name.IsZero() {
			return nil, "", nil, cfg.Invalid("secret key "+SecretAccountName, "must not be set with %s, which names its own account", SecretConnectionString)
		}
		if cfg.Endpoint != "" {
			return nil, "", nil, cfg.Invalid("endpoint", "must be empty with %s, which carries its own endpoint", SecretConnectionString)
		}
		client, err := container.NewClientFromConnectionString(conn.Reveal(), cfg.Bucket, opts)
		if err != nil {
			// Never wrap the parser's error: it is about a string that holds
			// a key.
			return nil, "", nil, cfg.Invalid("secret key "+SecretConnectionString, "is not a valid Azure Storage connection string")
		}
		secrets := secretForms(conn.Reveal())
		for _, part := range strings.Split(conn.Reveal(), ";") {
			k, v, _ := strings.Cut(part, "=")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "accountkey", "sharedaccesssignature":
				secrets = append(secrets, secretForms(v)...)
				if q, err := url.ParseQuery(v); err == nil && q.Get("sig") != "" {
					secrets = append(secrets, secretForms(q.Get("sig"))...)
				}
			}
		}
		return client, "connection string", secrets, nil
	}
}

// serviceURL is the blob service endpoint: cfg.Endpoint (an emulator, a
// sovereign cloud, a private endpoint) or the account's public one.
func serviceURL(cfg drivers.Config, name drivers.Secret) (string, error) {
	if cfg.Endpoint != "" {
		return cfg.Endpoint, nil
	}
	if name.IsZero() {
		return "", cfg.Invalid("endpoint", "is required when the Secret has no %s to derive it from", SecretAccountName)
	}
	account := name.Reveal()
	if !accountName.MatchString(account) {
		return "", cfg.Invalid("secret key "+SecretAccountName, "must be 3-24 lowercase letters and digits")
	}
	return "https://" + account + ".blob.core.windows.net/", nil
}

// secretForms returns s as it may appear in a URL or a message: raw and
// escaped. Empty and very short values are left out, since they would match
// harmless text.
func secretForms(s string) []string {
	if len(s) < 8 {
		return nil
	}
	return slices.Compact([]string{s, url.QueryEscape(s), url.PathEscape(s)})
}

func (b *Bucket) createContainer(ctx context.Context) error {
	_, err := b.client.Create(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return b.fail("create container "+b.container, "", err)
}

func (b *Bucket) Limits() drivers.Limits { return limits }

func (b *Bucket) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

// fail classifies err and scrubs it: classify already keeps URLs' query
// strings and response bodies out, and scrub replaces the whole cause when a
// credential still shows up in its text.
func (b *Bucket) fail(op, key string, err error) error {
	return scrub(classify(op, key, err), b.secrets)
}

func (b *Bucket) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	props, err := b.client.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		return drivers.ObjectInfo{}, b.fail("stat", key, err)
	}
	info := drivers.ObjectInfo{Key: key}
	if props.ContentLength != nil {
		info.Size = *props.ContentLength
	}
	if props.LastModified != nil {
		info.ModTime = *props.LastModified
	}
	return info, nil
}

func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rng := blob.HTTPRange{Offset: offset}
	if length > 0 {
		rng.Count = length
	}
	resp, err := b.client.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: rng})
	if bloberror.HasCode(err, bloberror.InvalidRange) {
		return nil, driver.ErrInvalidRange
	}
	if err != nil {
		return nil, b.fail("read", key, err)
	}
	return resp.Body, nil
}

func (b *Bucket) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	return b.list(ctx, prefix, false)
}

func (b *Bucket) list(ctx context.Context, prefix string, uncommitted bool) ([]drivers.ObjectInfo, error) {
	opts := &container.ListBlobsFlatOptions{MaxResults: &b.pageSize, Include: container.ListBlobsInclude{UncommittedBlobs: uncommitted}}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	pager := b.client.NewListBlobsFlatPager(opts)
	var out []drivers.ObjectInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, b.fail("list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil {
				continue
			}
			info := drivers.ObjectInfo{Key: *item.Name}
			if p := item.Properties; p != nil {
				if p.ContentLength != nil {
					info.Size = *p.ContentLength
				}
				switch {
				case uncommitted && p.CreationTime != nil:
					// For a pending upload the creation time is when its
					// first block was staged.
					info.ModTime = *p.CreationTime
				case p.LastModified != nil:
					info.ModTime = *p.LastModified
				}
			}
			out = append(out, info)
		}
	}
	// Azure lists in key order already; sorting keeps the contract even if
	// a service orders non-ASCII names differently from Go's byte order.
	slices.SortFunc(out, func(a, c drivers.ObjectInfo) int { return strings.Compare(a.Key, c.Key) })
	return out, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	// Snapshots go with the blob: a snapshot left behind would keep the
	// data (and the bill) of a backup that retention meant to remove, and
	// without this the delete fails with SnapshotsPresent forever.
	_, err := b.client.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	// A missing blob is what Delete wants; a missing container is a
	// misconfigured repo and must not look like success.
	if err == nil || (codeOf(err) == drivers.NotFound && !bloberror.HasCode(err, bloberror.ContainerNotFound)) {
		return nil
	}
	return b.fail("delete", key, err)
}

// pendingID is the ID of every pending upload ListUploads reports. Azure
// keeps one pool of uncommitted blocks per blob name, not one per upload, so
// there is nothing finer to name.
const pendingID = "uncommitted-blocks"

// ListUploads reports the keys under prefix that have uncommitted blocks and
// no committed blob: a listing that includes uncommitted blobs, less a
// listing that does not. The committed listing runs second so that an upload
// completed in between is not reported. Uncommitted blocks staged over an
// existing object are not visible in any listing (only Get Block List on
// each blob would show them); Azure drops them after seven days or at the
// next commit to that key.
func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]drivers.PendingUpload, error) {
	all, err := b.list(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	committed, err := b.list(ctx, prefix, false)
	if err != nil {
		return nil, err
	}
	done := make(map[string]bool, len(committed))
	for _, o := range committed {
		done[o.Key] = true
	}
	var out []drivers.PendingUpload
	for _, o := range all {
		if !done[o.Key] {
			out = append(out, drivers.PendingUpload{Key: o.Key, ID: pendingID, Initiated: o.ModTime})
		}
	}
	return out, nil
}

func (b *Bucket) AbortUpload(ctx context.Context, p drivers.PendingUpload) error {
	return b.discardUncommitted(ctx, p.Key)
}

// discardUncommitted drops the uncommitted blocks of key when no object
// exists there. Put Block List discards every uncommitted block it does not
// name, so committing an empty list drops them all; If-None-Match: * makes
// that commit fail instead of replacing an existing object. The empty blob
// the commit creates is then deleted under If-Match, so a blob that someone
// committed in between is left alone.
//
// When an object already exists under key, the commit is refused and the
// blocks stay: no Azure call removes them without replacing the object. They
// are invisible to readers and to List, and Azure drops them at the next
// commit to key or after seven days. For the short time between the two calls
// an empty blob is visible under key; a crash there leaves it behind, and it
// looks like an object of zero bytes (a backup without a manifest, which the
// archiver ignores and sweeps).
func (b *Bucket) discardUncommitted(ctx context.Context, key string) error {
	client := b.client.NewBlockBlobClient(key)
	resp, err := client.CommitBlockList(ctx, nil, &blockblob.CommitBlockListOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
	})
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return nil
	}
	if err != nil {
		return b.fail("abort upload", key, err)
	}
	_, err = client.Delete(ctx, &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: resp.ETag},
	}})
	if err == nil || bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ConditionNotMet) {
		return nil
	}
	return b.fail("abort upload", key, err)
}

// redactedURL keeps a URL's scheme, host and path: the query string is where
// a SAS token travels.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url withheld)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
	return u.String()
}

// Package s3like is the driver logic shared by the two S3-protocol drivers,
// drivers/s3 (aws-sdk-go-v2) and drivers/ibmcos (IBM's fork of aws-sdk-go
// v1). The SDKs have nothing in common at the type level, but the protocol
// is the same: multipart uploads by ETag, 416 for a range at the end,
// NoSuchUpload versus NoSuchBucket, an empty object put whole. Each driver
// supplies a Client, a thin adapter of its SDK's calls, and this package
// implements driver.Bucket on it once.
//
// Like every driver it does not retry, validate arguments or log: the
// portable layer (*drivers.Bucket) does that for all drivers.
package s3like

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"sync"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Limits are the multipart limits of S3 and IBM COS.
var Limits = driver.Limits{MaxParts: 10000, MinPartSize: 5 << 20, MaxPartSize: 5 << 30, MaxKeyLength: 1024}

// Part is one part of a multipart upload, for CompleteUpload.
type Part struct {
	N    int
	ETag string
}

// Client is one SDK's S3 calls on one bucket. Errors are returned as the
// SDK made them; Bucket classifies them with the Client's Errors methods.
type Client interface {
	Errors
	Head(ctx context.Context, key string) (driver.ObjectInfo, error)
	// Get reads key, the whole object when rng is empty, else the given
	// Range header value.
	Get(ctx context.Context, key, rng string) (io.ReadCloser, error)
	// List calls fn for every page of objects under prefix.
	List(ctx context.Context, prefix string, fn func([]driver.ObjectInfo)) error
	Delete(ctx context.Context, key string) error
	CreateUpload(ctx context.Context, key string) (id string, err error)
	UploadPart(ctx context.Context, key, id string, n int, data []byte, contentMD5 string) (etag string, err error)
	CompleteUpload(ctx context.Context, key, id string, parts []Part) error
	AbortUpload(ctx context.Context, key, id string) error
	ListUploads(ctx context.Context, prefix string) ([]driver.PendingUpload, error)
	// PutEmpty stores a zero-byte object under key.
	PutEmpty(ctx context.Context, key string) error
	Close() error
}

// Errors is what an SDK tells about its errors.
type Errors interface {
	// ServiceCode returns the service's error code ("NoSuchKey") and the
	// HTTP status of err; status 0 means the request got no answer.
	ServiceCode(err error) (code string, status int)
	// Fallback classifies what neither the error code nor the status
	// decides (an SDK's own failure codes); Unknown when it cannot.
	Fallback(err error) drivers.Code
}

// Codes of the S3 protocol that decide a class.
var codes = map[string]drivers.Code{
	"NoSuchKey": drivers.NotFound, "NotFound": drivers.NotFound, "NoSuchUpload": drivers.NotFound, "NoSuchBucket": drivers.NotFound,
	"AccessDenied": drivers.PermissionDenied, "InvalidAccessKeyId": drivers.PermissionDenied, "SignatureDoesNotMatch": drivers.PermissionDenied,
	"SlowDown": drivers.Transient, "RequestTimeout": drivers.Transient, "InternalError": drivers.Transient, "ServiceUnavailable": drivers.Transient,
	"InvalidRange": drivers.Permanent,
}

// Code classifies an SDK error: a request without an answer by what broke,
// then the service's error code, the HTTP status, the SDK's own codes, and
// Permanent for anything nobody understood (retrying it only hides it).
func Code(e Errors, err error) drivers.Code {
	apiCode, status := e.ServiceCode(err)
	if status == 0 {
		if c := drivers.ClassifyNetwork(err); c != drivers.Unknown {
			return c
		}
	}
	if c, ok := codes[apiCode]; ok {
		return c
	}
	if c := drivers.ClassifyHTTPStatus(status); c != drivers.Unknown {
		return c
	}
	if c := e.Fallback(err); c != drivers.Unknown {
		return c
	}
	return drivers.Permanent
}

// Bucket implements driver.Bucket over a Client.
type Bucket struct {
	c Client
}

// New returns the driver for the bucket c talks to.
func New(c Client) *Bucket { return &Bucket{c: c} }

func (b *Bucket) classify(err error) error {
	if err == nil {
		return nil
	}
	return drivers.Errorf(Code(b.c, err), "", "", err)
}

// missingObject reports whether err says that an object or upload is gone
// while the bucket is there, which Delete and Abort take as done.
func (b *Bucket) missingObject(err error) bool {
	apiCode, _ := b.c.ServiceCode(err)
	return Code(b.c, err) == drivers.NotFound && apiCode != "NoSuchBucket"
}

func (b *Bucket) Limits() driver.Limits { return Limits }

func (b *Bucket) Close() error { return b.c.Close() }

func (b *Bucket) Stat(ctx context.Context, key string) (driver.ObjectInfo, error) {
	info, err := b.c.Head(ctx, key)
	return info, b.classify(err)
}

func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rng := ""
	switch {
	case offset == 0 && length == -1:
		// The whole object: no Range, so an empty object reads fine.
	case length == -1:
		rng = fmt.Sprintf("bytes=%d-", offset)
	default:
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
	body, err := b.c.Get(ctx, key, rng)
	if apiCode, _ := b.c.ServiceCode(err); err != nil && apiCode == "InvalidRange" {
		return nil, driver.ErrInvalidRange
	}
	return body, b.classify(err)
}

func (b *Bucket) List(ctx context.Context, prefix string) ([]driver.ObjectInfo, error) {
	var out []driver.ObjectInfo
	// S3 lists in UTF-8 binary order, which is Go's string order: no sort.
	err := b.c.List(ctx, prefix, func(page []driver.ObjectInfo) { out = append(out, page...) })
	return out, b.classify(err)
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.c.Delete(ctx, key); err != nil && !b.missingObject(err) {
		return b.classify(err)
	}
	return nil
}

func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]driver.PendingUpload, error) {
	out, err := b.c.ListUploads(ctx, prefix)
	if apiCode, _ := b.c.ServiceCode(err); err != nil && apiCode == "NoSuchUpload" {
		// gofakes3 answers NoSuchUpload for a bucket that never had an
		// upload; S3 itself lists nothing. Either way: none.
		return nil, nil
	}
	return out, b.classify(err)
}

func (b *Bucket) AbortUpload(ctx context.Context, p driver.PendingUpload) error {
	return b.abort(ctx, p.Key, p.ID)
}

// abort ends a multipart upload; one that is already gone is not an error.
func (b *Bucket) abort(ctx context.Context, key, id string) error {
	if err := b.c.AbortUpload(ctx, key, id); err != nil && !b.missingObject(err) {
		return b.classify(err)
	}
	return nil
}

func (b *Bucket) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	id, err := b.c.CreateUpload(ctx, key)
	if err != nil {
		return nil, b.classify(err)
	}
	return &upload{b: b, key: key, id: id, etags: map[int]string{}}, nil
}

type upload struct {
	b   *Bucket
	key string
	id  string

	mu    sync.Mutex
	etags map[int]string // by part number; a re-put replaces
}

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	// Content-MD5 makes the store reject a part damaged on the way; the
	// flexible checksums of newer SDKs are refused by S3-compatible stores.
	sum := md5.Sum(data)
	u.mu.Lock()
	delete(u.etags, n) // a failed re-put must not let Complete use the older part
	u.mu.Unlock()
	etag, err := u.b.c.UploadPart(ctx, u.key, u.id, n, data, base64.StdEncoding.EncodeToString(sum[:]))
	if err != nil {
		return u.b.classify(err)
	}
	u.mu.Lock()
	u.etags[n] = etag
	u.mu.Unlock()
	return nil
}

func (u *upload) Complete(ctx context.Context, parts int) error {
	if parts == 0 {
		// A multipart upload cannot complete without parts: drop it and
		// put the empty object whole.
		if err := u.b.abort(ctx, u.key, u.id); err != nil {
			return err
		}
		return u.b.classify(u.b.c.PutEmpty(ctx, u.key))
	}
	completed := make([]Part, parts)
	u.mu.Lock()
	for i := range completed {
		etag, ok := u.etags[i+1]
		if !ok {
			u.mu.Unlock()
			// Checked here, not left to the service: some S3-compatible
			// stores assemble whatever parts they are given, and a hole
			// would make a truncated object that looks like a backup.
			return drivers.Errorf(drivers.Permanent, "", "", fmt.Errorf("part %d was not put", i+1))
		}
		completed[i] = Part{N: i + 1, ETag: etag}
	}
	u.mu.Unlock()
	return u.b.classify(u.b.c.CompleteUpload(ctx, u.key, u.id, completed))
}

func (u *upload) Abort(ctx context.Context) error {
	return u.b.abort(ctx, u.key, u.id)
}

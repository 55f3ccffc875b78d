// Package driver defines the interface each storage driver implements. It is
// the contract between the portable layer (package drivers, type
// *drivers.Bucket) and the code that talks to one SDK (drivers/<type>).
//
// Application code never uses this package: it uses *drivers.Bucket, which
// wraps a driver.Bucket and adds, once for every driver, argument
// validation, per-request timeouts, retries by error class, the cleanup
// context of aborts, classification of errors raised while reading a body,
// and the annotation of every error with the operation and key. A driver
// therefore does none of that: it translates one call into its SDK's calls
// and maps the SDK's errors to a drivers.Code (with drivers.Errorf or by
// returning an error drivers.CodeOf classifies).
//
// The portable layer calls a driver only with arguments it has checked: keys
// are non-empty and at most Limits().MaxKeyLength bytes, offsets and lengths are in range, part numbers lie in
// 1..Limits().MaxParts, parts are at most Limits().MaxPartSize bytes, and a
// part count passed to Complete is within Limits().MaxParts.
//
// This package imports nothing of dbarchive, so drivers and the portable
// layer can both import it.
package driver

import (
	"context"
	"errors"
	"io"
	"time"
)

// Bucket is one repo as a driver sees it. Implementations must be safe for
// concurrent use. Every method makes at most one attempt: the portable layer
// retries.
type Bucket interface {
	// NewUpload begins a multipart upload to key. Nothing is visible under
	// key until Upload.Complete returns nil. In a bucket that does not exist
	// it returns a NotFound error, or (for a service that sends nothing
	// here) the upload's first PutPart does.
	NewUpload(ctx context.Context, key string) (Upload, error)

	// NewRangeReader opens key for reading length bytes from offset; a length
	// of -1 reads to the end, a length of 0 only checks that the object exists
	// and that offset is at most its size. Reading from offset == size yields
	// no bytes; offset > size is a Permanent error. A missing object is
	// NotFound. Errors the returned body raises need not be classified: the
	// portable layer classifies them (a broken connection is Transient).
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat reports the size and modification time of key; a missing object
	// is NotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List returns every object whose key starts with prefix, in ascending
	// key order, following all pages; pending uploads and driver bookkeeping
	// are never listed. In a bucket that does not exist: NotFound.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes key. Deleting a key that does not exist is not an error;
	// deleting in a bucket that does not exist is NotFound (a mistyped repo
	// must not look like a successful prune).
	Delete(ctx context.Context, key string) error

	// ListUploads returns the uploads begun under prefix and neither
	// completed nor aborted, as far as the service lets the driver see them.
	ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error)

	// AbortUpload discards a pending upload found by ListUploads; one that
	// no longer exists is not an error. ctx is already detached from the
	// caller's cancellation by the portable layer.
	AbortUpload(ctx context.Context, p PendingUpload) error

	// Limits reports the multipart limits of this driver.
	Limits() Limits

	// Close releases the driver's resources.
	Close() error
}

// Upload is one multipart upload in progress. PutPart may be called from any
// number of goroutines in any order; Complete and Abort are called after
// every PutPart has returned.
type Upload interface {
	// PutPart stores part n (1-based); putting the same n again replaces it.
	// The driver must not retain data after it returns.
	PutPart(ctx context.Context, n int, data []byte) error

	// Complete assembles parts 1..parts in order into the object and makes it
	// visible atomically, replacing any object there. It fails, leaving
	// nothing visible, when a part in 1..parts was not put. Zero parts make
	// an empty object. It may be called again after a failure.
	Complete(ctx context.Context, parts int) error

	// Abort discards the upload and every part put so far. ctx is already
	// detached from the caller's cancellation by the portable layer.
	Abort(ctx context.Context) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PendingUpload identifies an upload begun and not completed or aborted. ID
// is the driver's own handle, opaque to callers.
type PendingUpload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// Limits are a driver's multipart limits.
type Limits struct {
	// MaxParts is the largest part count Complete accepts.
	MaxParts int
	// MinPartSize is the smallest size of every part but the last.
	MinPartSize int64
	// MaxPartSize is the largest size of one part.
	MaxPartSize int64
	// MaxKeyLength is the longest key in bytes the store accepts (0: no
	// limit of its own).
	MaxKeyLength int
}

// ErrInvalidRange is what a driver returns (wrapped or not) from
// NewRangeReader when the service refuses the range as unsatisfiable, which
// HTTP stores do for any offset at or past the end (416). The portable layer
// then asks Stat and turns it into an empty read (offset == size) or a
// Permanent error (offset > size), the same way for every driver.
var ErrInvalidRange = errors.New("range not satisfiable")

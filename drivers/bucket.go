package drivers

import (
	"context"
	"io"
	"time"
)

// Bucket is one repo: a flat namespace of objects addressed by slash-separated
// keys. Implementations must be safe for concurrent use.
//
// Every error a Bucket returns is classified: Code(err) reports NotFound,
// PermissionDenied, Transient or Permanent, so callers decide about retries
// without reading message text.
type Bucket interface {
	// NewUpload begins a multipart upload to key. Nothing is visible under key
	// (Stat, List, NewRangeReader) until Upload.Complete returns nil, and an
	// existing object under key stays readable and unchanged until then.
	NewUpload(ctx context.Context, key string) (Upload, error)

	// NewRangeReader opens key for reading length bytes starting at offset.
	// A length of -1 reads to the end. Reading from offset == size yields no
	// bytes; an offset beyond the size is an error of class Permanent. If the
	// object does not exist the error's code is NotFound. The caller must
	// close the reader.
	NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat reports the size and modification time of key. If the object does
	// not exist the error's code is NotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List returns every object whose key starts with prefix, in ascending key
	// order, following all pages. Pending uploads and driver bookkeeping are
	// never listed.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes key. Deleting a key that does not exist is not an error.
	Delete(ctx context.Context, key string) error

	// ListUploads returns the multipart uploads begun under prefix that were
	// neither completed nor aborted, as far as the service lets the driver see
	// them, so that a cleaner can abort stale ones.
	ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error)

	// AbortUpload discards a pending upload found by ListUploads. Aborting an
	// upload that no longer exists is not an error.
	AbortUpload(ctx context.Context, p PendingUpload) error

	// Limits reports the multipart limits of this driver.
	Limits() Limits

	// Close releases the driver's resources (idle connections, temporary
	// credentials). The Bucket must not be used afterwards.
	Close() error
}

// Upload is one multipart upload in progress. PutPart may be called from any
// number of goroutines, in any order; Complete and Abort end the upload and are
// called once, after every PutPart has returned.
type Upload interface {
	// Key is the key the object will have once the upload completes.
	Key() string

	// PutPart stores part number n (1-based) with the given bytes. Every part
	// but the last must be at least Limits().MinPartSize long. Putting the same
	// part number again before Complete replaces it: the last put wins. The
	// driver does not retain data after PutPart returns.
	PutPart(ctx context.Context, n int, data []byte) error

	// Complete assembles parts 1..parts, in order, into the object under Key
	// and makes it visible atomically, replacing any object already there. It
	// fails, leaving nothing visible, when any part in 1..parts was not put.
	// Zero parts make an empty object.
	Complete(ctx context.Context, parts int) error

	// Abort discards the upload and every part put so far; afterwards neither
	// an object nor a pending upload is left behind. Drivers run their cleanup
	// on a context detached from ctx's cancellation (a cancelled backup must
	// still clean up), bounded by AbortTimeout. Where the service has no
	// abort call (Azure), parts staged over an existing object may stay,
	// invisible to every other method, until the service expires them; the
	// existing object is never changed.
	Abort(ctx context.Context) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// PendingUpload identifies an upload that was begun and not yet completed or
// aborted. ID is the driver's own handle and is opaque to callers.
type PendingUpload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// Limits are a driver's multipart limits. A caller sizing parts for a stream
// of unknown length uses them to keep MaxParts x part size above the largest
// stream it must accept.
type Limits struct {
	// MaxParts is the largest part count Complete accepts.
	MaxParts int
	// MinPartSize is the smallest size of every part but the last.
	MinPartSize int64
	// MaxPartSize is the largest size of one part.
	MaxPartSize int64
}

// AbortTimeout bounds the cleanup an Abort does on its detached context.
const AbortTimeout = 2 * time.Minute

// CleanupContext returns a context for cleanup work that must run even when
// ctx was cancelled: it keeps ctx's values, drops its cancellation, and ends
// after AbortTimeout.
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), AbortTimeout)
}

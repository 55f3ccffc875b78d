package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/dbarchive/dbarchive/drivers"
)

// checkKey rejects keys GCS would refuse or that would reach into the
// staging area, before a request is made.
func checkKey(op, key string) error {
	var reason string
	switch {
	case key == "":
		reason = "empty key"
	case len(key) > 1024:
		reason = "key is longer than 1024 bytes"
	case !utf8.ValidString(key):
		reason = "key is not valid UTF-8"
	case strings.ContainsAny(key, "\r\n"):
		reason = "key contains a line break"
	case key == "." || key == "..":
		reason = "key must not be . or .."
	case strings.HasPrefix(key, stagingPrefix):
		reason = "key is reserved for pending uploads"
	default:
		return nil
	}
	return drivers.Errorf(drivers.Permanent, op, key, errors.New(reason))
}

func (b *Bucket) Stat(ctx context.Context, key string) (drivers.ObjectInfo, error) {
	if err := checkKey("stat", key); err != nil {
		return drivers.ObjectInfo{}, err
	}
	attrs, err := b.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return drivers.ObjectInfo{}, classify("stat", key, err)
	}
	return info(attrs), nil
}

func info(attrs *gcstorage.ObjectAttrs) drivers.ObjectInfo {
	mod := attrs.Updated
	if mod.IsZero() {
		mod = attrs.Created
	}
	return drivers.ObjectInfo{Key: attrs.Name, Size: attrs.Size, ModTime: mod}
}

func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey("read", key); err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, drivers.Errorf(drivers.Permanent, "read", key, fmt.Errorf("invalid range offset %d length %d", offset, length))
	}
	if length == 0 {
		// The SDK sends no Range header for a zero length, so the service
		// cannot tell us whether offset is inside the object.
		return b.emptyRead(ctx, key, offset)
	}
	r, err := b.bucket.Object(key).NewRangeReader(ctx, offset, length)
	if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		// GCS answers 416 for any offset >= size, but the contract reads
		// offset == size as an empty range and only offset > size as wrong.
		return b.emptyRead(ctx, key, offset)
	}
	if err != nil {
		return nil, classify("read", key, err)
	}
	return &reader{r: r, key: key}, nil
}

// emptyRead returns an empty reader when offset is the object's size (or
// inside it, for a zero length), and a Permanent error when it is past it.
func (b *Bucket) emptyRead(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	attrs, err := b.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return nil, classify("read", key, err)
	}
	if offset > attrs.Size {
		return nil, drivers.Errorf(drivers.Permanent, "read", key, fmt.Errorf("offset %d is past the end (size %d)", offset, attrs.Size))
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// reader classifies the errors of a body that breaks off mid-read.
type reader struct {
	r   *gcstorage.Reader
	key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = classify("read", r.key, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

func (b *Bucket) List(ctx context.Context, prefix string) ([]drivers.ObjectInfo, error) {
	q := &gcstorage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Updated", "Created"}); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "list", prefix, err)
	}
	var out []drivers.ObjectInfo
	err := b.each(ctx, q, func(attrs *gcstorage.ObjectAttrs) {
		// Only a prefix starting with '.' reaches the staging area; dropping
		// it here is simpler than listing the ranges around it.
		if !strings.HasPrefix(attrs.Name, stagingPrefix) {
			out = append(out, info(attrs))
		}
	})
	if err != nil {
		return nil, classify("list", prefix, err)
	}
	return out, nil
}

// each calls fn for every object q lists, following all pages. GCS lists in
// ascending key order.
func (b *Bucket) each(ctx context.Context, q *gcstorage.Query, fn func(*gcstorage.ObjectAttrs)) error {
	it := b.bucket.Objects(ctx, q)
	if b.pageSize > 0 {
		it.PageInfo().MaxSize = b.pageSize
	}
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(attrs)
	}
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key); err != nil {
		return err
	}
	return deleteObject(ctx, b.bucket.Object(key), "delete", key)
}

// deleteObject deletes o; an object that is already gone is not an error.
func deleteObject(ctx context.Context, o *gcstorage.ObjectHandle, op, key string) error {
	err := o.Delete(ctx)
	if err == nil || errors.Is(err, gcstorage.ErrObjectNotExist) {
		return nil
	}
	return classify(op, key, err)
}

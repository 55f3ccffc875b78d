package gcs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	gcstorage "cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// checkKey rejects keys GCS would refuse or that would reach into the
// staging area, before a request is made.
func checkKey(op, key string) error {
	var reason string
	switch {
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
	r, err := b.bucket.Object(key).NewRangeReader(ctx, offset, length)
	if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		return nil, driver.ErrInvalidRange
	}
	if err != nil {
		return nil, classify("read", key, err)
	}
	return r, nil
}

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
	err := b.bucket.Object(key).Delete(ctx)
	if errors.Is(err, gcstorage.ErrObjectNotExist) {
		// GCS answers the same 404 for a missing object and a missing
		// bucket; a missing object is what Delete wants, a missing bucket
		// is a mistyped repo and must not look like success.
		return b.bucketExists(ctx, "delete", key)
	}
	return classify("delete", key, err)
}

// bucketExists returns nil when the bucket exists and NotFound when it does
// not. It lists (storage.objects.list, which backups need anyway) rather
// than reading the bucket's metadata, which needs storage.buckets.get.
func (b *Bucket) bucketExists(ctx context.Context, op, key string) error {
	it := b.bucket.Objects(ctx, &gcstorage.Query{Prefix: key})
	it.PageInfo().MaxSize = 1
	_, err := it.Next()
	if err == nil || errors.Is(err, iterator.Done) {
		return nil
	}
	return classify(op, key, err)
}

// deleteObject deletes o; an object that is already gone is not an error.
func deleteObject(ctx context.Context, o *gcstorage.ObjectHandle, op, key string) error {
	err := o.Delete(ctx)
	if err == nil || errors.Is(err, gcstorage.ErrObjectNotExist) {
		return nil
	}
	return classify(op, key, err)
}

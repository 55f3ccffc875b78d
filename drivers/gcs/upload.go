package gcs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	gcstorage "cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Names inside the staging area. The marker sits beside the upload's
// directory rather than in it, so that one delimited listing of the staging
// area returns every marker and no part.
const (
	markerSuffix = ".upload"
	metaKey      = "dbarchive-key"
	metaStarted  = "dbarchive-started"
)

// parallelism bounds the compose and delete requests one upload runs at once.
const parallelism = 8

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	uploadID   = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func newID() string {
	var buf [16]byte
	_, _ = rand.Read(buf[:])
	return hex.EncodeToString(buf[:])
}

func uploadDir(id string) string       { return stagingPrefix + id + "/" }
func markerName(id string) string      { return stagingPrefix + id + markerSuffix }
func partName(id string, n int) string { return fmt.Sprintf("%spart-%06d", uploadDir(id), n) }
func roundName(id string, r, i int) string {
	return fmt.Sprintf("%scompose-%d-%05d", uploadDir(id), r, i)
}

// contentType gives the final object a type from its extension, so that
// manifest.json reads as JSON in the console; parts are opaque bytes.
func contentType(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// write stores data under name in one request. A single-shot upload with a
// client-computed CRC32C either stores exactly data or nothing: GCS rejects a
// body whose checksum does not match.
func (b *Bucket) write(ctx context.Context, name, ctype string, data []byte, meta map[string]string) error {
	w := b.bucket.Object(name).NewWriter(ctx)
	w.ChunkSize = 0
	w.ContentType = ctype
	w.Metadata = meta
	w.CRC32C = crc32.Checksum(data, castagnoli)
	w.SendCRC32C = true
	w.DisableAutoChecksum = true // computed above, once
	_, err := w.Write(data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *Bucket) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	if err := checkKey("begin upload", key); err != nil {
		return nil, err
	}
	id := newID()
	meta := map[string]string{metaKey: key, metaStarted: time.Now().UTC().Format(time.RFC3339)}
	if err := b.write(ctx, markerName(id), "text/plain", nil, meta); err != nil {
		return nil, classify("begin upload", key, err)
	}
	return &upload{b: b, key: key, id: id}, nil
}

func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]drivers.PendingUpload, error) {
	q := &gcstorage.Query{Prefix: stagingPrefix, Delimiter: "/"}
	if err := q.SetAttrSelection([]string{"Name", "Created", "Metadata"}); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, "list uploads", prefix, err)
	}
	var out []drivers.PendingUpload
	err := b.each(ctx, q, func(attrs *gcstorage.ObjectAttrs) {
		id, ok := strings.CutSuffix(strings.TrimPrefix(attrs.Name, stagingPrefix), markerSuffix)
		key, hasKey := attrs.Metadata[metaKey]
		if !ok || !uploadID.MatchString(id) || !hasKey || !strings.HasPrefix(key, prefix) {
			return
		}
		started := attrs.Created // the server's clock
		if started.IsZero() {
			started, _ = time.Parse(time.RFC3339, attrs.Metadata[metaStarted])
		}
		out = append(out, drivers.PendingUpload{Key: key, ID: id, Initiated: started})
	})
	if err != nil {
		return nil, classify("list uploads", prefix, err)
	}
	return out, nil
}

func (b *Bucket) AbortUpload(ctx context.Context, p drivers.PendingUpload) error {
	if !uploadID.MatchString(p.ID) {
		return drivers.Errorf(drivers.Permanent, "abort upload", p.Key, fmt.Errorf("invalid upload id %q", p.ID))
	}
	return b.purge(ctx, p.ID, p.Key)
}

// purge deletes everything an upload staged, the marker last: if it fails
// half-way the upload is still listed, and aborting it again finishes the job.
func (b *Bucket) purge(ctx context.Context, id, key string) error {
	const op = "abort upload"
	var names []string
	err := b.each(ctx, &gcstorage.Query{Prefix: uploadDir(id)}, func(attrs *gcstorage.ObjectAttrs) {
		names = append(names, attrs.Name)
	})
	if err != nil {
		return classify(op, key, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for _, name := range names {
		g.Go(func() error { return deleteObject(gctx, b.bucket.Object(name), op, key) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return deleteObject(ctx, b.bucket.Object(markerName(id)), op, key)
}

type upload struct {
	b   *Bucket
	key string
	id  string
}

func (u *upload) Key() string { return u.key }

func (u *upload) PutPart(ctx context.Context, n int, data []byte) error {
	const op = "put part"
	if err := ctx.Err(); err != nil {
		return classify(op, u.key, err)
	}
	// Writing the same name again replaces the part whole: the last put wins.
	return classify(op, u.key, u.b.write(ctx, partName(u.id, n), "application/octet-stream", data, nil))
}

// source is one input of a compose: pinned to the generation that was
// listed, so the bytes composed are the bytes counted.
type source struct {
	name string
	gen  int64
	size int64
}

func (u *upload) Complete(ctx context.Context, parts int) error {
	const op = "complete upload"
	if err := ctx.Err(); err != nil {
		return classify(op, u.key, err)
	}
	if parts == 0 {
		if err := u.b.write(ctx, u.key, contentType(u.key), nil, nil); err != nil {
			return classify(op, u.key, err)
		}
		u.cleanup(ctx)
		return nil
	}
	srcs, err := u.parts(ctx, parts)
	if err != nil {
		return err
	}
	// Every round but the last writes intermediates inside the staging area;
	// only the last one writes the key.
	for round := 1; len(srcs) > maxComposeSources; round++ {
		if srcs, err = u.composeRound(ctx, round, srcs); err != nil {
			return err
		}
	}
	if _, err := u.compose(ctx, u.key, contentType(u.key), srcs); err != nil {
		var mismatch *sizeMismatch
		if errors.As(err, &mismatch) {
			// Never leave an object that is not the sum of its parts; the
			// generation pins the delete to what this compose wrote.
			cctx, cancel := drivers.CleanupContext(ctx)
			_ = u.b.bucket.Object(u.key).Generation(mismatch.gen).Delete(cctx)
			cancel()
		}
		return err
	}
	u.cleanup(ctx)
	return nil
}

// cleanup removes the staged objects once the key is written. The object is
// complete whatever happens here; a failed cleanup leaves the upload listed
// for a cleaner to abort, and cannot touch the key.
func (u *upload) cleanup(ctx context.Context) {
	cctx, cancel := drivers.CleanupContext(ctx)
	defer cancel()
	_ = u.b.purge(cctx, u.id, u.key)
}

// parts lists the staged parts and returns parts 1..n in order, or a
// Permanent error naming the first one missing.
func (u *upload) parts(ctx context.Context, n int) ([]source, error) {
	const op = "complete upload"
	found := make(map[int]source, n)
	prefix := uploadDir(u.id) + "part-"
	q := &gcstorage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation"}); err != nil {
		return nil, drivers.Errorf(drivers.Permanent, op, u.key, err)
	}
	err := u.b.each(ctx, q, func(attrs *gcstorage.ObjectAttrs) {
		if num, err := strconv.Atoi(strings.TrimPrefix(attrs.Name, prefix)); err == nil {
			found[num] = source{name: attrs.Name, gen: attrs.Generation, size: attrs.Size}
		}
	})
	if err != nil {
		return nil, classify(op, u.key, err)
	}
	srcs := make([]source, n)
	for i := range n {
		s, ok := found[i+1]
		if !ok {
			return nil, drivers.Errorf(drivers.Permanent, op, u.key, fmt.Errorf("part %d was not put", i+1))
		}
		srcs[i] = s
	}
	return srcs, nil
}

// composeRound composes srcs in groups of maxComposeSources into
// intermediate objects, in order, and returns those.
func (u *upload) composeRound(ctx context.Context, round int, srcs []source) ([]source, error) {
	groups := (len(srcs) + maxComposeSources - 1) / maxComposeSources
	out := make([]source, groups)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for i := range groups {
		group := srcs[i*maxComposeSources : min((i+1)*maxComposeSources, len(srcs))]
		g.Go(func() error {
			s, err := u.compose(gctx, roundName(u.id, round, i), "application/octet-stream", group)
			out[i] = s
			return err
		})
	}
	return out, g.Wait()
}

// sizeMismatch is a compose whose result is not as long as its sources.
type sizeMismatch struct {
	got, want int64
	gen       int64
}

func (e *sizeMismatch) Error() string {
	return fmt.Sprintf("composed object has %d bytes, its sources %d", e.got, e.want)
}

// compose concatenates srcs into dst and checks the result's size.
func (u *upload) compose(ctx context.Context, dst, ctype string, srcs []source) (source, error) {
	const op = "complete upload"
	handles := make([]*gcstorage.ObjectHandle, len(srcs))
	var want int64
	for i, s := range srcs {
		handles[i] = u.b.bucket.Object(s.name).Generation(s.gen)
		want += s.size
	}
	c := u.b.bucket.Object(dst).ComposerFrom(handles...)
	c.ContentType = ctype
	attrs, err := c.Run(ctx)
	if err != nil {
		return source{}, classify(op, u.key, err)
	}
	if attrs.Size != want {
		return source{}, drivers.Errorf(drivers.Permanent, op, u.key, &sizeMismatch{got: attrs.Size, want: want, gen: attrs.Generation})
	}
	return source{name: dst, gen: attrs.Generation, size: attrs.Size}, nil
}

func (u *upload) Abort(ctx context.Context) error {
	return u.b.purge(ctx, u.id, u.key)
}

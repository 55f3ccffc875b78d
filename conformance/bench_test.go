package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// The shape of a backup's upload: a stream of unknown length cut into parts,
// a few parts in flight, and one spare buffer being filled meanwhile, so
// memory stays at partSize x (inFlight + 1).
const (
	benchStreamSize = 256 << 20
	benchPartSize   = 16 << 20
	benchInFlight   = 4
)

// BenchmarkUpload measures a 256 MiB multipart upload per driver, through
// the portable layer (what callers use) and through the bare driver, so
// that the layer's cost shows as the difference. MB/s is the figure to
// compare (with benchstat), not an assertion.
func BenchmarkUpload(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  func(b *testing.B) drivers.Config
	}{
		{"fs", func(b *testing.B) drivers.Config {
			return drivers.Config{Name: "fs-bench", Type: "fs", Path: b.TempDir()}
		}},
		{"s3", func(b *testing.B) drivers.Config { return emulators.S3(b) }},
	} {
		b.Run(c.name+"/portable", func(b *testing.B) {
			bkt := openWithPageSize(b, c.cfg(b))
			benchUpload(b, func(ctx context.Context, key string) (upload, error) { return bkt.NewUpload(ctx, key) }, bkt.Delete)
		})
		b.Run(c.name+"/raw", func(b *testing.B) {
			d, err := drivers.OpenDriver(context.Background(), c.cfg(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			benchUpload(b, func(ctx context.Context, key string) (upload, error) { return d.NewUpload(ctx, key) }, d.Delete)
		})
	}
}

// BenchmarkPortableLayer measures what the portable layer adds to one part
// upload, over a driver that does nothing: validation, the retry loop's
// set-up, size bookkeeping. Divided by the time one part takes in
// BenchmarkUpload, it is the layer's share of an upload.
func BenchmarkPortableLayer(b *testing.B) {
	bkt := drivers.NewBucket(nopDriver{}, drivers.Config{Name: "nop"})
	ctx := context.Background()
	u, err := bkt.NewUpload(ctx, "k")
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, benchPartSize)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = n%1000 + 1
		if err := u.PutPart(ctx, n, data); err != nil {
			b.Fatal(err)
		}
	}
}

// nopDriver accepts every call and stores nothing.
type nopDriver struct{}

func (nopDriver) NewUpload(context.Context, string) (driver.Upload, error) { return nopDriver{}, nil }
func (nopDriver) NewRangeReader(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}
func (nopDriver) Stat(context.Context, string) (drivers.ObjectInfo, error) {
	return drivers.ObjectInfo{}, nil
}
func (nopDriver) List(context.Context, string) ([]drivers.ObjectInfo, error) { return nil, nil }
func (nopDriver) Delete(context.Context, string) error                       { return nil }
func (nopDriver) ListUploads(context.Context, string) ([]drivers.PendingUpload, error) {
	return nil, nil
}
func (nopDriver) AbortUpload(context.Context, drivers.PendingUpload) error { return nil }
func (nopDriver) Limits() drivers.Limits {
	return drivers.Limits{MaxParts: 10000, MinPartSize: 1, MaxPartSize: 1 << 30}
}
func (nopDriver) Close() error                               { return nil }
func (nopDriver) PutPart(context.Context, int, []byte) error { return nil }
func (nopDriver) Complete(context.Context, int) error        { return nil }
func (nopDriver) Abort(context.Context) error                { return nil }

// upload is what the benchmark needs of an upload, portable or bare.
type upload interface {
	PutPart(ctx context.Context, n int, data []byte) error
	Complete(ctx context.Context, parts int) error
	Abort(ctx context.Context) error
}

func benchUpload(b *testing.B, begin func(context.Context, string) (upload, error), del func(context.Context, string) error) {
	ctx := context.Background()
	buffers := make(chan []byte, benchInFlight+1)
	for range benchInFlight + 1 {
		buffers <- make([]byte, benchPartSize)
	}
	pattern := make([]byte, 1<<20)
	for i := range pattern {
		pattern[i] = byte(rand.Uint32())
	}
	b.SetBytes(benchStreamSize)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := fmt.Sprintf("bench/upload-%d", i)
		src := io.LimitReader(&cyclicReader{pattern: pattern}, benchStreamSize)
		if err := uploadStream(ctx, begin, key, src, buffers); err != nil {
			b.Fatal(err)
		}
		// Free the emulator's memory (or the disk) between rounds.
		b.StopTimer()
		if err := del(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// uploadStream cuts r into parts the size of the pooled buffers and puts up
// to cap(buffers)-1 of them at once, reading the next part meanwhile.
func uploadStream(ctx context.Context, begin func(context.Context, string) (upload, error), key string, r io.Reader, buffers chan []byte) error {
	u, err := begin(ctx, key)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cap(buffers) - 1)
	parts := 0
	for gctx.Err() == nil {
		buf := <-buffers
		n, rerr := io.ReadFull(r, buf)
		if n == 0 {
			buffers <- buf
		} else {
			parts++
			part, data := parts, buf[:n]
			g.Go(func() error {
				defer func() { buffers <- buf }()
				return u.PutPart(gctx, part, data)
			})
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			_ = g.Wait()
			_ = u.Abort(ctx)
			return rerr
		}
	}
	if err := g.Wait(); err != nil {
		_ = u.Abort(ctx)
		return err
	}
	return u.Complete(ctx, parts)
}

// cyclicReader repeats pattern forever: a source that costs a memmove.
type cyclicReader struct {
	pattern []byte
	off     int
}

func (c *cyclicReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.pattern[c.off:])
		n += m
		c.off = (c.off + m) % len(c.pattern)
	}
	return n, nil
}

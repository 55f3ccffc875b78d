package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

// The shape of a backup's upload: a stream of unknown length cut into parts,
// a few parts in flight, and one spare buffer being filled meanwhile, so
// memory stays at partSize x (inFlight + 1).
const (
	benchStreamSize = 256 << 20
	benchPartSize   = 16 << 20
	benchInFlight   = 4
)

// BenchmarkUpload measures a 256 MiB multipart upload per driver; MB/s is the
// figure to compare (with benchstat), not an assertion.
func BenchmarkUpload(b *testing.B) {
	b.Run("fs", func(b *testing.B) {
		benchUpload(b, openWithPageSize(b, drivers.Config{Name: "fs-bench", Type: "fs", Path: b.TempDir()}))
	})
	b.Run("s3", func(b *testing.B) {
		benchUpload(b, openWithPageSize(b, emulators.S3(b)))
	})
}

func benchUpload(b *testing.B, bkt drivers.Bucket) {
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
		if err := uploadStream(ctx, bkt, key, src, buffers); err != nil {
			b.Fatal(err)
		}
		// Free the emulator's memory (or the disk) between rounds.
		b.StopTimer()
		if err := bkt.Delete(ctx, key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// uploadStream cuts r into parts the size of the pooled buffers and puts up
// to cap(buffers)-1 of them at once, reading the next part meanwhile.
func uploadStream(ctx context.Context, bkt drivers.Bucket, key string, r io.Reader, buffers chan []byte) error {
	u, err := bkt.NewUpload(ctx, key)
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

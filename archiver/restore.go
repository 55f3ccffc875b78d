package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/dbarchive/dbarchive/drivers"
)

// ErrChecksum marks a backup whose bytes do not match its manifest.
var ErrChecksum = errors.New("checksum mismatch")

// RestoreOptions tune reading a backup back. The zero value gets defaults.
type RestoreOptions struct {
	// Prefix is the key prefix of the repo's backups.
	Prefix string
	// Concurrency is the number of ranged reads in flight ahead of the
	// decoder (default 4).
	Concurrency int
	// ChunkSize is the size of one ranged read (default: the backup's part
	// size, at least 1 MiB).
	ChunkSize int64
	// DecoderConcurrency is the number of zstd decoding goroutines
	// (default 2: decoding is rarely the bottleneck).
	DecoderConcurrency int
	Retry              RetryPolicy
	Progress           *Progress
	Logger             *slog.Logger
}

func (o RestoreOptions) withDefaults(m *Manifest) RestoreOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = max(m.PartSize, 1<<20)
	}
	if o.DecoderConcurrency <= 0 {
		o.DecoderConcurrency = 2
	}
	if o.Progress == nil {
		o.Progress = new(Progress)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Retry = o.Retry.withDefaults()
	return o
}

// RestoreError is a restore or verify that failed; it names the backup.
type RestoreError struct {
	ID  string
	Err error
}

func (e *RestoreError) Error() string { return fmt.Sprintf("backup %s: %v", e.ID, e.Err) }
func (e *RestoreError) Unwrap() error { return e.Err }

// Restore feeds the uncompressed stream of backup m to sink, verifying the
// stored bytes' sha256 and size before sink sees the end of the stream and
// the uncompressed stream's sha256 and size as it ends. On a mismatch the
// reader sink holds returns an error wrapping ErrChecksum instead of io.EOF,
// so a sink that loads the stream in one transaction can roll it back.
func Restore(ctx context.Context, b drivers.Bucket, m *Manifest, opts RestoreOptions, sink func(io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := Open(ctx, b, m, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := sink(r); err != nil {
		return &RestoreError{ID: m.ID, Err: err}
	}
	// A sink may stop reading before the end (a tool that has what it
	// needs); the rest is still verified so a damaged archive is reported.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return &RestoreError{ID: m.ID, Err: fmt.Errorf("after the restore finished, the rest of the archive failed verification: %w", err)}
	}
	return nil
}

// Verify reads backup m in full and checks every checksum and size.
func Verify(ctx context.Context, b drivers.Bucket, m *Manifest, opts RestoreOptions) error {
	return Restore(ctx, b, m, opts, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
}

// Open returns a reader of backup m's uncompressed stream that verifies as
// described for Restore. The caller must close it.
func Open(ctx context.Context, b drivers.Bucket, m *Manifest, opts RestoreOptions) (io.ReadCloser, error) {
	opts = opts.withDefaults(m)
	key := objectKey(opts.Prefix, m.ID, m.DataObject)
	info, err := b.Stat(ctx, key)
	if err != nil {
		return nil, &RestoreError{ID: m.ID, Err: fmt.Errorf("data object %s: %w", key, err)}
	}
	if info.Size != m.StoredSize {
		return nil, &RestoreError{ID: m.ID, Err: fmt.Errorf("data object %s has %d bytes, the manifest says %d: %w", key, info.Size, m.StoredSize, ErrChecksum)}
	}
	ctx, cancel := context.WithCancel(ctx)
	stored := newChunkReader(ctx, b, key, m, opts)
	dec, err := zstd.NewReader(stored, zstd.WithDecoderConcurrency(opts.DecoderConcurrency), zstd.WithDecoderMaxWindow(1<<30))
	if err != nil {
		cancel()
		return nil, err
	}
	return &verifyingReader{
		r: dec, m: m, hash: sha256.New(), progress: opts.Progress,
		close: func() { dec.Close(); cancel(); stored.close() },
	}, nil
}

// verifyingReader checks the uncompressed stream's size and sha256 as it
// ends, and turns a clean end into ErrChecksum when they differ.
type verifyingReader struct {
	r        io.Reader
	m        *Manifest
	hash     hash.Hash
	size     int64
	progress *Progress
	close    func()
	done     error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done != nil {
		return 0, v.done
	}
	n, err := v.r.Read(p)
	v.hash.Write(p[:n])
	v.size += int64(n)
	v.progress.SourceBytes.Add(int64(n))
	if v.size > v.m.UncompressedSize {
		err = fmt.Errorf("decoded stream is longer than the manifest's %d bytes: %w", v.m.UncompressedSize, ErrChecksum)
	}
	if err == io.EOF {
		if sum := hex.EncodeToString(v.hash.Sum(nil)); v.size != v.m.UncompressedSize || sum != v.m.UncompressedSHA256 {
			err = fmt.Errorf("decoded stream has %d bytes with sha256 %s, the manifest says %d bytes with %s: %w",
				v.size, sum, v.m.UncompressedSize, v.m.UncompressedSHA256, ErrChecksum)
		}
	}
	if err != nil {
		v.done = err
	}
	return n, err
}

func (v *verifyingReader) Close() error {
	v.close()
	return nil
}

// chunkReader reads an object as consecutive ranged reads, several in flight
// ahead of the consumer, and checks the stored sha256 before it hands out the
// last chunk.
type chunkReader struct {
	ctx       context.Context
	cancel    context.CancelFunc
	b         drivers.Bucket
	key       string
	m         *Manifest
	opts      RestoreOptions
	chunks    int
	queue     chan chan chunk
	free      chan []byte
	wg        sync.WaitGroup
	hash      hash.Hash
	next      int // index of the chunk after cur
	cur       []byte
	curBuf    []byte
	err       error
	closeOnce sync.Once
}

type chunk struct {
	data []byte
	err  error
}

func newChunkReader(ctx context.Context, b drivers.Bucket, key string, m *Manifest, opts RestoreOptions) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	c := &chunkReader{
		ctx: ctx, cancel: cancel, b: b, key: key, m: m, opts: opts,
		chunks: int((m.StoredSize + opts.ChunkSize - 1) / opts.ChunkSize),
		queue:  make(chan chan chunk, opts.Concurrency),
		free:   make(chan []byte, opts.Concurrency+1),
		hash:   sha256.New(),
	}
	for range opts.Concurrency + 1 {
		c.free <- nil
	}
	c.wg.Go(c.produce)
	return c
}

// produce starts the fetches in order, never more than the free buffers
// allow, and queues their results in the same order.
func (c *chunkReader) produce() {
	defer close(c.queue)
	for i := range c.chunks {
		var buf []byte
		select {
		case buf = <-c.free:
		case <-c.ctx.Done():
			return
		}
		res := make(chan chunk, 1)
		select {
		case c.queue <- res:
		case <-c.ctx.Done():
			return
		}
		c.wg.Go(func() { res <- c.fetch(i, buf) })
	}
}

func (c *chunkReader) fetch(i int, buf []byte) chunk {
	off := int64(i) * c.opts.ChunkSize
	n := min(c.opts.ChunkSize, c.m.StoredSize-off)
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	err := retry(c.ctx, c.opts.Retry, c.opts.Logger, fmt.Sprintf("read %s at %d", c.key, off), func(ctx context.Context) error {
		r, err := c.b.NewRangeReader(ctx, c.key, off, n)
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := io.ReadFull(r, buf); err != nil {
			// A driver's classified error comes first: a dropped connection
			// also matches io.ErrUnexpectedEOF, and is worth a retry.
			if code := drivers.CodeOf(err); code != drivers.Unknown {
				return drivers.Errorf(code, "read", c.key, err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("data object %s ended before offset %d: %w", c.key, off+n, ErrChecksum)
			}
			return drivers.Errorf(drivers.CodeOf(err), "read", c.key, err)
		}
		return nil
	})
	if err == nil {
		c.opts.Progress.StoredBytes.Add(n)
		c.opts.Progress.Parts.Add(1)
	}
	return chunk{data: buf, err: err}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.err = c.advance()
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// advance makes the next chunk current, or returns io.EOF after the last.
func (c *chunkReader) advance() error {
	if c.curBuf != nil {
		c.free <- c.curBuf[:0]
		c.curBuf = nil
	}
	if c.next == c.chunks {
		if c.chunks == 0 && hex.EncodeToString(c.hash.Sum(nil)) != c.m.StoredSHA256 {
			return fmt.Errorf("stored object %s is empty, the manifest's sha256 is %s: %w", c.key, c.m.StoredSHA256, ErrChecksum)
		}
		return io.EOF
	}
	var res chan chunk
	select {
	case res = <-c.queue:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	if res == nil {
		return c.ctx.Err()
	}
	got := <-res
	if got.err != nil {
		c.cancel()
		return got.err
	}
	c.hash.Write(got.data)
	c.next++
	if c.next == c.chunks {
		// Withhold the last bytes until the whole object checks out: a sink
		// that never sees the end cannot commit a damaged backup.
		if sum := hex.EncodeToString(c.hash.Sum(nil)); sum != c.m.StoredSHA256 {
			c.cancel()
			return fmt.Errorf("stored object %s has sha256 %s, the manifest says %s: %w", c.key, sum, c.m.StoredSHA256, ErrChecksum)
		}
	}
	c.cur, c.curBuf = got.data, got.data
	return nil
}

func (c *chunkReader) close() {
	c.closeOnce.Do(func() {
		c.cancel() // every producer and fetcher select on the context
		c.wg.Wait()
	})
}

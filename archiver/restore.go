package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"

	"github.com/dbarchive/dbarchive/archiver/internal/zstdcodec"
	"github.com/dbarchive/dbarchive/drivers"
)

// ErrChecksum marks a backup whose bytes do not match its manifest:
// errors.Is(err, ErrChecksum) holds for every *CorruptionError.
var ErrChecksum = errors.New("checksum mismatch")

// CorruptionError is a backup whose stored bytes do not match what its
// manifest and parts object recorded. Part and Offset locate the damage in
// the data object where it can be located.
type CorruptionError struct {
	ID string
	// Part is the 1-based number of the damaged part, or 0 when the backup
	// has no parts object (format 1) or the damage is not within one part.
	Part int
	// Offset and Size are the damaged byte range of the data object; Offset
	// is -1 when the damage cannot be located.
	Offset, Size int64
	Err          error
}

func (e *CorruptionError) Error() string {
	where := ""
	switch {
	case e.Part > 0:
		where = fmt.Sprintf(" at part %d (offset %d, %d bytes)", e.Part, e.Offset, e.Size)
	case e.Offset >= 0:
		where = fmt.Sprintf(" at offset %d (%d bytes)", e.Offset, e.Size)
	}
	return fmt.Sprintf("corruption of backup %s%s: %v", e.ID, where, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrChecksum) hold for every corruption.
func (e *CorruptionError) Is(target error) bool { return target == ErrChecksum }

// RestoreOptions tune reading a backup back. The zero value gets defaults.
type RestoreOptions struct {
	// Prefix is the key prefix of the repo's backups.
	Prefix string
	// Concurrency is the number of ranged reads in flight ahead of the
	// decoder (default 4).
	Concurrency int
	// ChunkSize is the size of one ranged read of a format-1 backup
	// (default: its part size, at least 1 MiB). Later formats read one part
	// per ranged read, so that each is checked against its own sha256.
	ChunkSize int64
	// DecoderConcurrency is the number of zstd decoding goroutines
	// (default 2: decoding is rarely the bottleneck).
	DecoderConcurrency int
	// Identities decrypt an encrypted backup (see ParseIdentities); a plain
	// backup needs none. Reading an encrypted backup's content without them
	// fails with ErrIdentityRequired; VerifyStored needs none.
	Identities *Identities
	Progress   *Progress
	Logger     *slog.Logger
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
	return o
}

// RestoreError is a restore or verify that failed; it names the backup.
type RestoreError struct {
	ID  string
	Err error
}

func (e *RestoreError) Error() string {
	// A corruption already names the backup.
	if ce := (*CorruptionError)(nil); errors.As(e.Err, &ce) && ce.ID == e.ID {
		return e.Err.Error()
	}
	return fmt.Sprintf("backup %s: %v", e.ID, e.Err)
}
func (e *RestoreError) Unwrap() error { return e.Err }

// Restore feeds the uncompressed stream of backup m to sink, verifying the
// stored bytes' sha256 and size before sink sees the end of the stream and
// the uncompressed stream's sha256 and size as it ends. On a mismatch the
// reader sink holds returns an error wrapping ErrChecksum instead of io.EOF,
// so a sink that loads the stream in one transaction can roll it back.
func Restore(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions, sink func(io.Reader) error) error {
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

// Verify reads backup m in full and checks every checksum and size, the
// table list's included.
func Verify(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) error {
	if _, err := ReadTables(ctx, b, opts.Prefix, m, opts.Identities); err != nil {
		return &RestoreError{ID: m.ID, Err: err}
	}
	return Restore(ctx, b, m, opts, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
}

// Open returns a reader of backup m's uncompressed stream that verifies as
// described for Restore. The caller must close it. An encrypted backup
// needs opts.Identities: without them Open fails with ErrIdentityRequired,
// and with none that matches with a *NoMatchingIdentityError.
func Open(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) (io.ReadCloser, error) {
	opts = opts.withDefaults(m)
	if m.Encryption != nil && opts.Identities.Len() == 0 {
		return nil, &RestoreError{ID: m.ID, Err: ErrIdentityRequired}
	}
	ctx, cancel := context.WithCancel(ctx)
	stored, err := openStored(ctx, b, m, opts)
	if err != nil {
		cancel()
		return nil, err
	}
	// stored -> (age) -> zstd: the mirror of the backup's chain.
	var compressed io.Reader = stored
	var decrypted *decryptingReader
	if m.Encryption != nil {
		r, err := newDecrypter(m, stored, opts.Identities)
		if err != nil {
			cancel()
			stored.close()
			if f := stored.failure(); f != nil {
				err = f // a damaged first part, not a bad header
			} else if _, ok := errors.AsType[*NoMatchingIdentityError](err); !ok {
				err = stored.corruptHere(fmt.Errorf("the age header does not read (%v): %w", err, ErrChecksum))
			}
			return nil, &RestoreError{ID: m.ID, Err: err}
		}
		decrypted = &decryptingReader{r: r, stored: stored}
		compressed = decrypted
	}
	dec, err := zstdcodec.NewDecoder(compressed, zstdcodec.DecoderOptions{Concurrency: opts.DecoderConcurrency, MaxWindowLog: 30})
	if err != nil {
		cancel()
		stored.close()
		return nil, err
	}
	return &verifyingReader{
		r: dec, m: m, stored: stored, decrypted: decrypted, hash: sha256.New(), progress: opts.Progress,
		close: func() { dec.Close(); cancel(); stored.close() },
	}, nil
}

// openStored checks the data object's size and starts reading its stored
// bytes, each part checked against its sha256 and the whole against the
// manifest's.
func openStored(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) (*chunkReader, error) {
	key := objectKey(opts.Prefix, m.ID, m.DataObject)
	info, err := b.Stat(ctx, key)
	if err != nil {
		return nil, &RestoreError{ID: m.ID, Err: fmt.Errorf("data object %s: %w", key, err)}
	}
	if info.Size != m.StoredSize {
		return nil, &RestoreError{ID: m.ID, Err: &CorruptionError{ID: m.ID, Offset: -1,
			Err: fmt.Errorf("data object %s has %d bytes, the manifest says %d: %w", key, info.Size, m.StoredSize, ErrChecksum)}}
	}
	plan, err := planReads(ctx, b, m, opts)
	if err != nil {
		return nil, &RestoreError{ID: m.ID, Err: err}
	}
	return newChunkReader(ctx, b, key, m, plan, opts), nil
}

// VerifyStored reads backup m's stored bytes in full and checks their sizes
// and sha256 (each part's and the whole object's), without decrypting or
// decompressing them. It needs no identity: it is what can be checked of an
// encrypted backup without its key. It does not check the content.
func VerifyStored(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) error {
	opts = opts.withDefaults(m)
	if _, err := readTablesStored(ctx, b, opts.Prefix, m); err != nil {
		return &RestoreError{ID: m.ID, Err: err}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stored, err := openStored(ctx, b, m, opts)
	if err != nil {
		return err
	}
	defer stored.close()
	if _, err := io.Copy(io.Discard, stored); err != nil {
		return &RestoreError{ID: m.ID, Err: err}
	}
	return nil
}

// decryptingReader reads the age file's plaintext and keeps the first error
// that is not the stored reader's: the age stream failing to authenticate
// a chunk means the stored bytes were changed after they were written (with
// their checksums), which is corruption.
type decryptingReader struct {
	r      io.Reader
	stored *chunkReader
	mu     sync.Mutex
	failed error
}

func (d *decryptingReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF && d.stored.failure() == nil {
		err = d.stored.corruptHere(fmt.Errorf("the age stream does not decrypt (%v): %w", err, ErrChecksum))
		d.mu.Lock()
		if d.failed == nil {
			d.failed = err
		}
		d.mu.Unlock()
	}
	return n, err
}

// failure is the decryption error, or nil.
func (d *decryptingReader) failure() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}

// span is one ranged read of the data object.
type span struct {
	part   int // 1-based part number; 0 for the chunks of a format-1 backup
	off, n int64
	sum    []byte // the part's sha256; nil when the backup has none
}

// readPlan is the sequence of ranged reads that covers the data object.
type readPlan struct {
	n  int
	at func(i int) span
}

// planReads cuts the data object into ranged reads: its parts, each with its
// sha256 from the parts object, or for a format-1 backup (no parts object)
// chunks of opts.ChunkSize checked only as a whole. Chunks are computed as
// needed: a format-1 backup of terabytes has millions.
func planReads(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) (readPlan, error) {
	if m.PartsObject == "" {
		size := opts.ChunkSize
		return readPlan{n: int((m.StoredSize + size - 1) / size), at: func(i int) span {
			off := int64(i) * size
			return span{off: off, n: min(size, m.StoredSize-off)}
		}}, nil
	}
	x, err := readParts(ctx, b, m, opts)
	if err != nil {
		return readPlan{}, err
	}
	spans := make([]span, len(x.Parts))
	var off int64
	for i, p := range x.Parts {
		sum, _ := hex.DecodeString(p.SHA256) // Check made sure it is hex
		spans[i] = span{part: i + 1, off: off, n: p.Size, sum: sum}
		off += p.Size
	}
	return readPlan{n: len(spans), at: func(i int) span { return spans[i] }}, nil
}

// readParts reads and checks backup m's parts object.
func readParts(ctx context.Context, b *drivers.Bucket, m *Manifest, opts RestoreOptions) (*PartIndex, error) {
	key := objectKey(opts.Prefix, m.ID, m.PartsObject)
	// An entry is about 90 bytes; anything much larger is not our object.
	limit := int64(m.PartCount)*256 + 4096
	// The Bucket retries the open and resumes a body that breaks off.
	data, err := func() ([]byte, error) {
		r, err := b.NewRangeReader(ctx, key, 0, -1)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, limit+1))
	}()
	if err != nil {
		return nil, fmt.Errorf("parts object %s: %w", key, err)
	}
	corrupt := func(err error) error { return &CorruptionError{ID: m.ID, Offset: -1, Err: err} }
	if int64(len(data)) > limit {
		return nil, corrupt(fmt.Errorf("parts object %s is larger than %d bytes: %w", key, limit, ErrChecksum))
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != m.PartsSHA256 {
		return nil, corrupt(fmt.Errorf("parts object %s has sha256 %x, the manifest says %s: %w", key, sum, m.PartsSHA256, ErrChecksum))
	}
	var x PartIndex
	if err := json.Unmarshal(data, &x); err != nil {
		return nil, corrupt(fmt.Errorf("parts object %s: %w", key, err))
	}
	if err := x.Check(m); err != nil {
		return nil, corrupt(err)
	}
	return &x, nil
}

// verifyingReader checks the uncompressed stream's size and sha256 as it
// ends, and turns a clean end into ErrChecksum when they differ. A decoder
// error that is not the stored reader's own failure is corruption.
type verifyingReader struct {
	r         io.Reader
	m         *Manifest
	stored    *chunkReader
	decrypted *decryptingReader // nil for a plain backup
	hash      hash.Hash
	size      int64
	progress  *Progress
	close     func()
	done      error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done != nil {
		return 0, v.done
	}
	n, err := v.r.Read(p)
	v.hash.Write(p[:n])
	v.size += int64(n)
	v.progress.SourceBytes.Add(int64(n))
	if err != nil && err != io.EOF {
		if f := v.stored.failure(); f != nil {
			err = f // the real cause, not the decoder's echo of it
		} else if f := v.decrypted.failure(); f != nil {
			err = f
		} else {
			err = v.stored.corruptHere(fmt.Errorf("the zstd stream does not decode: %v", err))
		}
	}
	if err == nil && v.size > v.m.UncompressedSize {
		err = &CorruptionError{ID: v.m.ID, Offset: -1, Err: fmt.Errorf("decoded stream is longer than the manifest's %d bytes: %w", v.m.UncompressedSize, ErrChecksum)}
	}
	if err == io.EOF {
		if sum := hex.EncodeToString(v.hash.Sum(nil)); v.size != v.m.UncompressedSize || sum != v.m.UncompressedSHA256 {
			err = &CorruptionError{ID: v.m.ID, Offset: -1, Err: fmt.Errorf("decoded stream has %d bytes with sha256 %s, the manifest says %d bytes with %s: %w",
				v.size, sum, v.m.UncompressedSize, v.m.UncompressedSHA256, ErrChecksum)}
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

// chunkReader reads an object as a sequence of ranged reads, several in
// flight ahead of the consumer. It checks each read that has a sha256 before
// handing it out (reading it once more on a mismatch: the damage may have
// been in transit), and the whole object's sha256 before it hands out the
// last read.
type chunkReader struct {
	ctx       context.Context
	cancel    context.CancelFunc
	b         *drivers.Bucket
	key       string
	m         *Manifest
	opts      RestoreOptions
	plan      readPlan
	queue     chan chan chunk
	free      chan []byte
	wg        sync.WaitGroup
	hash      hash.Hash
	next      int // index of the span after cur
	cur       []byte
	curBuf    []byte
	err       error
	closeOnce sync.Once

	// The decoder reads from its own goroutine; what the consumer asks
	// about the reader's state is synchronised.
	mu      sync.Mutex
	failed  error // the first error other than io.EOF
	current int   // index of the span being handed out, -1 before the first
}

type chunk struct {
	data []byte
	err  error
}

func newChunkReader(ctx context.Context, b *drivers.Bucket, key string, m *Manifest, plan readPlan, opts RestoreOptions) *chunkReader {
	ctx, cancel := context.WithCancel(ctx)
	c := &chunkReader{
		ctx: ctx, cancel: cancel, b: b, key: key, m: m, opts: opts, plan: plan,
		queue:   make(chan chan chunk, opts.Concurrency),
		free:    make(chan []byte, opts.Concurrency+1),
		hash:    sha256.New(),
		current: -1,
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
	for i := range c.plan.n {
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
		c.wg.Go(func() { res <- c.fetch(c.plan.at(i), buf) })
	}
}

// corrupt is a CorruptionError about span s.
func (c *chunkReader) corrupt(s span, err error) error {
	return &CorruptionError{ID: c.m.ID, Part: s.part, Offset: s.off, Size: s.n, Err: err}
}

func (c *chunkReader) fetch(s span, buf []byte) chunk {
	if int64(cap(buf)) < s.n {
		buf = make([]byte, s.n)
	}
	buf = buf[:s.n]
	// The Bucket retries the open and resumes a body that breaks off, so
	// an error here is final. io.ReadFull returns the bare io.EOF or
	// io.ErrUnexpectedEOF only when the object itself ended early; a
	// classified read error that wraps one is a failed read, not a short
	// object.
	read := func() error {
		r, err := c.b.NewRangeReader(c.ctx, c.key, s.off, s.n)
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return c.corrupt(s, fmt.Errorf("data object %s ended before offset %d: %w", c.key, s.off+s.n, ErrChecksum))
			}
			return err
		}
		return nil
	}
	err := read()
	if err == nil && s.sum != nil {
		if sum := sha256.Sum256(buf); !bytes.Equal(sum[:], s.sum) {
			c.opts.Logger.Warn("a part does not match its sha256; reading it once more", "backup", c.m.ID, "part", s.part, "offset", s.off)
			if err = read(); err == nil {
				if sum := sha256.Sum256(buf); !bytes.Equal(sum[:], s.sum) {
					err = c.corrupt(s, fmt.Errorf("its sha256 is %x on two reads, the parts object says %x: %w", sum, s.sum, ErrChecksum))
				}
			}
		}
	}
	if err == nil {
		c.opts.Progress.StoredBytes.Add(s.n)
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
		if c.err != nil && c.err != io.EOF {
			c.mu.Lock()
			c.failed = c.err
			c.mu.Unlock()
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// failure is the error that stopped the reader, or nil.
func (c *chunkReader) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// corruptHere is a CorruptionError about the span the consumer has reached,
// for damage the checks could not see (a format-1 backup, or a backup
// written damaged). The decoder reads ahead, so the damage is there or
// before it.
func (c *chunkReader) corruptHere(err error) error {
	c.mu.Lock()
	i := c.current
	c.mu.Unlock()
	if i < 0 || i >= c.plan.n {
		return &CorruptionError{ID: c.m.ID, Offset: -1, Err: err}
	}
	return c.corrupt(c.plan.at(i), err)
}

// advance makes the next span current, or returns io.EOF after the last.
func (c *chunkReader) advance() error {
	if c.curBuf != nil {
		c.free <- c.curBuf[:0]
		c.curBuf = nil
	}
	if c.next == c.plan.n {
		if c.plan.n == 0 && hex.EncodeToString(c.hash.Sum(nil)) != c.m.StoredSHA256 {
			return &CorruptionError{ID: c.m.ID, Offset: -1, Err: fmt.Errorf("stored object %s is empty, the manifest's sha256 is %s: %w", c.key, c.m.StoredSHA256, ErrChecksum)}
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
	if c.next == c.plan.n {
		// Withhold the last bytes until the whole object checks out: a sink
		// that never sees the end cannot commit a damaged backup.
		if sum := hex.EncodeToString(c.hash.Sum(nil)); sum != c.m.StoredSHA256 {
			c.cancel()
			return &CorruptionError{ID: c.m.ID, Offset: -1, Err: fmt.Errorf("stored object %s has sha256 %s, the manifest says %s: %w", c.key, sum, c.m.StoredSHA256, ErrChecksum)}
		}
	}
	c.mu.Lock()
	c.current = c.next - 1
	c.mu.Unlock()
	c.cur, c.curBuf = got.data, got.data
	return nil
}

func (c *chunkReader) close() {
	c.closeOnce.Do(func() {
		c.cancel() // every producer and fetcher select on the context
		c.wg.Wait()
	})
}

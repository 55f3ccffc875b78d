package archiver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
	_ "github.com/dbarchive/dbarchive/drivers/fs"
)

// funcSource is a source whose dump is a Go function: the archiver's tests
// exercise the pipeline without a database (the sources have their own tests
// against real servers).
type funcSource struct {
	dump func(ctx context.Context, w io.Writer) error
}

func (s funcSource) Type() string                                { return "exec" }
func (s funcSource) Database() string                            { return "testdb" }
func (s funcSource) Describe() string                            { return "test source" }
func (s funcSource) Check(context.Context) error                 { return nil }
func (s funcSource) Dump(ctx context.Context, w io.Writer) error { return s.dump(ctx, w) }

// bytesSource dumps data in writes of random sizes, like a dump tool does.
func bytesSource(data []byte) funcSource {
	return funcSource{dump: func(ctx context.Context, w io.Writer) error {
		r := rand.New(rand.NewPCG(1, 2))
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(256<<10))
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	}}
}

// compressible returns n bytes of text-like data that zstd shrinks a few
// times, as a database dump does.
func compressible(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	words := []string{"alpha", "beta", "gamma", "delta", "INSERT", "INTO", "persons", "VALUES", "NULL", "2026-11-26", "\n"}
	var buf bytes.Buffer
	for buf.Len() < n {
		if r.IntN(4) == 0 {
			var b [8]byte
			for i := range b {
				b[i] = byte('a' + r.IntN(26))
			}
			buf.Write(b[:])
		} else {
			buf.WriteString(words[r.IntN(len(words))])
		}
		buf.WriteByte(' ')
	}
	return buf.Bytes()[:n]
}

// fastRetry keeps the tests' retries short; the Bucket applies it.
var fastRetry = drivers.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Budget: 10 * time.Second}

func fsConfig(dir string) drivers.Config {
	return drivers.Config{Name: "test", Type: "fs", Path: dir, Retry: fastRetry}
}

func openFS(t testing.TB) (*drivers.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := drivers.Open(context.Background(), fsConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, dir
}

// openFaulty opens an fs repo whose driver fails part uploads on demand,
// under the portable layer (b), and the same repo without faults (inner).
func openFaulty(t testing.TB, code drivers.Code, failParts map[int]int) (b *drivers.Bucket, f *faultyBucket, inner *drivers.Bucket) {
	t.Helper()
	cfg := fsConfig(t.TempDir())
	d, err := drivers.OpenDriver(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	f = &faultyBucket{Bucket: d, code: code, failParts: failParts}
	return drivers.NewBucket(f, cfg), f, drivers.NewBucket(d, cfg)
}

// faultyBucket wraps a driver and fails part uploads on demand, below the
// portable layer, as a store would.
type faultyBucket struct {
	driver.Bucket
	mu        sync.Mutex
	failParts map[int]int // part number -> failures left
	code      drivers.Code
	puts      atomic.Int64
	aborts    atomic.Int64
}

func (f *faultyBucket) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	u, err := f.Bucket.NewUpload(ctx, key)
	if err != nil {
		return nil, err
	}
	return &faultyUpload{Upload: u, f: f, key: key}, nil
}

type faultyUpload struct {
	driver.Upload
	f   *faultyBucket
	key string
}

func (u *faultyUpload) PutPart(ctx context.Context, n int, data []byte) error {
	u.f.puts.Add(1)
	u.f.mu.Lock()
	left := u.f.failParts[n]
	if left > 0 {
		u.f.failParts[n] = left - 1
	}
	u.f.mu.Unlock()
	if left > 0 {
		return drivers.Errorf(u.f.code, "put part", u.key, errors.New("injected fault"))
	}
	return u.Upload.PutPart(ctx, n, data)
}

func (u *faultyUpload) Abort(ctx context.Context) error {
	u.f.aborts.Add(1)
	return u.Upload.Abort(ctx)
}

// stuckBucket wraps a Bucket whose part uploads hang until their context
// ends, as on a frozen endpoint; started counts the puts that began.
type stuckBucket struct {
	driver.Bucket
	started atomic.Int64
}

func (s *stuckBucket) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	u, err := s.Bucket.NewUpload(ctx, key)
	if err != nil {
		return nil, err
	}
	return &stuckUpload{Upload: u, s: s, key: key}, nil
}

type stuckUpload struct {
	driver.Upload
	s   *stuckBucket
	key string
}

func (u *stuckUpload) PutPart(ctx context.Context, n int, data []byte) error {
	u.s.started.Add(1)
	<-ctx.Done()
	return drivers.Errorf(drivers.CodeOf(ctx.Err()), "put part", u.key, ctx.Err())
}

// wrapFS opens the fs repo in dir through w, a wrapper of its driver that
// sits below the portable layer as a misbehaving store would; w's embedded
// driver.Bucket is set here.
func wrapFS(t testing.TB, dir string, w interface{ setDriver(driver.Bucket) }) *drivers.Bucket {
	t.Helper()
	cfg := fsConfig(dir)
	d, err := drivers.OpenDriver(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.setDriver(d)
	b := drivers.NewBucket(w.(driver.Bucket), cfg)
	t.Cleanup(func() { b.Close() })
	return b
}

func (s *stuckBucket) setDriver(d driver.Bucket) { s.Bucket = d }
func (f *faultyReads) setDriver(d driver.Bucket) { f.Bucket = d }

// randomBytes returns n bytes zstd cannot shrink.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}

// readFault decides what one ranged read of the data object does: it gets
// the read's offset and how many reads of that offset came before, and
// returns a transform of the bytes read (nil: unchanged) and an error to
// end the read with after half of them (nil: none).
type readFault func(off int64, earlier int) (mangle func([]byte), err error)

// faultyReads wraps a Bucket and injects faults into ranged reads of keys
// ending in suffix; reads counts the reads per offset.
type faultyReads struct {
	driver.Bucket
	suffix string
	fault  readFault
	mu     sync.Mutex
	reads  map[int64]int
}

func (f *faultyReads) NewRangeReader(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r, err := f.Bucket.NewRangeReader(ctx, key, off, n)
	if err != nil || !strings.HasSuffix(key, f.suffix) {
		return r, err
	}
	f.mu.Lock()
	if f.reads == nil {
		f.reads = map[int64]int{}
	}
	earlier := f.reads[off]
	f.reads[off]++
	f.mu.Unlock()
	mangle, ferr := f.fault(off, earlier)
	if mangle == nil && ferr == nil {
		return r, nil
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if mangle != nil {
		mangle(data)
	}
	if ferr != nil {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{ferr})), nil
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (f *faultyReads) readsAt(off int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads[off]
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

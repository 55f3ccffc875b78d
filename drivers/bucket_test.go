package drivers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers/driver"
)

// memDriver is an in-memory driver.Bucket whose calls fail on demand, to test
// the portable layer without a store.
type memDriver struct {
	mu      sync.Mutex
	objects map[string][]byte
	calls   map[string]int
	// fail, when set, may fail a call before it runs (op names the method).
	fail func(op string, call int) error
	// body, when set, wraps every body NewRangeReader returns.
	body   func(r io.ReadCloser, offset int64) io.ReadCloser
	ctxErr error // the context error Abort and AbortUpload saw
}

func newMem() *memDriver { return &memDriver{objects: map[string][]byte{}, calls: map[string]int{}} }

func (m *memDriver) enter(op string) error {
	m.mu.Lock()
	m.calls[op]++
	n := m.calls[op]
	f := m.fail
	m.mu.Unlock()
	if f != nil {
		return f(op, n)
	}
	return nil
}

func (m *memDriver) count(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

func (m *memDriver) Limits() Limits {
	return Limits{MaxParts: 100, MinPartSize: 4, MaxPartSize: 1 << 20, MaxKeyLength: 64}
}
func (m *memDriver) Close() error { return nil }

func (m *memDriver) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := m.enter("stat"); err != nil {
		return ObjectInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[key]
	if !ok {
		return ObjectInfo{}, Errorf(NotFound, "driver-op", key, errors.New("no such object"))
	}
	return ObjectInfo{Key: key, Size: int64(len(data)), ModTime: time.Now()}, nil
}

func (m *memDriver) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := m.enter("read"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	data, ok := m.objects[key]
	m.mu.Unlock()
	switch {
	case !ok:
		return nil, Errorf(NotFound, "", "", errors.New("no such object"))
	case offset >= int64(len(data)):
		return nil, driver.ErrInvalidRange
	}
	end := int64(len(data))
	if length >= 0 {
		end = min(end, offset+length)
	}
	var r io.ReadCloser = io.NopCloser(bytes.NewReader(data[offset:end]))
	if m.body != nil {
		r = m.body(r, offset)
	}
	return r, nil
}

func (m *memDriver) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	return nil, m.enter("list")
}

func (m *memDriver) Delete(ctx context.Context, key string) error { return m.enter("delete") }

func (m *memDriver) ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error) {
	return nil, m.enter("list uploads")
}

func (m *memDriver) AbortUpload(ctx context.Context, p PendingUpload) error {
	m.ctxErr = ctx.Err()
	return m.enter("abort upload")
}

func (m *memDriver) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	if err := m.enter("begin upload"); err != nil {
		return nil, err
	}
	return &memUpload{m: m, key: key, parts: map[int][]byte{}}, nil
}

type memUpload struct {
	m     *memDriver
	key   string
	mu    sync.Mutex
	parts map[int][]byte
}

func (u *memUpload) PutPart(ctx context.Context, n int, data []byte) error {
	if err := u.m.enter("put part"); err != nil {
		return err
	}
	u.mu.Lock()
	u.parts[n] = bytes.Clone(data)
	u.mu.Unlock()
	return nil
}

func (u *memUpload) Complete(ctx context.Context, parts int) error {
	if err := u.m.enter("complete-before-storing"); err != nil {
		return err
	}
	var all []byte
	u.mu.Lock()
	for n := 1; n <= parts; n++ {
		all = append(all, u.parts[n]...)
	}
	u.mu.Unlock()
	u.m.mu.Lock()
	u.m.objects[u.key] = all
	u.m.mu.Unlock()
	// Stored, and then the answer may be lost.
	return u.m.enter("complete")
}

func (u *memUpload) Abort(ctx context.Context) error {
	u.m.ctxErr = ctx.Err()
	return u.m.enter("abort")
}

var quick = RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Budget: 5 * time.Second}

func portable(m *memDriver) *Bucket {
	return NewBucket(m, Config{Name: "mem", Retry: quick, Timeouts: Timeouts{Idle: 200 * time.Millisecond}})
}

func reset() error { return fmt.Errorf("read tcp: %w", syscall.ECONNRESET) }

// TestEveryCallIsRetried: a 503-like Transient error on the first attempt of
// every call is ridden out.
func TestEveryCallIsRetried(t *testing.T) {
	m := newMem()
	m.fail = func(op string, call int) error {
		if call == 1 {
			return Errorf(Transient, op, "", errors.New("503 SlowDown"))
		}
		return nil
	}
	b := portable(m)
	ctx := context.Background()
	u, err := b.NewUpload(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]func() error{
		"put part": func() error { return u.PutPart(ctx, 1, []byte("data")) },
		"complete": func() error { return u.Complete(ctx, 1) },
		"stat":     func() error { _, err := b.Stat(ctx, "k"); return err },
		"read": func() error {
			r, err := b.NewRangeReader(ctx, "k", 0, -1)
			if err == nil {
				r.Close()
			}
			return err
		},
		"list":         func() error { _, err := b.List(ctx, ""); return err },
		"delete":       func() error { return b.Delete(ctx, "k") },
		"list uploads": func() error { _, err := b.ListUploads(ctx, ""); return err },
		"abort upload": func() error { return b.AbortUpload(ctx, PendingUpload{Key: "k", ID: "x"}) },
		"abort":        func() error { return u.Abort(ctx) },
	}
	for _, op := range []string{"put part", "complete", "stat", "read", "list", "delete", "list uploads", "abort upload", "abort"} {
		if err := steps[op](); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
	for _, op := range []string{"begin upload", "put part", "stat", "read", "list", "delete", "list uploads", "abort upload", "abort"} {
		if got := m.count(op); got != 2 {
			t.Errorf("%s: %d attempts, want 2 (one failure, one retry)", op, got)
		}
	}
}

// TestNoRetryOnFinalClasses: Permanent, NotFound and PermissionDenied errors
// return at once, Transient ones are retried until the attempts run out.
func TestNoRetryOnFinalClasses(t *testing.T) {
	for _, code := range []Code{Permanent, NotFound, PermissionDenied, Unknown, Transient} {
		t.Run(code.String(), func(t *testing.T) {
			m := newMem()
			m.fail = func(op string, _ int) error { return &Error{Code: code, Err: errors.New("refused")} }
			b := NewBucket(m, Config{Retry: RetryPolicy{InitialBackoff: time.Millisecond, MaxAttempts: 3}})
			_, err := b.List(context.Background(), "p/")
			want := 1
			if code == Transient {
				want = 3
			}
			if got := m.count("list"); got != want {
				t.Fatalf("%d attempts, want %d", got, want)
			}
			wantCode := code
			if code == Unknown {
				wantCode = Permanent // nobody understood it: never retried, reported as final
			}
			if c := CodeOf(err); c != wantCode && !(code == Unknown && c == Unknown) {
				t.Fatalf("code %v, want %v", c, wantCode)
			}
		})
	}
}

// TestDefaultRetryRidesOutAMinute: with the default policy a call keeps
// trying through 60 s of an unavailable endpoint, and gives up once its
// budget is spent. It runs on a fake clock.
func TestDefaultRetryRidesOutAMinute(t *testing.T) {
	for _, outage := range []time.Duration{5 * time.Second, 61 * time.Second, 10 * time.Minute} {
		t.Run(outage.String(), func(t *testing.T) {
			m := newMem()
			now := time.Unix(0, 0)
			b := NewBucket(m, Config{})
			b.now = func() time.Time { return now }
			b.sleep = func(_ context.Context, d time.Duration) error { now = now.Add(d); return nil }
			m.fail = func(string, int) error {
				if now.Sub(time.Unix(0, 0)) < outage {
					return Errorf(Transient, "", "", fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED))
				}
				return nil
			}
			_, err := b.Stat(context.Background(), "k")
			recovered := CodeOf(err) == NotFound // the endpoint is back: the object is missing
			if outage <= 61*time.Second && !recovered {
				t.Fatalf("after an outage of %s: %v, want the call to ride it out", outage, err)
			}
			if outage > DefaultRetry.Budget {
				if recovered || !strings.Contains(err.Error(), "gave up after") {
					t.Fatalf("after an outage of %s: %v, want a give-up", outage, err)
				}
				if waited := now.Sub(time.Unix(0, 0)); waited > DefaultRetry.Budget {
					t.Fatalf("retried for %s, beyond the %s budget", waited, DefaultRetry.Budget)
				}
			}
		})
	}
}

// TestValidationBeforeAnyRequest: arguments outside the driver's limits are
// Permanent errors and never reach the driver.
func TestValidationBeforeAnyRequest(t *testing.T) {
	m := newMem()
	b := portable(m)
	ctx := context.Background()
	u, err := b.NewUpload(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]error{
		"empty key stat":       func() error { _, err := b.Stat(ctx, ""); return err }(),
		"empty key delete":     b.Delete(ctx, ""),
		"key too long":         b.Delete(ctx, strings.Repeat("k", 65)),
		"negative offset":      func() error { _, err := b.NewRangeReader(ctx, "k", -1, 5); return err }(),
		"length below -1":      func() error { _, err := b.NewRangeReader(ctx, "k", 0, -2); return err }(),
		"part 0":               u.PutPart(ctx, 0, []byte("data")),
		"part beyond MaxParts": u.PutPart(ctx, 101, []byte("data")),
		"part too large":       u.PutPart(ctx, 1, make([]byte, 1<<20+1)),
		"negative part count":  u.Complete(ctx, -1),
		"part count too large": u.Complete(ctx, 101),
	}
	for name, err := range calls {
		if CodeOf(err) != Permanent {
			t.Errorf("%s: %v, want Permanent", name, err)
		}
	}
	if n := m.count("put part") + m.count("stat") + m.count("read") + m.count("delete") + m.count("complete"); n != 0 {
		t.Fatalf("%d invalid calls reached the driver", n)
	}
	// A part smaller than MinPartSize is refused when it turns out not to be
	// the last one.
	for n, d := range map[int]string{1: "ab", 2: "cdef"} {
		if err := u.PutPart(ctx, n, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Complete(ctx, 2); CodeOf(err) != Permanent || !strings.Contains(err.Error(), "part 1 has 2 bytes") {
		t.Fatalf("Complete with a short first part = %v", err)
	}
	if err := u.Complete(ctx, 1); err != nil {
		t.Fatalf("Complete with the short part last: %v", err)
	}
}

// TestReaderResumesAfterReset: a body that breaks off with a connection
// reset is reopened where it stopped; the caller sees every byte once.
func TestReaderResumesAfterReset(t *testing.T) {
	m := newMem()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	m.objects["k"] = data
	cuts := 0
	m.body = func(r io.ReadCloser, offset int64) io.ReadCloser {
		if cuts >= 3 {
			return r
		}
		cuts++
		return &cutBody{r: r, left: 1234}
	}
	b := portable(m)
	r, err := b.NewRangeReader(context.Background(), "k", 100, 8000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data[100:8100]) {
		t.Fatalf("read %d bytes (%v), want %d equal ones", len(got), err, 8000)
	}
	if m.count("read") != 4 {
		t.Fatalf("%d opens, want 4 (3 resets)", m.count("read"))
	}
}

// TestReaderClassifiesBodyErrors: an unclassified body error is annotated
// once, with a class; a reset that never stops ends as Transient.
func TestReaderClassifiesBodyErrors(t *testing.T) {
	m := newMem()
	m.objects["k"] = bytes.Repeat([]byte("x"), 100)
	// Ten bytes, then every reopen breaks at once: no progress, so the
	// breaks count as attempts and the read gives up.
	m.body = func(r io.ReadCloser, off int64) io.ReadCloser {
		if off == 0 {
			return &cutBody{r: r, left: 10, err: reset()}
		}
		return &cutBody{r: r, left: 0, err: reset()}
	}
	b := NewBucket(m, Config{Retry: RetryPolicy{InitialBackoff: time.Millisecond, MaxAttempts: 2}})
	r, err := b.NewRangeReader(context.Background(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	var e *Error
	if !errors.As(err, &e) || e.Code != Transient || e.Op != "read" || e.Key != "k" {
		t.Fatalf("read error %#v, want a Transient *Error about read of k", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) || strings.Count(err.Error(), `"k"`) != 1 || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("error %q: want the cause kept and the key named once", err)
	}
	m.body = func(r io.ReadCloser, _ int64) io.ReadCloser {
		return &cutBody{r: r, left: 10, err: errors.New("garbled")}
	}
	r2, _ := b.NewRangeReader(context.Background(), "k", 0, -1)
	defer r2.Close()
	if _, err := io.ReadAll(r2); CodeOf(err) != Permanent {
		t.Fatalf("unclassified body error = %v (code %v), want Permanent", err, CodeOf(err))
	}
}

// TestReaderIdleWatchdog: a body that stops sending is cut after the idle
// timeout and the read resumes.
func TestReaderIdleWatchdog(t *testing.T) {
	m := newMem()
	data := bytes.Repeat([]byte("y"), 5000)
	m.objects["k"] = data
	stalls := 0
	m.body = func(r io.ReadCloser, _ int64) io.ReadCloser {
		if stalls > 0 {
			return r
		}
		stalls++
		return &stallBody{r: r, after: 1000, closed: make(chan struct{})}
	}
	b := portable(m) // idle 200ms
	start := time.Now()
	r, err := b.NewRangeReader(context.Background(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(data))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a stalled body took %s to recover; the idle bound is 200ms", took)
	}
}

// TestPastEndIsPermanent and the empty reads at the end.
func TestRangeEdges(t *testing.T) {
	m := newMem()
	m.objects["k"] = []byte("0123456789")
	b := portable(m)
	ctx := context.Background()
	for _, c := range []struct {
		off, n int64
		code   Code // Unknown: an empty read
	}{{10, -1, Unknown}, {10, 5, Unknown}, {3, 0, Unknown}, {11, -1, Permanent}, {11, 0, Permanent}} {
		r, err := b.NewRangeReader(ctx, "k", c.off, c.n)
		if c.code != Unknown {
			if CodeOf(err) != c.code {
				t.Errorf("read at %d+%d = %v, want %v", c.off, c.n, err, c.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("read at %d+%d: %v", c.off, c.n, err)
			continue
		}
		if got, _ := io.ReadAll(r); len(got) != 0 {
			t.Errorf("read at %d+%d gave %q", c.off, c.n, got)
		}
		r.Close()
	}
	if _, err := b.NewRangeReader(ctx, "missing", 0, 0); CodeOf(err) != NotFound {
		t.Errorf("zero-length read of a missing key = %v, want NotFound", err)
	}
}

// TestCompleteWhoseAnswerWasLost: the completion stored the object, its
// answer was lost (Transient), and the retry finds no upload (NotFound). An
// object of the size put settles it as success; any other size does not.
func TestCompleteWhoseAnswerWasLost(t *testing.T) {
	m := newMem()
	m.fail = func(op string, call int) error {
		switch {
		case op == "complete" && call == 1:
			return Errorf(Transient, "", "", reset())
		case op == "complete":
			return Errorf(NotFound, "", "", errors.New("NoSuchUpload"))
		}
		return nil
	}
	b := portable(m)
	ctx := context.Background()
	u, _ := b.NewUpload(ctx, "k")
	if err := u.PutPart(ctx, 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 1); err != nil {
		t.Fatalf("Complete whose answer was lost: %v", err)
	}
	m.objects["k"] = []byte("other")
	m.fail = func(op string, call int) error {
		switch {
		case op == "complete-before-storing" && call == 2:
			return Errorf(Transient, "", "", reset())
		case op == "complete-before-storing" && call > 2:
			return Errorf(NotFound, "", "", errors.New("NoSuchUpload"))
		}
		return nil
	}
	u2, _ := b.NewUpload(ctx, "k")
	_ = u2.PutPart(ctx, 1, []byte("hello!"))
	if err := u2.Complete(ctx, 1); CodeOf(err) != NotFound {
		t.Fatalf("Complete with an object of another size there = %v, want NotFound", err)
	}
}

// TestAbortRunsOnADetachedContext: a cancelled caller still gets its cleanup.
func TestAbortRunsOnADetachedContext(t *testing.T) {
	m := newMem()
	b := portable(m)
	ctx, cancel := context.WithCancel(context.Background())
	u, _ := b.NewUpload(ctx, "k")
	cancel()
	if err := u.Abort(ctx); err != nil || m.ctxErr != nil {
		t.Fatalf("Abort on a cancelled context: %v; the driver saw ctx.Err() = %v", err, m.ctxErr)
	}
	if err := b.AbortUpload(ctx, PendingUpload{Key: "k", ID: "x"}); err != nil || m.ctxErr != nil {
		t.Fatalf("AbortUpload on a cancelled context: %v; the driver saw ctx.Err() = %v", err, m.ctxErr)
	}
}

// TestErrorNamesOpAndKeyOnce: the driver's own op and key are replaced, not
// repeated.
func TestErrorNamesOpAndKeyOnce(t *testing.T) {
	m := newMem()
	m.fail = func(op string, _ int) error {
		return Errorf(PermissionDenied, "driver "+op, "backups/20260101/data.zst", errors.New("AccessDenied"))
	}
	b := portable(m)
	u, err := b.NewUpload(context.Background(), "backups/20260101/data.zst")
	if err == nil {
		_ = u
	}
	msg := err.Error()
	if strings.Count(msg, "20260101") != 1 || strings.Contains(msg, "driver") || !strings.HasPrefix(msg, "begin upload") {
		t.Fatalf("error %q: want one mention of the key, the portable op, no driver annotation", msg)
	}
}

// cutBody ends with err (default: a connection reset) after left bytes.
type cutBody struct {
	r    io.ReadCloser
	left int
	err  error
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, reset()
	}
	p = p[:min(len(p), c.left)]
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}

func (c *cutBody) Close() error { return c.r.Close() }

// stallBody stops sending after some bytes until it is closed.
type stallBody struct {
	r      io.ReadCloser
	after  int
	closed chan struct{}
	once   sync.Once
}

func (s *stallBody) Read(p []byte) (int, error) {
	if s.after == 0 {
		<-s.closed
		return 0, errors.New("read on closed body")
	}
	p = p[:min(len(p), s.after)]
	n, err := s.r.Read(p)
	s.after -= n
	return n, err
}

func (s *stallBody) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.r.Close()
}

package conformance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

// Bounds the failure behaviours configure, so that they run in seconds; the
// defaults (drivers.DefaultRetry, drivers.DefaultTimeouts) are longer and
// are checked on a fake clock in package drivers.
var (
	fastRetry    = drivers.RetryPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Budget: 5 * time.Second}
	stallTimeout = drivers.Timeouts{Connect: time.Second, TLSHandshake: time.Second, ResponseHeader: time.Second, Idle: time.Second}
	stallRetry   = drivers.RetryPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Budget: 1500 * time.Millisecond}
	// stallBound is what a call against a frozen endpoint may take at most:
	// the retry budget plus one attempt's timeout, with room for a busy
	// machine. A hang would take forever.
	stallBound = 10 * time.Second
)

// The failure behaviours, by name. A harness lists the ones that cannot
// apply to its backend in NotApplicable.
var failureTests = []struct {
	name string
	fn   func(t *testing.T, h Harness)
}{
	{"MissingBucket", testMissingBucket},
	{"BadCredentials", testBadCredentials},
	{"ResetMidRangedRead", testResetMidRead},
	{"Unavailable503IsRetried", testUnavailable},
	{"EndpointStopsAnswering", testStall},
}

func runFailures(t *testing.T, h Harness) {
	for _, tc := range failureTests {
		if why, ok := h.NotApplicable[tc.name]; ok {
			t.Logf("%s does not apply: %s", tc.name, why)
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			if h.Proxy != nil {
				h.Proxy.Clear()
				t.Cleanup(h.Proxy.Clear)
			}
			tc.fn(t, h)
		})
	}
}

func requireProxy(t *testing.T, h Harness) *emulators.Proxy {
	t.Helper()
	if h.Proxy == nil {
		t.Fatal("the harness has no fault proxy; list the behaviour in NotApplicable with the reason")
	}
	return h.Proxy
}

func requireCode(t *testing.T, what string, err error, want drivers.Code) {
	t.Helper()
	if got := drivers.CodeOf(err); got != want {
		t.Errorf("%s = %v (code %v), want %v", what, err, got, want)
	}
}

// testMissingBucket: every call in a bucket that does not exist is
// NotFound, Delete included (the rule for all drivers: a mistyped repo must
// not look like a successful prune). Where the service sends nothing on
// NewUpload (Azure), the first PutPart is NotFound.
func testMissingBucket(t *testing.T, h Harness) {
	if h.Missing == nil {
		t.Fatal("the harness has no Missing; list the behaviour in NotApplicable with the reason")
	}
	cfg, afterOpen := h.Missing(t, h.Config(t))
	cfg.Retry = fastRetry
	b := open(t, cfg)
	if afterOpen != nil {
		afterOpen()
	}
	ctx := context.Background()
	key := "conformance/missing-bucket/object"
	requireEveryCall(t, b, key, drivers.NotFound)
	_, err := b.ListUploads(ctx, "conformance/")
	requireCode(t, "ListUploads", err, drivers.NotFound)
	requireCode(t, "AbortUpload", b.AbortUpload(ctx, drivers.PendingUpload{Key: key, ID: "0123456789abcdef0123456789abcdef"}), drivers.NotFound)
}

// requireEveryCall checks that Stat, NewRangeReader, List, Delete and an
// upload of key each fail with code.
func requireEveryCall(t *testing.T, b *drivers.Bucket, key string, code drivers.Code) {
	t.Helper()
	ctx := context.Background()
	_, err := b.Stat(ctx, key)
	requireCode(t, "Stat", err, code)
	_, err = b.NewRangeReader(ctx, key, 0, -1)
	requireCode(t, "NewRangeReader", err, code)
	_, err = b.List(ctx, "conformance/")
	requireCode(t, "List", err, code)
	requireCode(t, "Delete", b.Delete(ctx, key), code)
	u, err := b.NewUpload(ctx, key)
	if err == nil {
		err = u.PutPart(ctx, 1, []byte("data"))
		_ = u.Abort(ctx)
	}
	requireCode(t, "NewUpload and PutPart", err, code)
}

// testBadCredentials: credentials the store refuses are PermissionDenied,
// never retried, on every call that reaches the store.
func testBadCredentials(t *testing.T, h Harness) {
	if h.BadCredentials == nil {
		t.Fatal("the harness has no BadCredentials; list the behaviour in NotApplicable with the reason")
	}
	cfg := h.BadCredentials(t, h.Config(t))
	cfg.Retry = fastRetry
	cfg.CreateBucket = false // opening sends nothing then
	b := open(t, cfg)
	start := time.Now()
	requireEveryCall(t, b, "conformance/bad-credentials/object", drivers.PermissionDenied)
	if took := time.Since(start); took > fastRetry.Budget {
		t.Errorf("refused calls took %s: PermissionDenied must not be retried", took)
	}
}

// testResetMidRead: a connection reset in the middle of a ranged read is
// Transient, and the portable layer recovers from it by resuming the read
// where it broke off.
func testResetMidRead(t *testing.T, h Harness) {
	p := requireProxy(t, h)
	cfg := h.Config(t)
	cfg.Retry = fastRetry
	b := open(t, cfg)
	ctx := context.Background()
	key := uniqueKey(t, "object")
	data := randomBytes(501, 3<<20+11)
	upload(t, b, key, data)
	const offset, length = 1000, 2 << 20
	want := data[offset : offset+length]

	// With one attempt only, the break reaches the caller, as Transient.
	// An SDK may resume a broken body itself (the GCS SDK's reader reopens
	// once per break, whatever its retry policy); then the bytes must be
	// right all the same.
	once := cfg
	once.Retry = drivers.RetryPolicy{MaxAttempts: 1}
	p.Inject(emulators.Fault{Method: http.MethodGet, Action: emulators.CutBody, After: 64 << 10})
	r, err := open(t, once).NewRangeReader(ctx, key, offset, length)
	if err == nil {
		var got []byte
		got, err = io.ReadAll(r)
		r.Close()
		if err == nil {
			if !bytes.Equal(got, want) {
				t.Fatalf("a read the SDK resumed gave %d bytes, want %d equal ones", len(got), len(want))
			}
			t.Logf("the %s SDK resumed the broken body itself", cfg.Type)
		}
	}
	if err != nil {
		requireCode(t, "a read whose connection was reset, without retries", err, drivers.Transient)
	}
	if p.Injected() != 1 {
		t.Fatalf("the proxy cut %d bodies, want 1", p.Injected())
	}

	// With retries, the caller gets every byte, once.
	p.Inject(emulators.Fault{Method: http.MethodGet, Action: emulators.CutBody, After: 64 << 10, Times: 2})
	if got := readAll(t, b, key, offset, length); !bytes.Equal(got, want) {
		t.Fatalf("read across two resets: %d bytes, want %d equal ones", len(got), len(want))
	}
	if p.Injected() != 3 {
		t.Fatalf("the proxy cut %d bodies in all, want 3", p.Injected())
	}
}

// testUnavailable: 503 answers on NewUpload, List and Stat are retried and
// the calls succeed.
func testUnavailable(t *testing.T, h Harness) {
	p := requireProxy(t, h)
	cfg := h.Config(t)
	cfg.Retry = fastRetry
	b := open(t, cfg)
	ctx := context.Background()
	key := uniqueKey(t, "object")
	data := []byte("survives 503s")
	steps := []struct {
		name string
		call func() error
	}{
		// Azure's NewUpload sends nothing; its first part meets the 503s.
		{"NewUpload", func() error {
			u, err := b.NewUpload(ctx, key)
			if err != nil {
				return err
			}
			if err := u.PutPart(ctx, 1, data); err != nil {
				return err
			}
			return u.Complete(ctx, 1)
		}},
		{"List", func() error {
			objs, err := b.List(ctx, key)
			if err == nil && len(objs) != 1 {
				return errors.New("the object is not listed")
			}
			return err
		}},
		{"Stat", func() error {
			info, err := b.Stat(ctx, key)
			if err == nil && info.Size != int64(len(data)) {
				return errors.New("wrong size")
			}
			return err
		}},
	}
	for _, s := range steps {
		before := p.Injected()
		p.Inject(emulators.Fault{Action: emulators.Status, Status: http.StatusServiceUnavailable, Times: 2})
		if err := s.call(); err != nil {
			t.Fatalf("%s with two 503s first: %v", s.name, err)
		}
		if got := p.Injected() - before; got != 2 {
			t.Fatalf("%s: the proxy answered %d requests with 503, want 2", s.name, got)
		}
	}
	requireContent(t, b, key, data)
}

// testStall: an endpoint that stops answering fails a call as Transient
// within the configured bounds instead of hanging it; a body that stops in
// the middle is resumed.
func testStall(t *testing.T, h Harness) {
	p := requireProxy(t, h)
	cfg := h.Config(t)
	cfg.Timeouts, cfg.Retry = stallTimeout, stallRetry
	b := open(t, cfg)
	ctx := context.Background()
	key := uniqueKey(t, "object")
	data := randomBytes(601, 1<<20)
	upload(t, b, key, data)
	u, err := b.NewUpload(ctx, uniqueKey(t, "pending"))
	if err != nil {
		t.Fatal(err)
	}

	// A body that goes silent after 64 KiB is cut by the idle timeout and
	// the read resumes.
	p.Inject(emulators.Fault{Method: http.MethodGet, Action: emulators.StallBody, After: 64 << 10})
	start := time.Now()
	if got := readAll(t, b, key, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("read across a stalled body: %d bytes, want %d equal ones", len(got), len(data))
	}
	if took := time.Since(start); took > stallBound {
		t.Fatalf("read across a stalled body took %s, bound %s", took, stallBound)
	}

	p.Inject(emulators.Fault{Action: emulators.Stall, Times: 1 << 20})
	for _, s := range []struct {
		name string
		call func() error
	}{
		{"Stat", func() error { _, err := b.Stat(ctx, key); return err }},
		{"PutPart", func() error { return u.PutPart(ctx, 1, randomBytes(602, PartSize)) }},
		{"List", func() error { _, err := b.List(ctx, key); return err }},
	} {
		start := time.Now()
		err := s.call()
		took := time.Since(start)
		requireCode(t, s.name+" against a frozen endpoint", err, drivers.Transient)
		if took > stallBound {
			t.Errorf("%s against a frozen endpoint took %s, bound %s", s.name, took, stallBound)
		}
	}
	p.Clear()
	if err := u.Abort(ctx); err != nil {
		t.Errorf("Abort once the endpoint answers again: %v", err)
	}
}

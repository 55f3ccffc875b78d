package drivers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/dbarchive/dbarchive/drivers/driver"
)

// Bucket is the portable type every caller uses: one repo, a flat namespace
// of objects addressed by slash-separated keys. It wraps the driver.Bucket of
// the repo's type and adds, once for every driver:
//
//   - argument validation (keys, offsets, lengths, part numbers and sizes
//     against the driver's Limits), before any request;
//   - retries of every call on errors of class Transient, with jittered
//     exponential backoff under a time budget (Config.Retry);
//   - an idle watchdog on object bodies and recovery of a ranged read that
//     breaks off: the read resumes where it stopped;
//   - classification of every error a body raises;
//   - the detached cleanup context of Upload.Abort and AbortUpload;
//   - one annotation of every error with the operation and the key.
//
// Every error it returns is a *Error: CodeOf reports NotFound,
// PermissionDenied, Transient or Permanent. A Bucket is safe for concurrent
// use.
type Bucket struct {
	d      driver.Bucket
	limits Limits
	retry  RetryPolicy
	idle   time.Duration
	log    *slog.Logger

	// Clock hooks, replaced by tests that check the retry budget without
	// waiting for it.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// NewBucket wraps a driver in the portable layer, with cfg's retry policy
// and idle timeout (zero fields take the defaults). Open does this for the
// driver registered for cfg.Type; tests use it to put a fault-injecting
// driver under the portable layer.
func NewBucket(d driver.Bucket, cfg Config) *Bucket {
	log := slog.Default()
	if cfg.Name != "" {
		log = log.With("repo", cfg.Name)
	}
	return &Bucket{
		d:      d,
		limits: d.Limits(),
		retry:  cfg.Retry.withDefaults(),
		idle:   cfg.Timeouts.withDefaults().Idle,
		log:    log,
		now:    time.Now,
		sleep:  sleep,
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do runs fn until it succeeds, fails with an error that is not Transient,
// ctx ends, or the retry budget is spent, and annotates the error once with
// op and key.
func (b *Bucket) do(ctx context.Context, op, key string, fn func(context.Context) error) error {
	return b.doWith(ctx, op, key, fn, nil)
}

// doWith is do with a hook that may turn the error of a retried attempt
// into success (a completion whose first answer was lost).
func (b *Bucket) doWith(ctx context.Context, op, key string, fn func(context.Context) error, settle func(ctx context.Context, attempt int, err error) bool) error {
	return retryCall(ctx, b.retry, b.now, b.sleep, b.log, op, key, fn, settle)
}

// retrier decides, attempt by attempt, whether a failed call is tried again
// and after what pause. backoff computes the jittered intervals; the
// retrier owns the budget so that tests can run it on a fake clock. It is
// the one retry policy of the storage layer: calls use it through
// retryCall, the body reader for breaks that make no progress.
type retrier struct {
	p       RetryPolicy
	now     func() time.Time
	bo      *backoff.ExponentialBackOff
	start   time.Time
	attempt int
}

func newRetrier(p RetryPolicy, now func() time.Time) *retrier {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = p.InitialBackoff
	bo.MaxInterval = p.MaxBackoff
	bo.RandomizationFactor = 0.5
	bo.Reset()
	return &retrier{p: p, now: now, bo: bo, start: now()}
}

// again counts a failed attempt and reports whether to try once more, and
// after how long.
func (r *retrier) again(ctx context.Context, err error) (time.Duration, bool) {
	r.attempt++
	if CodeOf(err) != Transient || ctx.Err() != nil {
		return 0, false
	}
	wait := r.bo.NextBackOff()
	if (r.p.MaxAttempts > 0 && r.attempt >= r.p.MaxAttempts) || r.now().Add(wait).Sub(r.start) > r.p.Budget {
		return 0, false
	}
	return wait, true
}

// fail annotates the error that ended the retries.
func (r *retrier) fail(op, key string, err error) error {
	return annotate(op, key, err, r.attempt, r.now().Sub(r.start))
}

// retryCall runs fn until it succeeds, settle accepts its error, the error
// is not Transient, ctx ends, or the policy runs out.
func retryCall(ctx context.Context, p RetryPolicy, now func() time.Time, sleep func(context.Context, time.Duration) error,
	log *slog.Logger, op, key string, fn func(context.Context) error, settle func(context.Context, int, error) bool) error {
	r := newRetrier(p, now)
	for {
		err := fn(ctx)
		if err == nil || (settle != nil && settle(ctx, r.attempt+1, err)) {
			return nil
		}
		wait, ok := r.again(ctx, err)
		if !ok {
			return r.fail(op, key, err)
		}
		log.Warn("retrying after a transient storage error", "op", op, "key", key, "attempt", r.attempt, "wait", wait.Round(time.Millisecond), "error", err)
		if sleep(ctx, wait) != nil {
			return r.fail(op, key, err)
		}
	}
}

// annotate makes err the one *Error callers see: its class, the operation
// and key, and how long retrying went on. A driver's own op and key are
// dropped so that they are not repeated.
func annotate(op, key string, err error, attempts int, elapsed time.Duration) error {
	code := CodeOf(err)
	cause := err
	for {
		e, ok := cause.(*Error)
		if !ok || e.Err == nil {
			break
		}
		cause = e.Err
	}
	e := &Error{Code: code, Op: op, Key: key, Err: cause}
	if attempts > 1 {
		e.Attempts, e.Elapsed = attempts, elapsed
	}
	return e
}

// invalid is a call the portable layer refuses before any request.
func invalid(op, key, format string, args ...any) error {
	return &Error{Code: Permanent, Op: op, Key: key, Err: fmt.Errorf(format, args...)}
}

func (b *Bucket) checkKey(op, key string) error {
	switch {
	case key == "":
		return invalid(op, key, "empty key")
	case b.limits.MaxKeyLength > 0 && len(key) > b.limits.MaxKeyLength:
		return invalid(op, key, "key is %d bytes, longer than the %d the store accepts", len(key), b.limits.MaxKeyLength)
	}
	return nil
}

// Limits reports the multipart limits of the repo's driver.
func (b *Bucket) Limits() Limits { return b.limits }

// Close releases the driver's resources. The Bucket must not be used
// afterwards.
func (b *Bucket) Close() error { return b.d.Close() }

// Stat reports the size and modification time of key. A missing object is
// NotFound.
func (b *Bucket) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := b.checkKey("stat", key); err != nil {
		return ObjectInfo{}, err
	}
	var info ObjectInfo
	err := b.do(ctx, "stat", key, func(ctx context.Context) (err error) {
		info, err = b.d.Stat(ctx, key)
		return err
	})
	return info, err
}

// List returns every object whose key starts with prefix, in ascending key
// order, following all pages. Pending uploads and driver bookkeeping are
// never listed. In a bucket that does not exist: NotFound.
func (b *Bucket) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := b.do(ctx, "list", prefix, func(ctx context.Context) (err error) {
		out, err = b.d.List(ctx, prefix)
		return err
	})
	return out, err
}

// Delete removes key. Deleting a key that does not exist is not an error;
// deleting in a bucket that does not exist is NotFound, in every driver, so
// that a mistyped repo never looks like a successful prune.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.checkKey("delete", key); err != nil {
		return err
	}
	return b.do(ctx, "delete", key, func(ctx context.Context) error { return b.d.Delete(ctx, key) })
}

// ListUploads returns the multipart uploads begun under prefix that were
// neither completed nor aborted, as far as the service lets the driver see
// them, so that a cleaner can abort stale ones.
func (b *Bucket) ListUploads(ctx context.Context, prefix string) ([]PendingUpload, error) {
	var out []PendingUpload
	err := b.do(ctx, "list uploads", prefix, func(ctx context.Context) (err error) {
		out, err = b.d.ListUploads(ctx, prefix)
		return err
	})
	return out, err
}

// AbortUpload discards a pending upload found by ListUploads. Aborting an
// upload that no longer exists is not an error. It runs on a context
// detached from ctx's cancellation (bounded by AbortTimeout), so a cleaner
// that is being stopped still finishes the abort it began.
func (b *Bucket) AbortUpload(ctx context.Context, p PendingUpload) error {
	if err := b.checkKey("abort upload", p.Key); err != nil {
		return err
	}
	ctx, cancel := CleanupContext(ctx)
	defer cancel()
	return b.do(ctx, "abort upload", p.Key, func(ctx context.Context) error { return b.d.AbortUpload(ctx, p) })
}

// NewUpload begins a multipart upload to key. Nothing is visible under key
// (Stat, List, NewRangeReader) until Upload.Complete returns nil, and an
// existing object under key stays readable and unchanged until then.
func (b *Bucket) NewUpload(ctx context.Context, key string) (*Upload, error) {
	if err := b.checkKey("begin upload", key); err != nil {
		return nil, err
	}
	var u driver.Upload
	err := b.do(ctx, "begin upload", key, func(ctx context.Context) (err error) {
		u, err = b.d.NewUpload(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Upload{b: b, u: u, key: key, sizes: map[int]int64{}}, nil
}

// Upload is one multipart upload in progress. PutPart may be called from any
// number of goroutines, in any order; Complete and Abort end the upload and
// are called once, after every PutPart has returned.
type Upload struct {
	b   *Bucket
	u   driver.Upload
	key string

	mu    sync.Mutex
	sizes map[int]int64 // bytes of each part put, by number
}

// Key is the key the object will have once the upload completes.
func (u *Upload) Key() string { return u.key }

// PutPart stores part number n (1-based). Every part but the last must be at
// least Limits().MinPartSize long (checked by Complete, which knows which
// part is last) and at most MaxPartSize. Putting the same part number again
// replaces it. data is not retained after PutPart returns.
func (u *Upload) PutPart(ctx context.Context, n int, data []byte) error {
	op := fmt.Sprintf("put part %d", n)
	l := u.b.limits
	if n < 1 || n > l.MaxParts {
		return invalid(op, u.key, "part number must be 1..%d", l.MaxParts)
	}
	if int64(len(data)) > l.MaxPartSize {
		return invalid(op, u.key, "part of %d bytes exceeds the %d-byte limit", len(data), l.MaxPartSize)
	}
	// A failed re-put must not let Complete count the older part's size.
	u.mu.Lock()
	delete(u.sizes, n)
	u.mu.Unlock()
	err := u.b.do(ctx, op, u.key, func(ctx context.Context) error { return u.u.PutPart(ctx, n, data) })
	if err == nil {
		u.mu.Lock()
		u.sizes[n] = int64(len(data))
		u.mu.Unlock()
	}
	return err
}

// Complete assembles parts 1..parts, in order, into the object under Key and
// makes it visible atomically, replacing any object already there. It fails,
// leaving nothing visible, when any part in 1..parts was not put or a part
// but the last is smaller than Limits().MinPartSize. Zero parts make an empty
// object.
//
// A completion can succeed on the server while its answer is lost; the retry
// then finds no upload (NotFound). An object under Key of exactly the size of
// the parts put settles that case as success.
func (u *Upload) Complete(ctx context.Context, parts int) error {
	const op = "complete upload"
	l := u.b.limits
	if parts < 0 || parts > l.MaxParts {
		return invalid(op, u.key, "part count must be 0..%d", l.MaxParts)
	}
	var total int64
	known := true
	u.mu.Lock()
	for n := 1; n <= parts; n++ {
		size, ok := u.sizes[n]
		if !ok {
			known = false
			continue
		}
		total += size
		if n < parts && size < l.MinPartSize {
			u.mu.Unlock()
			return invalid(op, u.key, "part %d has %d bytes; every part but the last needs at least %d", n, size, l.MinPartSize)
		}
	}
	u.mu.Unlock()
	settle := func(ctx context.Context, attempt int, err error) bool {
		if attempt == 1 || !known || CodeOf(err) != NotFound {
			return false
		}
		info, serr := u.b.d.Stat(ctx, u.key)
		return serr == nil && info.Size == total
	}
	return u.b.doWith(ctx, op, u.key, func(ctx context.Context) error { return u.u.Complete(ctx, parts) }, settle)
}

// Abort discards the upload and every part put so far; afterwards neither an
// object nor a pending upload is left behind. It runs on a context detached
// from ctx's cancellation, bounded by AbortTimeout: a cancelled backup still
// cleans up. Where the service has no abort call (Azure), parts staged over
// an existing object may stay, invisible to every other method, until the
// service expires them; the existing object is never changed.
func (u *Upload) Abort(ctx context.Context) error {
	ctx, cancel := CleanupContext(ctx)
	defer cancel()
	return u.b.do(ctx, "abort upload", u.key, u.u.Abort)
}

// NewRangeReader opens key for reading length bytes starting at offset. A
// length of -1 reads to the end. Reading from offset == size yields no bytes;
// an offset beyond the size is an error of class Permanent. If the object
// does not exist the error's code is NotFound. The caller must close the
// reader.
//
// The reader classifies every error its body raises. When the body breaks
// off with a Transient error, or stays silent for longer than the idle
// timeout, it reopens the object where it stopped, under the retry budget,
// so a dropped connection costs a retry, not the read.
func (b *Bucket) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := b.checkKey("read", key); err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, invalid("read", key, "invalid range: offset %d, length %d", offset, length)
	}
	if length == 0 {
		return b.emptyRead(ctx, key, offset)
	}
	r := &reader{b: b, ctx: ctx, key: key, pos: offset, left: length}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// reader is a ranged read that survives broken connections.
type reader struct {
	b    *Bucket
	ctx  context.Context
	key  string
	pos  int64 // offset of the next byte
	left int64 // bytes still wanted, or -1 for all

	body    io.ReadCloser
	watch   *time.Timer
	stalled atomic.Bool
	err     error // sticky, once the read has failed for good

	// breaks counts the breaks since the body last delivered a byte: a
	// store that resets every connection at once must not be reopened
	// forever. Progress starts a fresh count.
	breaks   *retrier
	progress bool
}

func (r *reader) open() error {
	var body io.ReadCloser
	err := r.b.do(r.ctx, "read", r.key, func(ctx context.Context) (err error) {
		body, err = r.b.d.NewRangeReader(ctx, r.key, r.pos, r.left)
		return err
	})
	if errors.Is(err, driver.ErrInvalidRange) {
		body, err = r.b.emptyRead(r.ctx, r.key, r.pos)
	}
	if err != nil {
		return err
	}
	r.body = body
	r.stalled.Store(false)
	if r.watch != nil {
		r.watch.Stop()
	}
	// One watchdog per body: it closes the body it was made for.
	r.watch = time.AfterFunc(time.Hour, func() {
		r.stalled.Store(true)
		_ = body.Close()
	})
	r.watch.Stop()
	return nil
}

// emptyRead answers a read that yields no bytes (a zero length, or a range
// the service refused as starting at or past the end): NotFound for a
// missing object, Permanent for an offset past the end, else an empty body.
func (b *Bucket) emptyRead(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	var info ObjectInfo
	err := b.do(ctx, "read", key, func(ctx context.Context) (err error) {
		info, err = b.d.Stat(ctx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, invalid("read", key, "offset %d is past the end (size %d)", offset, info.Size)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// errStalled is the cause of a body that stopped sending.
var errStalled = errors.New("no bytes arrived within the idle timeout")

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for {
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = err
				return 0, err
			}
		}
		n, err := r.readBody(p)
		r.pos += int64(n)
		if r.left > 0 {
			r.left -= int64(n)
		}
		if n > 0 {
			r.progress = true
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		// The body broke off. Classify it once; a Transient break is
		// recovered by reopening at r.pos (the retry budget of open bounds
		// how long), anything else ends the read.
		if r.stalled.Load() {
			err = Errorf(Transient, "", "", fmt.Errorf("%w (%s)", errStalled, r.b.idle))
		}
		_ = r.body.Close()
		r.body = nil
		if r.breaks == nil || r.progress {
			r.breaks, r.progress = newRetrier(r.b.retry, r.b.now), false
		}
		classified := &Error{Code: bodyCode(err), Err: err}
		wait, ok := r.breaks.again(r.ctx, classified)
		if !ok {
			r.err = r.breaks.fail("read", r.key, classified)
			return n, r.err
		}
		r.b.log.Warn("resuming a read that broke off", "key", r.key, "offset", r.pos, "wait", wait.Round(time.Millisecond), "error", err)
		if serr := r.b.sleep(r.ctx, wait); serr != nil {
			r.err = r.breaks.fail("read", r.key, classified)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// readBody reads from the body under the idle watchdog: a Read that has not
// returned after the idle timeout gets its body closed, which unblocks it.
func (r *reader) readBody(p []byte) (int, error) {
	r.watch.Reset(r.b.idle)
	n, err := r.body.Read(p)
	r.watch.Stop()
	return n, err
}

// bodyCode classifies an error a body raised: the driver's class if it gave
// one, a network failure or a body cut short as Transient, anything else
// as Permanent.
func bodyCode(err error) Code {
	if c := CodeOf(err); c != Unknown {
		return c
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return Transient
	}
	return Permanent
}

func (r *reader) Close() error {
	if r.watch != nil {
		r.watch.Stop()
	}
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

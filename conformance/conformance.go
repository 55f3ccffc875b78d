// Package conformance is the one test suite for the storage contract: every
// driver, under the portable layer (*drivers.Bucket), on a real backend (a
// temp directory or an emulator). Every driver's test calls Run with a
// Harness; each behaviour is a named subtest, so a driver that breaks the
// contract fails by name.
//
// The suite covers success and failure. The failure behaviours (subtests of
// "Failures") run the driver through the one fault-injecting proxy of
// package emulators, which sits between the driver and its emulator: a
// missing bucket, refused credentials, a connection reset in the middle of a
// ranged read, 503 answers, an endpoint that stops answering. A harness
// names the behaviours that cannot apply to its backend and why (the fs
// driver has no network and no credentials); the suite then does not run
// them and logs the reason, so nothing passes vacuously.
//
// The suite only uses the drivers package and the emulators' proxy:
// anything it needs from a driver must be in the contract, and anything it
// does not test is not promised.
package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

// PartSize is the part size the suite uploads with: the smallest that S3,
// IBM COS and GCS compose accept for every part but the last.
const PartSize = 5 << 20

// ListPageSize is the page size harnesses should open buckets with, so that
// the listing test crosses several pages.
const ListPageSize = 3

// Harness is what a driver's test gives the suite.
type Harness struct {
	// Config returns the config of a repo for one subtest: a fresh bucket,
	// or the same store every time (the suite keeps its keys apart). Where
	// there is a Proxy, the config points at it.
	Config func(t *testing.T) drivers.Config
	// Proxy is the fault proxy in front of the emulator (nil for fs).
	Proxy *emulators.Proxy
	// Missing turns a config into one of a bucket that does not exist. The
	// function it returns, when not nil, runs once the bucket is open (the
	// fs harness removes the directory then).
	Missing func(t *testing.T, cfg drivers.Config) (drivers.Config, func())
	// BadCredentials turns a config into one whose credentials the store
	// refuses. It may arm the Proxy instead, where the emulator checks no
	// credentials (fake-gcs-server); it says so in its comment.
	BadCredentials func(t *testing.T, cfg drivers.Config) drivers.Config
	// Witness opens a second, independent client of the store cfg names
	// (see Witness).
	Witness func(t *testing.T, cfg drivers.Config) Witness
	// NotApplicable names the behaviours (failure behaviours, SecondClient)
	// that cannot apply to this backend, with the reason.
	NotApplicable map[string]string
}

// open opens cfg under the portable layer and closes it with t.
func open(t *testing.T, cfg drivers.Config) *drivers.Bucket {
	t.Helper()
	b, err := drivers.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s repo: %v", cfg.Type, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Run runs every conformance test against the repos h opens.
func Run(t *testing.T, h Harness) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b *drivers.Bucket)
	}{
		{"RoundTrip", testRoundTrip},
		{"PartsOutOfOrderAndConcurrent", testOutOfOrder},
		{"PartRePutLastWins", testRePut},
		{"CompleteWithMissingPartFails", testMissingPart},
		{"NothingVisibleBeforeComplete", testInvisibleBeforeComplete},
		{"AbortLeavesNothing", testAbort},
		{"AbortUploadFoundByListUploads", testAbortListed},
		{"CancelledContextLeavesNothing", testCancelled},
		{"RangedReads", testRangedReads},
		{"ListPagesAndPrefixes", testList},
		{"DeleteTwice", testDeleteTwice},
		{"NotFound", testNotFound},
		{"KeysWithSpacesAndUnicode", testUnicodeKeys},
		{"ConcurrentUploadsToDifferentKeys", testConcurrentUploads},
		{"OverwriteKeepsOldUntilComplete", testOverwrite},
		{"Limits", testLimits},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h.Proxy != nil {
				h.Proxy.Clear()
			}
			tc.fn(t, open(t, h.Config(t)))
		})
	}
	if why, ok := h.NotApplicable["SecondClient"]; ok {
		t.Logf("SecondClient does not apply: %s", why)
	} else {
		t.Run("SecondClient", func(t *testing.T) {
			if h.Proxy != nil {
				h.Proxy.Clear()
			}
			testSecondClient(t, h)
		})
	}
	t.Run("Failures", func(t *testing.T) { runFailures(t, h) })
}

// uniqueKey keeps the subtests' keys apart when a harness shares one store.
func uniqueKey(t *testing.T, name string) string {
	return fmt.Sprintf("conformance/%s-%d/%s", sanitize(t.Name()), time.Now().UnixNano(), name)
}

func sanitize(s string) string {
	return string(bytes.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '-'
		}
		return r
	}, []byte(s)))
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	buf := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		buf[i] = byte(r.Uint32())
	}
	return buf
}

func split(data []byte, partSize int) [][]byte {
	var parts [][]byte
	for len(data) > 0 {
		n := min(partSize, len(data))
		parts = append(parts, data[:n])
		data = data[n:]
	}
	return parts
}

// upload writes data under key in parts of PartSize, put concurrently.
func upload(t *testing.T, b *drivers.Bucket, key string, data []byte) {
	t.Helper()
	if err := tryUpload(b, key, data); err != nil {
		t.Fatal(err)
	}
}

// tryUpload is upload for other goroutines than the test's: it reports the
// error instead of failing the test (t.Fatal must not be called there).
func tryUpload(b *drivers.Bucket, key string, data []byte) error {
	ctx := context.Background()
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		return fmt.Errorf("NewUpload(%q): %w", key, err)
	}
	parts := split(data, PartSize)
	if err := putParts(u, parts, nil); err != nil {
		return err
	}
	if err := u.Complete(ctx, len(parts)); err != nil {
		_ = u.Abort(ctx)
		return fmt.Errorf("Complete(%q, %d): %w", key, len(parts), err)
	}
	return nil
}

// putConcurrently puts parts (1-based numbers in order) from one goroutine
// each, in the given order of indexes, or all at once when order is nil.
func putConcurrently(t *testing.T, u *drivers.Upload, parts [][]byte, order []int) {
	t.Helper()
	if err := putParts(u, parts, order); err != nil {
		t.Fatal(err)
	}
}

// putParts puts parts from one goroutine each and aborts the upload when one
// fails.
func putParts(u *drivers.Upload, parts [][]byte, order []int) error {
	if order == nil {
		order = make([]int, len(parts))
		for i := range order {
			order[i] = i
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for _, i := range order {
		wg.Go(func() { errs[i] = u.PutPart(context.Background(), i+1, parts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = u.Abort(context.Background())
		return fmt.Errorf("PutPart: %w", err)
	}
	return nil
}

func readAll(t *testing.T, b *drivers.Bucket, key string, offset, length int64) []byte {
	t.Helper()
	r, err := b.NewRangeReader(context.Background(), key, offset, length)
	if err != nil {
		t.Fatalf("NewRangeReader(%q, %d, %d): %v", key, offset, length, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return got
}

// requireContent checks size and sha256 of key against want.
func requireContent(t *testing.T, b *drivers.Bucket, key string, want []byte) {
	t.Helper()
	info, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Stat(%q).Size = %d, want %d", key, info.Size, len(want))
	}
	if info.ModTime.IsZero() {
		t.Errorf("Stat(%q).ModTime is zero", key)
	}
	got := readAll(t, b, key, 0, -1)
	if g, w := sha256.Sum256(got), sha256.Sum256(want); g != w {
		t.Fatalf("content of %q: %d bytes with sha256 %x, want %d bytes with sha256 %x", key, len(got), g, len(want), w)
	}
}

func requireNotFound(t *testing.T, b *drivers.Bucket, key string) {
	t.Helper()
	_, err := b.Stat(context.Background(), key)
	if !errors.Is(err, drivers.ErrNotFound) || drivers.CodeOf(err) != drivers.NotFound {
		t.Fatalf("Stat(%q) = %v (code %v), want a NotFound error", key, err, drivers.CodeOf(err))
	}
}

func requireNoPendingUpload(t *testing.T, b *drivers.Bucket, key string) {
	t.Helper()
	pending, err := b.ListUploads(context.Background(), key)
	if err != nil {
		t.Fatalf("ListUploads(%q): %v", key, err)
	}
	for _, p := range pending {
		if p.Key == key {
			t.Fatalf("pending upload %q (id %s) still listed", p.Key, p.ID)
		}
	}
}

func requireNotListed(t *testing.T, b *drivers.Bucket, key string) {
	t.Helper()
	objs, err := b.List(context.Background(), key)
	if err != nil {
		t.Fatalf("List(%q): %v", key, err)
	}
	for _, o := range objs {
		if o.Key == key {
			t.Fatalf("List shows %q (%d bytes) that must not exist", key, o.Size)
		}
	}
}

func testRoundTrip(t *testing.T, b *drivers.Bucket) {
	sizes := []struct {
		name string
		size int
	}{
		{"0_bytes", 0},
		{"1_byte", 1},
		{"part_minus_1", PartSize - 1},
		{"1_part_exact", PartSize},
		{"3_parts_exact", 3 * PartSize},
		{"3_parts_plus_1", 3*PartSize + 1},
	}
	for i, s := range sizes {
		t.Run(s.name, func(t *testing.T) {
			key := uniqueKey(t, "object")
			data := randomBytes(uint64(i+1), s.size)
			upload(t, b, key, data)
			requireContent(t, b, key, data)
			requireNoPendingUpload(t, b, key)
		})
	}
}

func testOutOfOrder(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	data := randomBytes(11, 4*PartSize+123)
	parts := split(data, PartSize)
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Last part first, then the rest from concurrent goroutines.
	if err := u.PutPart(ctx, len(parts), parts[len(parts)-1]); err != nil {
		t.Fatal(err)
	}
	putConcurrently(t, u, parts[:len(parts)-1], []int{3, 1, 0, 2})
	if err := u.Complete(ctx, len(parts)); err != nil {
		t.Fatal(err)
	}
	requireContent(t, b, key, data)
}

func testRePut(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	first := randomBytes(21, PartSize)
	second := randomBytes(22, PartSize)
	tail := randomBytes(23, 1000)
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for n, d := range map[int][]byte{1: first, 2: tail} {
		if err := u.PutPart(ctx, n, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.PutPart(ctx, 1, second); err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	requireContent(t, b, key, append(slices.Clone(second), tail...))
}

func testMissingPart(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		if err := u.PutPart(ctx, n, randomBytes(uint64(n), PartSize)); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Complete(ctx, 3); err == nil {
		t.Fatal("Complete with part 2 never put succeeded; a truncated object would look like a backup")
	}
	requireNotFound(t, b, key)
	if err := u.Abort(ctx); err != nil {
		t.Fatalf("Abort after failed Complete: %v", err)
	}
	requireNoPendingUpload(t, b, key)
}

func testInvisibleBeforeComplete(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	if err := u.PutPart(ctx, 1, randomBytes(31, 4096)); err != nil {
		t.Fatal(err)
	}
	requireNotFound(t, b, key)
	requireNotListed(t, b, key)
	if _, err := b.NewRangeReader(ctx, key, 0, -1); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("NewRangeReader before Complete = %v, want NotFound", err)
	}
}

func testAbort(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	putConcurrently(t, u, split(randomBytes(41, 2*PartSize+7), PartSize), nil)
	if err := u.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	requireNotFound(t, b, key)
	requireNotListed(t, b, key)
	requireNoPendingUpload(t, b, key)
}

func testAbortListed(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, randomBytes(51, 1024)); err != nil {
		t.Fatal(err)
	}
	// A crashed backup leaves exactly this behind; a cleaner must find it.
	pending, err := b.ListUploads(ctx, key)
	if err != nil {
		t.Fatalf("ListUploads: %v", err)
	}
	var found *drivers.PendingUpload
	for i := range pending {
		if pending[i].Key == key {
			found = &pending[i]
		}
	}
	if found == nil {
		t.Fatalf("ListUploads(%q) = %v, want the upload just begun", key, pending)
	}
	if found.Initiated.IsZero() || time.Since(found.Initiated) > time.Hour || time.Until(found.Initiated) > time.Hour {
		t.Errorf("Initiated = %v, want about now", found.Initiated)
	}
	if err := b.AbortUpload(ctx, *found); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	requireNoPendingUpload(t, b, key)
	requireNotFound(t, b, key)
	if err := b.AbortUpload(ctx, *found); err != nil {
		t.Fatalf("AbortUpload of an upload already gone = %v, want nil", err)
	}
}

func testCancelled(t *testing.T, b *drivers.Bucket) {
	key := uniqueKey(t, "object")
	ctx, cancel := context.WithCancel(context.Background())
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, randomBytes(61, PartSize)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := u.PutPart(ctx, 2, randomBytes(62, 100)); err == nil {
		t.Error("PutPart with a cancelled context succeeded")
	}
	if err := u.Complete(ctx, 2); err == nil {
		t.Fatal("Complete with a cancelled context succeeded")
	}
	// Abort gets the cancelled context, as it does in a backup stopped by
	// SIGTERM, and must clean up all the same.
	if err := u.Abort(ctx); err != nil {
		t.Fatalf("Abort with a cancelled context: %v", err)
	}
	requireNotFound(t, b, key)
	requireNoPendingUpload(t, b, key)
}

func testRangedReads(t *testing.T, b *drivers.Bucket) {
	key := uniqueKey(t, "object")
	data := randomBytes(71, 1<<20+17)
	upload(t, b, key, data)
	size := int64(len(data))
	cases := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"start", 0, 100, data[:100]},
		{"middle", size / 2, 4096, data[size/2 : size/2+4096]},
		{"end", size - 10, -1, data[size-10:]},
		{"length_past_end", size - 10, 1000, data[size-10:]},
		{"whole", 0, -1, data},
		{"at_end", size, -1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := readAll(t, b, key, c.offset, c.length)
			if !bytes.Equal(got, c.want) {
				t.Fatalf("read %d bytes, want %d (content differs: %v)", len(got), len(c.want), len(got) == len(c.want))
			}
		})
	}
	// Past the end is a Permanent error when the reader is opened, for
	// every driver and length: not NotFound (the object exists), not an
	// empty read, not Transient.
	for _, length := range []int64{-1, 0, 10} {
		t.Run(fmt.Sprintf("past_end_length_%d", length), func(t *testing.T) {
			r, err := b.NewRangeReader(context.Background(), key, size+1, length)
			if err == nil {
				r.Close()
				t.Fatal("NewRangeReader past the end succeeded")
			}
			if drivers.CodeOf(err) != drivers.Permanent || !errors.Is(err, drivers.ErrPermanent) {
				t.Fatalf("read past the end = %v (code %v), want Permanent", err, drivers.CodeOf(err))
			}
		})
	}
}

func testList(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	base := uniqueKey(t, "")
	want := []string{
		base + "a/1", base + "a/2", base + "a/b/3", base + "a/b/4",
		base + "a/b/c/5", base + "a/b/c/6", base + "a/d/7", base + "a/d/8",
		base + "a/e", base + "a/f",
	}
	other := []string{base + "ab/9", base + "b/10"}
	for i, k := range append(slices.Clone(want), other...) {
		upload(t, b, k, randomBytes(uint64(100+i), i+1))
	}
	got := listKeys(t, b, base+"a/")
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q\nwant %q", base+"a/", got, want)
	}
	if got := listKeys(t, b, base+"a/b/c"); !slices.Equal(got, want[4:6]) {
		t.Fatalf("List(%q) = %q, want %q", base+"a/b/c", got, want[4:6])
	}
	if got := listKeys(t, b, base+"a"); len(got) != len(want)+1 {
		t.Fatalf("List(%q) = %d keys, want %d (a/... and ab/9)", base+"a", len(got), len(want)+1)
	}
	objs, err := b.List(ctx, base+"a/b/3")
	if err != nil || len(objs) != 1 || objs[0].Size != 3 || objs[0].ModTime.IsZero() {
		t.Fatalf("List of one key = %+v, %v; want one object of 3 bytes with a time", objs, err)
	}
	if got := listKeys(t, b, base+"nothing-here/"); len(got) != 0 {
		t.Fatalf("List of an empty prefix = %q", got)
	}
}

func listKeys(t *testing.T, b *drivers.Bucket, prefix string) []string {
	t.Helper()
	objs, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	if !slices.IsSorted(keys) {
		t.Errorf("List(%q) is not in key order: %q", prefix, keys)
	}
	return keys
}

func testDeleteTwice(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	upload(t, b, key, []byte("delete me"))
	for i := range 2 {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	requireNotFound(t, b, key)
	requireNotListed(t, b, key)
}

func testNotFound(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "never-written")
	requireNotFound(t, b, key)
	_, err := b.NewRangeReader(ctx, key, 0, -1)
	if !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("NewRangeReader of a missing key = %v, want NotFound", err)
	}
	if errors.Is(err, drivers.ErrTransient) || errors.Is(err, drivers.ErrPermanent) {
		t.Fatalf("NotFound error also matches another class: %v", err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatalf("Delete of a missing key = %v, want nil", err)
	}
}

func testUnicodeKeys(t *testing.T, b *drivers.Bucket) {
	dir := uniqueKey(t, "dir with spaces/")
	for i, name := range []string{"a file.txt", "ünïcödé-日本語-😀.zst", "plus+and&amp=eq%20.bin"} {
		key := dir + name
		data := randomBytes(uint64(200+i), 100+i)
		upload(t, b, key, data)
		requireContent(t, b, key, data)
		if got := listKeys(t, b, key); !slices.Equal(got, []string{key}) {
			t.Fatalf("List(%q) = %q", key, got)
		}
		if err := b.Delete(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		requireNotFound(t, b, key)
	}
}

func testConcurrentUploads(t *testing.T, b *drivers.Bucket) {
	const n = 4
	keys := make([]string, n)
	datas := make([][]byte, n)
	for i := range n {
		keys[i] = uniqueKey(t, fmt.Sprintf("object-%d", i))
		datas[i] = randomBytes(uint64(300+i), PartSize+i*1000+1)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = tryUpload(b, keys[i], datas[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		requireContent(t, b, keys[i], datas[i])
	}
}

func testOverwrite(t *testing.T, b *drivers.Bucket) {
	ctx := context.Background()
	key := uniqueKey(t, "object")
	old := randomBytes(401, PartSize+10)
	upload(t, b, key, old)
	fresh := randomBytes(402, 2*PartSize+20)
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	parts := split(fresh, PartSize)
	putConcurrently(t, u, parts, nil)
	// Until Complete returns, the old object is what readers see.
	requireContent(t, b, key, old)
	if err := u.Complete(ctx, len(parts)); err != nil {
		t.Fatal(err)
	}
	requireContent(t, b, key, fresh)

	// An aborted overwrite leaves the old object alone.
	u, err = b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, randomBytes(403, 100)); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	requireContent(t, b, key, fresh)
}

func testLimits(t *testing.T, b *drivers.Bucket) {
	l := b.Limits()
	if l.MaxParts < 1000 || l.MinPartSize < 1 || l.MaxPartSize < PartSize || l.MinPartSize > PartSize {
		t.Fatalf("Limits() = %+v: implausible (the suite uploads %d-byte parts)", l, PartSize)
	}
}

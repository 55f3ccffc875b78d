package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	gcstorage "cloud.google.com/go/storage"

	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
)

// openEmulator opens the driver on a fresh fake-gcs-server bucket.
func openEmulator(t testing.TB) *Bucket {
	t.Helper()
	cfg := emulators.GCS(t)
	cfg.Name = "gcs-test"
	cfg.ListPageSize = 50
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b.(*Bucket)
}

// portable puts the portable layer over b, for tests of behaviour that the
// layer and the driver make together.
func portable(b *Bucket) *drivers.Bucket {
	return drivers.NewBucket(b, drivers.Config{Name: "gcs-test"})
}

// rawNames lists every object in the bucket, staging area included.
func rawNames(t *testing.T, b *Bucket, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.each(context.Background(), &gcstorage.Query{Prefix: prefix}, func(a *gcstorage.ObjectAttrs) {
		names = append(names, a.Name)
	}); err != nil {
		t.Fatalf("listing %q: %v", prefix, err)
	}
	return names
}

func readKey(t *testing.T, b *Bucket, key string) []byte {
	t.Helper()
	r, err := b.NewRangeReader(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatalf("NewRangeReader(%q): %v", key, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestComposeRounds uploads more parts than one compose takes, so Complete
// must compose in rounds; fake-gcs-server, like GCS, refuses more than 32
// sources in one request. 1057 parts need three rounds (1057 -> 34 -> 2 -> 1).
func TestComposeRounds(t *testing.T) {
	b := openEmulator(t)
	ctx := context.Background()
	for _, parts := range []int{32, 33, 70, 1057} {
		t.Run(fmt.Sprintf("%d_parts", parts), func(t *testing.T) {
			key := fmt.Sprintf("rounds/%d", parts)
			u, err := b.NewUpload(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			chunks := make([][]byte, parts)
			for i := range chunks {
				chunks[i] = fmt.Appendf(nil, "part %d of %d;", i+1, parts)
				want.Write(chunks[i])
			}
			var wg sync.WaitGroup
			errs := make([]error, parts)
			sem := make(chan struct{}, 16)
			for i := parts - 1; i >= 0; i-- { // backwards: order must not matter
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					errs[i] = u.PutPart(ctx, i+1, chunks[i])
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if err := u.Complete(ctx, parts); err != nil {
				t.Fatalf("Complete(%d): %v", parts, err)
			}
			if got := readKey(t, b, key); !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("composed %d bytes, want %d", len(got), want.Len())
			}
			if left := rawNames(t, b, stagingPrefix); len(left) != 0 {
				t.Fatalf("Complete left %d staging objects behind, e.g. %q", len(left), left[0])
			}
		})
	}
}

func TestStagingAreaIsHidden(t *testing.T) {
	b := openEmulator(t)
	ctx := context.Background()
	putObject(t, portable(b), "visible", []byte("x"))
	u, err := b.NewUpload(ctx, "backups/pending")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, []byte("staged")); err != nil {
		t.Fatal(err)
	}
	if len(rawNames(t, b, stagingPrefix)) < 2 {
		t.Fatal("expected a marker and a part in the staging area; the checks below would prove nothing")
	}
	for _, prefix := range []string{"", ".", stagingPrefix} {
		objs, err := b.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if strings.HasPrefix(o.Key, stagingPrefix) {
				t.Errorf("List(%q) shows staging object %q", prefix, o.Key)
			}
		}
	}
	for _, op := range []func(string) error{
		func(k string) error { _, err := b.Stat(ctx, k); return err },
		func(k string) error { return b.Delete(ctx, k) },
		func(k string) error { _, err := b.NewUpload(ctx, k); return err },
	} {
		err := op(markerName(u.(*upload).id))
		if drivers.CodeOf(err) != drivers.Permanent || !strings.Contains(fmt.Sprint(err), "reserved") {
			t.Errorf("operation on a staging name = %v, want a Permanent error", err)
		}
	}

	// ListUploads filters by the final key's prefix.
	for prefix, want := range map[string]int{"": 1, "backups/": 1, "backups/pending": 1, "other/": 0} {
		pending, err := b.ListUploads(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != want {
			t.Errorf("ListUploads(%q) = %+v, want %d uploads", prefix, pending, want)
		}
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if left := rawNames(t, b, stagingPrefix); len(left) != 0 {
		t.Fatalf("Abort left %q", left)
	}
	if err := b.AbortUpload(ctx, drivers.PendingUpload{Key: "x", ID: "../../visible"}); drivers.CodeOf(err) != drivers.Permanent {
		t.Errorf("AbortUpload with a forged id = %v, want Permanent", err)
	}
	if _, err := b.Stat(ctx, "visible"); err != nil {
		t.Fatalf("a forged abort touched another object: %v", err)
	}
}

func TestEdgeReads(t *testing.T) {
	b := portable(openEmulator(t))
	ctx := context.Background()
	putObject(t, b, "ten", []byte("0123456789"))
	u, err := b.NewUpload(ctx, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key            string
		offset, length int64
		want           string
		code           drivers.Code // Unknown: success
	}{
		{"ten", 10, -1, "", drivers.Unknown},
		{"ten", 10, 5, "", drivers.Unknown},
		{"ten", 11, -1, "", drivers.Permanent},
		{"ten", 11, 5, "", drivers.Permanent},
		{"ten", 3, 0, "", drivers.Unknown},
		{"ten", 10, 0, "", drivers.Unknown},
		{"ten", 11, 0, "", drivers.Permanent},
		{"ten", 8, 100, "89", drivers.Unknown},
		{"ten", -1, 5, "", drivers.Permanent},
		{"ten", 0, -2, "", drivers.Permanent},
		{"empty", 0, -1, "", drivers.Unknown},
		{"empty", 0, 100, "", drivers.Unknown},
		{"empty", 1, -1, "", drivers.Permanent},
		{"missing", 0, -1, "", drivers.NotFound},
		{"missing", 5, 0, "", drivers.NotFound},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s@%d+%d", tc.key, tc.offset, tc.length), func(t *testing.T) {
			r, err := b.NewRangeReader(ctx, tc.key, tc.offset, tc.length)
			if tc.code != drivers.Unknown {
				if got := drivers.CodeOf(err); got != tc.code {
					t.Fatalf("NewRangeReader = %v (code %v), want code %v", err, got, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil || string(got) != tc.want {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCompleteChecksParts(t *testing.T) {
	b := openEmulator(t)
	ctx := context.Background()
	u, err := b.NewUpload(ctx, "gap")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 4} {
		if err := u.PutPart(ctx, n, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	err = u.Complete(ctx, 4)
	if drivers.CodeOf(err) != drivers.Permanent || !strings.Contains(fmt.Sprint(err), "part 3 was not put") {
		t.Fatalf("Complete with part 3 missing = %v, want a Permanent error naming part 3", err)
	}
	// Nothing was composed: the staging area holds the marker and 3 parts.
	if got := rawNames(t, b, stagingPrefix); len(got) != 4 {
		t.Fatalf("staging area after a refused Complete = %q", got)
	}
	if _, err := b.Stat(ctx, "gap"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Stat after a refused Complete = %v", err)
	}
	// Parts beyond the count are ignored and cleaned up.
	if err := u.Complete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := readKey(t, b, "gap"); string(got) != "xx" {
		t.Fatalf("content %q, want xx", got)
	}
	if left := rawNames(t, b, stagingPrefix); len(left) != 0 {
		t.Fatalf("Complete left %q", left)
	}
}

package conformance

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// Witness is a second, independent client of the store a driver writes to
// (gocloud.dev/blob in the harnesses, each with its own driver for the
// store). Objects our drivers write must read back and list through it as
// through our own: a driver that leaves part, temporary or staging objects
// visible, or writes something only it can read, fails here.
type Witness interface {
	// ReadAll returns the object's bytes.
	ReadAll(ctx context.Context, key string) ([]byte, error)
	// Size returns the object's size as the store reports it.
	Size(ctx context.Context, key string) (int64, error)
	// List returns every key under prefix, recursively.
	List(ctx context.Context, prefix string) ([]string, error)
}

// testSecondClient writes objects the ways the suite does (one part, many
// parts, parts out of order, empty, overwritten, aborted) and checks them
// through the harness's Witness: bytes and size of each, and a listing that
// shows exactly the committed keys.
func testSecondClient(t *testing.T, h Harness) {
	if h.Witness == nil {
		t.Fatal("the harness has no Witness; list SecondClient in NotApplicable with the reason")
	}
	cfg := h.Config(t)
	b := open(t, cfg)
	w := h.Witness(t, cfg)
	ctx := context.Background()
	dir := uniqueKey(t, "")
	want := map[string][]byte{
		dir + "empty":      {},
		dir + "one-part":   randomBytes(701, 1000),
		dir + "many-parts": randomBytes(702, 3*PartSize+5),
	}
	for key, data := range want {
		upload(t, b, key, data)
	}

	// Out of order: the last part first.
	key := dir + "out-of-order"
	data := randomBytes(703, 2*PartSize+7)
	parts := split(data, PartSize)
	u, err := b.NewUpload(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if err := u.PutPart(ctx, i+1, parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.Complete(ctx, len(parts)); err != nil {
		t.Fatal(err)
	}
	want[key] = data

	// Overwritten: the second upload is what stays.
	key = dir + "overwritten"
	upload(t, b, key, randomBytes(704, PartSize+3))
	want[key] = randomBytes(705, 11)
	upload(t, b, key, want[key])

	// Aborted: nothing of it may be visible, not even parts.
	u, err = b.NewUpload(ctx, dir+"aborted")
	if err != nil {
		t.Fatal(err)
	}
	if err := putParts(u, split(randomBytes(706, 2*PartSize), PartSize), nil); err != nil {
		t.Fatal(err)
	}
	if err := u.Abort(ctx); err != nil {
		t.Fatal(err)
	}

	for key, data := range want {
		got, err := w.ReadAll(ctx, key)
		if err != nil {
			t.Errorf("second client: read %q: %v", key, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("second client: %q has %d bytes, want the %d written", key, len(got), len(data))
		}
		if size, err := w.Size(ctx, key); err != nil || size != int64(len(data)) {
			t.Errorf("second client: size of %q = %d, %v; want %d", key, size, err, len(data))
		}
	}
	listed, err := w.List(ctx, dir)
	if err != nil {
		t.Fatalf("second client: list %q: %v", dir, err)
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(listed)
	if !slices.Equal(listed, keys) {
		t.Fatalf("second client lists %q under %q\nwant exactly %q (no part, temporary or staging objects, nothing of the aborted upload)", listed, dir, keys)
	}
	// Nothing outside the suite's keys: staging areas (GCS parts, fs part
	// files) must be empty once every upload of the earlier behaviours was
	// completed or aborted.
	all, err := w.List(ctx, "")
	if err != nil {
		t.Fatalf("second client: list the whole bucket: %v", err)
	}
	for _, k := range all {
		if !strings.HasPrefix(k, "conformance/") {
			t.Errorf("second client sees %q, which no behaviour wrote: a staging or temporary object left behind", k)
		}
	}
	// Our own listing agrees.
	ours, err := b.List(ctx, dir)
	if err != nil || len(ours) != len(keys) {
		t.Fatalf("our List(%q) = %d objects (%v), the second client's %d", dir, len(ours), err, len(keys))
	}
}

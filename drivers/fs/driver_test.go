package fs_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/fs"
)

// The tests here hold the fs driver to the driver contract directly
// (package driver), without the portable layer, which would hide some of
// its answers: it trims every read to the range asked for itself.

// TestDriverRangedReadIsExact: a ranged read yields exactly the bytes asked
// for, or up to the end when fewer are left or the length is -1.
func TestDriverRangedReadIsExact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "obj"), []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := fs.New(ctx, drivers.Config{Name: "local", Type: "fs", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		off, n int64
		want   string
	}{{0, -1, "0123456789"}, {2, 3, "234"}, {0, 10, "0123456789"}, {7, 5, "789"}, {9, 1, "9"}, {4, 0, ""}} {
		r, err := d.NewRangeReader(ctx, "obj", tc.off, tc.n)
		if err != nil {
			t.Fatalf("read %d+%d: %v", tc.off, tc.n, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != tc.want {
			t.Fatalf("read %d+%d = %q, %v; want %q", tc.off, tc.n, got, err, tc.want)
		}
	}
}

// TestDriverDirectoryIsNoObject: a key that names a directory (the prefix of
// other keys) is no object: reading it is NotFound.
func TestDriverDirectoryIsNoObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o750); err != nil {
		t.Fatal(err)
	}
	d, err := fs.New(ctx, drivers.Config{Name: "local", Type: "fs", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if r, err := d.NewRangeReader(ctx, "a", 0, -1); drivers.CodeOf(err) != drivers.NotFound {
		if r != nil {
			r.Close()
		}
		t.Fatalf("read of a directory = %v, want NotFound", err)
	}
	if _, err := d.Stat(ctx, "a"); drivers.CodeOf(err) != drivers.NotFound {
		t.Fatalf("stat of a directory = %v, want NotFound", err)
	}
}

// TestPendingUploadsByPrefix: ListUploads shows the uploads under its
// prefix only, and AbortUpload refuses an upload id that is not one of
// ours (empty, or a path that would reach outside the staging area).
func TestPendingUploadsByPrefix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := open(t, dir)
	// The upload of a/1 must come after b/1's in the staging directory
	// (so ListUploads has to pass over another prefix to find it). Ids
	// are random: begin both again until they do, each try an even chance.
	for try := 0; ; try++ {
		if try == 64 {
			t.Fatal("64 pairs of uploads, a/1's never after b/1's")
		}
		other, err := b.NewUpload(ctx, "b/1")
		if err != nil {
			t.Fatal(err)
		}
		up, err := b.NewUpload(ctx, "a/1")
		if err != nil {
			t.Fatal(err)
		}
		all, err := b.ListUploads(ctx, "")
		if err != nil || len(all) != 2 {
			t.Fatalf("ListUploads = %+v, %v; want the two uploads", all, err)
		}
		ids := map[string]string{all[0].Key: all[0].ID, all[1].Key: all[1].ID}
		if ids["b/1"] < ids["a/1"] { // the staging directory is read in name order
			break
		}
		if err := other.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if err := up.Abort(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ups, err := b.ListUploads(ctx, "a/")
	if err != nil || len(ups) != 1 || ups[0].Key != "a/1" {
		t.Fatalf("ListUploads(a/) = %+v, %v; want only the upload of a/1", ups, err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.MkdirAll(victim, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "../victim", "x/y", ".."} {
		if err := b.AbortUpload(ctx, drivers.PendingUpload{Key: "a/1", ID: id}); drivers.CodeOf(err) != drivers.Permanent {
			t.Errorf("AbortUpload of id %q = %v, want Permanent", id, err)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("an abort removed a directory outside the staging area: %v", err)
	}
	if err := b.AbortUpload(ctx, ups[0]); err != nil {
		t.Fatal(err)
	}
	if ups, err := b.ListUploads(ctx, "a/"); err != nil || len(ups) != 0 {
		t.Fatalf("after aborting a/1, ListUploads(a/) = %+v, %v; want none", ups, err)
	}
}

// TestDriverCompleteNamesTheMissingPart: Complete with the last part never
// put fails as a Permanent error naming that part, before it consumes any
// part, so that putting the missing part and completing again succeeds.
func TestDriverCompleteNamesTheMissingPart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := fs.New(ctx, drivers.Config{Name: "local", Type: "fs", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	u, err := d.NewUpload(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	for n, p := range []string{"aa", "bb"} {
		if err := u.PutPart(ctx, n+1, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	err = u.Complete(ctx, 3)
	if drivers.CodeOf(err) != drivers.Permanent || !strings.Contains(err.Error(), "part 3 was not put") {
		t.Fatalf("Complete without part 3 = %v, want Permanent naming part 3", err)
	}
	if err := u.PutPart(ctx, 3, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := u.Complete(ctx, 3); err != nil {
		t.Fatalf("Complete after putting part 3: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "obj")); err != nil || string(got) != "aabbc" {
		t.Fatalf("object = %q, %v; want aabbc", got, err)
	}
}

// TestDriverPartThatCannotBeStored: a part whose file cannot be put in place
// (here its name is taken by a directory that is not empty) is an error,
// not a part that Complete would later find missing or stale.
func TestDriverPartThatCannotBeStored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := fs.New(ctx, drivers.Config{Name: "local", Type: "fs", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	u, err := d.NewUpload(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	ups, err := d.ListUploads(ctx, "")
	if err != nil || len(ups) != 1 {
		t.Fatalf("ListUploads = %v, %v", ups, err)
	}
	blocker := filepath.Join(dir, ".dbarchive-uploads", ups[0].ID, "part-000001", "x")
	if err := os.MkdirAll(blocker, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := u.PutPart(ctx, 1, []byte("data")); err == nil {
		t.Fatal("PutPart over a directory succeeded")
	}
	entries, err := os.ReadDir(filepath.Dir(filepath.Dir(blocker)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("a failed PutPart left %s behind", e.Name())
		}
	}
}

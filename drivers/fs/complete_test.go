package fs_test

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/fs"
)

// diskBytes is the size of every regular file under dir: what the repo
// occupies on its filesystem.
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestCompleteNeedsOneCopyPlusOnePart checks issue 8 item 12: assembling an
// upload must not need twice its size on disk. A repo on a small filesystem
// is not available to tests, so the test measures the bytes on disk after
// every step of Complete and holds the peak to the object plus one part.
func TestCompleteNeedsOneCopyPlusOnePart(t *testing.T) {
	const parts, partSize = 12, 256 << 10
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	u, err := b.NewUpload(ctx, "backup/data.zst")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), parts*partSize/16)
	for n := 1; n <= parts; n++ {
		if err := u.PutPart(ctx, n, data[(n-1)*partSize:n*partSize]); err != nil {
			t.Fatal(err)
		}
	}
	total := int64(len(data))
	var peak int64
	steps := 0
	defer fs.SetAfterAppend(func(int) {
		steps++
		peak = max(peak, diskBytes(t, dir))
	})()
	if err := u.Complete(ctx, parts); err != nil {
		t.Fatal(err)
	}
	if steps != parts {
		t.Fatalf("the hook ran %d times, want %d", steps, parts)
	}
	// The key file of the staging directory is the only other file.
	if limit := total + partSize + 64; peak > limit {
		t.Fatalf("peak on disk during Complete = %d bytes, want at most %d (object %d + one part %d)", peak, limit, total, partSize)
	}
	got, err := os.ReadFile(filepath.Join(dir, "backup/data.zst"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("assembled object: %d bytes, err %v; want the %d bytes put", len(got), err, len(data))
	}
	if after := diskBytes(t, dir); after != total {
		t.Fatalf("after Complete the repo holds %d bytes, want %d (no staging leftovers)", after, total)
	}
}

// TestCompleteReportsDirectorySyncFailure: a rename that could not be made
// durable must not be reported as stored, and must not stay visible.
func TestCompleteReportsDirectorySyncFailure(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	defer fs.SetSyncDir(func(*os.File) error { return errors.New("injected EIO") })()
	err := put(ctx, b, "backup/manifest.json", []byte("{}"))
	if err == nil {
		t.Fatal("Complete succeeded although the directory sync failed")
	}
	if drivers.CodeOf(err) != drivers.Permanent {
		t.Errorf("code = %v, want Permanent", drivers.CodeOf(err))
	}
	if _, serr := os.Stat(filepath.Join(dir, "backup/manifest.json")); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the object is on disk after a failed Complete (stat: %v)", serr)
	}
}

// TestCompleteResumesAfterAFailure: a Complete that failed half-way (here:
// cancelled after some parts were consumed) can be called again and
// assembles the whole object from where it stopped.
func TestCompleteResumesAfterAFailure(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	u, err := b.NewUpload(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for n := 1; n <= 4; n++ {
		part := bytes.Repeat([]byte{byte('a' + n)}, 1000)
		data = append(data, part...)
		if err := u.PutPart(ctx, n, part); err != nil {
			t.Fatal(err)
		}
	}
	restore := fs.SetAfterAppend(func(n int) {
		if n == 2 {
			cancel()
		}
	})
	if err := u.Complete(ctx, 4); err == nil {
		t.Fatal("Complete with a context cancelled half-way succeeded")
	}
	restore()
	if err := u.Complete(context.Background(), 4); err != nil {
		t.Fatalf("second Complete: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "obj"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object after a resumed Complete: %d bytes (%v), want %d", len(got), err, len(data))
	}
}

package archiver_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/archiver"
)

// TestManifestMismatchFailsRestore: the stored bytes are intact, but the
// manifest records another uncompressed stream (another sha256 of the same
// size, another size with the same sha256, a shorter or longer stream) or
// another stored sha256: verify and restore, from the manifest as read back
// from the repo, report corruption of the backup and the sink never sees a
// clean end.
func TestManifestMismatchFailsRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	data := compressible(41, 200_000)
	orig, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	otherSum := hexSum([]byte("another dump"))
	for _, tc := range []struct {
		name string
		edit func(m *archiver.Manifest)
		want string
	}{
		{"uncompressed sha256", func(m *archiver.Manifest) { m.UncompressedSHA256 = otherSum }, "decoded stream has"},
		{"uncompressed size larger", func(m *archiver.Manifest) { m.UncompressedSize++ }, "decoded stream has"},
		{"uncompressed size one smaller", func(m *archiver.Manifest) { m.UncompressedSize-- }, "checksum mismatch"},
		// Noticed as soon as the stream passes the size, not at its end.
		{"uncompressed size half", func(m *archiver.Manifest) { m.UncompressedSize /= 2 }, "longer than the manifest's"},
		{"stored sha256", func(m *archiver.Manifest) { m.StoredSHA256 = otherSum }, "stored object"},
		{"parts object sha256", func(m *archiver.Manifest) { m.PartsSHA256 = otherSum }, "parts object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *orig
			tc.edit(&m)
			enc, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "p", m.ID, archiver.ManifestObject), enc, 0o600); err != nil {
				t.Fatal(err)
			}
			read, err := archiver.ReadManifest(ctx, b, "p", m.ID)
			if err != nil {
				t.Fatal(err)
			}
			err = archiver.Verify(ctx, b, read, archiver.RestoreOptions{Prefix: "p"})
			// A check of the whole stream locates nothing.
			if ce := corruption(t, err, m.ID, 0); !strings.Contains(err.Error(), tc.want) || ce.Offset != -1 || strings.Contains(err.Error(), " at ") {
				t.Fatalf("Verify = %v (offset %d), want an unlocated error with %q", err, ce.Offset, tc.want)
			}
			sawEOF := false
			err = archiver.Restore(ctx, b, read, archiver.RestoreOptions{Prefix: "p"}, func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				sawEOF = err == nil
				return err
			})
			if corruption(t, err, m.ID, 0); sawEOF {
				t.Fatal("the sink saw a clean end of a stream that does not match its manifest")
			}
		})
	}
	enc, err := orig.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p", orig.ID, archiver.ManifestObject), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	readBack(t, b, "p", orig, data)
}

// TestShortDataObjectReported: a data object of another size than its
// manifest says is corruption of the backup, reported before any byte is
// decoded, with both sizes and no location (the whole object is suspect).
func TestShortDataObjectReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(42, 50_000)), archiver.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, m.ID, archiver.DataObject), m.StoredSize-3); err != nil {
		t.Fatal(err)
	}
	err = archiver.Verify(ctx, b, m, archiver.RestoreOptions{})
	ce := corruption(t, err, m.ID, 0)
	want := fmt.Sprintf("corruption of backup %s: data object %s/%s has %d bytes, the manifest says %d: checksum mismatch", m.ID, m.ID, archiver.DataObject, m.StoredSize-3, m.StoredSize)
	if ce.Offset != -1 || err.Error() != want {
		t.Fatalf("Verify = %q (offset %d), want %q", err, ce.Offset, want)
	}
}

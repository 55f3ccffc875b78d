package archiver_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

// TestProgressCounts: the progress a display polls adds up, at the end, to
// what the manifest records: bytes read from the source and stored, and
// parts, for the backup and for the restore.
func TestProgressCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := openFS(t)
	data := compressible(51, 300_000)
	var bp, rp archiver.Progress
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10, Progress: &bp})
	if err != nil {
		t.Fatal(err)
	}
	if bp.SourceBytes.Load() != int64(len(data)) || bp.StoredBytes.Load() != m.StoredSize || bp.Parts.Load() != int64(m.PartCount) || m.PartCount < 2 {
		t.Fatalf("backup progress: %d source bytes, %d stored, %d parts; manifest: %d, %d, %d",
			bp.SourceBytes.Load(), bp.StoredBytes.Load(), bp.Parts.Load(), len(data), m.StoredSize, m.PartCount)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{Progress: &rp}); err != nil {
		t.Fatal(err)
	}
	if rp.SourceBytes.Load() != int64(len(data)) || rp.StoredBytes.Load() != m.StoredSize || rp.Parts.Load() != int64(m.PartCount) {
		t.Fatalf("restore progress: %d bytes out, %d read, %d parts; manifest: %d, %d, %d",
			rp.SourceBytes.Load(), rp.StoredBytes.Load(), rp.Parts.Load(), len(data), m.StoredSize, m.PartCount)
	}
}

// TestRestoreSinkStopsEarly: a sink may stop reading before the end (a
// tool that has what it needs); the restore then reads and verifies the
// rest, succeeding on an intact backup and failing, as such, on one whose
// end is damaged. A sink's own error fails the restore, naming the backup.
func TestRestoreSinkStopsEarly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(52, 300_000)), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	head := func(r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 100))
		return err
	}
	if err := archiver.Restore(ctx, b, m, archiver.RestoreOptions{}, head); err != nil {
		t.Fatalf("Restore with a sink that reads 100 bytes: %v", err)
	}
	refused := errors.New("psql: relation exists")
	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{}, func(io.Reader) error { return refused })
	var re *archiver.RestoreError
	if !errors.As(err, &re) || re.ID != m.ID || !errors.Is(err, refused) || err.Error() != "backup "+m.ID+": psql: relation exists" {
		t.Fatalf("Restore with a failing sink = %v, want a RestoreError of %s wrapping the sink's error", err, m.ID)
	}
	path := filepath.Join(dir, m.ID, archiver.DataObject)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored[len(stored)-2] ^= 0x10
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{}, head)
	if corruption(t, err, m.ID, m.PartCount); !strings.Contains(err.Error(), "the rest of the archive failed verification") {
		t.Fatalf("Restore of a backup damaged past what the sink read = %v", err)
	}
	// A corruption names the backup once.
	if strings.Count(err.Error(), m.ID) != 1 {
		t.Fatalf("error %q names the backup more than once", err)
	}
}

// TestRestoreMissingDataObject: a listed backup whose data object is gone
// fails to restore with NotFound, naming the backup and the object.
func TestRestoreMissingDataObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(53, 10_000)), archiver.BackupOptions{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "p", m.ID, archiver.DataObject)); err != nil {
		t.Fatal(err)
	}
	err = archiver.Verify(ctx, b, m, archiver.RestoreOptions{Prefix: "p"})
	var re *archiver.RestoreError
	if !errors.As(err, &re) || drivers.CodeOf(err) != drivers.NotFound || !strings.HasPrefix(err.Error(), "backup "+m.ID+": data object p/"+m.ID+"/"+archiver.DataObject) {
		t.Fatalf("Verify without the data object = %v, want NotFound naming the backup and the object", err)
	}
}

// TestFormat1ReadsInPartSizedChunks: a format-1 backup (no parts object) is
// read in ranged reads of its part size, at least 1 MiB, by default.
func TestFormat1ReadsInPartSizedChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	data := noise(54, 1<<20+300<<10)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	old := *m
	old.FormatVersion, old.PartsObject, old.PartsSHA256, old.Tables = 1, "", "", nil
	enc, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.ID, archiver.ManifestObject), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	read, err := archiver.ReadManifest(ctx, b, "", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p archiver.Progress
	if err := archiver.Verify(ctx, b, read, archiver.RestoreOptions{Progress: &p}); err != nil {
		t.Fatal(err)
	}
	if want := (m.StoredSize + 1<<20 - 1) >> 20; p.Parts.Load() != want || p.StoredBytes.Load() != m.StoredSize {
		t.Fatalf("%d reads of %d bytes in all, want %d reads of 1 MiB (the part size is smaller) for %d bytes", p.Parts.Load(), p.StoredBytes.Load(), want, m.StoredSize)
	}
	// Chunks that divide the object evenly: no read past its end.
	for _, chunks := range []int64{1, 2} {
		if m.StoredSize%chunks != 0 {
			continue
		}
		var p archiver.Progress
		if err := archiver.Verify(ctx, b, read, archiver.RestoreOptions{ChunkSize: m.StoredSize / chunks, Progress: &p}); err != nil || p.Parts.Load() != chunks {
			t.Fatalf("Verify in chunks of %d bytes: %v, %d reads; want %d", m.StoredSize/chunks, err, p.Parts.Load(), chunks)
		}
	}
}

// TestManyPartsReadBack: a backup of a hundred parts, whose parts object is
// larger than a few kilobytes, reads back and restores.
func TestManyPartsReadBack(t *testing.T) {
	t.Parallel()
	b, _ := openFS(t)
	data := noise(55, 100*4096-10)
	m, err := archiver.Backup(context.Background(), b, bytesSource(data), archiver.BackupOptions{PartSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if m.PartCount < 100 {
		t.Fatalf("%d parts, want at least 100", m.PartCount)
	}
	readBack(t, b, "", m, data)
}

// TestFormat1DamageLocated: damage in a format-1 backup (no per-part
// hashes) is reported at the byte range of the read the decoder failed in,
// the first one included.
func TestFormat1DamageLocated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(56, 200_000)), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	old := *m
	old.FormatVersion, old.PartsObject, old.PartsSHA256, old.Tables = 1, "", "", nil
	enc, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.ID, archiver.ManifestObject), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.ID, archiver.DataObject)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored[1] ^= 0xff // the frame's magic number
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	err = archiver.Verify(ctx, b, &old, archiver.RestoreOptions{ChunkSize: 64 << 10})
	if ce := corruption(t, err, m.ID, 0); ce.Offset != 0 || ce.Size != 64<<10 || !strings.Contains(err.Error(), "corruption of backup "+m.ID+" at offset 0 (65536 bytes): ") {
		t.Fatalf("Verify = %v (offset %d, size %d), want the damage located in the first 64 KiB", err, ce.Offset, ce.Size)
	}
}

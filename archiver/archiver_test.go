package archiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

func TestRoundTripSizes(t *testing.T) {
	for _, size := range []int{0, 1, 100_000, 3<<20 + 17} {
		t.Run(strings.ReplaceAll(time.Duration(size).String(), "ns", "B"), func(t *testing.T) {
			ctx := context.Background()
			b, _ := openFS(t)
			data := compressible(uint64(size), size)
			// A small part size forces several parts even for small inputs.
			m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if m.UncompressedSize != int64(size) || m.UncompressedSHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("manifest says %d bytes sha %s, want %d bytes sha %x", m.UncompressedSize, m.UncompressedSHA256, size, sum)
			}
			if m.Source.Type != "exec" || m.Source.Database != "testdb" || m.Compression != "zstd" || m.CompressionLevel != archiver.DefaultLevel || m.PartCount < 1 {
				t.Fatalf("manifest fields: %+v", m)
			}
			var got bytes.Buffer
			if err := archiver.Restore(ctx, b, m, archiver.RestoreOptions{Prefix: "p", ChunkSize: 4096}, func(r io.Reader) error {
				_, err := io.Copy(&got, r)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("restored %d bytes, want %d identical bytes", got.Len(), len(data))
			}
		})
	}
}

func TestStoredObjectIsStandardZstd(t *testing.T) {
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("zstd is not installed (apt-get install zstd)")
		}
		t.Skip("zstd is not installed (apt-get install zstd)")
	}
	ctx := context.Background()
	b, dir := openFS(t)
	data := compressible(7, 5<<20+3)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "repo", PartSize: 1 << 20, Level: 9})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zstdBin, "-d", "-c", filepath.Join(dir, "repo", m.ID, archiver.DataObject)).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("zstd -d gave %d bytes, want the %d source bytes", len(out), len(data))
	}
	if m.StoredSize*2 > m.UncompressedSize {
		t.Errorf("stored %d of %d bytes: compression did not happen", m.StoredSize, m.UncompressedSize)
	}
}

// requireNothingLeft asserts a failed backup left no listed backup, no
// object and no pending upload.
func requireNothingLeft(t *testing.T, b *drivers.Bucket, prefix string) {
	t.Helper()
	ctx := context.Background()
	backups, _, err := archiver.List(ctx, b, prefix)
	if err != nil || len(backups) != 0 {
		t.Fatalf("List after a failed backup = %d backups, %v", len(backups), err)
	}
	objs, err := b.List(ctx, "")
	if err != nil || len(objs) != 0 {
		t.Fatalf("objects left after a failed backup: %+v, %v", objs, err)
	}
	pending, err := b.ListUploads(ctx, "")
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending uploads left after a failed backup: %+v, %v", pending, err)
	}
}

func TestSourceFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	b, _ := openFS(t)
	boom := errors.New("pg_dump: exit status 1: connection lost")
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		if _, err := w.Write(compressible(1, 3<<20)); err != nil {
			return err
		}
		return boom
	}}
	_, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10})
	var be *archiver.BackupError
	if !errors.As(err, &be) || !errors.Is(err, boom) || be.ID == "" {
		t.Fatalf("Backup = %v, want a BackupError wrapping the source's error", err)
	}
	requireNothingLeft(t, b, "p")
}

func TestTransientPartErrorsAreRetried(t *testing.T) {
	ctx := context.Background()
	b, f, _ := openFaulty(t, drivers.Transient, map[int]int{1: 2, 3: 1})
	data := compressible(3, 2<<20)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatalf("Backup with transient faults: %v", err)
	}
	if int(f.puts.Load()) != m.PartCount+3+2 { // +3 retries, +1 parts object, +1 manifest
		t.Errorf("%d part puts for %d parts, want 3 retries more plus the parts object and the manifest", f.puts.Load(), m.PartCount)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentPartErrorAbortsWithoutRetry(t *testing.T) {
	ctx := context.Background()
	b, f, inner := openFaulty(t, drivers.PermissionDenied, map[int]int{2: 100})
	_, err := archiver.Backup(ctx, b, bytesSource(compressible(4, 2<<20)), archiver.BackupOptions{PartSize: 64 << 10})
	if drivers.CodeOf(err) != drivers.PermissionDenied {
		t.Fatalf("Backup = %v, want the PermissionDenied error", err)
	}
	if left := f.failParts[2]; left != 99 {
		t.Errorf("part 2 was tried %d times, want once (no retry on a permanent error)", 100-left)
	}
	if f.aborts.Load() != 1 {
		t.Errorf("aborts = %d, want 1", f.aborts.Load())
	}
	requireNothingLeft(t, inner, "")
}

func TestRetriesGiveUp(t *testing.T) {
	b, _, inner := openFaulty(t, drivers.Transient, map[int]int{1: 100})
	_, err := archiver.Backup(context.Background(), b, bytesSource(compressible(5, 1<<20)), archiver.BackupOptions{PartSize: 64 << 10})
	if err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("Backup = %v, want a give-up after 4 attempts", err)
	}
	requireNothingLeft(t, inner, "")
}

func TestCancelLeavesNothing(t *testing.T) {
	b, _ := openFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		if _, err := w.Write(compressible(6, 1<<20)); err != nil {
			return err
		}
		cancel() // SIGTERM arrives mid-dump
		<-ctx.Done()
		return ctx.Err()
	}}
	_, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{PartSize: 64 << 10})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Backup = %v, want interrupted by cancellation", err)
	}
	requireNothingLeft(t, b, "")
}

func TestStallTimeout(t *testing.T) {
	b, _ := openFS(t)
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		w.Write([]byte("a little"))
		<-ctx.Done() // the dump tool hangs
		return ctx.Err()
	}}
	_, err := archiver.Backup(context.Background(), b, src, archiver.BackupOptions{StallTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no output") {
		t.Fatalf("Backup = %v, want the stall error", err)
	}
	requireNothingLeft(t, b, "")
}

func TestTruncatedObjectFailsVerify(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(9, 1<<20)), archiver.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.ID, archiver.DataObject)
	if err := os.Truncate(path, m.StoredSize-1); err != nil {
		t.Fatal(err)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); !errors.Is(err, archiver.ErrChecksum) {
		t.Fatalf("Verify of a truncated object = %v, want ErrChecksum", err)
	}
}

func TestIDsSortByTimeAndAreUnique(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := archiver.NewID(now.Add(time.Duration(i/10) * time.Millisecond))
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if i%10 == 0 && id < prev {
			t.Fatalf("id %s sorts before the earlier %s", id, prev)
		}
		prev = id
		if got, err := archiver.ParseID(id); err != nil || !got.Equal(now.Add(time.Duration(i/10)*time.Millisecond)) {
			t.Fatalf("ParseID(%s) = %v, %v", id, got, err)
		}
	}
}

// TestCancelWithUploadsInFlight cancels a backup while every worker is stuck
// in an upload and the part writer waits for one: the workers record their
// failures while the writer reads why it was stopped. Under -race this
// checks that the two meet only through synchronisation.
func TestCancelWithUploadsInFlight(t *testing.T) {
	inner, dir := openFS(t)
	stuck := &stuckBucket{}
	b := wrapFS(t, dir, stuck)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const workers = 3
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for stuck.started.Load() < workers && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let the writer block on a full pool
		cancel()
	}()
	// Incompressible, so parts fill fast.
	_, err := archiver.Backup(ctx, b, bytesSource(randomBytes(11, 4<<20)), archiver.BackupOptions{PartSize: 64 << 10, Concurrency: workers})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Backup = %v, want interrupted by cancellation", err)
	}
	if stuck.started.Load() < workers {
		t.Fatalf("only %d uploads started, want %d stuck at once", stuck.started.Load(), workers)
	}
	requireNothingLeft(t, inner, "")
}

// TestDroppedConnectionDuringRestoreIsRetried: a read that ends early with
// an error the driver classified Transient (a reset connection; it also
// matches io.ErrUnexpectedEOF) is retried, not reported as corruption, and
// the storage layer resumes it where it broke off rather than from the
// part's start.
func TestDroppedConnectionDuringRestoreIsRetried(t *testing.T) {
	ctx := context.Background()
	inner, dir := openFS(t)
	data := compressible(12, 1<<20)
	m, err := archiver.Backup(ctx, inner, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	dropped := drivers.Errorf(drivers.Transient, "read", "data", fmt.Errorf("connection reset: %w", io.ErrUnexpectedEOF))
	f := &faultyReads{suffix: archiver.DataObject, fault: func(off int64, earlier int) (func([]byte), error) {
		if off == 64<<10 && earlier == 0 {
			return nil, dropped
		}
		return nil, nil
	}}
	b := wrapFS(t, dir, f)
	var got bytes.Buffer
	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{ChunkSize: 64 << 10}, func(r io.Reader) error {
		_, err := io.Copy(&got, r)
		return err
	})
	if err != nil {
		t.Fatalf("Restore over a dropping connection = %v, want success after retries", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("restored %d bytes, want the %d backed up", got.Len(), len(data))
	}
	f.mu.Lock()
	reads := 0
	for _, n := range f.reads {
		reads += n
	}
	f.mu.Unlock()
	if n := f.readsAt(64 << 10); n != 1 || reads != m.PartCount+1 {
		t.Errorf("the range at 64 KiB was opened %d times and the object %d times for %d parts, want once and one more read (the resumed rest)", n, reads, m.PartCount)
	}
}

// corruption asserts that err reports corruption of backup id at part
// (1-based; 0: any or none) and returns it.
func corruption(t *testing.T, err error, id string, part int) *archiver.CorruptionError {
	t.Helper()
	var ce *archiver.CorruptionError
	if !errors.As(err, &ce) || ce.ID != id || !errors.Is(err, archiver.ErrChecksum) {
		t.Fatalf("error %v, want a *CorruptionError of backup %s", err, id)
	}
	if part > 0 && (ce.Part != part || !strings.Contains(err.Error(), fmt.Sprintf("corruption of backup %s at part %d ", id, part))) {
		t.Fatalf("error %q locates the damage at part %d, want part %d", err, ce.Part, part)
	}
	return ce
}

// TestFlippedByteFailsVerifyAndRestore flips one byte at a time, at every
// kind of position (first and last byte of the object, of each part, the
// middle of a part, and 40 fixed pseudo-random places), and checks that
// verify and restore both report corruption of that part — never a raw
// decoder error — and that the sink never sees a clean end.
func TestFlippedByteFailsVerifyAndRestore(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	const partSize = 64 << 10
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(8, 2<<20)), archiver.BackupOptions{PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	if m.PartCount < 4 {
		t.Fatalf("%d parts, want several", m.PartCount)
	}
	path := filepath.Join(dir, m.ID, archiver.DataObject)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	positions := []int64{0, m.StoredSize - 1}
	for off := int64(0); off < m.StoredSize; off += partSize {
		positions = append(positions, off, off+1, min(off+partSize/2, m.StoredSize-1), min(off+partSize, m.StoredSize)-1)
	}
	r := rand.New(rand.NewPCG(40, 41))
	for range 40 {
		positions = append(positions, r.Int64N(m.StoredSize))
	}
	for _, pos := range positions {
		stored[pos] ^= 0x01
		if err := os.WriteFile(path, stored, 0o600); err != nil {
			t.Fatal(err)
		}
		stored[pos] ^= 0x01
		part := int(pos/partSize) + 1
		// A chunk size below the part size: reads still follow the parts.
		err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{ChunkSize: 16 << 10})
		ce := corruption(t, err, m.ID, part)
		if ce.Offset != int64(part-1)*partSize || pos < ce.Offset || pos >= ce.Offset+ce.Size {
			t.Fatalf("flip at %d reported at offset %d size %d", pos, ce.Offset, ce.Size)
		}
		sawEOF := false
		err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{ChunkSize: 16 << 10}, func(r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			sawEOF = err == nil
			return err
		})
		if corruption(t, err, m.ID, part); sawEOF {
			t.Fatalf("flip at %d: the sink saw a clean end", pos)
		}
	}
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); err != nil {
		t.Fatalf("Verify of the repaired backup: %v", err)
	}
}

// TestDamageInTransitIsReadAgain: a part that arrives damaged once is read
// again and the restore succeeds; a part damaged on both reads is reported
// after exactly one more read.
func TestDamageInTransitIsReadAgain(t *testing.T) {
	ctx := context.Background()
	inner, dir := openFS(t)
	const partSize = 64 << 10
	data := compressible(13, 1<<20)
	m, err := archiver.Backup(ctx, inner, bytesSource(data), archiver.BackupOptions{PartSize: partSize})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(p []byte) { p[len(p)/3] ^= 0x80 }
	for _, tc := range []struct {
		name   string
		damage int // reads of part 2 that arrive damaged
	}{{"once", 1}, {"always", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faultyReads{suffix: archiver.DataObject, fault: func(off int64, earlier int) (func([]byte), error) {
				if off == partSize && earlier < tc.damage {
					return flip, nil
				}
				return nil, nil
			}}
			b := wrapFS(t, dir, f)
			var got bytes.Buffer
			err := archiver.Restore(ctx, b, m, archiver.RestoreOptions{}, func(r io.Reader) error {
				_, err := io.Copy(&got, r)
				return err
			})
			if tc.damage == 1 {
				if err != nil || !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("Restore = %v with %d of %d bytes, want the data after a second read", err, got.Len(), len(data))
				}
			} else {
				corruption(t, err, m.ID, 2)
			}
			if n := f.readsAt(partSize); n != 2 {
				t.Errorf("part 2 was read %d times, want 2", n)
			}
		})
	}
}

// TestFormat1BackupStillRestores turns a backup into what dbarchive wrote
// before parts objects existed (format version 1: no parts object), lists
// it, restores it from the listed manifest, and checks that damage in it is
// reported as corruption of the backup at an offset, not as a raw decoder
// error.
func TestFormat1BackupStillRestores(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	data := compressible(14, 1<<20)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "r", PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// A plain backup is written as format 3, the last without encryption.
	if m.FormatVersion != 3 || m.PartsObject != archiver.PartsObject || len(m.PartsSHA256) != 64 {
		t.Fatalf("a new backup's manifest: version %d, parts object %q sha256 %q", m.FormatVersion, m.PartsObject, m.PartsSHA256)
	}
	old := *m
	old.FormatVersion, old.PartsObject, old.PartsSHA256, old.Tables = 1, "", "", nil
	enc, err := old.Encode()
	if err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "r", m.ID)
	if err := os.WriteFile(filepath.Join(bdir, archiver.ManifestObject), enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(bdir, archiver.PartsObject)); err != nil {
		t.Fatal(err)
	}
	listed, problems, err := archiver.List(ctx, b, "r")
	if err != nil || len(problems) != 0 || len(listed) != 1 || listed[0].FormatVersion != 1 {
		t.Fatalf("List = %+v, %v, %v; want the format-1 backup", listed, problems, err)
	}
	var got bytes.Buffer
	if err := archiver.Restore(ctx, b, listed[0], archiver.RestoreOptions{Prefix: "r", ChunkSize: 64 << 10}, func(r io.Reader) error {
		_, err := io.Copy(&got, r)
		return err
	}); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("Restore of a format-1 backup = %v, %d of %d bytes", err, got.Len(), len(data))
	}
	path := filepath.Join(bdir, archiver.DataObject)
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int64{0, 5, m.StoredSize / 3, m.StoredSize / 2, m.StoredSize - 1} {
		stored[pos] ^= 0x04
		if err := os.WriteFile(path, stored, 0o600); err != nil {
			t.Fatal(err)
		}
		stored[pos] ^= 0x04
		err := archiver.Verify(ctx, b, listed[0], archiver.RestoreOptions{Prefix: "r", ChunkSize: 64 << 10})
		corruption(t, err, m.ID, 0)
	}
}

// TestManifestVersions: format 1 has no parts object, format 2 must name
// one, format 3 must reference a table list or say why there is none,
// only format 4 may be encrypted (to public keys only), and a newer format
// is refused naming both versions.
func TestManifestVersions(t *testing.T) {
	start := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	base := archiver.Manifest{
		FormatVersion: 2, ID: archiver.NewID(start), StartTime: start, EndTime: start,
		Source: archiver.SourceInfo{Type: "postgres", Database: "a"}, Compression: "zstd", CompressionLevel: 3,
		DataObject: archiver.DataObject, StoredSHA256: strings.Repeat("a", 64), UncompressedSHA256: strings.Repeat("b", 64),
		PartsObject: archiver.PartsObject, PartsSHA256: strings.Repeat("c", 64),
	}
	for _, tc := range []struct {
		name string
		edit func(m *archiver.Manifest)
		want string // "" decodes
	}{
		{"format 2", func(*archiver.Manifest) {}, ""},
		{"format 1", func(m *archiver.Manifest) { m.FormatVersion, m.PartsObject, m.PartsSHA256 = 1, "", "" }, ""},
		{"format 1 naming parts", func(m *archiver.Manifest) { m.FormatVersion = 1 }, "partsObject"},
		{"format 2 without parts", func(m *archiver.Manifest) { m.PartsObject = "" }, "partsObject"},
		{"format 2 without parts sha256", func(m *archiver.Manifest) { m.PartsSHA256 = "" }, "partsSha256"},
		{"parts object is the data object", func(m *archiver.Manifest) { m.PartsObject = archiver.DataObject }, "partsObject"},
		{"parts object outside the backup", func(m *archiver.Manifest) { m.PartsObject = "../x" }, "partsObject"},
		{"format 2 with tables", func(m *archiver.Manifest) { m.Tables = tablesObject() }, "tables"},
		{"format 3", func(m *archiver.Manifest) { m.FormatVersion, m.Tables = 3, tablesObject() }, ""},
		{"format 3 not recorded", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, &archiver.TablesInfo{NotRecorded: "exec sources record no tables"}
		}, ""},
		{"format 3 without tables", func(m *archiver.Manifest) { m.FormatVersion = 3 }, "tables: is required"},
		{"format 3 tables without object or reason", func(m *archiver.Manifest) { m.FormatVersion, m.Tables = 3, &archiver.TablesInfo{} }, "tables"},
		{"format 3 tables both", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, tablesObject()
			m.Tables.NotRecorded = "x"
		}, "tables.notRecorded"},
		{"format 3 tables object is the parts object", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, tablesObject()
			m.Tables.Object = archiver.PartsObject
		}, "tables.object"},
		{"format 3 tables bad sha256", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, tablesObject()
			m.Tables.SHA256 = "x"
		}, "tables.sha256"},
		{"format 3 not recorded with a sha256", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, &archiver.TablesInfo{NotRecorded: "x", SHA256: strings.Repeat("d", 64)}
		}, "no object"},
		{"format 3 tables without size", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, tablesObject()
			m.Tables.Size = 0
		}, "tables.size"},
		{"format 4 encrypted", func(m *archiver.Manifest) {
			m.FormatVersion, m.DataObject, m.Tables = 4, archiver.DataObjectEncrypted, tablesObject()
			m.Encryption = &archiver.EncryptionInfo{Scheme: "age", Recipients: []string{testRecipient, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsb", "scrypt"}}
		}, ""},
		{"format 3 encrypted", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables = 3, tablesObject()
			m.Encryption = &archiver.EncryptionInfo{Scheme: "age", Recipients: []string{testRecipient}}
		}, "encryption: is not part of format version 3"},
		{"format 2 encrypted", func(m *archiver.Manifest) {
			m.Encryption = &archiver.EncryptionInfo{Scheme: "age", Recipients: []string{testRecipient}}
		}, "encryption: is not part of format version 2"},
		{"unknown scheme", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables, m.Encryption = 4, tablesObject(), &archiver.EncryptionInfo{Scheme: "gpg", Recipients: []string{testRecipient}}
		}, "encryption.scheme"},
		{"no recipients", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables, m.Encryption = 4, tablesObject(), &archiver.EncryptionInfo{Scheme: "age"}
		}, "encryption.recipients: must name at least one"},
		{"an identity as recipient", func(m *archiver.Manifest) {
			m.FormatVersion, m.Tables, m.Encryption = 4, tablesObject(), &archiver.EncryptionInfo{Scheme: "age", Recipients: []string{testRecipient, testIdentity}}
		}, "encryption.recipients: entry 2 is not a public key"},
		{"format 5", func(m *archiver.Manifest) { m.FormatVersion, m.Tables = archiver.FormatVersion+1, tablesObject() }, "newer than this dbarchive understands"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			tc.edit(&m)
			data, err := json.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := archiver.DecodeManifest(data)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("DecodeManifest = %v, want it accepted", err)
			case tc.want == "" && got.PartsObject != m.PartsObject:
				t.Fatalf("parts object %q after decoding, want %q", got.PartsObject, m.PartsObject)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("DecodeManifest = %v, want an error about %s", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "AGE-SECRET-KEY"):
				t.Fatalf("DecodeManifest repeats the secret key: %v", err)
			}
		})
	}
}

func tablesObject() *archiver.TablesInfo {
	return &archiver.TablesInfo{Object: archiver.TablesObject, SHA256: strings.Repeat("d", 64), Size: 100, Format: "postgres-plain", Count: 1, Rows: 3}
}

// TestDamagedPartsObject: a parts object that does not match the sha256
// its manifest records is reported as corruption of the backup before any
// data is read; a missing one names the backup and the object.
func TestDamagedPartsObject(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	m, err := archiver.Backup(ctx, b, bytesSource(compressible(15, 512<<10)), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.ID, archiver.PartsObject)
	parts, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var index archiver.PartIndex
	if err := json.Unmarshal(parts, &index); err != nil || len(index.Parts) != m.PartCount || index.ID != m.ID {
		t.Fatalf("parts object %s: %v; want %d parts of backup %s", parts, err, m.PartCount, m.ID)
	}
	for i, pos := range []int{0, len(parts) / 2, len(parts) - 1} {
		damaged := bytes.Clone(parts)
		damaged[pos] ^= 0x01
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{})
		if ce := corruption(t, err, m.ID, 0); !strings.Contains(err.Error(), archiver.PartsObject) {
			t.Fatalf("flip %d in the parts object: %v (%+v), want it named", i, err, ce)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	err = archiver.Verify(ctx, b, m, archiver.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), m.ID) || !strings.Contains(err.Error(), archiver.PartsObject) || drivers.CodeOf(err) != drivers.NotFound {
		t.Fatalf("Verify without the parts object = %v, want NotFound naming the backup and the object", err)
	}
}

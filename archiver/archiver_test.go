package archiver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

var fastRetry = archiver.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxElapsed: 10 * time.Second}

func TestRoundTripSizes(t *testing.T) {
	for _, size := range []int{0, 1, 100_000, 3<<20 + 17} {
		t.Run(strings.ReplaceAll(time.Duration(size).String(), "ns", "B"), func(t *testing.T) {
			ctx := context.Background()
			b, _ := openFS(t)
			data := compressible(uint64(size), size)
			// A small part size forces several parts even for small inputs.
			m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10, Retry: fastRetry})
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if m.UncompressedSize != int64(size) || m.UncompressedSHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("manifest says %d bytes sha %s, want %d bytes sha %x", m.UncompressedSize, m.UncompressedSHA256, size, sum)
			}
			if m.Source.Type != "exec" || m.Source.Database != "testdb" || m.Compression != "zstd" || m.CompressionLevel != 3 || m.PartCount < 1 {
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
func requireNothingLeft(t *testing.T, b drivers.Bucket, prefix string) {
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
	inner, _ := openFS(t)
	b := &faultyBucket{Bucket: inner, code: drivers.Transient, failParts: map[int]int{1: 2, 3: 1}}
	data := compressible(3, 2<<20)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10, Retry: fastRetry})
	if err != nil {
		t.Fatalf("Backup with transient faults: %v", err)
	}
	if int(b.puts.Load()) != m.PartCount+3+1 { // +3 retries, +1 manifest
		t.Errorf("%d part puts for %d parts, want 3 retries more plus the manifest", b.puts.Load(), m.PartCount)
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentPartErrorAbortsWithoutRetry(t *testing.T) {
	ctx := context.Background()
	inner, _ := openFS(t)
	b := &faultyBucket{Bucket: inner, code: drivers.PermissionDenied, failParts: map[int]int{2: 100}}
	_, err := archiver.Backup(ctx, b, bytesSource(compressible(4, 2<<20)), archiver.BackupOptions{PartSize: 64 << 10, Retry: fastRetry})
	if drivers.CodeOf(err) != drivers.PermissionDenied {
		t.Fatalf("Backup = %v, want the PermissionDenied error", err)
	}
	if left := b.failParts[2]; left != 99 {
		t.Errorf("part 2 was tried %d times, want once (no retry on a permanent error)", 100-left)
	}
	if b.aborts.Load() != 1 {
		t.Errorf("aborts = %d, want 1", b.aborts.Load())
	}
	requireNothingLeft(t, inner, "")
}

func TestRetriesGiveUp(t *testing.T) {
	inner, _ := openFS(t)
	b := &faultyBucket{Bucket: inner, code: drivers.Transient, failParts: map[int]int{1: 100}}
	_, err := archiver.Backup(context.Background(), b, bytesSource(compressible(5, 1<<20)), archiver.BackupOptions{PartSize: 64 << 10, Retry: fastRetry})
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

func TestFlippedByteFailsVerifyAndRestore(t *testing.T) {
	ctx := context.Background()
	b, dir := openFS(t)
	data := compressible(8, 2<<20)
	m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{PartSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{"middle", "last byte"} {
		t.Run(where, func(t *testing.T) {
			path := filepath.Join(dir, m.ID, archiver.DataObject)
			stored, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			i := len(stored) / 2
			if where == "last byte" {
				i = len(stored) - 1
			}
			stored[i] ^= 0x01
			if err := os.WriteFile(path, stored, 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() { stored[i] ^= 0x01; os.WriteFile(path, stored, 0o600) }()

			err = archiver.Verify(ctx, b, m, archiver.RestoreOptions{ChunkSize: 64 << 10})
			if !errors.Is(err, archiver.ErrChecksum) || !strings.Contains(err.Error(), m.ID) {
				t.Fatalf("Verify = %v, want a checksum error naming %s", err, m.ID)
			}
			// The sink must never see a clean end of a damaged stream.
			sawEOF := false
			err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{ChunkSize: 64 << 10}, func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				sawEOF = err == nil
				return err
			})
			if err == nil || sawEOF {
				t.Fatalf("Restore = %v (sink saw EOF: %v), want an error before EOF", err, sawEOF)
			}
		})
	}
	if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{}); err != nil {
		t.Fatalf("Verify of the repaired backup: %v", err)
	}
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
	inner, _ := openFS(t)
	b := &stuckBucket{Bucket: inner}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const workers = 3
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for b.started.Load() < workers && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let the writer block on a full pool
		cancel()
	}()
	// Incompressible, so parts fill fast.
	_, err := archiver.Backup(ctx, b, bytesSource(randomBytes(11, 4<<20)), archiver.BackupOptions{PartSize: 64 << 10, Concurrency: workers, Retry: fastRetry})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Backup = %v, want interrupted by cancellation", err)
	}
	if b.started.Load() < workers {
		t.Fatalf("only %d uploads started, want %d stuck at once", b.started.Load(), workers)
	}
	requireNothingLeft(t, inner, "")
}

// TestDroppedConnectionDuringRestoreIsRetried: a read that ends early with
// an error the driver classified Transient (a reset connection; it also
// matches io.ErrUnexpectedEOF) is retried, not reported as corruption.
func TestDroppedConnectionDuringRestoreIsRetried(t *testing.T) {
	ctx := context.Background()
	inner, _ := openFS(t)
	data := compressible(12, 1<<20)
	m, err := archiver.Backup(ctx, inner, bytesSource(data), archiver.BackupOptions{PartSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	dropped := drivers.Errorf(drivers.Transient, "read", "data", fmt.Errorf("connection reset: %w", io.ErrUnexpectedEOF))
	b := &faultyReads{Bucket: inner, suffix: archiver.DataObject, fault: func(off int64, earlier int) (func([]byte), error) {
		if off > 0 && earlier == 0 {
			return nil, dropped
		}
		return nil, nil
	}}
	var got bytes.Buffer
	err = archiver.Restore(ctx, b, m, archiver.RestoreOptions{ChunkSize: 64 << 10, Retry: fastRetry}, func(r io.Reader) error {
		_, err := io.Copy(&got, r)
		return err
	})
	if err != nil {
		t.Fatalf("Restore over a dropping connection = %v, want success after retries", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("restored %d bytes, want the %d backed up", got.Len(), len(data))
	}
	if n := b.readsAt(64 << 10); n != 2 {
		t.Errorf("the range at 64 KiB was read %d times, want 2 (one dropped, one retry)", n)
	}
}

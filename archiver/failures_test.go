package archiver_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/drivers/driver"
)

// storeFaults wraps the fs driver and refuses, with a permanent error,
// the completion or the part uploads of the objects whose key ends in one
// of the given names, below the portable layer, as a store would (a full
// bucket, a policy that denies one key, a completion the store rejects).
type storeFaults struct {
	driver.Bucket
	failComplete map[string]bool // object name -> Complete fails
	failPut      map[string]bool // object name -> PutPart fails
}

func (s *storeFaults) setDriver(d driver.Bucket) { s.Bucket = d }

func (s *storeFaults) NewUpload(ctx context.Context, key string) (driver.Upload, error) {
	u, err := s.Bucket.NewUpload(ctx, key)
	if err != nil {
		return nil, err
	}
	return &storeFaultsUpload{Upload: u, s: s, key: key}, nil
}

type storeFaultsUpload struct {
	driver.Upload
	s   *storeFaults
	key string
}

func (u *storeFaultsUpload) name() string { return u.key[strings.LastIndex(u.key, "/")+1:] }

func (u *storeFaultsUpload) PutPart(ctx context.Context, n int, data []byte) error {
	if u.s.failPut[u.name()] {
		return drivers.Errorf(drivers.PermissionDenied, "put part", u.key, errors.New("injected: access denied"))
	}
	return u.Upload.PutPart(ctx, n, data)
}

func (u *storeFaultsUpload) Complete(ctx context.Context, parts int) error {
	if u.s.failComplete[u.name()] {
		return drivers.Errorf(drivers.PermissionDenied, "complete upload", u.key, errors.New("injected: completion refused"))
	}
	return u.Upload.Complete(ctx, parts)
}

// TestFailedWriteOfAnyObjectFailsTheBackup: a backup succeeds only when
// every one of its objects was stored: when the store refuses the
// completion of the data object, or the upload or completion of the parts
// object or of the manifest, Backup fails with the store's error, names
// what it was writing, and leaves nothing behind that looks like a backup.
func TestFailedWriteOfAnyObjectFailsTheBackup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults *storeFaults
		want   string // in the error
	}{
		{"data object completion", &storeFaults{failComplete: map[string]bool{archiver.DataObject: true}}, "complete upload"},
		{"parts object upload", &storeFaults{failPut: map[string]bool{archiver.PartsObject: true}}, "write parts object"},
		{"parts object completion", &storeFaults{failComplete: map[string]bool{archiver.PartsObject: true}}, "write parts object"},
		{"manifest upload", &storeFaults{failPut: map[string]bool{archiver.ManifestObject: true}}, "write manifest"},
		{"manifest completion", &storeFaults{failComplete: map[string]bool{archiver.ManifestObject: true}}, "write manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, dir := openFS(t)
			b := wrapFS(t, dir, tc.faults)
			m, err := archiver.Backup(context.Background(), b, bytesSource(compressible(31, 100_000)), archiver.BackupOptions{Prefix: "p", PartSize: 64 << 10})
			var be *archiver.BackupError
			if m != nil || !errors.As(err, &be) || drivers.CodeOf(err) != drivers.PermissionDenied || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Backup = %v, %v; want a BackupError with the store's PermissionDenied, about %q", m, err, tc.want)
			}
			// The failed upload was aborted cleanly: no abort failure to report.
			if strings.Contains(err.Error(), "abort") {
				t.Fatalf("Backup = %v, want no abort failure reported", err)
			}
			requireNothingLeft(t, inner, "p")
		})
	}
}

// TestFailedPartUploadStopsTheSource: when a part upload fails for good,
// the dump is stopped (its context is cancelled and its writes fail) rather
// than left to run to the end of a database that can no longer be backed
// up; the backup reports the upload's error.
func TestFailedPartUploadStopsTheSource(t *testing.T) {
	t.Parallel()
	b, _, inner := openFaulty(t, drivers.PermissionDenied, map[int]int{1: 1})
	const limit = 256 << 20 // far more than it takes to notice
	// Incompressible over more than the zstd window, so parts keep coming.
	stream := noise(32, 4<<20)
	var written int64
	var stopped atomic.Bool
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		for written < limit {
			if ctx.Err() != nil {
				stopped.Store(true)
				return ctx.Err()
			}
			off := written % int64(len(stream))
			n, err := w.Write(stream[off:min(off+32<<10, int64(len(stream)))])
			written += int64(n)
			if err != nil {
				stopped.Store(true)
				return err
			}
		}
		return nil
	}}
	_, err := archiver.Backup(context.Background(), b, src, archiver.BackupOptions{PartSize: 64 << 10, Concurrency: 2})
	if drivers.CodeOf(err) != drivers.PermissionDenied {
		t.Fatalf("Backup = %v, want the part upload's PermissionDenied", err)
	}
	if !stopped.Load() || written >= limit {
		t.Fatalf("the source wrote %d bytes and was stopped: %v; want it stopped soon after part 1 failed", written, stopped.Load())
	}
	requireNothingLeft(t, inner, "")
}

// TestHealthyBackupOutlivesStallTimeout: a source that keeps writing, for
// longer than the stall timeout in total but never pausing for long, is
// not a stall: the watchdog's ticks while it runs leave it alone.
func TestHealthyBackupOutlivesStallTimeout(t *testing.T) {
	t.Parallel()
	b, _ := openFS(t)
	data := compressible(33, 200_000)
	// 3 s, not less: the test runs beside CPU-heavy ones under -race on two
	// cores, where a write can wait a second for the encoder.
	const timeout = 3 * time.Second
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		// 200 writes 20 ms apart: over 4 s in all, more than the timeout.
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1000)
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}}
	m, err := archiver.Backup(context.Background(), b, src, archiver.BackupOptions{StallTimeout: timeout, PartSize: 64 << 10})
	if err != nil {
		t.Fatalf("Backup of a slow but steady source with a %v stall timeout: %v", timeout, err)
	}
	readBack(t, b, "", m, data)
}

package archiver_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
)

// TestCompressionLevelRange: levels 1 through 22 back up (and are recorded);
// anything else is refused before the source is touched, and nothing is
// left in the repo.
func TestCompressionLevelRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := compressible(61, 5_000)
	for _, level := range []int{1, 22} {
		b, _ := openFS(t)
		m, err := archiver.Backup(ctx, b, bytesSource(data), archiver.BackupOptions{Level: level})
		if err != nil || m.CompressionLevel != level {
			t.Fatalf("Backup at level %d = %+v, %v", level, m, err)
		}
		readBack(t, b, "", m, data)
	}
	for _, level := range []int{-1, 23} {
		b, _ := openFS(t)
		dumped := false
		src := funcSource{dump: func(context.Context, io.Writer) error { dumped = true; return nil }}
		_, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Level: level})
		var be *archiver.BackupError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "outside 1..22") || dumped {
			t.Fatalf("Backup at level %d = %v (dump ran: %v), want a refusal before the dump", level, err, dumped)
		}
		requireNothingLeft(t, b, "")
	}
}

// checkFails is a source whose Check fails, as a missing dump tool does.
type checkFails struct{ funcSource }

func (checkFails) Check(context.Context) error { return errors.New("pg_dump is not on PATH") }

// formatted is a source with a dump format, which restore must be told.
type formatted struct{ funcSource }

func (formatted) Format() string { return "custom" }

// TestBackupChecksSourceAndRecordsFormat: a source that fails its check
// fails the backup before anything is uploaded; a source with a dump format
// has it recorded in the manifest that is read back.
func TestBackupChecksSourceAndRecordsFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := openFS(t)
	_, err := archiver.Backup(ctx, b, checkFails{bytesSource([]byte("x"))}, archiver.BackupOptions{})
	if err == nil || !strings.Contains(err.Error(), "pg_dump is not on PATH") || !strings.Contains(err.Error(), "test source") {
		t.Fatalf("Backup of a source that fails its check = %v", err)
	}
	requireNothingLeft(t, b, "")
	data := compressible(62, 20_000)
	m, err := archiver.Backup(ctx, b, formatted{bytesSource(data)}, archiver.BackupOptions{})
	if err != nil || m.Source.Format != "custom" {
		t.Fatalf("Backup of a formatted source = %+v, %v; want format custom recorded", m, err)
	}
	readBack(t, b, "", m, data)
}

// TestDriverTooSmallForThePlan: a store whose part limits cannot hold 5 TiB
// is refused before anything is dumped or uploaded.
func TestDriverTooSmallForThePlan(t *testing.T) {
	t.Parallel()
	_, dir := openFS(t)
	b := wrapFS(t, dir, &limitedDriver{limits: drivers.Limits{MaxParts: 100, MinPartSize: 1, MaxPartSize: 1 << 30}})
	dumped := false
	src := funcSource{dump: func(context.Context, io.Writer) error { dumped = true; return nil }}
	_, err := archiver.Backup(context.Background(), b, src, archiver.BackupOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot hold") || dumped {
		t.Fatalf("Backup to a store of 100 parts of 1 GiB = %v (dump ran: %v), want a refusal", err, dumped)
	}
	requireNothingLeft(t, b, "")
}

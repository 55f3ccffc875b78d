package archiver

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/fs"
)

// TestEncoderErrorLeaksNothing: when the zstd writer cannot be created, the
// upload returns that error, starts no worker that outlives it and leaves no
// pending upload. The public API cannot reach this (its options are checked
// first), so the test calls upload with an option zstd refuses.
func TestEncoderErrorLeaksNothing(t *testing.T) {
	ctx := context.Background()
	b, err := drivers.Open(ctx, drivers.Config{Name: "test", Type: "fs", Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opts := BackupOptions{Concurrency: 8}.withDefaults()
	opts.EncoderConcurrency = -1 // zstd.WithEncoderConcurrency refuses it
	plan, err := NewPartPlan(opts.PartSize, b.Limits())
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	_, err = upload(ctx, b, "k/data.zst", plan, opts, opts.Logger, func(context.Context, io.Writer) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "concurrency") {
		t.Fatalf("upload = %v, want zstd's refusal of the encoder concurrency", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after the failed upload, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	pending, err := b.ListUploads(ctx, "")
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending uploads after the failed upload: %+v, %v", pending, err)
	}
}

// TestDefaultEncoderSetting pins the encoder setting chosen by measurement
// (options.go): left unset, a backup runs level 2 with a 2^17-entry hash
// table and 7-byte minimum matches in a 2^21 window; an explicit level runs
// libzstd's own match finder for it, and an explicit knob wins over the
// default's.
func TestDefaultEncoderSetting(t *testing.T) {
	for _, c := range []struct {
		name                                string
		opts                                BackupOptions
		level, windowLog, hashLog, minMatch int
	}{
		{"unset", BackupOptions{}, 2, 21, 17, 7},
		{"level 2", BackupOptions{Level: 2}, 2, 21, 0, 0},
		{"level 3", BackupOptions{Level: 3}, 3, 21, 0, 0},
		{"unset level, hash log 16", BackupOptions{HashLog: 16}, 2, 21, 16, 7},
		{"level 1, min match 6", BackupOptions{Level: 1, MinMatch: 6}, 1, 21, 0, 6},
	} {
		o := c.opts.withDefaults()
		if o.Level != c.level || o.WindowLog != c.windowLog || o.HashLog != c.hashLog || o.MinMatch != c.minMatch {
			t.Errorf("%s: level %d, window log %d, hash log %d, min match %d; want %d, %d, %d, %d",
				c.name, o.Level, o.WindowLog, o.HashLog, o.MinMatch, c.level, c.windowLog, c.hashLog, c.minMatch)
		}
	}
}

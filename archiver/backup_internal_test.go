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

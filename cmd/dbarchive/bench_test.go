package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dbarchive/dbarchive/archiver"
)

// BenchmarkCLIPeakRSS runs `dbarchive backup` at its defaults from an exec:
// source (testgen: a dump-like stream zstd shrinks about 4x, written from a
// 32 MiB pool so the generator costs almost no CPU) into an fs repo, for a
// 1 GiB and an 8 GiB stream. It reports:
//   - peak-RSS-MiB: ru_maxrss from wait4. Linux folds the waited-for
//     children into it, so it is the larger of dbarchive and testgen
//     (about 40 MiB).
//   - cli-VmHWM-MiB: dbarchive's own high-water mark, read from
//     /proc/PID/status every 50 ms until it exits.
//   - MB/cpu-s: stream bytes per CPU second of dbarchive and testgen
//     together; 2 cores divided by it is the rate the machine allows,
//     whatever else runs on it.
//
// The target (issue 3) is at most 96 MiB, and the 8 GiB run within 10% of
// the 1 GiB run. 1GiB-encrypted is the 1 GiB run encrypted with age to two
// recipients (issue 12: wall and CPU within 5% of plain, peak RSS
// unchanged).
func BenchmarkCLIPeakRSS(b *testing.B) {
	age1, age2 := benchRecipient(b), benchRecipient(b)
	for _, tc := range []struct {
		size  int64
		extra []string
	}{
		{1 << 30, nil},
		{1 << 30, []string{"--recipient", age1, "--recipient", age2}},
		{8 << 30, nil},
	} {
		size := tc.size
		name := fmt.Sprintf("%dGiB", size>>30)
		if tc.extra != nil {
			name += "-encrypted"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			var rss, hwm int64
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				b.StartTimer()
				r, peak := runSampled(b, append([]string{"backup", "--source", gen(fmt.Sprintf("-size %d", size)), "--repo", fileURL(dir), "-o", "json"}, tc.extra...)...)
				if r.code != 0 {
					b.Fatalf("%v", r)
				}
				var m archiver.Manifest
				if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.UncompressedSize != size {
					b.Fatalf("backup stored %d of %d bytes (%v)", m.UncompressedSize, size, err)
				}
				if (m.Encryption != nil) != (tc.extra != nil) {
					b.Fatalf("encryption %+v, want it exactly in the encrypted case", m.Encryption)
				}
				ru := r.state.SysUsage().(*syscall.Rusage)
				rss = max(rss, ru.Maxrss*1024) // KiB on Linux
				hwm = max(hwm, peak)
				cpu += r.state.UserTime() + r.state.SystemTime()
				b.StopTimer()
				_ = os.RemoveAll(dir)
				b.StartTimer()
			}
			b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(hwm)/(1<<20), "cli-VmHWM-MiB")
			b.ReportMetric(float64(b.N)*float64(size)/1e6/cpu.Seconds(), "MB/cpu-s")
		})
	}
}

// benchRecipient is the public key of a new age identity.
func benchRecipient(b *testing.B) string {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	return id.Recipient().String()
}

// runSampled runs dbarchive like cli.run, with the environment of a fresh
// test HOME, and samples its VmHWM until it exits.
func runSampled(b *testing.B, args ...string) (result, int64) {
	b.Helper()
	c := &cli{env: map[string]string{"PATH": os.Getenv("PATH"), "HOME": b.TempDir(), "TMPDIR": os.TempDir()}}
	for _, kv := range os.Environ() {
		// Let a developer try GOMEMLIMIT, GOGC or GODEBUG on the binary.
		if strings.HasPrefix(kv, "GOMEMLIMIT=") || strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GODEBUG=") {
			k, v, _ := strings.Cut(kv, "=")
			c.env[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd, stdout, stderr := c.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var hwm int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if data, err := os.ReadFile(status); err == nil {
				for line := range strings.Lines(string(data)) {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						hwm = max(hwm, kb*1024)
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	_ = cmd.Wait()
	close(done)
	wg.Wait()
	return result{args: args, stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode(), state: cmd.ProcessState}, hwm
}

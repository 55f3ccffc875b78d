package archiver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/s3"
	"github.com/dbarchive/dbarchive/internal/testgen"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// benchStream is the size of the synthetic stream a backup benchmark
// pushes through the pipeline.
const benchStream = 1 << 30

// BenchmarkBackup measures the pipeline at its defaults on a 1 GiB
// dump-like stream (zstd level 3 shrinks it about 4x): throughput, and the
// peak of the heap's live and not yet swept objects above what was there
// before the backup, sampled every 5 ms, and the CPU time it took.
//
// fs-encrypted is the fs case with the age stage (two X25519 recipients):
// what encryption costs on top of the same pipeline.
//
// The s3 case runs gofakes3 in this process; it keeps every stored byte on
// the heap (parts, then the assembled object), so its peak heap includes
// about twice the stored size and says little about the archiver.
func BenchmarkBackup(b *testing.B) {
	pool := testgen.Pool(1)
	src := funcSource{dump: func(ctx context.Context, w io.Writer) error {
		return testgen.WriteStream(w, pool, benchStream, 1<<20)
	}}
	run := func(b *testing.B, bucket *drivers.Bucket, recipients ...archiver.Recipient) {
		ctx := context.Background()
		b.SetBytes(benchStream)
		b.ReportAllocs()
		var peak, base uint64
		var stored int64
		var cpu time.Duration
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			base = heapObjects() // the pool, the emulator's bookkeeping
			cpu0 := cpuTime()
			b.StartTimer()
			stop := sampleHeap(&peak)
			m, err := archiver.Backup(ctx, bucket, src, archiver.BackupOptions{Prefix: "bench", Recipients: recipients})
			stop()
			cpu += cpuTime() - cpu0
			if err != nil {
				b.Fatal(err)
			}
			stored = m.StoredSize
			b.StopTimer()
			// Free the emulator's copy before the next round.
			if objs, err := bucket.List(ctx, "bench/"+m.ID+"/"); err == nil {
				for _, o := range objs {
					_ = bucket.Delete(ctx, o.Key)
				}
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(peak-min(base, peak))/(1<<20), "peak-heap-MiB")
		// CPU time per byte does not depend on what else the machine runs:
		// 2 cores divided by it bound the throughput this pipeline allows.
		b.ReportMetric(float64(b.N)*benchStream/1e6/cpu.Seconds(), "MB/cpu-s")
		b.ReportMetric(float64(benchStream)/float64(stored), "ratio")
	}
	b.Run("fs", func(b *testing.B) {
		bucket, _ := openFS(b)
		run(b, bucket)
	})
	b.Run("fs-encrypted", func(b *testing.B) {
		bucket, _ := openFS(b)
		run(b, bucket, recipients(b, newAgeKey(b).recipient, testRecipient)...)
	})
	b.Run("s3", func(b *testing.B) {
		bucket, err := drivers.Open(context.Background(), emulators.S3(b))
		if err != nil {
			b.Fatal(err)
		}
		defer bucket.Close()
		run(b, bucket)
	})
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// cpuTime is the user and system time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleHeap records into peak the largest heap object size seen until the
// returned stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// scanSource is funcSource with a table scanner, as the postgres and mysql
// sources have; a nil scanner reads nothing (the pipeline without it).
type scanSource struct {
	funcSource
	scanner func() dumpscan.Scanner
}

func (s scanSource) DumpScanner() dumpscan.Scanner {
	if s.scanner == nil {
		return nil
	}
	return s.scanner()
}

// benchDumps are 1 GiB-ish dumps of the testgen rows in each format the
// table scanner reads: one table whose rows repeat the pool.
func benchDumps() map[string]struct {
	head, body, tail []byte
	scanner          func() dumpscan.Scanner
} {
	pool := testgen.Pool(1)
	pool = pool[:bytes.LastIndexByte(pool, '\n')+1] // whole rows, so rounds of it are too
	return map[string]struct {
		head, body, tail []byte
		scanner          func() dumpscan.Scanner
	}{
		"custom": {
			head: append(testgen.PGCustomHeader([]string{"public.bench"}, false), testgen.PGCustomBlockStart(1)...),
			body: testgen.PGCustomPool(pool), tail: testgen.PGCustomBlockEnd(),
			scanner: dumpscan.NewPostgresCustom,
		},
		"plain": {
			head: []byte("--\n-- PostgreSQL database dump\n--\n\nCOPY public.bench (id, words, hex, day, amount, note) FROM stdin;\n"),
			body: pool, tail: []byte("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n"),
			scanner: dumpscan.NewPostgresPlain,
		},
		"mariadb": {
			head: []byte("-- MariaDB dump 10.19\n"), body: testgen.MariaDBInserts(pool), tail: []byte("-- Dump completed on 2026-11-29 10:00:00\n"),
			scanner: func() dumpscan.Scanner { return dumpscan.NewMariaDB("bench") },
		},
	}
}

// BenchmarkBackupTableScan measures what the table scanner adds to a
// backup: the same 1 GiB dump to an fs repo with the scanner ("scan") and
// without it ("none"). Compare MB/cpu-s (CPU time of the whole process per
// byte): the budget is 5% more CPU.
func BenchmarkBackupTableScan(b *testing.B) {
	for format, d := range benchDumps() {
		for _, withScan := range []bool{false, true} {
			name := format + "/none"
			var scanner func() dumpscan.Scanner
			if withScan {
				name, scanner = format+"/scan", d.scanner
			}
			b.Run(name, func(b *testing.B) {
				bucket, _ := openFS(b)
				// Whole rounds of the body, so the stream is well formed.
				rounds := max(1, benchStream/len(d.body))
				src := scanSource{funcSource: funcSource{dump: func(ctx context.Context, w io.Writer) error {
					if _, err := w.Write(d.head); err != nil {
						return err
					}
					for range rounds {
						if err := testgen.WriteStream(w, d.body, int64(len(d.body)), 1<<20); err != nil {
							return err
						}
					}
					_, err := w.Write(d.tail)
					return err
				}}, scanner: scanner}
				size := int64(len(d.head)+len(d.tail)) + int64(rounds)*int64(len(d.body))
				ctx := context.Background()
				b.SetBytes(size)
				var cpu time.Duration
				for b.Loop() {
					cpu0 := cpuTime()
					m, err := archiver.Backup(ctx, bucket, src, archiver.BackupOptions{Prefix: "bench"})
					cpu += cpuTime() - cpu0
					if err != nil {
						b.Fatal(err)
					}
					if withScan && (m.Tables.Count != 1 || m.Tables.Rows == 0) {
						b.Fatalf("tables %+v", m.Tables)
					}
					b.StopTimer()
					if objs, err := bucket.List(ctx, "bench/"+m.ID+"/"); err == nil {
						for _, o := range objs {
							_ = bucket.Delete(ctx, o.Key)
						}
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(b.N)*float64(size)/1e6/cpu.Seconds(), "MB/cpu-s")
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}

// BenchmarkAgeStage is the encryption stage alone: age (ChaCha20-Poly1305
// in 64 KiB chunks) over incompressible data written in 1 MiB pieces, as
// the compressor hands it over. Its MB/s over BenchmarkBackup's stored
// bytes per second is the share of the pipeline's CPU that encryption
// adds (BenchmarkBackup/fs-encrypted measures it whole, within the noise
// of a shared machine).
func BenchmarkAgeStage(b *testing.B) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	chunk := randomBytes(3, 1<<20)
	const size = 64 << 20
	b.SetBytes(size)
	for b.Loop() {
		w, err := age.Encrypt(io.Discard, id.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBackupDumpFile backs up a real pg_dump -Fc -Z0 file, named by
// DBARCHIVE_BENCH_DUMP, with the custom-format table scanner, to an fs repo
// (a fake S3 server in this process would profile as part of the backup):
// the run to take a CPU profile of, e.g. make bench's database dumped with
// `pg_dump -Fc -Z0 -f F dbarchive_bench` and
// `go test -run '^$' -bench BenchmarkBackupDumpFile -benchtime 1x -cpuprofile cpu.out ./archiver/`.
// Without the variable it is skipped: the other benchmarks cover the
// pipeline on generated data.
func BenchmarkBackupDumpFile(b *testing.B) {
	path := os.Getenv("DBARCHIVE_BENCH_DUMP")
	if path == "" {
		b.Skip("DBARCHIVE_BENCH_DUMP names no dump file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, level := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) {
			bucket, _ := openFS(b)
			src := scanSource{funcSource: funcSource{dump: func(ctx context.Context, w io.Writer) error {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				// What sources.Command does with a dump tool's stdout.
				_, err = io.Copy(w, f)
				return err
			}}, scanner: dumpscan.NewPostgresCustom}
			b.SetBytes(fi.Size())
			var stored int64
			cpu0 := cpuTime()
			for b.Loop() {
				m, err := archiver.Backup(context.Background(), bucket, src, archiver.BackupOptions{Prefix: "bench", Level: level})
				if err != nil {
					b.Fatal(err)
				}
				stored = m.StoredSize
			}
			b.ReportMetric(float64(b.N)*float64(fi.Size())/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
			b.ReportMetric(float64(fi.Size())/float64(stored), "ratio")
		})
	}
}

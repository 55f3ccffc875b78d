package zstdcodec

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// benchInput is what the codec benchmarks compress: the file named by
// ZSTDCODEC_BENCH_INPUT (a real dump: make bench leaves bench_mixed's
// custom-format dump in $BENCH_WORKDIR/levels), or else 64 MiB of testgen's
// dump-like rows.
func benchInput(b *testing.B) []byte {
	if path := os.Getenv("ZSTDCODEC_BENCH_INPUT"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return sample(b, 64<<20)
}

// cpuTime is this process's user and system time so far: with libzstd's
// worker threads included, which a per-goroutine measure would miss.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncode compresses the input with each implementation at the
// levels, window sizes and concurrencies the backup could use. MB/cpu-s is
// the figure that decides on a loaded two-core machine (wall time there is
// the other jobs' as much as ours); ratio is input over output.
func BenchmarkEncode(b *testing.B) {
	data := benchInput(b)
	for _, impl := range []string{"go", "libzstd"} {
		newEnc, ok := encoders[impl]
		if !ok {
			continue // no cgo
		}
		for _, o := range []EncoderOptions{
			{Level: 1, Concurrency: 1, WindowLog: 21},
			{Level: 1, Concurrency: 2, WindowLog: 21},
			{Level: 2, Concurrency: 1, WindowLog: 21},
			{Level: 3, Concurrency: 1, WindowLog: 21},
			{Level: 3, Concurrency: 2, WindowLog: 21},
			{Level: 3, Concurrency: 1, WindowLog: 23},
			{Level: 3, Concurrency: 1, WindowLog: 19},
		} {
			b.Run(fmt.Sprintf("%s/level=%d/conc=%d/window=%d", impl, o.Level, o.Concurrency, o.WindowLog), func(b *testing.B) {
				enc, err := newEnc(o)
				if err != nil {
					b.Fatal(err)
				}
				defer enc.Release()
				var out countingWriter
				b.SetBytes(int64(len(data)))
				cpu0 := cpuTime()
				for b.Loop() {
					out = 0
					enc.Reset(&out)
					// 128 KiB writes: what the exec source's pipe delivers.
					for p := data; len(p) > 0; p = p[min(len(p), 128<<10):] {
						if _, err := enc.Write(p[:min(len(p), 128<<10)]); err != nil {
							b.Fatal(err)
						}
					}
					if err := enc.Close(); err != nil {
						b.Fatal(err)
					}
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(b.N)*float64(len(data))/1e6/cpu.Seconds(), "MB/cpu-s")
				b.ReportMetric(float64(len(data))/float64(out), "ratio")
			})
		}
	}
}

// BenchmarkDecode decodes the level-3 stream with each decoder.
func BenchmarkDecode(b *testing.B) {
	data := benchInput(b)
	var stream countingBuffer
	enc, err := NewGoEncoder(EncoderOptions{Level: 3, Concurrency: 1, WindowLog: 21})
	if err != nil {
		b.Fatal(err)
	}
	enc.Reset(&stream)
	if _, err := enc.Write(data); err != nil {
		b.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		b.Fatal(err)
	}
	enc.Release()
	for name, newDec := range decoders {
		for _, conc := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/conc=%d", name, conc), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				buf := make([]byte, 128<<10)
				cpu0 := cpuTime()
				for b.Loop() {
					dec, err := newDec(&readerOf{data: stream.b}, DecoderOptions{Concurrency: conc, MaxWindowLog: 30})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{dec}, buf); err != nil {
						b.Fatal(err)
					}
					dec.Close()
				}
				b.ReportMetric(float64(b.N)*float64(len(data))/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
			})
		}
	}
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

type countingBuffer struct{ b []byte }

func (c *countingBuffer) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }

// readerOf hands out data 1 MiB at a time, as the part reader does.
type readerOf struct {
	data []byte
	off  int
}

func (r *readerOf) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1<<20)], r.data[r.off:])
	r.off += n
	return n, nil
}

// Command testgen writes a synthetic dump-like stream (package testgen) to
// stdout, for tests and benchmarks of exec: sources: fast enough that it is
// never the bottleneck, or throttled to look like a slow dump tool, and able
// to fail like one (a message on stderr, a non-zero exit) after its output.
//
// It is test support; nothing ships it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/dbarchive/dbarchive/internal/testgen"
)

func main() {
	size := flag.String("size", "64MiB", "bytes to write (e.g. 20MB, 1GiB)")
	rate := flag.String("rate", "", "throttle to this many bytes per second (e.g. 2MiB); empty: as fast as possible")
	exit := flag.Int("exit", 0, "exit with this code after writing, with a message on stderr")
	seed := flag.Uint64("seed", 1, "pool seed")
	flag.Parse()
	n, err := humanize.ParseBytes(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testgen: -size:", err)
		os.Exit(2)
	}
	pool := testgen.Pool(*seed)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	var w interface{ Write([]byte) (int, error) } = out
	if *rate != "" {
		r, err := humanize.ParseBytes(*rate)
		if err != nil || r == 0 {
			fmt.Fprintln(os.Stderr, "testgen: -rate: want a positive size per second")
			os.Exit(2)
		}
		w = &throttled{w: out, flush: out.Flush, perSec: float64(r), start: time.Now()}
	}
	if err := testgen.WriteStream(w, pool, int64(n), 1<<20); err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testgen: write:", err)
		os.Exit(1)
	}
	if *exit != 0 {
		fmt.Fprintf(os.Stderr, "testgen: simulated dump failure after %d bytes: connection to server lost\n", n)
		os.Exit(*exit)
	}
}

// throttled writes in small slices and sleeps so the average rate stays at
// perSec, flushing each slice so the reader sees a steady trickle.
type throttled struct {
	w       interface{ Write([]byte) (int, error) }
	flush   func() error
	perSec  float64
	start   time.Time
	written float64
}

func (t *throttled) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		n, err := t.w.Write(p[:k])
		done += n
		if err == nil {
			err = t.flush()
		}
		if err != nil {
			return done, err
		}
		p = p[k:]
		t.written += float64(n)
		if ahead := time.Duration(t.written/t.perSec*float64(time.Second)) - time.Since(t.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return done, nil
}

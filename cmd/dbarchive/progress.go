package main

import (
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/dbarchive/dbarchive/archiver"
)

// showProgress reports p until the returned stop is called: a live bar on a
// terminal, a log line every 10 seconds otherwise (so Job logs show a slow
// backup is alive without drowning in lines).
func (g *globals) showProgress(what string, p *archiver.Progress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	var bar *progressbar.ProgressBar
	interval := 10 * time.Second
	if g.interactive {
		interval = 200 * time.Millisecond
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(g.stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionClearOnFinish(),
		)
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					_ = bar.Finish()
				}
				return
			case <-tick.C:
				read, stored := p.SourceBytes.Load(), p.StoredBytes.Load()
				if bar != nil {
					bar.Describe(fmt.Sprintf("%s: read %s, stored %s", what, humanize.IBytes(uint64(read)), humanize.IBytes(uint64(stored))))
					_ = bar.Set64(read)
					continue
				}
				elapsed := time.Since(start)
				g.log.Info(what+" progress", "read", humanize.IBytes(uint64(read)), "stored", humanize.IBytes(uint64(stored)),
					"rate", humanize.IBytes(uint64(float64(read)/elapsed.Seconds()))+"/s", "elapsed", elapsed.Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Sample is one timed run of one command, counted as a whole process tree.
type Sample struct {
	WallS float64 `json:"wall_s"`
	// DrillDownloadS and DrillRestoreS are a restore drill's own report:
	// its integrity pass and its restore into the throwaway server.
	DrillDownloadS float64 `json:"drill_download_s,omitempty"`
	DrillRestoreS  float64 `json:"drill_restore_s,omitempty"`
	// UserS and SysS come from wait4, so they include every child the
	// process reaped: pg_dump under dbarchive, each stage of a shell
	// pipeline.
	UserS float64 `json:"user_s"`
	SysS  float64 `json:"sys_s"`
	// TreeRSSMiB is wait4's ru_maxrss: the largest single process of the
	// tree, not the sum of a pipeline's stages.
	TreeRSSMiB float64 `json:"tree_peak_rss_mib"`
	// OwnRSSMiB is the top process's own VmHWM, sampled from /proc until it
	// exits: dbarchive alone, without pg_dump or the exec: generator.
	OwnRSSMiB float64 `json:"own_peak_rss_mib,omitempty"`
	// OwnAnonMiB is the largest RssAnon seen: the private memory of the
	// top process, without the pages of its executable that VmHWM counts.
	OwnAnonMiB float64 `json:"own_peak_anon_mib,omitempty"`
	// ServerCPUS is the CPU time the S3 server spent during the run; it is
	// not part of UserS/SysS of either side.
	ServerCPUS float64 `json:"server_cpu_s,omitempty"`
	// DBCPUS is the CPU time PostgreSQL's processes spent during the run
	// (the backend serving COPY to pg_dump, or the restore), which neither
	// side's own figure includes.
	DBCPUS float64 `json:"db_server_cpu_s"`
	// MachineBusy is the fraction of all CPUs busy during the run, from
	// /proc/stat: everything, other work on the machine included.
	MachineBusy float64 `json:"machine_busy"`
	BytesIn     int64   `json:"bytes_in"`
	BytesOut    int64   `json:"bytes_out"`
}

// CPUS is user plus system time.
func (s Sample) CPUS() float64 { return s.UserS + s.SysS }

// command is one process to time.
type command struct {
	args []string
	env  []string // added to the bench's own environment
	// stdout receives the process's standard output; nil sends it to
	// /dev/null, as `> /dev/null` would.
	stdout io.Writer
}

// shell runs script under bash with pipefail, so a failing pg_dump fails
// the pipeline the way a careful user's script would.
func shell(script string, env ...string) command {
	return command{args: []string{"bash", "-o", "pipefail", "-ec", script}, env: env}
}

// runTimed starts c, waits for it and returns its sample. serverPID, when
// non-zero, is a process whose CPU time over the run is recorded too.
func runTimed(ctx context.Context, c command, serverPID int) (Sample, error) {
	cmd := exec.CommandContext(ctx, c.args[0], c.args[1:]...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout = c.stdout
	var stderr tailBuffer
	cmd.Stderr = &stderr
	srvBefore := procCPU(serverPID)
	dbBefore := commCPU("postgres")
	busyBefore, totalBefore := cpuTicks()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Sample{}, fmt.Errorf("start %s: %w", c.args[0], err)
	}
	hwm := watchHWM(cmd.Process.Pid)
	err := cmd.Wait()
	wall := time.Since(start)
	own, anon := hwm()
	dbAfter := commCPU("postgres")
	busyAfter, totalAfter := cpuTicks()
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w\n%s", strings.Join(c.args, " "), err, stderr.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	s := Sample{WallS: wall.Seconds(), OwnRSSMiB: own, OwnAnonMiB: anon, DBCPUS: dbAfter - dbBefore}
	if totalAfter > totalBefore {
		s.MachineBusy = float64(busyAfter-busyBefore) / float64(totalAfter-totalBefore)
	}
	if ru != nil {
		s.UserS = tvSeconds(ru.Utime)
		s.SysS = tvSeconds(ru.Stime)
		s.TreeRSSMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	if serverPID != 0 {
		s.ServerCPUS = procCPU(serverPID) - srvBefore
	}
	return s, nil
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// watchHWM polls the process's VmHWM (its own peak RSS, which only grows)
// and RssAnon until the returned function is called after the process was
// reaped, and returns the peaks seen in MiB. The peak of the final 10 ms of a run
// can be missed; the pipeline's buffers are all allocated long before then.
func watchHWM(pid int) func() (hwm, anon float64) {
	var (
		mu          sync.Mutex
		peak, pAnon float64
		done        = make(chan struct{})
		quit        = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, a, ok := readHWM(pid); ok {
				mu.Lock()
				peak, pAnon = max(peak, v), max(pAnon, a)
				mu.Unlock()
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (float64, float64) {
		close(quit)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak, pAnon
	}
}

func readHWM(pid int) (hwm, anon float64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	kib := func(v string) float64 {
		x, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		return x / 1024
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "VmHWM:"); found {
			hwm, ok = kib(v), true
		} else if v, found := strings.CutPrefix(sc.Text(), "RssAnon:"); found {
			anon = kib(v)
		}
	}
	return hwm, anon, ok
}

// procCPU is the user+system CPU seconds of a live process (0 when pid is 0
// or gone). /proc reports clock ticks of USER_HZ, which is 100 on Linux.
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after it are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// commCPU sums the CPU seconds of every process named comm, with the
// children each has reaped: PostgreSQL's postmaster collects the time of
// the backends that exited, so the sum stays whole across a run whose
// backend comes and goes.
func commCPU(comm string) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open || string(b[open+1:close]) != comm {
			continue
		}
		f := strings.Fields(string(b[close+1:]))
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] { // utime stime cutime cstime
			x, _ := strconv.ParseFloat(v, 64)
			total += x
		}
	}
	return total / 100
}

// cpuTicks returns the busy and total ticks of all CPUs from /proc/stat.
func cpuTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		x, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy, total
}

// tailBuffer keeps the last 8 KiB written to it: enough of a failing
// tool's stderr to say why, without holding a chatty tool's whole log.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		t.buf = t.buf[len(t.buf)-8<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// median of xs (0 for none); the mean of the middle two for an even count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// pairRatio is the median of a[i]/b[i] over the runs both have: runs i of
// A and B were taken back to back, so the machine's drift cancels in each
// quotient.
func pairRatio(a, b []float64) float64 {
	var q []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			q = append(q, a[i]/b[i])
		}
	}
	return median(q)
}

// runOutput runs a helper command (untimed) and returns its trimmed stdout.
func runOutput(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		line := strings.Join(args, " ")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		return "", fmt.Errorf("%s %s: %w\n%s", name, line, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

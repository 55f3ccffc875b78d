package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OperatorResult is what BenchmarkReconcile10000 in controller/ reports:
// 10,000 DatabaseBackups in 100 namespaces on envtest until every CronJob
// exists, with the operator as its own process.
type OperatorResult struct {
	Ran    bool   `json:"ran"`
	Reason string `json:"reason,omitempty"` // why it did not run
	// Metrics are the medians over the runs of the benchmark's
	// ReportMetric values by unit, e.g. "s/all-cronjobs",
	// "p50-ms/reconcile", "p99-ms/reconcile", "requests/reconcile",
	// "peak-rss-MiB".
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Runs are each run's values, Lines each run's result line.
	Runs  []map[string]float64 `json:"runs,omitempty"`
	Lines []string             `json:"lines,omitempty"`
	// Load is /proc/loadavg before and after: the machine may be shared.
	LoadStart string  `json:"load_start,omitempty"`
	LoadEnd   string  `json:"load_end,omitempty"`
	WallS     float64 `json:"wall_s,omitempty"` // go test, compile included
	// Floor is BenchmarkAPIFloor10000/required on the same kind of API
	// server, run after the operator's runs: the writes the design requires
	// with no operator, the operator's lower bound on this machine
	// (bench/OPERATOR.md).
	Floor *OperatorResult `json:"floor,omitempty"`
}

const (
	operatorBench = "BenchmarkReconcile10000"
	floorBench    = "BenchmarkAPIFloor10000/required"
)

// runOperator runs the controller's benchmark runs times (each run starts
// its own API server). Its envtest needs kube-apiserver and etcd in bin/k8s
// (make envtest-assets).
func (b *bench) runOperator(ctx context.Context, runs int) OperatorResult {
	src, err := os.ReadFile(filepath.Join(b.root, "controller", "bench_test.go"))
	if err != nil || !strings.Contains(string(src), "func "+operatorBench+"(") {
		return OperatorResult{Reason: "controller/bench_test.go has no " + operatorBench + " yet"}
	}
	r := b.goBench(ctx, operatorBench, "^"+operatorBench+"$", runs)
	if r.Ran && strings.Contains(string(src), "func BenchmarkAPIFloor10000(") {
		floor := b.goBench(ctx, floorBench, "^BenchmarkAPIFloor10000$/^required$", runs)
		r.Floor = &floor
	}
	return r
}

// goBench runs the controller's benchmark name (selected by pattern)
// runs times, one iteration each, and takes the medians of its metrics.
func (b *bench) goBench(ctx context.Context, name, pattern string, runs int) OperatorResult {
	count := strconv.Itoa(runs)
	logf("operator: go test ./controller/ -bench %s -benchtime=1x -count=%s", pattern, count)
	start := time.Now()
	r := OperatorResult{LoadStart: loadavg()}
	cmd := exec.CommandContext(ctx, "go", "test", "-C", b.root, "./controller/", "-run", "^$", "-bench", pattern, "-benchtime=1x", "-count="+count, "-timeout=2h")
	out, err := cmd.CombinedOutput()
	r.WallS, r.LoadEnd = time.Since(start).Seconds(), loadavg()
	if err != nil {
		r.Reason = fmt.Sprintf("go test failed: %v: %s", err, lastLines(string(out), 15))
		return r
	}
	r.Lines, r.Runs = parseBenchLines(string(out), name)
	if len(r.Runs) == 0 {
		r.Reason = "no result line in the output: " + lastLines(string(out), 15)
		return r
	}
	r.Metrics = map[string]float64{}
	for unit := range r.Runs[0] {
		var xs []float64
		for _, m := range r.Runs {
			xs = append(xs, m[unit])
		}
		r.Metrics[unit] = median(xs)
	}
	r.Ran = true
	return r
}

// parseBenchLines finds the result lines of benchmark name in go test
// output ("BenchmarkX-2  1  123 ns/op  4.5 s/all-cronjobs …") and returns
// them with their value/unit pairs after the iteration count.
func parseBenchLines(out, name string) ([]string, []map[string]float64) {
	var lines []string
	var runs []map[string]float64
	for l := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with the name
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				m = nil
				break
			}
			m[f[i+1]] = v
		}
		if m != nil {
			lines, runs = append(lines, strings.TrimSpace(l)), append(runs, m)
		}
	}
	return lines, runs
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

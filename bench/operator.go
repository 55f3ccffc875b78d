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

// OperatorResult is what BenchmarkReconcile1000 in controller/ reports:
// 1,000 DatabaseBackups in 20 namespaces on envtest until every CronJob
// exists.
type OperatorResult struct {
	Ran    bool   `json:"ran"`
	Reason string `json:"reason,omitempty"` // why it did not run
	// Metrics are the benchmark's ReportMetric values by unit, e.g.
	// "s/1000-backups", "p50-ms/reconcile", "p99-ms/reconcile".
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Line    string             `json:"line,omitempty"`
	WallS   float64            `json:"wall_s,omitempty"` // go test, compile included
}

const operatorBench = "BenchmarkReconcile1000"

// runOperator runs the controller's benchmark once. Its envtest needs
// kube-apiserver and etcd in bin/k8s (make envtest-assets).
func (b *bench) runOperator(ctx context.Context) OperatorResult {
	src, err := os.ReadFile(filepath.Join(b.root, "controller", "bench_test.go"))
	if err != nil || !strings.Contains(string(src), "func "+operatorBench+"(") {
		return OperatorResult{Reason: "controller/bench_test.go has no " + operatorBench + " yet"}
	}
	logf("operator: go test ./controller/ -bench %s -benchtime=1x", operatorBench)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "test", "-C", b.root, "./controller/", "-run", "^$", "-bench", "^"+operatorBench+"$", "-benchtime=1x", "-count=1")
	out, err := cmd.CombinedOutput()
	r := OperatorResult{WallS: time.Since(start).Seconds()}
	if err != nil {
		r.Reason = fmt.Sprintf("go test failed: %v: %s", err, lastLines(string(out), 15))
		return r
	}
	line, metrics, ok := parseBenchLine(string(out), operatorBench)
	if !ok {
		r.Reason = "no result line in the output: " + lastLines(string(out), 15)
		return r
	}
	r.Ran, r.Line, r.Metrics = true, line, metrics
	return r
}

// parseBenchLine finds the result line of benchmark name in go test output
// ("BenchmarkX-2  1  123 ns/op  4.5 s/1000-backups …") and returns its
// value/unit pairs after the iteration count.
func parseBenchLine(out, name string) (string, map[string]float64, bool) {
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
				return "", nil, false
			}
			m[f[i+1]] = v
		}
		return strings.TrimSpace(l), m, true
	}
	return "", nil, false
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

package main

import (
	"context"
	"math"
	"os"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The ratio must be the median of per-round quotients, not the quotient of
// medians: a slow round slows both commands of that round.
func TestPairRatio(t *testing.T) {
	a := []float64{10, 20, 11}
	b := []float64{10, 20, 10}
	if got := pairRatio(a, b); got != 1 {
		t.Errorf("pairRatio = %v, want 1 (quotients 1, 1, 1.1)", got)
	}
	if got := pairRatio([]float64{1, 2}, []float64{0, 4}); got != 0.5 {
		t.Errorf("pairRatio skipping a zero divisor = %v, want 0.5", got)
	}
}

func TestParseBenchLines(t *testing.T) {
	out := `goos: linux
BenchmarkReconcile10000 starting envtest
BenchmarkReconcile10000-2   	       1	12345678901 ns/op	        12.34 s/all-cronjobs	         3.210 p50-ms/reconcile	        45.60 p99-ms/reconcile	      10042 reconciles	         0 errors
BenchmarkReconcile10000-2   	       1	22345678901 ns/op	        22.34 s/all-cronjobs	         4.210 p50-ms/reconcile	        55.60 p99-ms/reconcile	      10001 reconciles	         0 errors
BenchmarkReconcile10000Other-2 1 5 ns/op 1 s/all-cronjobs
PASS`
	lines, runs := parseBenchLines(out, "BenchmarkReconcile10000")
	if len(runs) != 2 || len(lines) != 2 {
		t.Fatalf("found %d runs, %d lines; want 2 (the longer name must not match): %q", len(runs), len(lines), lines)
	}
	if m := runs[0]; m["s/all-cronjobs"] != 12.34 || m["p99-ms/reconcile"] != 45.6 || m["reconciles"] != 10042 {
		t.Errorf("first run = %v from %q", m, lines[0])
	}
	if m := runs[1]; m["s/all-cronjobs"] != 22.34 {
		t.Errorf("second run = %v from %q", m, lines[1])
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		v      float64
		ran    bool
		strict bool
		want   string
	}{
		{1.05, true, false, "PASS"},
		{1.0501, true, false, "MISS"},
		{1.05, true, true, "MISS"},
		{0.5, false, false, "NOT RUN"},
		{math.NaN(), true, false, "NOT RUN"},
	} {
		if got := judge("x", c.v, c.ran, 1.05, "x", c.strict, "").Status; got != c.want {
			t.Errorf("judge(%v, ran=%v, strict=%v) = %s, want %s", c.v, c.ran, c.strict, got, c.want)
		}
	}
}

func TestTargetsUseOwnRSSOfDbarchiveOnly(t *testing.T) {
	results := map[string]*Result{
		"peer_pipeline":  {Samples: []Sample{{TreeRSSMiB: 500}}},
		"dbarchive_s3":   {Samples: []Sample{{OwnRSSMiB: 60, TreeRSSMiB: 61}}, Ratios: map[string]float64{}},
		"dbarchive_fs":   {Samples: []Sample{{OwnRSSMiB: 97}}, Ratios: map[string]float64{}},
		"dbarchive_exec": {Samples: []Sample{{OwnRSSMiB: 10}}, Ratios: map[string]float64{}},
	}
	for _, tg := range targets(results, [2]string{"a", "b"}, nil, 0) {
		if tg.Name == "peak RSS of dbarchive (largest run of any scenario)" {
			if tg.Value != 97 || tg.Status != "MISS" || tg.Detail != "dbarchive_fs" {
				t.Errorf("peak RSS target = %+v, want 97 MiB from dbarchive_fs, MISS", tg)
			}
			return
		}
	}
	t.Fatal("no peak RSS target")
}

func TestManifestSizes(t *testing.T) {
	id, in, stored, err := manifestSizes([]byte(`{"id":"20260101T000000.000Z-1","uncompressedSize":100,"storedSize":25,"partCount":1}`))
	if err != nil || id != "20260101T000000.000Z-1" || in != 100 || stored != 25 {
		t.Errorf("manifestSizes = %q %d %d %v", id, in, stored, err)
	}
	if _, _, _, err := manifestSizes([]byte("backup failed")); err == nil {
		t.Error("no error for output that is not a manifest")
	}
}

// runTimed must count the CPU of the children a shell reaps, as it does
// for pg_dump under dbarchive and the stages of a pipeline.
func TestRunTimedCountsChildren(t *testing.T) {
	s, err := runTimed(context.Background(), shell(`sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done' | cat`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.UserS+s.SysS < 0.05 || s.WallS <= 0 || s.TreeRSSMiB <= 0 {
		t.Errorf("sample %+v: the busy child's CPU or RSS is missing", s)
	}
	if _, err := runTimed(context.Background(), shell("false | cat"), 0); err == nil {
		t.Error("a failing pipeline stage did not fail the run (pipefail)")
	}
}

func TestProcReaders(t *testing.T) {
	if v, anon, ok := readHWM(os.Getpid()); !ok || v <= 0 || anon <= 0 || anon > v {
		t.Errorf("readHWM(self) = %v, %v, %v", v, anon, ok)
	}
	if procCPU(os.Getpid()) < 0 || procCPU(0) != 0 {
		t.Error("procCPU out of range")
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one scenario's medians over its recorded runs.
type Result struct {
	Name    string  `json:"name"`
	Command string  `json:"command"`
	Runs    int     `json:"runs"`
	WallS   float64 `json:"median_wall_s"`
	UserS   float64 `json:"median_user_s"`
	SysS    float64 `json:"median_sys_s"`
	CPUS    float64 `json:"median_cpu_s"`
	// PeakRSSMiB is dbarchive's own peak for dbarchive scenarios, else the
	// largest process of the pipeline (see Sample).
	PeakRSSMiB float64 `json:"median_peak_rss_mib"`
	TreeRSSMiB float64 `json:"median_tree_peak_rss_mib"`
	AnonMiB    float64 `json:"median_own_peak_anon_mib,omitempty"`
	ServerCPUS float64 `json:"median_server_cpu_s"`
	DBCPUS     float64 `json:"median_db_server_cpu_s"`
	Busy       float64 `json:"median_machine_busy"`
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	// Ratios are medians of run-by-run quotients against other scenarios,
	// keyed "<metric>_vs_<scenario>".
	Ratios  map[string]float64 `json:"ratios,omitempty"`
	Samples []Sample           `json:"samples"`
}

func summarize(name, title string, ss []Sample) *Result {
	col := func(f func(Sample) float64) float64 {
		var xs []float64
		for _, s := range ss {
			xs = append(xs, f(s))
		}
		return median(xs)
	}
	r := &Result{Name: name, Command: title, Runs: len(ss), Samples: ss, Ratios: map[string]float64{}}
	r.WallS = col(func(s Sample) float64 { return s.WallS })
	r.UserS = col(func(s Sample) float64 { return s.UserS })
	r.SysS = col(func(s Sample) float64 { return s.SysS })
	r.CPUS = col(Sample.CPUS)
	r.TreeRSSMiB = col(func(s Sample) float64 { return s.TreeRSSMiB })
	r.PeakRSSMiB = col(func(s Sample) float64 {
		if s.OwnRSSMiB > 0 {
			return s.OwnRSSMiB
		}
		return s.TreeRSSMiB
	})
	r.AnonMiB = col(func(s Sample) float64 { return s.OwnAnonMiB })
	r.ServerCPUS = col(func(s Sample) float64 { return s.ServerCPUS })
	r.DBCPUS = col(func(s Sample) float64 { return s.DBCPUS })
	r.Busy = col(func(s Sample) float64 { return s.MachineBusy })
	r.BytesIn = int64(col(func(s Sample) float64 { return float64(s.BytesIn) }))
	r.BytesOut = int64(col(func(s Sample) float64 { return float64(s.BytesOut) }))
	return r
}

// metrics the ratios and targets compare.
var metrics = map[string]func(Sample) float64{
	"wall":   func(s Sample) float64 { return s.WallS },
	"cpu":    Sample.CPUS,
	"stored": func(s Sample) float64 { return float64(s.BytesOut) },
	"rss":    func(s Sample) float64 { return s.OwnRSSMiB },
}

type ratioSpec struct{ a, metric, b string }

// ratioSpecs are the pairs of the same round that the report compares.
func ratioSpecs(rssSizes [2]string) []ratioSpec {
	return []ratioSpec{
		{"dbarchive_s3", "wall", "limit"},
		{"dbarchive_s3", "wall", "peer_pipeline"},
		{"dbarchive_s3", "wall", "peer_file_copy"},
		{"dbarchive_s3", "cpu", "peer_pipeline"},
		{"dbarchive_s3", "stored", "peer_pipeline"},
		{"dbarchive_fs", "wall", "limit"},
		{"dbarchive_fs", "cpu", "peer_pipeline"},
		{"peer_pipeline", "wall", "limit"},
		{"peer_file_copy", "wall", "limit"},
		{"dbarchive_restore", "wall", "peer_restore"},
		{"dbarchive_restore", "cpu", "peer_restore"},
		{"dbarchive_restore_resource", "wall", "dbarchive_restore"},
		{"dbarchive_exec_" + rssSizes[1], "rss", "dbarchive_exec_" + rssSizes[0]},
	}
}

func addRatios(results map[string]*Result, specs []ratioSpec) {
	for _, sp := range specs {
		a, b := results[sp.a], results[sp.b]
		if a == nil || b == nil {
			continue
		}
		f := metrics[sp.metric]
		var xa, xb []float64
		for _, s := range a.Samples {
			xa = append(xa, f(s))
		}
		for _, s := range b.Samples {
			xb = append(xb, f(s))
		}
		a.Ratios[sp.metric+"_vs_"+sp.b] = pairRatio(xa, xb)
	}
}

// Target is one of issue 5's goals, judged on this run.
type Target struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"`
	Strict bool    `json:"strict,omitempty"` // value must be below, not at most, the limit
	// Status is PASS, MISS, or NOT RUN when a scenario it needs is absent.
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func judge(name string, v float64, ok bool, limit float64, unit string, strict bool, detail string) Target {
	t := Target{Name: name, Value: v, Limit: limit, Unit: unit, Strict: strict, Detail: detail}
	switch {
	case !ok || math.IsNaN(v):
		t.Status = "NOT RUN"
	case v < limit || (!strict && v <= limit):
		t.Status = "PASS"
	default:
		t.Status = "MISS"
	}
	return t
}

func targets(results map[string]*Result, rssSizes [2]string, op *OperatorResult, sha256PerByte float64) []Target {
	ratio := func(a, key string) (float64, bool) {
		r := results[a]
		if r == nil {
			return 0, false
		}
		v, ok := r.Ratios[key]
		return v, ok
	}
	var ts []Target
	v, ok := ratio("dbarchive_s3", "wall_vs_limit")
	ts = append(ts, judge("backup to S3: wall / limit (pg_dump -Fc -Z0 > /dev/null)", v, ok, 1.05, "x", false, ""))
	v, ok = ratio("dbarchive_s3", "wall_vs_peer_pipeline")
	ts = append(ts, judge("backup to S3: wall / shell pipeline", v, ok, 0.95, "x", false, ""))
	v, ok = ratio("dbarchive_s3", "stored_vs_peer_pipeline")
	ts = append(ts, judge("backup to S3: stored size / shell pipeline's", v, ok, 1.0, "x", false, ""))
	v, ok = ratio("dbarchive_s3", "cpu_vs_peer_pipeline")
	ts = append(ts, judge("backup to S3: CPU seconds / shell pipeline's", v, ok, 1.0, "x", false, ""))

	// Peak RSS: the largest own peak of any dbarchive scenario.
	peak, which := 0.0, ""
	for name, r := range results {
		if strings.HasPrefix(name, "dbarchive_") {
			for _, s := range r.Samples {
				if s.OwnRSSMiB > peak {
					peak, which = s.OwnRSSMiB, name
				}
			}
		}
	}
	ts = append(ts, judge("peak RSS of dbarchive (largest run of any scenario)", peak, which != "", 96, "MiB", false, which))
	v, ok = ratio("dbarchive_exec_"+rssSizes[1], "rss_vs_dbarchive_exec_"+rssSizes[0])
	ts = append(ts, judge(fmt.Sprintf("peak RSS: %s stream / %s stream", rssSizes[1], rssSizes[0]), v, ok, 1.10, "x", false, ""))
	v, ok = ratio("dbarchive_restore", "wall_vs_peer_restore")
	ts = append(ts, judge("restore: wall / peer restore", v, ok, 1.0, "x", false, ""))
	v, ok = ratio("dbarchive_restore", "cpu_vs_peer_restore")
	ts = append(ts, judge("restore: CPU seconds / peer restore's", v, ok, 1.0, "x", false, "the peer checks nothing; see the next line"))
	v, bound, ok := restoreBoundRatio(results["dbarchive_restore"], results["peer_restore"], sha256PerByte)
	ts = append(ts, judge("restore: CPU seconds / lower bound with every check (peer + sha256 of stored object twice and of the stream)", v, ok, 1.10, "x", false,
		fmt.Sprintf("bound %.2f CPU-s: sha256 %.2f CPU-s per GiB here", bound, sha256PerByte*(1<<30))))
	v, ok = ratio("dbarchive_restore_resource", "wall_vs_dbarchive_restore")
	ts = append(ts, judge("restore through a DatabaseRestore: wall / dbarchive restore", v, ok, 1.10, "x", false, ""))
	if op != nil {
		v, ok := op.Metrics["s/all-cronjobs"]
		detail := op.Reason
		rssDetail := ""
		if op.Ran {
			m := op.Metrics
			detail = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms per reconcile; %.2f API requests (%.2f writes) per reconcile; CPU s: operator %.1f, kube-apiserver+etcd %.1f; median of %d runs, load average %s → %s",
				m["p50-ms/reconcile"], m["p99-ms/reconcile"], m["requests/reconcile"], m["writes/reconcile"], m["operator-cpu-s"], m["apiserver+etcd-cpu-s"], len(op.Runs), op.LoadStart, op.LoadEnd)
			rssDetail = fmt.Sprintf("VmHWM of the operator process; its anonymous memory peaked at %.1f MiB", m["peak-anon-MiB"])
		}
		ts = append(ts, judge("operator: 10,000 DatabaseBackups in 100 namespaces until every CronJob exists", v, op.Ran && ok, 60, "s", true, detail))
		if f := op.Floor; f != nil {
			// The bound: kube-apiserver and etcd's CPU for the required
			// writes alone, spread over every CPU of the machine.
			cpu, ok := f.Metrics["apiserver+etcd-cpu-s"]
			bound := cpu / float64(runtime.NumCPU())
			ts = append(ts, judge("operator: lower bound (kube-apiserver+etcd CPU-s of the required writes with no operator / CPUs)", bound, f.Ran && ok, 60, "s", true,
				fmt.Sprintf("%.1f CPU-s on %d CPUs; the floor itself took %.1f s; the operator %.2fx the bound (bench/OPERATOR.md)", cpu, runtime.NumCPU(), f.Metrics["s/all-cronjobs"], v/bound)))
		}
		v, ok = op.Metrics["peak-rss-MiB"]
		ts = append(ts, judge("operator: peak RSS with 10,000 DatabaseBackups", v, op.Ran && ok, 256, "MiB", true, rssDetail))
	}
	return ts
}

// report is everything results.json holds.
type report struct {
	Date     string            `json:"date"`
	Scale    string            `json:"scale"`
	Runs     int               `json:"runs"`
	RSSRuns  int               `json:"rss_runs"`
	Warmup   int               `json:"warmup_runs"`
	Machine  machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Dataset  *dataset          `json:"dataset,omitempty"`
	Results  []*Result         `json:"scenarios"`
	Operator *OperatorResult   `json:"operator,omitempty"`
	// SHA256CPUPerGiB is this machine's sha256 cost, measured for the
	// restore's bound (bound.go); 0 when the restore group did not run.
	SHA256CPUPerGiB float64  `json:"sha256_cpu_s_per_gib,omitempty"`
	Targets         []Target `json:"targets"`
	ElapsedS        float64  `json:"elapsed_s"`
}

type machine struct {
	NProc     int    `json:"nproc"`
	CPU       string `json:"cpu"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	// LoadAvg is /proc/loadavg at the start and end: other work on the
	// machine shows here.
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

func readMachine() machine {
	m := machine{NProc: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMiB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadStart = loadavg()
	return m
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func (b *bench) versions(ctx context.Context) map[string]string {
	first := func(name string, args ...string) string {
		out, err := runOutput(ctx, nil, name, args...)
		if err != nil {
			return "unavailable"
		}
		return strings.SplitN(out, "\n", 2)[0]
	}
	v := map[string]string{
		"go":      first("go", "version"),
		"pg_dump": first("pg_dump", "--version"),
		"zstd":    first("zstd", "--version"),
		// What dbarchive's cgo build links (dbarchive-purego: klauspost).
		"libzstd":   first("pkg-config", "--modversion", "libzstd"),
		"dbarchive": b.version,
	}
	if b.rclone != "" {
		v["rclone"] = "github.com/rclone/rclone " + rcloneVersion + " (it says: " + first(b.rclone, "version") + ")"
	}
	if s, err := psql(ctx, "postgres", "SHOW server_version"); err == nil {
		v["postgresql server"] = s
	}
	return v
}

func mib(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/(1<<20))
}

// writeTable prints the scenarios and targets; md selects Markdown.
func writeTable(w io.Writer, rep *report, md bool) {
	head := []string{"scenario", "runs", "wall s", "user s", "sys s", "CPU s", "peak RSS MiB", "anon MiB", "in MiB", "out MiB", "S3 srv CPU s", "PG CPU s", "busy %", "ratios (median of pairs)"}
	rows := [][]string{}
	for _, r := range rep.Results {
		var rs []string
		for _, k := range slices.Sorted(maps.Keys(r.Ratios)) {
			rs = append(rs, fmt.Sprintf("%s %.3f", k, r.Ratios[k]))
		}
		rows = append(rows, []string{r.Name, fmt.Sprint(r.Runs), f2(r.WallS), f2(r.UserS), f2(r.SysS), f2(r.CPUS), f1(r.PeakRSSMiB), anonCell(r.AnonMiB),
			mib(r.BytesIn), mib(r.BytesOut), f2(r.ServerCPUS), f2(r.DBCPUS), fmt.Sprintf("%.0f", 100*r.Busy), strings.Join(rs, ", ")})
	}
	if md {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if md {
		fmt.Fprintf(w, "| target | value | limit | result | detail |\n|---|---|---|---|---|\n")
	}
	for _, t := range rep.Targets {
		cmp := "≤"
		if t.Strict {
			cmp = "<"
		}
		val := fmt.Sprintf("%.3f %s", t.Value, t.Unit)
		if t.Status == "NOT RUN" {
			val = "-"
		}
		if md {
			fmt.Fprintf(w, "| %s | %s | %s %g %s | **%s** | %s |\n", t.Name, val, cmp, t.Limit, t.Unit, t.Status, t.Detail)
		} else {
			fmt.Fprintf(w, "%-7s %-62s %14s (%s %g %s) %s\n", t.Status, t.Name, val, cmp, t.Limit, t.Unit, t.Detail)
		}
	}
}

func anonCell(v float64) string {
	if v == 0 {
		return "-"
	}
	return f1(v)
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func writeMarkdown(path string, rep *report) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Benchmark results\n\nWritten by `make bench` (`go run ./bench`) on %s; scale `%s`, %d warm-up round(s) then %d measured rounds (%d for the memory scenarios), took %s.\n",
		rep.Date, rep.Scale, rep.Warmup, rep.Runs, rep.RSSRuns, (time.Duration(rep.ElapsedS) * time.Second).String())
	fmt.Fprintf(&sb, "Each figure is the median over the rounds; each ratio is the median of run-by-run quotients of two commands run back to back in the same round.\n\n")
	fmt.Fprintf(&sb, "## Machine\n\n- %d CPUs: %s\n- memory: %d MiB\n- kernel: %s\n- load average at start / end: %s / %s\n\n",
		rep.Machine.NProc, rep.Machine.CPU, rep.Machine.MemoryMiB, rep.Machine.Kernel, rep.Machine.LoadStart, rep.Machine.LoadEnd)
	fmt.Fprintf(&sb, "## Versions\n\n")
	for _, k := range []string{"dbarchive", "go", "pg_dump", "postgresql server", "zstd", "rclone"} {
		if v, ok := rep.Versions[k]; ok {
			fmt.Fprintf(&sb, "- %s: `%s`\n", k, v)
		}
	}
	if d := rep.Dataset; d != nil {
		fmt.Fprintf(&sb, "\n## Data set\n\n- database `%s`: %s on disk (%s), %s\n- plain dump (`pg_dump -Fp`): %s MiB; `zstd -3`: %s MiB; ratio **%.2f**\n",
			d.DB, mib(d.SizeBytes)+" MiB", d.Recipe, d.Rows, mib(d.PlainBytes), mib(d.ZstdBytes), d.Ratio)
	}
	fmt.Fprintf(&sb, "\n## Scenarios\n\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&sb, "- `%s`: `%s`\n", r.Name, r.Command)
	}
	fmt.Fprintf(&sb, "\nCPU is user+system of the whole process tree (pg_dump included on every side; the PostgreSQL server and the S3 server are not, the S3 server's own CPU is the *S3 srv CPU* column, PostgreSQL's the *PG CPU* column). *busy %%* is the share of all the machine's CPUs busy during the run, other work included: near 100 the commands compete for the CPUs, and the machine, not the tool, bounds the wall time. Peak RSS is dbarchive's own VmHWM for dbarchive rows and the largest single process of the pipeline for the others; *anon MiB* is dbarchive's peak RssAnon, its private memory without the pages of its executable (which VmHWM includes).\n\n")
	writeTable(&sb, rep, true)
	if op := rep.Operator; op != nil {
		fmt.Fprintf(&sb, "\n## Operator\n\n")
		if op.Ran {
			fmt.Fprintf(&sb, "`go test ./controller/ -run '^$' -bench %s -benchtime=1x -count=%d` (the operator runs as its own process; peak RSS is its VmHWM; load average %s before, %s after):\n\n```\n%s\n```\n",
				operatorBench, len(op.Runs), op.LoadStart, op.LoadEnd, strings.Join(op.Lines, "\n"))
		} else {
			fmt.Fprintf(&sb, "Not run: %s\n", op.Reason)
		}
		if f := op.Floor; f != nil && f.Ran {
			fmt.Fprintf(&sb, "\nThe floor, `%s`: the writes the design requires (ServiceAccount, Role, RoleBinding, CronJob, status) with a plain client and no operator (load average %s before, %s after; bench/OPERATOR.md has the analysis):\n\n```\n%s\n```\n",
				floorBench, f.LoadStart, f.LoadEnd, strings.Join(f.Lines, "\n"))
		} else if f != nil {
			fmt.Fprintf(&sb, "\nThe floor, `%s`, did not run: %s\n", floorBench, f.Reason)
		}
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

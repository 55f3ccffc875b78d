// Command bench measures dbarchive side by side with what users run
// instead (issue 5), and is what `make bench` runs:
//
//   - the limit, pg_dump -Fc -Z0 > /dev/null; the shell pipeline pg_dump |
//     zstd -3 -T0 | rclone rcat; pg_dump -Fc to a file then rclone copy; and
//     dbarchive backup to an S3 endpoint and to a local repo;
//   - dbarchive restore against rclone cat | zstd -d | pg_restore, and the
//     same restore through a DatabaseRestore (the restore job on envtest);
//   - dbarchive's peak memory for a small and a large exec: stream;
//   - the operator's BenchmarkReconcile10000 on envtest (runs times).
//
// It builds what it needs: a PostgreSQL data set (kept between runs, marked
// by a comment on the database), dbarchive and the exec: generator, and the
// pinned rclone into bin/, which serves S3 on a loopback port over a local
// directory (rclone serve s3) and is the peer's uploader. Every command is
// timed as a whole process; rounds run every scenario once, back to back,
// and ratios are medians of the quotients within a round so machine drift
// cancels. It prints a table and writes bench/results.json and
// bench/RESULTS.md (bench/results-operator.json and RESULTS-operator.md
// when only the operator group runs).
//
// It is a tool for people: nothing imports it and make test does not run
// it. It must only ever drop databases whose names start with
// dbarchive_bench, and only touch files in its work directory and its two
// result files.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
)

type bench struct {
	root, work string
	scale      scaleSpec

	version, dbarchive, testgen, rclone string
	dbarchivePure                       string // built with CGO_ENABLED=0: the pure-Go zstd

	data       dataset
	srv        *s3Server
	dbaBackup  backupRef // the newest dbarchive backup on S3, for restore
	peerObject string    // the newest pipeline object, for restore
	dumpSize   int64     // the -Fc -Z0 dump's size (median)
	resRestore *resourceRestore
}

var started = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// skipped names the scenarios -skip leaves out of every group.
var skipped map[string]bool

// without drops the skipped scenarios from a group.
func without(group []scenario) []scenario {
	var out []scenario
	for _, s := range group {
		if !skipped[s.name] {
			out = append(out, s)
		}
	}
	return out
}

var allGroups = []string{"backup", "restore", "rss", "levels", "operator"}

func main() {
	scaleName := flag.String("scale", envOr("BENCH_SCALE", "full"), "data set: full (~1 GiB on disk) or small (~100 MB, for working on the bench) [BENCH_SCALE]")
	runs := flag.Int("runs", envInt("BENCH_RUNS", 3), "measured rounds of the backup and restore groups, after the warm-up [BENCH_RUNS]")
	rssRuns := flag.Int("rss-runs", envInt("BENCH_RSS_RUNS", 2), "measured rounds of the memory group (an 8 GiB run takes a minute) [BENCH_RSS_RUNS]")
	warmup := flag.Int("warmup", envInt("BENCH_WARMUP", 1), "unrecorded rounds before the measured ones [BENCH_WARMUP]")
	only := flag.String("only", envOr("BENCH_ONLY", strings.Join(allGroups, ",")), "groups to run: "+strings.Join(allGroups, ",")+" (or dataset: only build the data set) [BENCH_ONLY]")
	work := flag.String("workdir", envOr("BENCH_WORKDIR", filepath.Join(os.TempDir(), "dbarchive-bench")), "scratch directory: served S3 objects, fs repo, dump files, binaries [BENCH_WORKDIR]")
	skip := flag.String("skip", os.Getenv("BENCH_SKIP"), "scenarios to leave out, comma-separated (e.g. peer_file_copy,dbarchive_drill on a busy machine) [BENCH_SKIP]")
	rebuild := flag.Bool("rebuild-data", false, "rebuild the data set even when its marker matches")
	outDir := flag.String("out", "", "where results.json and RESULTS.md go (default: bench/ of the module; made if missing)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	skipped = map[string]bool{}
	for name := range strings.SplitSeq(*skip, ",") {
		if name = strings.TrimSpace(name); name != "" {
			skipped[name] = true
		}
	}
	if err := run(ctx, *scaleName, *runs, *rssRuns, *warmup, *only, *work, *outDir, *rebuild); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, scaleName string, runs, rssRuns, warmup int, only, work, outDir string, rebuild bool) error {
	sc, ok := scales[scaleName]
	if !ok {
		return fmt.Errorf("-scale %q: want full or small", scaleName)
	}
	if runs < 1 || rssRuns < 1 || warmup < 0 {
		return fmt.Errorf("-runs %d -rss-runs %d -warmup %d: want at least one run and no negative warm-up", runs, rssRuns, warmup)
	}
	groups := map[string]bool{}
	for g := range strings.SplitSeq(only, ",") {
		if g = strings.TrimSpace(g); g != "" {
			if !slices.Contains(allGroups, g) && g != "dataset" {
				return fmt.Errorf("-only %q: unknown group %q", only, g)
			}
			groups[g] = true
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if outDir == "" {
		outDir = filepath.Join(root, "bench")
	}
	b := &bench{root: root, work: work, scale: sc}
	rep := &report{Date: time.Now().UTC().Format(time.RFC3339), Scale: sc.Name, Runs: runs, RSSRuns: rssRuns, Warmup: warmup, Machine: readMachine()}

	// Every tool finds the server the same way: the variables libpq reads.
	for k, v := range map[string]string{"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	if pw := os.Getenv("PGPASSWORD"); pw != "" {
		os.Setenv("DBARCHIVE_SOURCE_PASSWORD", pw)
		os.Setenv("DBARCHIVE_TARGET_PASSWORD", pw)
	}

	needS3 := groups["backup"] || groups["restore"] || groups["rss"] || groups["levels"]
	needDB := groups["backup"] || groups["restore"] || groups["dataset"] || groups["levels"]
	if needS3 {
		if err := ensureTools(ctx); err != nil {
			return err
		}
		if err := b.buildBinaries(ctx); err != nil {
			return err
		}
	}
	if needDB {
		if b.data, err = ensureDataset(ctx, sc, rebuild); err != nil {
			return err
		}
		rep.Dataset = &b.data
		logf("data set %s: %s on disk, %s; plain dump %s MiB, zstd -3 %s MiB: ratio %.2f",
			b.data.DB, mib(b.data.SizeBytes)+" MiB", b.data.Rows, mib(b.data.PlainBytes), mib(b.data.ZstdBytes), b.data.Ratio)
		if b.data.Ratio < 3 || b.data.Ratio > 6 {
			logf("WARNING: the plain dump's zstd -3 ratio %.2f is outside 3..6", b.data.Ratio)
		}
	}
	if len(groups) == 1 && groups["dataset"] {
		return nil
	}
	if needS3 {
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		if b.srv, err = startS3Server(ctx, b.rclone, work); err != nil {
			return err
		}
		defer b.srv.stop()
		logf("rclone serve s3 on %s over %s", b.srv.addr, b.srv.dir)
	}

	samples := map[string][]Sample{}
	merge := func(m map[string][]Sample) {
		for k, v := range m {
			samples[k] = v
		}
	}
	bk, rs, mem, lv := without(b.backupScenarios()), without(b.restoreScenarios()), without(b.rssScenarios()), without(b.levelScenarios())
	if groups["backup"] {
		m, err := b.runGroup(ctx, "backup", bk, warmup, runs)
		if err != nil {
			return err
		}
		fillLimitBytes(m)
		merge(m)
	} else if groups["restore"] {
		// The restores need a backup of each kind; make one, unmeasured.
		logf("restore without backup: making one backup of each kind first")
		if _, err := b.runGroup(ctx, "setup", []scenario{bk[1], bk[2]}, 0, 1); err != nil {
			return err
		}
	}
	if groups["restore"] {
		var ins []float64
		for _, s := range samples["dbarchive_s3"] {
			ins = append(ins, float64(s.BytesIn))
		}
		b.dumpSize = int64(median(ins))
		if b.dumpSize == 0 {
			// No measured backup: the setup backup's manifest has the size
			// (the restore's bound hashes it).
			path := filepath.Join(b.srv.objectPath(b.dbaBackup.prefix), b.dbaBackup.id, archiver.ManifestObject)
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if _, b.dumpSize, _, err = manifestSizes(raw); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		if b.resRestore, err = b.startResourceRestore(ctx); err != nil {
			return err
		}
		defer b.resRestore.stop()
		m, err := b.runGroup(ctx, "restore", rs, min(warmup, 1), runs)
		if err != nil {
			return err
		}
		merge(m)
		perByte, err := sha256CPUPerByte()
		if err != nil {
			return err
		}
		rep.SHA256CPUPerGiB = perByte * (1 << 30)
		logf("sha256 here: %.3f CPU-s per GiB", rep.SHA256CPUPerGiB)
	}
	if groups["rss"] {
		m, err := b.runGroup(ctx, "rss", mem, 0, rssRuns)
		if err != nil {
			return err
		}
		merge(m)
	}
	if groups["levels"] {
		if err := b.dumpMixed(ctx); err != nil {
			return err
		}
		m, err := b.runGroup(ctx, "levels", lv, warmup, runs)
		if err != nil {
			return err
		}
		merge(m)
	}
	if groups["operator"] {
		op := b.runOperator(ctx, runs)
		rep.Operator = &op
		if op.Ran {
			logf("operator: %s", strings.Join(op.Lines, "\n"))
		} else {
			logf("operator: not run: %s", op.Reason)
		}
	}

	results := map[string]*Result{}
	tt := titles(bk, rs, mem, lv)
	for _, sc := range slices.Concat(bk, rs, mem, lv) {
		if ss := samples[sc.name]; len(ss) > 0 {
			r := summarize(sc.name, tt[sc.name], ss)
			results[sc.name] = r
			rep.Results = append(rep.Results, r)
		}
	}
	addRatios(results, append(ratioSpecs(sc.RSSSizes), leverRatios()...))
	rep.Targets = targets(results, sc.RSSSizes, rep.Operator, rep.SHA256CPUPerGiB/(1<<30))
	rep.Versions = b.versions(ctx)
	rep.Machine.LoadEnd = loadavg()
	rep.ElapsedS = time.Since(started).Seconds()

	fmt.Println()
	writeTable(os.Stdout, rep, false)
	// The operator group alone has files of its own, so that it does not
	// replace the data path's results, nor they its.
	jsonName, mdName := "results.json", "RESULTS.md"
	if len(groups) == 1 && groups["operator"] {
		jsonName, mdName = "results-operator.json", "RESULTS-operator.md"
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(outDir, jsonName), rep); err != nil {
		return err
	}
	if err := writeMarkdown(filepath.Join(outDir, mdName), rep); err != nil {
		return err
	}
	logf("wrote %s and %s", filepath.Join(outDir, jsonName), filepath.Join(outDir, mdName))
	return nil
}

// moduleRoot is the directory of the go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

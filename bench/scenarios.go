package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// scenario is one command measured in every round of its group.
type scenario struct {
	name  string
	title string // the command, as a user would type it
	// prepare runs untimed before each run (dropping a restore target).
	prepare func(ctx context.Context, run string) error
	// cmd builds the command of one run; run names the run's objects.
	cmd func(run string) command
	// after runs untimed after each run: it fills the byte counts from what
	// the run left and removes what is no longer needed.
	after func(ctx context.Context, run string, out []byte, s *Sample) error
}

// manifestSizes reads the sizes from a manifest: dbarchive backup -o json
// prints it, and the repo holds it as manifest.json.
func manifestSizes(out []byte) (id string, in, stored int64, err error) {
	var m struct {
		ID               string `json:"id"`
		UncompressedSize int64  `json:"uncompressedSize"`
		StoredSize       int64  `json:"storedSize"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return "", 0, 0, fmt.Errorf("not a manifest (%q): %w", out, err)
	}
	return m.ID, m.UncompressedSize, m.StoredSize, nil
}

func (b *bench) pgURL(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%s/%s", os.Getenv("PGUSER"), os.Getenv("PGHOST"), os.Getenv("PGPORT"), db)
}

// backupScenarios are the five ways to back the data set up, in the order
// each round runs them.
func (b *bench) backupScenarios() []scenario {
	db := b.data.DB
	// dumpSize is the -Fc -Z0 stream of the round's dbarchive run: the
	// limit's output and the peers' input, which are the same bytes.
	var dumpSize int64
	keepPeer, keepDBA := "", ""
	// keep leaves the newest run's objects for the restore scenarios and
	// removes the one before.
	keep := func(slot *string, prefix string) error {
		old := *slot
		*slot = prefix
		if old != "" {
			return b.srv.removePrefix(old)
		}
		return nil
	}
	fsRepo := filepath.Join(b.work, "fsrepo")
	fileDir := filepath.Join(b.work, "files")
	return append([]scenario{
		{
			name:  "limit",
			title: "pg_dump -Fc -Z0 > /dev/null",
			cmd:   func(string) command { return command{args: []string{"pg_dump", "-Fc", "-Z0", db}} },
			after: func(_ context.Context, _ string, _ []byte, s *Sample) error { return nil },
		},
		{
			name:  "peer_pipeline",
			title: "pg_dump -Fc -Z0 | zstd -3 -T0 | rclone rcat s3:…",
			cmd: func(run string) command {
				return shell(fmt.Sprintf("pg_dump -Fc -Z0 %s | zstd -3 -T0 -q -c | %s rcat --s3-no-check-bucket %s:%s/%s/dump.zst",
					db, b.rclone, rcloneRemote, s3Bucket, "pipe-"+run), b.srv.rcloneEnv()...)
			},
			after: func(_ context.Context, run string, _ []byte, s *Sample) error {
				fi, err := os.Stat(b.srv.objectPath("pipe-" + run + "/dump.zst"))
				if err != nil {
					return fmt.Errorf("the pipeline's object: %w", err)
				}
				s.BytesOut = fi.Size()
				b.peerObject = "pipe-" + run + "/dump.zst"
				return keep(&keepPeer, "pipe-"+run)
			},
		},
		{
			name:  "dbarchive_s3",
			title: "dbarchive backup --repo s3://… (defaults)",
			cmd: func(run string) command {
				return command{
					args:   []string{b.dbarchive, "backup", "--source", b.pgURL(db), "--repo", b.srv.repoURL("dba-" + run), "-o", "json"},
					env:    b.srv.dbarchiveEnv(),
					stdout: new(bytes.Buffer),
				}
			},
			after: func(_ context.Context, run string, out []byte, s *Sample) error {
				id, in, stored, err := manifestSizes(out)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in, stored
				dumpSize = in
				b.dbaBackup = backupRef{prefix: "dba-" + run, id: id}
				return keep(&keepDBA, "dba-"+run)
			},
		},
		{
			name:  "peer_file_copy",
			title: "pg_dump -Fc -f F && rclone copy F s3:…",
			cmd: func(run string) command {
				f := filepath.Join(fileDir, "dump-"+run+".pgdump")
				return shell(fmt.Sprintf("mkdir -p %s && pg_dump -Fc -f %s %s && %s copy --s3-no-check-bucket %s %s:%s/%s/",
					fileDir, f, db, b.rclone, f, rcloneRemote, s3Bucket, "file-"+run), b.srv.rcloneEnv()...)
			},
			after: func(_ context.Context, run string, _ []byte, s *Sample) error {
				f := filepath.Join(fileDir, "dump-"+run+".pgdump")
				fi, err := os.Stat(b.srv.objectPath("file-" + run + "/" + filepath.Base(f)))
				if err != nil {
					return fmt.Errorf("the copied dump: %w", err)
				}
				s.BytesIn, s.BytesOut = dumpSize, fi.Size()
				if err := os.Remove(f); err != nil {
					return err
				}
				return b.srv.removePrefix("file-" + run)
			},
		},
		{
			name:  "dbarchive_fs",
			title: "dbarchive backup --repo file://… (defaults)",
			cmd: func(run string) command {
				return command{
					args:   []string{b.dbarchive, "backup", "--source", b.pgURL(db), "--repo", "file://" + filepath.Join(fsRepo, run), "-o", "json"},
					stdout: new(bytes.Buffer),
				}
			},
			after: func(_ context.Context, run string, out []byte, s *Sample) error {
				_, in, stored, err := manifestSizes(out)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in, stored
				return os.RemoveAll(filepath.Join(fsRepo, run))
			},
		},
	}, b.leverScenarios()...)
}

// fillLimitBytes gives the limit and the pipeline the dump size dbarchive
// measured in the same round (neither can count its own without a pipe
// stage that would change what is measured).
func fillLimitBytes(r map[string][]Sample) {
	dba := r["dbarchive_s3"]
	for _, name := range []string{"limit", "peer_pipeline"} {
		for i := range r[name] {
			if i < len(dba) {
				r[name][i].BytesIn = dba[i].BytesIn
			}
		}
	}
}

type backupRef struct{ prefix, id string }

const (
	restoreDBA  = "dbarchive_bench_restore_dbarchive"
	restorePeer = "dbarchive_bench_restore_peer"
)

// restoreScenarios restore the newest dbarchive backup and the newest
// pipeline object into new databases, with the same pg_restore flags
// dbarchive uses, so the difference is the tools around pg_restore.
func (b *bench) restoreScenarios() []scenario {
	reset := func(db string) func(ctx context.Context, _ string) error {
		return func(ctx context.Context, _ string) error {
			if _, err := runOutput(ctx, nil, "dropdb", "--if-exists", db); err != nil {
				return err
			}
			// Flush what the last restore dirtied, so no run pays for the
			// one before it.
			_, err := psql(ctx, "postgres", "CHECKPOINT")
			return err
		}
	}
	check := func(db string, in func() int64) func(ctx context.Context, _ string, _ []byte, s *Sample) error {
		return func(ctx context.Context, _ string, _ []byte, s *Sample) error {
			rows, err := rowCounts(ctx, db)
			if err != nil {
				return err
			}
			if rows != b.data.Rows {
				return fmt.Errorf("restored %s has %s, the source %s", db, rows, b.data.Rows)
			}
			s.BytesIn, s.BytesOut = in(), b.dumpSize
			_, err = runOutput(ctx, nil, "dropdb", db)
			return err
		}
	}
	return []scenario{
		b.dbarchiveRestore("dbarchive_restore", "dbarchive restore --repo s3://… --create-db", b.dbarchive, reset, check),
		// The same backup with the pure-Go decoder.
		b.dbarchiveRestore("dbarchive_restore_purego", "dbarchive restore --repo s3://… --create-db built with CGO_ENABLED=0 (pure-Go zstd decoder)", b.dbarchivePure, reset, check),
		{
			name:  "dbarchive_restore_resource",
			title: "DatabaseRestore of the same backup: dbarchive job restore (the restore pod's container)",
			prepare: func(ctx context.Context, run string) error {
				if err := reset(restoreRes)(ctx, run); err != nil {
					return err
				}
				return b.resRestore.create(ctx, b, run)
			},
			cmd: func(run string) command { return b.resRestore.command(b, run) },
			after: func(ctx context.Context, run string, out []byte, s *Sample) error {
				if err := b.resRestore.check(ctx, run); err != nil {
					return err
				}
				return check(restoreRes, func() int64 { return dirSize(b.srv.objectPath(b.dbaBackup.prefix)) })(ctx, run, out, s)
			},
		},
		{
			// The drill proves the same backup: an integrity pass, a
			// throwaway PostgreSQL, the restore, the recorded tables' rows
			// and digests. Its report splits the time.
			name:  "dbarchive_drill",
			title: "dbarchive verify --restore --repo s3://… (integrity pass + throwaway server + restore + checks)",
			cmd: func(string) command {
				return command{
					args:   []string{b.dbarchive, "verify", "--restore", "-o", "json", "--repo", b.srv.repoURL(b.dbaBackup.prefix), "--backup", b.dbaBackup.id},
					env:    b.srv.dbarchiveEnv(),
					stdout: new(bytes.Buffer),
				}
			},
			after: func(_ context.Context, _ string, out []byte, s *Sample) error {
				var rep struct {
					Passed          bool    `json:"passed"`
					DownloadSeconds float64 `json:"downloadSeconds"`
					RestoreSeconds  float64 `json:"restoreSeconds"`
					Tables          int     `json:"tables"`
					Rows            int64   `json:"rows"`
				}
				if err := json.Unmarshal(out, &rep); err != nil {
					return fmt.Errorf("drill report: %w", err)
				}
				if !rep.Passed || rep.Tables == 0 {
					return fmt.Errorf("drill did not pass: %s", out)
				}
				s.DrillDownloadS, s.DrillRestoreS = rep.DownloadSeconds, rep.RestoreSeconds
				s.BytesIn, s.BytesOut = dirSize(b.srv.objectPath(b.dbaBackup.prefix)), b.dumpSize
				logf("drill: download (integrity pass) %.2f s, restore %.2f s, %d tables, %d rows", rep.DownloadSeconds, rep.RestoreSeconds, rep.Tables, rep.Rows)
				return nil
			},
		},
		{
			name:    "peer_restore",
			title:   "createdb && rclone cat s3:… | zstd -d | pg_restore -d new",
			prepare: reset(restorePeer),
			cmd: func(string) command {
				return shell(fmt.Sprintf("createdb %s && %s cat %s:%s/%s | zstd -d -q -c | pg_restore --single-transaction --no-owner --exit-on-error -d %s",
					restorePeer, b.rclone, rcloneRemote, s3Bucket, b.peerObject, restorePeer), b.srv.rcloneEnv()...)
			},
			after: check(restorePeer, func() int64 {
				fi, err := os.Stat(b.srv.objectPath(b.peerObject))
				if err != nil {
					return 0
				}
				return fi.Size()
			}),
		},
	}
}

// rssScenarios back up a small and a large synthetic stream from the exec:
// generator to S3, to show that dbarchive's memory does not grow with the
// stream.
func (b *bench) rssScenarios() []scenario {
	var out []scenario
	for _, size := range b.scale.RSSSizes {
		prefix := "rss-" + size
		out = append(out, scenario{
			name:  "dbarchive_exec_" + size,
			title: fmt.Sprintf("dbarchive backup --source 'exec:testgen -size %s' --repo s3://…", size),
			cmd: func(run string) command {
				return command{
					args: []string{b.dbarchive, "backup", "--source", fmt.Sprintf("exec:%s -size %s", b.testgen, size),
						"--repo", b.srv.repoURL(prefix + "-" + run), "-o", "json"},
					env:    b.srv.dbarchiveEnv(),
					stdout: new(bytes.Buffer),
				}
			},
			after: func(_ context.Context, run string, out []byte, s *Sample) error {
				_, in, stored, err := manifestSizes(out)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in, stored
				return b.srv.removePrefix(prefix + "-" + run)
			},
		})
	}
	return out
}

// runGroup runs warmup unrecorded rounds and then runs recorded rounds of
// the scenarios, each round running every scenario once in order (A, B, A,
// B …), and returns the samples by scenario name.
func (b *bench) runGroup(ctx context.Context, group string, scs []scenario, warmup, runs int) (map[string][]Sample, error) {
	res := map[string][]Sample{}
	for round := -warmup; round < runs; round++ {
		label := fmt.Sprintf("run %d/%d", round+1, runs)
		if round < 0 {
			label = "warm-up"
		}
		for _, sc := range scs {
			run := fmt.Sprintf("r%d", round+warmup)
			if sc.prepare != nil {
				if err := sc.prepare(ctx, run); err != nil {
					return nil, fmt.Errorf("%s: prepare: %w", sc.name, err)
				}
			}
			c := sc.cmd(run)
			s, err := runTimed(ctx, c, b.srv.pid())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			if c.args[0] != b.dbarchive {
				s.OwnRSSMiB, s.OwnAnonMiB = 0, 0 // bash's own: meaningless
			}
			var out []byte
			if buf, ok := c.stdout.(*bytes.Buffer); ok {
				out = buf.Bytes()
			}
			if err := sc.after(ctx, run, out, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name, err)
			}
			logf("%-8s %-7s %-26s wall %6.2fs  cpu %6.2fs  rss %6.1f MiB%s", group, label, sc.name, s.WallS, s.CPUS(), s.TreeRSSMiB, ownNote(s))
			if round >= 0 {
				res[sc.name] = append(res[sc.name], s)
			}
		}
	}
	return res, nil
}

func ownNote(s Sample) string {
	if s.OwnRSSMiB == 0 {
		return ""
	}
	return fmt.Sprintf(" (own %.1f)", s.OwnRSSMiB)
}

// titles maps scenario names to their commands, for the report.
func titles(groups ...[]scenario) map[string]string {
	m := map[string]string{}
	for _, g := range groups {
		for _, s := range g {
			m[s.name] = strings.TrimSpace(s.title)
		}
	}
	return m
}

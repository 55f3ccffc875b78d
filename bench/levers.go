package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// leverScenarios are dbarchive backups to S3 that each change one thing
// from the defaults (issue 15's levers), run in the backup group so that
// each pairs with the pipeline of the same round.
func (b *bench) leverScenarios() []scenario {
	db := b.data.DB
	lever := func(name, title, bin string, env []string, flags ...string) scenario {
		return scenario{
			name:  name,
			title: title,
			cmd: func(run string) command {
				args := append([]string{bin, "backup", "--source", b.pgURL(db), "--repo", b.srv.repoURL(name + "-" + run), "-o", "json"}, flags...)
				return command{args: args, env: append(b.srv.dbarchiveEnv(), env...), stdout: new(bytes.Buffer)}
			},
			after: func(_ context.Context, run string, out []byte, s *Sample) error {
				_, in, stored, err := manifestSizes(out)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in, stored
				return b.srv.removePrefix(name + "-" + run)
			},
		}
	}
	return []scenario{
		lever("dbarchive_s3_purego", "dbarchive backup --repo s3://… built with CGO_ENABLED=0 (pure-Go zstd, at the default level: klauspost maps 1-2 to its fastest speed)", b.dbarchivePure, nil),
		lever("dbarchive_s3_level1", "dbarchive backup --repo s3://… --level 1", b.dbarchive, nil, "--level", "1"),
		lever("dbarchive_s3_level2", "dbarchive backup --repo s3://… --level 2", b.dbarchive, nil, "--level", "2"),
		lever("dbarchive_s3_level3", "dbarchive backup --repo s3://… --level 3", b.dbarchive, nil, "--level", "3"),
		lever("dbarchive_s3_gomaxprocs1", "GOMAXPROCS=1 dbarchive backup --repo s3://… (a pod limited to one CPU)", b.dbarchive, []string{"GOMAXPROCS=1"}),
	}
}

// leverRatios pair each lever with the pipeline of its round.
func leverRatios() []ratioSpec {
	var out []ratioSpec
	for _, name := range []string{"dbarchive_s3_purego", "dbarchive_s3_level1", "dbarchive_s3_level2", "dbarchive_s3_level3", "dbarchive_s3_gomaxprocs1"} {
		for _, metric := range []string{"wall", "cpu", "stored"} {
			out = append(out, ratioSpec{name, metric, "peer_pipeline"})
		}
	}
	out = append(out,
		ratioSpec{"dbarchive_restore_purego", "wall", "peer_restore"},
		ratioSpec{"dbarchive_restore_purego", "cpu", "peer_restore"},
		ratioSpec{"dbarchive_default", "cpu", "zstd_default"},
		ratioSpec{"dbarchive_default", "stored", "zstd_default"},
		ratioSpec{"dbarchive_default", "cpu", "dbarchive_level3"},
		ratioSpec{"dbarchive_default", "stored", "dbarchive_level3"},
		ratioSpec{"zstd_default", "cpu", "zstd_level3"},
		ratioSpec{"zstd_default", "stored", "zstd_level3"},
		ratioSpec{"dbarchive_level1", "cpu", "zstd_level1"},
		ratioSpec{"dbarchive_level1", "stored", "zstd_level1"},
		ratioSpec{"dbarchive_level2", "cpu", "zstd_level2"},
		ratioSpec{"dbarchive_level2", "stored", "zstd_level2"},
		ratioSpec{"dbarchive_level2", "cpu", "dbarchive_level3"},
		ratioSpec{"dbarchive_level2", "stored", "dbarchive_level3"},
		ratioSpec{"dbarchive_level3", "cpu", "zstd_level3"},
		ratioSpec{"dbarchive_level3", "stored", "zstd_level3"},
		ratioSpec{"dbarchive_level1", "cpu", "dbarchive_level3"},
		ratioSpec{"dbarchive_level1", "stored", "dbarchive_level3"},
		ratioSpec{"zstd_level1", "cpu", "zstd_level3"},
		ratioSpec{"zstd_level1", "stored", "zstd_level3"},
	)
	return out
}

// dbarchiveRestore restores the dbarchive backup into restoreDBA with the
// given build of dbarchive: the default (libzstd) or the pure-Go one.
func (b *bench) dbarchiveRestore(name, title, binary string, reset func(string) func(context.Context, string) error, check func(string, func() int64) func(context.Context, string, []byte, *Sample) error) scenario {
	return scenario{
		name:    name,
		title:   title,
		prepare: reset(restoreDBA),
		cmd: func(string) command {
			return command{
				args: []string{binary, "restore", "--repo", b.srv.repoURL(b.dbaBackup.prefix), "--backup", b.dbaBackup.id,
					"--target", b.pgURL(restoreDBA), "--create-db"},
				env: b.srv.dbarchiveEnv(),
			}
		},
		after: check(restoreDBA, func() int64 { return dirSize(b.srv.objectPath(b.dbaBackup.prefix)) }),
	}
}

// levelScenarios compress bench_mixed's custom-format dump (taken once,
// untimed, into a file) at levels 1, 2 and 3 and dbarchive's default
// setting with the zstd command and with
// dbarchive into a local repo: the table that chooses the default level
// from size and CPU together. Without PostgreSQL in the loop the CPU is the
// compressor's alone.
func (b *bench) levelScenarios() []scenario {
	dump := filepath.Join(b.work, "levels", "bench_mixed.pgdump")
	repo := filepath.Join(b.work, "levels", "repo")
	var out []scenario
	for _, z := range []struct{ name, flags string }{
		{"zstd_level1", "-1"},
		{"zstd_level2", "-2"},
		{"zstd_level3", "-3"},
		// dbarchive's default setting (zstdcodec.DefaultHashLog, DefaultMinMatch).
		{"zstd_default", "-2 --zstd=hlog=17,mml=7"},
	} {
		zout := filepath.Join(b.work, "levels", z.name+".zst")
		out = append(out, scenario{
			name:  z.name,
			title: fmt.Sprintf("zstd %s -T0 < bench_mixed.pgdump > F", z.flags),
			cmd: func(string) command {
				return shell(fmt.Sprintf("zstd %s -T0 -q -c %s > %s", z.flags, dump, zout))
			},
			after: func(_ context.Context, _ string, _ []byte, s *Sample) error {
				in, err := os.Stat(dump)
				if err != nil {
					return err
				}
				fi, err := os.Stat(zout)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in.Size(), fi.Size()
				return os.Remove(zout)
			},
		})
	}
	for _, v := range []struct {
		name, bin string
		level     int // 0: no --level, the default setting
	}{
		{"dbarchive_default", b.dbarchive, 0},
		{"dbarchive_level1", b.dbarchive, 1},
		{"dbarchive_level2", b.dbarchive, 2},
		{"dbarchive_level3", b.dbarchive, 3},
		{"dbarchive_purego_level1", b.dbarchivePure, 1},
		{"dbarchive_purego_level3", b.dbarchivePure, 3},
	} {
		var levelFlag []string
		title := fmt.Sprintf("%s backup --source 'exec:cat bench_mixed.pgdump' --repo file://…", filepath.Base(v.bin))
		if v.level != 0 {
			levelFlag = []string{"--level", fmt.Sprint(v.level)}
			title += fmt.Sprintf(" --level %d", v.level)
		}
		out = append(out, scenario{
			name:  v.name,
			title: title,
			cmd: func(run string) command {
				return command{
					args: append([]string{v.bin, "backup", "--source", "exec:cat " + dump, "--repo", "file://" + filepath.Join(repo, v.name+"-"+run),
						"-o", "json"}, levelFlag...),
					stdout: new(bytes.Buffer),
				}
			},
			after: func(_ context.Context, run string, out []byte, s *Sample) error {
				_, in, stored, err := manifestSizes(out)
				if err != nil {
					return err
				}
				s.BytesIn, s.BytesOut = in, stored
				return os.RemoveAll(filepath.Join(repo, v.name+"-"+run))
			},
		})
	}
	return out
}

// dumpMixed writes bench_mixed's custom-format dump for the level group.
func (b *bench) dumpMixed(ctx context.Context) error {
	dir := filepath.Join(b.work, "levels")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := runOutput(ctx, nil, "pg_dump", "-Fc", "-Z0", "-t", "bench_mixed", "-f", filepath.Join(dir, "bench_mixed.pgdump"), b.data.DB)
	return err
}

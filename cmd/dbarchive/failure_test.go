package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// stagingDir is where the fs driver keeps pending uploads.
const stagingDir = ".dbarchive-uploads"

// requireEmptyRepo fails the test when an fs repo holds any file at all:
// no data object, no manifest, no part of a pending upload.
func requireEmptyRepo(t *testing.T, dir string) {
	t.Helper()
	if files := repoFiles(t, dir); len(files) != 0 {
		t.Fatalf("the repo holds %v after a failed backup, want nothing", files)
	}
}

func TestDumpDiesHalfWay(t *testing.T) {
	// The exec: source writes 20 MB and exits 3 with a reason on stderr,
	// like a pg_dump that lost its server.
	source := gen("-size 20MB -exit 3")
	check := func(t *testing.T, r result) {
		t.Helper()
		for _, want := range []string{"exit status 3", "simulated dump failure after 20000000 bytes: connection to server lost"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	}
	t.Run("fs", func(t *testing.T) {
		c := newCLI(t)
		dir := t.TempDir()
		check(t, c.fail(1, "backup", "--source", source, "--repo", fileURL(dir), "--part-size", "1MiB"))
		c.listed(fileURL(dir))
		requireEmptyRepo(t, dir)
	})
	t.Run("s3", func(t *testing.T) {
		cfg := emulators.S3(t)
		c := newCLI(t)
		check(t, c.fail(1, "backup", "--source", source, "--repo", s3URL(c, cfg, "failed")))
		c.listed(s3URL(c, cfg, "failed"))
		requireEmptyBucket(t, cfg)
	})
}

// requireEmptyBucket fails the test when the bucket holds an object or a
// pending upload.
func requireEmptyBucket(t *testing.T, cfg drivers.Config) {
	t.Helper()
	ctx := context.Background()
	b, err := drivers.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	objs, err := b.List(ctx, "")
	if err != nil || len(objs) != 0 {
		t.Fatalf("bucket holds %+v (err %v), want nothing", objs, err)
	}
	pending, err := b.ListUploads(ctx, "")
	if err != nil || len(pending) != 0 {
		t.Fatalf("bucket has pending uploads %+v (err %v), want none", pending, err)
	}
}

func TestFlippedByteFailsVerifyAndRestore(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_flip")
	srv.Populate(t, db, 100_000)
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	// Small parts and chunks: the damage is in an early chunk, long
	// before the end, where only the checks can catch it.
	m := c.backup(srv.URL(name), repo, "--part-size", "256KiB")
	data := filepath.Join(dir, m.ID, archiver.DataObject)
	stored, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) < 1<<20 {
		t.Fatalf("stored object is %d bytes, want several chunks", len(stored))
	}
	stored[len(stored)/3] ^= 0x20
	if err := os.WriteFile(data, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	checksumError := func(t *testing.T, r result) {
		t.Helper()
		if !strings.Contains(r.stderr, "checksum mismatch") || !strings.Contains(r.stderr, m.ID) {
			t.Errorf("want a checksum error naming backup %s; stderr:\n%s", m.ID, r.stderr)
		}
	}

	t.Run("verify", func(t *testing.T) {
		checksumError(t, c.fail(1, "verify", "--repo", repo))
	})
	t.Run("restore into an existing database", func(t *testing.T) {
		target, tdb := srv.Create(t, "cli_flip_keep")
		if _, err := tdb.Exec(`CREATE TABLE keep (v text); INSERT INTO keep VALUES ('untouched')`); err != nil {
			t.Fatal(err)
		}
		// --overwrite: the target holds a table, and must keep it.
		checksumError(t, c.fail(1, "restore", "--repo", repo, "--overwrite", "--target", srv.URL(target)))
		tables := pgTables(t, tdb)
		var v string
		if err := tdb.QueryRow(`SELECT string_agg(v, ',') FROM keep`).Scan(&v); err != nil || v != "untouched" || !slices.Equal(tables, []string{"keep"}) {
			t.Fatalf("target after a failed restore: tables %v, keep = %q (err %v); want only keep = untouched", tables, v, err)
		}
	})
	t.Run("restore with --create-db", func(t *testing.T) {
		target := srv.Name(t, "cli_flip_new")
		checksumError(t, c.fail(1, "restore", "--repo", repo, "--target", srv.URL(target), "--create-db"))
		var exists bool
		if err := srv.Admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, target).Scan(&exists); err != nil || exists {
			t.Fatalf("the database created for the failed restore still exists (%v, err %v)", exists, err)
		}
	})
	t.Run("restore to a file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "dump")
		checksumError(t, c.fail(1, "restore", "--repo", repo, "--output", out))
		if files := repoFiles(t, filepath.Dir(out)); len(files) != 0 {
			t.Fatalf("a failed restore left %v", files)
		}
	})
}

// startSlowBackup starts a backup from a source that trickles 2 MiB/s into
// 256 KiB parts, and returns once at least minParts parts sit in the fs
// repo's staging area: the upload is under way.
func startSlowBackup(t *testing.T, c *cli, dir string, minParts int) (wait func() result, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args := []string{"backup", "--source", gen("-size 1GiB -rate 2MiB"), "--repo", fileURL(dir), "--part-size", "256KiB"}
	cmd, stdout, stderr := c.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	var res result
	go func() {
		defer close(done)
		defer cancel()
		_ = cmd.Wait()
		res = result{args: args, stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode(), state: cmd.ProcessState}
	}()
	wait = func() result { <-done; return res }
	deadline := time.Now().Add(time.Minute)
	for {
		parts, _ := filepath.Glob(filepath.Join(dir, stagingDir, "*", "part-*"))
		if len(parts) >= minParts {
			return wait, cmd.Process.Pid
		}
		select {
		case <-done:
			t.Fatalf("the backup ended before %d parts were stored: %v", minParts, res)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no %d parts stored after a minute", minParts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKill9DuringUpload(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	good := c.backup(gen("-size 3MiB"), repo)
	goodFiles := repoFiles(t, dir)

	wait, pid := startSlowBackup(t, c, dir, 3)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != -1 {
		t.Fatalf("the killed backup: %v", r)
	}
	c.listed(repo, good.ID)
	if parts, _ := filepath.Glob(filepath.Join(dir, stagingDir, "*", "part-*")); len(parts) == 0 {
		t.Fatal("the killed backup left no pending upload; the test proves nothing")
	}

	r := c.ok("prune", "--repo", repo, "--keep-last", "1", "--grace", "0s")
	if !strings.Contains(r.stdout, "pending upload of") || !strings.Contains(r.stdout, "kept 1 backups") {
		t.Errorf("prune output does not report the aborted upload:\n%s", r.stdout)
	}
	if got := repoFiles(t, dir); !slices.Equal(got, goodFiles) {
		t.Fatalf("after prune the repo holds %v, want only the good backup's %v", got, goodFiles)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, stagingDir)); len(entries) != 0 {
		t.Fatalf("pending uploads left after prune: %v", entries)
	}
	c.listed(repo, good.ID)
	c.ok("verify", "--repo", repo)
}

func TestSIGTERMDuringUpload(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	wait, pid := startSlowBackup(t, c, dir, 3)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code != 1 || !strings.Contains(r.stderr, "interrupted") {
		t.Fatalf("want exit 1 with the interruption named; got %v", r)
	}
	c.listed(fileURL(dir))
	requireEmptyRepo(t, dir)
	if entries, _ := os.ReadDir(filepath.Join(dir, stagingDir)); len(entries) != 0 {
		t.Fatalf("pending uploads left after SIGTERM: %v", entries)
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	repo := fileURL(t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing --source", []string{"backup", "--repo", repo}, "--source is required"},
		{"bad repo URL", []string{"backup", "--source", gen(""), "--repo", "ftp://host/x"}, `unknown scheme "ftp"`},
		{"repo without bucket", []string{"list", "--repo", "s3:///prefix"}, "needs a bucket"},
		{"credentials in repo URL", []string{"list", "--repo", "s3://key:secret@bucket/p"}, "credentials do not belong in the URL"},
		{"unknown flag", []string{"list", "--repo", repo, "--bogus"}, "unknown flag: --bogus"},
		{"unknown source scheme", []string{"backup", "--source", "oracle://db", "--repo", repo}, `unknown scheme "oracle"`},
		{"bad part size", []string{"backup", "--source", gen(""), "--repo", repo, "--part-size", "lots"}, "--part-size"},
		{"prune without retention", []string{"prune", "--repo", repo}, "give --keep-last or --keep-within"},
		{"restore without target", []string{"restore", "--repo", repo}, "exactly one of --target and --output"},
		{"bad log format", []string{"list", "--repo", repo, "--log-format", "xml"}, "--log-format"},
		{"stray argument", []string{"list", "extra"}, "unknown command"},
		{"unknown command", []string{"bogus"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.fail(2, tc.args...)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
		})
	}
	t.Run("runtime failure is 1", func(t *testing.T) {
		c.fail(1, "verify", "--repo", repo) // an empty repo holds no backup
	})
}

func TestEnvironmentSetsFlags(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	c := newCLI(t).
		setenv("DBARCHIVE_BACKUP_SOURCE", gen("-size 2MiB")).
		setenv("DBARCHIVE_REPO", fileURL(dir)).
		setenv("DBARCHIVE_BACKUP_LEVEL", "9").
		setenv("DBARCHIVE_BACKUP_OUTPUT", "json")
	m := c.backup("", "")
	if m.CompressionLevel != 9 || m.Source.Type != "exec" {
		t.Fatalf("DBARCHIVE_BACKUP_LEVEL=9 gave level %d, source %+v", m.CompressionLevel, m.Source)
	}
	c.listed("", m.ID) // DBARCHIVE_REPO
	c.listed(fileURL(dir), m.ID)

	// A flag on the command line beats the variable.
	m2 := c.backup(gen("-size 1MiB"), fileURL(other), "--level", "1")
	if m2.CompressionLevel != 1 {
		t.Errorf("--level 1 with DBARCHIVE_BACKUP_LEVEL=9 gave level %d", m2.CompressionLevel)
	}
	c.listed(fileURL(other), m2.ID)
	c.listed(fileURL(dir), m.ID)

	// A variable that does not parse is a usage error naming it.
	r := newCLI(t).setenv("DBARCHIVE_BACKUP_LEVEL", "high").fail(2, "backup", "--source", gen(""), "--repo", fileURL(dir))
	if !strings.Contains(r.stderr, "DBARCHIVE_BACKUP_LEVEL") {
		t.Errorf("stderr does not name the variable:\n%s", r.stderr)
	}
}

// A command's own flags are read from DBARCHIVE_<COMMAND>_<FLAG>: the same
// flag name in two commands (backup -o json, restore --output FILE; the
// source's and the target's --password-file) never shares a variable.
func TestEnvironmentScopedPerCommand(t *testing.T) {
	dir := t.TempDir()
	repo := fileURL(dir)
	work := t.TempDir()
	out := filepath.Join(t.TempDir(), "restored")
	c := newCLI(t).
		setenv("DBARCHIVE_REPO", repo).
		setenv("DBARCHIVE_OUTPUT", "json").
		setenv("DBARCHIVE_PASSWORD_FILE", filepath.Join(work, "no-such-file")).
		setenv("DBARCHIVE_RESTORE_OUTPUT", out).
		setenv("DBARCHIVE_RESTORE_PASSWORD_FILE", filepath.Join(work, "no-such-file"))
	c.dir = work
	// An exec: source refuses any password option: the backup succeeds only
	// because neither password-file variable is backup's.
	m := c.backup(gen("-size 1MiB"), "")
	r := c.ok("restore")
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("DBARCHIVE_RESTORE_OUTPUT did not name the restore's file: %v\n%v", err, r)
	}
	if files := repoFiles(t, work); len(files) != 0 {
		t.Fatalf("restore wrote %v into the working directory (DBARCHIVE_OUTPUT taken for restore's --output)", files)
	}
	if !strings.Contains(r.stderr, "DBARCHIVE_OUTPUT is not read") || !strings.Contains(r.stderr, "DBARCHIVE_RESTORE_OUTPUT") {
		t.Errorf("restore does not warn about the unscoped variable:\n%s", r.stderr)
	}
	c.setenv("DBARCHIVE_BACKUP_PASSWORD_FILE", filepath.Join(work, "no-such-file"))
	if r := c.fail(2, "backup", "--source", gen("-size 1MiB")); !strings.Contains(r.stderr, "password") {
		t.Errorf("DBARCHIVE_BACKUP_PASSWORD_FILE was not read by backup:\n%s", r.stderr)
	}
	c.listed(repo, m.ID)
}

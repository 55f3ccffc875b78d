package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// roundTrip backs a populated database up through the CLI into an fs repo,
// checks verify and list, restores it into a new database with --create-db
// and compares the two: it returns the repo directory and the manifest for
// further checks.
func roundTrip(t *testing.T, srv *testdb.Server, kind string) (string, *archiver.Manifest) {
	t.Helper()
	name, db := srv.Create(t, "cli_"+kind)
	start := time.Now()
	srv.Populate(t, db, testdb.BigRows)
	if size := srv.BigTableSize(t, db); size < 50<<20 {
		t.Fatalf("big table is %d bytes, want at least 50 MiB", size)
	}
	t.Logf("generated the source database in %v", time.Since(start).Round(time.Millisecond))
	want := srv.Fingerprint(t, db)

	c := newCLI(t)
	dir := t.TempDir()
	repo := fileURL(dir)
	start = time.Now()
	m := c.backup(srv.URL(name), repo)
	t.Logf("backup: %d bytes dumped, %d stored (ratio %.2f) in %v", m.UncompressedSize, m.StoredSize, m.Ratio(), time.Since(start).Round(time.Millisecond))
	wantType := map[string]string{"pg": "postgres", "my": "mysql"}[kind]
	if m.Source.Type != wantType || m.Source.Database != name || m.UncompressedSize < 50<<20 {
		t.Fatalf("manifest source %+v, %d bytes; want %s database %s over 50 MiB", m.Source, m.UncompressedSize, wantType, name)
	}
	listed := c.listed(repo, m.ID)
	if listed[0].Source.Type != wantType || listed[0].Source.Database != name {
		t.Errorf("list -o json shows source %+v, want %s / %s", listed[0].Source, wantType, name)
	}
	if r := c.ok("list", "--repo", repo); !strings.Contains(r.stdout, m.ID) || !strings.Contains(r.stdout, name) {
		t.Errorf("list table does not show the backup and its database:\n%s", r.stdout)
	}
	if r := c.ok("verify", "--repo", repo); !strings.Contains(r.stdout, m.ID+"\tok") {
		t.Errorf("verify printed %q, want %s ok", r.stdout, m.ID)
	}

	target := srv.Name(t, "cli_"+kind+"_dst")
	start = time.Now()
	c.ok("restore", "--repo", repo, "--backup", m.ID, "--target", srv.URL(target), "--create-db")
	t.Logf("restore in %v", time.Since(start).Round(time.Millisecond))
	restored := srv.Connect(t, target)
	testdb.CompareFingerprints(t, srv.Fingerprint(t, restored), want)
	srv.CheckTrigger(t, restored)
	return dir, m
}

func TestPostgresRoundTrip(t *testing.T) {
	srv := testdb.Postgres(t)
	dir, m := roundTrip(t, srv, "pg")
	if m.Source.Format != "custom" {
		t.Errorf("manifest format %q, want custom (the default)", m.Source.Format)
	}

	// The acceptance line: the stored object is plain zstd of a pg_dump
	// custom archive, readable without dbarchive.
	t.Run("zstd -d | pg_restore -l", func(t *testing.T) {
		data := filepath.Join(dir, m.ID, archiver.DataObject)
		unzstd := exec.Command("zstd", "-d", "-c", data)
		list := exec.Command("pg_restore", "-l")
		pipe, err := unzstd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		list.Stdin = pipe
		// One stderr buffer each: exec copies each process's stderr in a
		// goroutine of its own, and a shared buffer is a data race.
		var out, stderr, zstdErr bytes.Buffer
		list.Stdout, list.Stderr, unzstd.Stderr = &out, &stderr, &zstdErr
		if err := unzstd.Start(); err != nil {
			t.Fatalf("zstd: %v", err)
		}
		if err := list.Start(); err != nil {
			t.Fatalf("pg_restore: %v", err)
		}
		// Only the two tools hold the pipe now: when pg_restore has read the
		// table of contents and exits, zstd gets SIGPIPE, as in a shell.
		pipe.Close()
		if err := list.Wait(); err != nil {
			t.Fatalf("pg_restore -l: %v\n%s%s", err, stderr.String(), zstdErr.String())
		}
		_ = unzstd.Wait()
		for _, want := range []string{"TABLE DATA public big", "TABLE DATA public blobs", "VIEW public named", "FUNCTION public add(integer, integer)", "TRIGGER public people people_audit", "SEQUENCE public audit_id_seq"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("pg_restore -l does not list %q:\n%s", want, out.String())
			}
		}
	})
}

func TestMariaDBRoundTrip(t *testing.T) {
	srv := testdb.MariaDB(t)
	roundTrip(t, srv, "my")
}

// TestReadmeMainJob runs the README's main-job lines: a backup of the local
// PostgreSQL database with no --repo (the default repo under XDG_DATA_HOME),
// then list, verify, and restore into a new database.
func TestReadmeMainJob(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_readme")
	srv.Populate(t, db, 10_000)
	want := srv.Fingerprint(t, db)

	c := newCLI(t)
	m := c.backup(srv.URL(name), "")
	data := filepath.Join(c.dataDir, "dbarchive", "repo", m.ID, archiver.DataObject)
	if _, err := os.Stat(data); err != nil {
		t.Fatalf("the default repo is not under XDG_DATA_HOME: %v", err)
	}
	if r := c.ok("list"); !strings.Contains(r.stdout, m.ID) {
		t.Fatalf("list without --repo does not show %s:\n%s", m.ID, r.stdout)
	}
	c.ok("verify")
	target := srv.Name(t, "cli_readme_dst")
	c.ok("restore", "--target", srv.URL(target), "--create-db")
	testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), want)
}

// TestSourcePasswordNeverShown gives a password through
// DBARCHIVE_SOURCE_PASSWORD and checks that it reaches pg_dump (through its
// environment, not its arguments) and appears nowhere a user or a log
// collector would see it: stdout, stderr in both log formats, the repo's
// objects. The local server trusts 127.0.0.1, so a stand-in pg_dump first
// plays a server that rejects the password (and, as tools do, repeats what
// it got); then the real pg_dump backs up with it.
func TestSourcePasswordNeverShown(t *testing.T) {
	srv := testdb.Postgres(t)
	const pw = "Pw-d0-not-print-7f3a"
	role := testdb.Unique("dbarchive_cli_pw")
	if _, err := srv.Admin.Exec(fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, testdb.QuotePG(role), pw)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = srv.Admin.Exec(`DROP ROLE IF EXISTS ` + testdb.QuotePG(role)) })
	name, db := srv.Create(t, "cli_pw")
	srv.Populate(t, db, 1000)
	if _, err := db.Exec(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ` + testdb.QuotePG(role) + `; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + testdb.QuotePG(role)); err != nil {
		t.Fatal(err)
	}
	source := strings.Replace(srv.URL(name), "postgres@", role+"@", 1)

	noLeak := func(t *testing.T, where, text string) {
		t.Helper()
		if strings.Contains(text, pw) {
			t.Errorf("%s holds the password:\n%s", where, text)
		}
	}

	t.Run("rejected", func(t *testing.T) {
		bin := t.TempDir()
		seen := filepath.Join(bin, "seen")
		script := fmt.Sprintf(`#!/bin/sh
printf '%%s\n' "$*" > %[1]s.args
printf '%%s' "$PGPASSWORD" > %[1]s.env
echo "pg_dump: error: connection to server failed: FATAL:  password authentication failed for user \"$PGUSER\" (sent: $PGPASSWORD)" >&2
exit 1
`, seen)
		if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		repo := fileURL(t.TempDir())
		for _, format := range []string{"text", "json"} {
			c := newCLI(t).setenv("PATH", bin+":"+os.Getenv("PATH")).setenv("DBARCHIVE_SOURCE_PASSWORD", pw)
			r := c.fail(1, "backup", "--source", source, "--repo", repo, "--log-format", format)
			if !strings.Contains(r.stderr, "password authentication failed") || !strings.Contains(r.stderr, "[redacted]") {
				t.Errorf("--log-format %s: the error lacks the tool's reason with the password redacted:\n%s", format, r.stderr)
			}
			noLeak(t, "stderr ("+format+")", r.stderr)
			noLeak(t, "stdout ("+format+")", r.stdout)
			if got, _ := os.ReadFile(seen + ".env"); string(got) != pw {
				t.Errorf("pg_dump got PGPASSWORD %q, want the password from DBARCHIVE_SOURCE_PASSWORD", got)
			}
			args, _ := os.ReadFile(seen + ".args")
			noLeak(t, "pg_dump's arguments", string(args))
		}
	})

	t.Run("accepted", func(t *testing.T) {
		c := newCLI(t).setenv("DBARCHIVE_SOURCE_PASSWORD", pw)
		dir := t.TempDir()
		r := c.ok("backup", "--source", source, "--repo", fileURL(dir), "--log-format", "json", "--log-level", "debug", "-o", "json")
		noLeak(t, "stdout", r.stdout)
		noLeak(t, "stderr", r.stderr)
		r = c.ok("list", "--repo", fileURL(dir), "-o", "json")
		noLeak(t, "list", r.stdout)
		files := repoFiles(t, dir)
		if len(files) != 4 {
			t.Fatalf("repo holds %v, want a data object, a parts object, a table list and a manifest", files)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s holds the password", f)
			}
		}
	})
}

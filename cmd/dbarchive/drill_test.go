package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drill"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// drillTemp is a TMPDIR the throwaway server's own account can reach (the
// drill runs it unprivileged when the tests run as root).
func drillTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// drillLeftovers lists what a drill must not leave behind: directories of
// throwaway servers under tmp, and processes running from them.
func drillLeftovers(t *testing.T, tmp string) []string {
	t.Helper()
	var left []string
	dirs, _ := filepath.Glob(filepath.Join(tmp, "dbarchive-drill-*"))
	left = append(left, dirs...)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), filepath.Join(tmp, "dbarchive-drill-")) {
			stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
			if !strings.Contains(string(stat), ") Z ") {
				left = append(left, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
	return left
}

func decodeReport(t *testing.T, r result) drill.Report {
	t.Helper()
	var rep drill.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --restore -o json printed no report: %v\n%v", err, r)
	}
	return rep
}

// TestDrill: verify --restore restores a PostgreSQL and a MariaDB backup
// into throwaway servers, runs the checks, reports and stores the report
// beside the backup, fails naming a failing check, and leaves nothing
// running or on disk.
func TestDrill(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			var srv *testdb.Server
			if kind == "postgres" {
				srv = testdb.Postgres(t)
			} else {
				srv = testdb.MariaDB(t)
			}
			name, db := srv.Create(t, "cli_drill")
			srv.Populate(t, db, 2_000)
			tmp := drillTemp(t)
			c := newCLI(t).setenv("TMPDIR", tmp)
			dir := t.TempDir()
			repo := fileURL(dir)
			m := c.backup(srv.URL(name), repo)

			r := c.ok("verify", "--repo", repo, "--restore", "-o", "json",
				"--check", "SELECT count(*) = 2000 FROM big",
				"--check", "SELECT count(*) FROM people WHERE name = 'Ødegaard'")
			rep := decodeReport(t, r)
			if !rep.Passed || rep.BackupID != m.ID || !rep.Server.Throwaway || rep.Server.Version == "" || rep.RestoreSeconds <= 0 || rep.DownloadSeconds <= 0 {
				t.Errorf("report = %+v; want a passed drill of %s on a throwaway server with its times", rep, m.ID)
			}
			var names []string
			for _, ch := range rep.Checks {
				names = append(names, ch.Name)
				if !ch.Passed {
					t.Errorf("check %s failed: %s", ch.Name, ch.Detail)
				}
			}
			bigTable := "public.big"
			if kind == "mysql" {
				bigTable = name + ".big" // MariaDB's schema is the database
			}
			for _, want := range []string{"integrity", "restore", "rows " + bigTable, "digest " + bigTable,
				"SELECT count(*) = 2000 FROM big", "SELECT count(*) FROM people WHERE name = 'Ødegaard'"} {
				if !slices.Contains(names, want) {
					t.Errorf("checks ran: %q; want one named %q", names, want)
				}
			}
			if !rep.Server.Throwaway || !rep.DigestsChecked || rep.Tables < 4 || rep.Rows < 2000 {
				t.Errorf("report: %d tables, %d rows, digests checked %v; want the recorded tables counted and their digests compared", rep.Tables, rep.Rows, rep.DigestsChecked)
			}
			stored, _ := filepath.Glob(filepath.Join(dir, m.ID, archiver.VerifyDir, "*.json"))
			if len(stored) != 1 {
				t.Fatalf("stored reports %v, want one under %s/%s", stored, m.ID, archiver.VerifyDir)
			}
			if b, err := os.ReadFile(stored[0]); err != nil || !strings.Contains(string(b), `"passed": true`) {
				t.Errorf("stored report %s: %s, %v", stored[0], b, err)
			}
			c.listed(repo, m.ID) // the report is not a backup

			r = c.fail(1, "verify", "--repo", repo, "--restore", "-o", "json", "--check", "SELECT count(*) FROM people WHERE id > 1000")
			if !strings.Contains(r.stderr, "SELECT count(*) FROM people WHERE id > 1000") || !strings.Contains(r.stderr, m.ID) {
				t.Errorf("a failing check's error does not name it and the backup:\n%s", r.stderr)
			}
			if rep := decodeReport(t, r); rep.Passed {
				t.Errorf("report of a failing check says passed")
			}

			// A table list rewritten after the backup (with its sha256 in
			// the manifest to match) fails the drill naming the table.
			alterTableList(t, filepath.Join(dir, m.ID), bigTable)
			r = c.fail(1, "verify", "--repo", repo, "--restore", "-o", "json")
			if !strings.Contains(r.stderr, "rows "+bigTable) {
				t.Errorf("a drill against an altered table list does not name %s:\n%s", bigTable, r.stderr)
			}
			if left := drillLeftovers(t, tmp); len(left) > 0 {
				t.Errorf("the drills left behind: %v", left)
			}
		})
	}
}

// alterTableList adds a row to table's recorded count in the backup in dir
// and rewrites the manifest's sha256 and size of the list to match, as a
// person (or a bug) changing both would.
func alterTableList(t *testing.T, dir, table string) {
	t.Helper()
	mpath := filepath.Join(dir, archiver.ManifestObject)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	tables := m["tables"].(map[string]any)
	lpath := filepath.Join(dir, tables["object"].(string))
	lraw, err := os.ReadFile(lpath)
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(lraw, &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list["tables"].([]any) {
		e := e.(map[string]any)
		name := e["name"].(string)
		if s, ok := e["schema"].(string); ok && s != "" {
			name = s + "." + name
		}
		if name == table {
			e["rows"] = e["rows"].(float64) + 1
			found = true
		}
	}
	if !found {
		t.Fatalf("table list of %s has no %s", dir, table)
	}
	tables["rows"] = tables["rows"].(float64) + 1
	lraw, _ = json.Marshal(list)
	sum := sha256.Sum256(lraw)
	tables["sha256"], tables["size"] = hex.EncodeToString(sum[:]), len(lraw)
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(lpath, lraw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mpath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDrillFailures: a flipped byte fails the integrity pass before any
// server starts; bad flags are usage errors; SIGTERM in the middle of the
// restore leaves no server process and no directory.
func TestDrillFailures(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_drill_fail")
	srv.Populate(t, db, 300_000)
	tmp := drillTemp(t)
	c := newCLI(t).setenv("TMPDIR", tmp)

	t.Run("usage", func(t *testing.T) {
		c.fail(2, "verify", "--check", "SELECT 1")
		c.fail(2, "verify", "--restore", "--restore-to", "http://example.com/")
		c.fail(2, "verify", "--restore", "-o", "yaml")
	})

	t.Run("SIGTERM mid-restore", func(t *testing.T) {
		repo := fileURL(t.TempDir())
		c.backup(srv.URL(name), repo)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd, _, stderr := c.command(ctx, "verify", "--repo", repo, "--restore", "-o", "json")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the throwaway server to be loading the big table.
		deadline := time.Now().Add(2 * time.Minute)
		for !serverCopying(tmp) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("the drill never started copying the big table; stderr:\n%s", stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Errorf("a drill stopped by SIGTERM exited %v; want non-zero", err)
		}
		if left := drillLeftovers(t, tmp); len(left) > 0 {
			t.Errorf("after SIGTERM the drill left behind: %v", left)
		}
	})

	t.Run("flipped byte", func(t *testing.T) {
		dir := t.TempDir()
		m := c.backup(srv.URL(name), fileURL(dir), "--part-size", "256KiB")
		data := filepath.Join(dir, m.ID, archiver.DataObject)
		stored, err := os.ReadFile(data)
		if err != nil {
			t.Fatal(err)
		}
		stored[len(stored)/2] ^= 0x01
		if err := os.WriteFile(data, stored, 0o600); err != nil {
			t.Fatal(err)
		}
		r := c.fail(1, "verify", "--repo", fileURL(dir), "--restore", "-o", "json")
		rep := decodeReport(t, r)
		if len(rep.Checks) != 1 || rep.Checks[0].Kind != "integrity" || rep.Checks[0].Passed || rep.Server.Version != "" {
			t.Errorf("report = %+v; want only a failed integrity check and no server started", rep)
		}
		if !strings.Contains(r.stderr, "checksum") || !strings.Contains(r.stderr, m.ID) {
			t.Errorf("stderr does not name the checksum failure of %s:\n%s", m.ID, r.stderr)
		}
	})
}

// serverCopying reports whether a throwaway server under tmp runs a COPY
// (the restore is loading data).
func serverCopying(tmp string) bool {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "dbarchive-drill-*"))
	for _, d := range dirs {
		out, err := exec.Command("psql", "--no-psqlrc", "-At", "-h", d, "-U", "postgres", "-d", "postgres",
			"-c", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %'").Output()
		if err == nil && strings.TrimSpace(string(out)) != "0" {
			return true
		}
	}
	return false
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// TestBackupSets is the shared default repo of issue 8: one backup of
// database a and three of b. prune keeps N per set, latest resolves within
// the set --source names and refuses to guess when none is named, list shows
// the set, a damaged newest manifest stops latest (not --backup ID), and an
// incomplete backup never makes prune delete the last good one.
func TestBackupSets(t *testing.T) {
	srv := testdb.Postgres(t)
	nameA, dbA := srv.Create(t, "cli_set_a")
	srv.Populate(t, dbA, 2_000)
	nameB, dbB := srv.Create(t, "cli_set_b")
	srv.Populate(t, dbB, 3_000)
	wantA := srv.Fingerprint(t, dbA)

	c := newCLI(t)
	repo := filepath.Join(c.dataDir, "dbarchive", "repo")
	a1 := c.backup(srv.URL(nameA), "")
	b1, b2, b3 := c.backup(srv.URL(nameB), ""), c.backup(srv.URL(nameB), ""), c.backup(srv.URL(nameB), "")

	t.Run("latest refuses to guess between sets", func(t *testing.T) {
		target := srv.Name(t, "cli_set_guess")
		for _, args := range [][]string{
			{"restore", "--target", srv.URL(target), "--create-db"},
			{"verify"},
		} {
			r := c.fail(2, args...)
			for _, want := range []string{"more than one set", "postgres/" + nameA, "postgres/" + nameB, "--source"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("%s: stderr lacks %q:\n%s", args[0], want, r.stderr)
				}
			}
		}
		var exists bool
		if err := srv.Admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, target).Scan(&exists); err != nil || exists {
			t.Fatalf("the refused restore created its target (%v, err %v)", exists, err)
		}
	})

	t.Run("list shows the set", func(t *testing.T) {
		r := c.ok("list")
		if !strings.Contains(r.stdout, "NAME") {
			t.Errorf("list has no NAME column:\n%s", r.stdout)
		}
		for _, m := range []*archiver.Manifest{a1, b1, b2, b3} {
			line := lineWith(r.stdout, m.ID)
			if !strings.Contains(line, "postgres") || !strings.Contains(line, m.Source.Database) {
				t.Errorf("list line of %s does not show its set (postgres, %s): %q", m.ID, m.Source.Database, line)
			}
		}
	})

	t.Run("prune keeps N per set", func(t *testing.T) {
		r := c.ok("prune", "--keep-last", "2")
		if !strings.Contains(r.stdout, b1.ID) || strings.Contains(r.stdout, a1.ID) {
			t.Errorf("prune output:\n%s\nwant only %s deleted", r.stdout, b1.ID)
		}
		c.listed("", a1.ID, b2.ID, b3.ID)
	})

	t.Run("latest within the named set", func(t *testing.T) {
		target := srv.Name(t, "cli_set_a_copy")
		c.ok("restore", "--source", srv.URL(nameA), "--target", srv.URL(target), "--create-db")
		testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), wantA)
		if r := c.ok("verify", "--source", srv.URL(nameB)); !strings.Contains(r.stdout, b3.ID+"\tok") {
			t.Errorf("verify --source b printed %q, want %s ok", r.stdout, b3.ID)
		}
		r := c.fail(1, "verify", "--source", srv.URL(nameB), "--backup", a1.ID)
		if !strings.Contains(r.stderr, a1.ID) || !strings.Contains(r.stderr, "postgres/"+nameA) {
			t.Errorf("verify of a's backup asking for b's set: stderr lacks the backup and its set:\n%s", r.stderr)
		}
	})

	t.Run("unreadable newest manifest", func(t *testing.T) {
		manifest := filepath.Join(repo, b3.ID, archiver.ManifestObject)
		good, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifest, []byte("{ not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(manifest, good, 0o600)
		for _, args := range [][]string{
			{"verify", "--source", srv.URL(nameB)},
			{"restore", "--source", srv.URL(nameB), "--output", filepath.Join(t.TempDir(), "dump")},
		} {
			if r := c.fail(1, args...); !strings.Contains(r.stderr, b3.ID) {
				t.Errorf("%s with the newest manifest unreadable: stderr does not name %s:\n%s", args[0], b3.ID, r.stderr)
			}
		}
		if r := c.ok("verify", "--backup", b2.ID); !strings.Contains(r.stdout, b2.ID+"\tok") {
			t.Errorf("verify --backup %s printed %q", b2.ID, r.stdout)
		}
		if r := c.ok("list"); strings.Contains(r.stdout, b3.ID) || !strings.Contains(r.stderr, b3.ID) {
			t.Errorf("list must skip %s with a warning naming it; stdout:\n%s\nstderr:\n%s", b3.ID, r.stdout, r.stderr)
		}
	})

	t.Run("incomplete backup does not count", func(t *testing.T) {
		a2 := c.backup(srv.URL(nameA), "")
		if err := os.Remove(filepath.Join(repo, a2.ID, archiver.DataObject)); err != nil {
			t.Fatal(err)
		}
		r := c.ok("prune", "--keep-last", "1")
		if line := lineWith(r.stdout, a2.ID); !strings.HasPrefix(line, "incomplete") {
			t.Errorf("prune does not report %s as incomplete:\n%s", a2.ID, r.stdout)
		}
		c.listed("", a1.ID, b3.ID, a2.ID)
		if r := c.fail(1, "verify", "--source", srv.URL(nameA)); !strings.Contains(r.stderr, a2.ID) {
			t.Errorf("verify of latest with its data gone does not name %s:\n%s", a2.ID, r.stderr)
		}
		c.ok("verify", "--backup", a1.ID)
		c.ok("prune", "--keep-last", "1", "--grace", "0s")
		c.listed("", a1.ID, b3.ID)
	})
}

// lineWith returns the first line of s that contains sub, or "".
func lineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

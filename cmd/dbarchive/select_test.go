package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// TestRestoreBeforeAndOverwrite: two backups with different content. list
// narrows by finish time; restore --backup before:T brings back the state
// of the first; a target that holds tables is refused (exit 1, nothing
// changed) until --overwrite, which brings back the second.
func TestRestoreBeforeAndOverwrite(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cli_before")
	srv.Populate(t, db, 500)
	wantFirst := srv.Fingerprint(t, db)
	c := newCLI(t)
	repo := fileURL(filepath.Join(t.TempDir(), "repo"))
	first := c.backup(srv.URL(name), repo)
	time.Sleep(20 * time.Millisecond) // the two end times must differ
	if _, err := db.Exec(`INSERT INTO big SELECT i, 'second', 'backup' FROM generate_series(1000, 1100) i`); err != nil {
		t.Fatal(err)
	}
	wantSecond := srv.Fingerprint(t, db)
	second := c.backup(srv.URL(name), repo)
	between := first.EndTime.Add(second.EndTime.Sub(first.EndTime) / 2).UTC().Format(time.RFC3339Nano)

	listIDs := func(args ...string) []string {
		r := c.ok(append([]string{"list", "-o", "json", "--repo", repo}, args...)...)
		var ms []archiver.Manifest
		if err := json.Unmarshal([]byte(r.stdout), &ms); err != nil {
			t.Fatalf("list -o json: %v\n%v", err, r)
		}
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if got := listIDs("--since", between); !slices.Equal(got, []string{second.ID}) {
		t.Errorf("list --since %s = %v, want [%s]", between, got, second.ID)
	}
	if got := listIDs("--until", between); !slices.Equal(got, []string{first.ID}) {
		t.Errorf("list --until %s = %v, want [%s]", between, got, first.ID)
	}
	if got := listIDs("--since", "1h"); !slices.Equal(got, []string{first.ID, second.ID}) {
		t.Errorf("list --since 1h = %v, want both", got)
	}
	c.fail(2, "list", "--repo", repo, "--since", "yesterday")

	target, tdb := srv.Create(t, "cli_before_dst")
	c.ok("restore", "--repo", repo, "--backup", "before:"+between, "--target", srv.URL(target))
	testdb.CompareFingerprints(t, srv.Fingerprint(t, tdb), wantFirst)

	r := c.fail(1, "restore", "--repo", repo, "--target", srv.URL(target))
	for _, want := range []string{"not empty", "--overwrite", target} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("refused restore's stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	testdb.CompareFingerprints(t, srv.Fingerprint(t, tdb), wantFirst)

	c.ok("restore", "--repo", repo, "--overwrite", "--target", srv.URL(target))
	testdb.CompareFingerprints(t, srv.Fingerprint(t, tdb), wantSecond)

	for _, bad := range []string{"before:yesterday", "before:" + first.EndTime.Add(-time.Hour).Format(time.RFC3339)} {
		code := 2
		if strings.HasPrefix(bad, "before:2") {
			code = 1 // well-formed, but no backup finished that early
		}
		r := c.fail(code, "restore", "--repo", repo, "--backup", bad, "--output", filepath.Join(t.TempDir(), "x"))
		if !strings.Contains(r.stderr, "before") {
			t.Errorf("restore --backup %s: stderr does not say why:\n%s", bad, r.stderr)
		}
	}
}

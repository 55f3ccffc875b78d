package mysql

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
)

// A restore into a database that holds tables is refused before anything
// is loaded, naming them; with Overwrite the dump replaces the tables it
// holds and leaves the others.
func TestNonEmptyTargetAndOverwrite(t *testing.T) {
	srv := testdb.MariaDB(t)
	ctx := context.Background()
	srcName, srcDB := srv.Create(t, "my_ow_src")
	srv.Populate(t, srcDB, 1000)
	want := srv.Fingerprint(t, srcDB)
	var dump bytes.Buffer
	if err := open(t, srv.URL(srcName), sources.Options{}).Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}

	target, db := srv.Create(t, "my_ow_dst")
	if err := open(t, srv.URL(target), sources.Options{}).CheckRestore(ctx); err != nil {
		t.Fatalf("CheckRestore of an empty database = %v, want nil", err)
	}
	srv.Populate(t, db, 10)
	if _, err := db.Exec(`CREATE TABLE keep_me (x INT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO keep_me VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	err := open(t, srv.URL(target), sources.Options{}).CheckRestore(ctx)
	var ne *sources.TargetNotEmptyError
	if !errors.As(err, &ne) {
		t.Fatalf("CheckRestore of a populated database = %v, want a TargetNotEmptyError", err)
	}
	// audit, big, blobs, keep_me, named, people: six, five shown.
	if wantShown := []string{"audit", "big", "blobs", "keep_me", "named"}; ne.Count != 6 || !slices.Equal(ne.Tables, wantShown) {
		t.Errorf("TargetNotEmptyError names %v of %d, want %v of 6", ne.Tables, ne.Count, wantShown)
	}
	if !strings.Contains(err.Error(), target) {
		t.Errorf("error %q does not name the target", err)
	}

	dst := open(t, srv.URL(target), sources.Options{Overwrite: true})
	if err := dst.CheckRestore(ctx); err != nil {
		t.Fatalf("CheckRestore with Overwrite: %v", err)
	}
	if err := dst.Restore(ctx, &dump); err != nil {
		t.Fatalf("Restore with Overwrite: %v", err)
	}
	testdb.CompareFingerprints(t, srv.Fingerprint(t, db), want)
	if got := testdb.Strings(t, db, `SELECT CAST(x AS CHAR) FROM keep_me`); !slices.Equal(got, []string{"42"}) {
		t.Errorf("keep_me after the restore = %v, want [42]: tables outside the backup stay", got)
	}
}

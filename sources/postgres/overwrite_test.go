package postgres

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

// A restore into a database that holds relations is refused before
// anything is loaded, naming what is there; relations in system schemas do
// not count, and a database made for the restore is not checked.
func TestCheckRestoreRefusesNonEmptyTarget(t *testing.T) {
	srv := testdb.Postgres(t)
	ctx := context.Background()
	name, db := srv.Create(t, "pg_nonempty")
	if err := open(t, srv.URL(name), sources.Options{}).CheckRestore(ctx); err != nil {
		t.Fatalf("CheckRestore of an empty database = %v, want nil", err)
	}
	for _, stmt := range []string{
		`CREATE SCHEMA "Sales"`,
		`CREATE TABLE "Sales"."Orders" (id int)`,
		`CREATE VIEW v AS SELECT 1 AS one`,
		`CREATE SEQUENCE s1`, `CREATE SEQUENCE s2`, `CREATE SEQUENCE s3`, `CREATE SEQUENCE s4`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	err := open(t, srv.URL(name), sources.Options{}).CheckRestore(ctx)
	var ne *sources.TargetNotEmptyError
	if !errors.As(err, &ne) {
		t.Fatalf("CheckRestore of a database with 6 relations = %v, want a TargetNotEmptyError", err)
	}
	want := []string{`"Sales"."Orders"`, "public.s1", "public.s2", "public.s3", "public.s4"}
	if ne.Count != 6 || !slices.Equal(ne.Tables, want) {
		t.Errorf("TargetNotEmptyError names %v of %d, want %v of 6", ne.Tables, ne.Count, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "and 1 more") || !strings.Contains(msg, name) {
		t.Errorf("error %q should name the target and say one more table is not shown", msg)
	}
	if err := open(t, srv.URL(name), sources.Options{Overwrite: true}).CheckRestore(ctx); err != nil {
		t.Errorf("CheckRestore with Overwrite = %v, want nil", err)
	}
	if err := open(t, srv.URL(srv.Name(t, "pg_new")), sources.Options{CreateDatabase: true}).CheckRestore(ctx); err != nil {
		t.Errorf("CheckRestore with CreateDatabase = %v, want nil", err)
	}
}

// With Overwrite, an archive replaces the objects it holds in one
// transaction and leaves the others; a plain dump that collides with what
// is there fails and leaves the target as it was.
func TestOverwriteRestore(t *testing.T) {
	srv := testdb.Postgres(t)
	ctx := context.Background()
	srcName, srcDB := srv.Create(t, "pg_ow_src")
	srv.Populate(t, srcDB, 1000)
	want := srv.Fingerprint(t, srcDB)

	for _, format := range []string{FormatCustom, FormatTar} {
		t.Run(format, func(t *testing.T) {
			var dump bytes.Buffer
			if err := open(t, srv.URL(srcName), sources.Options{Format: format}).Dump(ctx, &dump); err != nil {
				t.Fatal(err)
			}
			target, db := srv.Create(t, "pg_ow_dst")
			srv.Populate(t, db, 10)
			if _, err := db.Exec(`DELETE FROM people WHERE id = 1; CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)`); err != nil {
				t.Fatal(err)
			}
			dst := open(t, srv.URL(target), sources.Options{Format: format, Overwrite: true})
			if err := dst.CheckRestore(ctx); err != nil {
				t.Fatalf("CheckRestore: %v", err)
			}
			if err := dst.Restore(ctx, &dump); err != nil {
				t.Fatalf("Restore with Overwrite: %v", err)
			}
			testdb.CompareFingerprints(t, srv.Fingerprint(t, db), want)
			if got := testdb.Strings(t, db, `SELECT x::text FROM keep_me`); !slices.Equal(got, []string{"42"}) {
				t.Errorf("keep_me after the restore = %v, want [42]: objects outside the backup stay", got)
			}
		})
	}

	t.Run(FormatPlain, func(t *testing.T) {
		var dump bytes.Buffer
		if err := open(t, srv.URL(srcName), sources.Options{Format: FormatPlain}).Dump(ctx, &dump); err != nil {
			t.Fatal(err)
		}
		target, db := srv.Create(t, "pg_ow_plain")
		srv.Populate(t, db, 10)
		before := srv.Fingerprint(t, db)
		err := open(t, srv.URL(target), sources.Options{Format: FormatPlain, Overwrite: true}).Restore(ctx, &dump)
		if err == nil {
			t.Fatal("a plain dump restored over the same tables succeeded; want the collision to fail it")
		}
		testdb.CompareFingerprints(t, srv.Fingerprint(t, db), before)
	})
}

package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
)

// dbSettings is what a database carries besides its contents: its
// ALTER DATABASE … SET settings (for everyone and per role), comment and ACL.
func dbSettings(t *testing.T, admin *sql.DB, name, role string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var comment, acl, all, perRole sql.NullString
	err := admin.QueryRow(`SELECT shobj_description(d.oid, 'pg_database'), (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(d.datacl) a),
		(SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0),
		(SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE setdatabase = d.oid AND r.rolname = $2)
		FROM pg_database d WHERE datname = $1`, name, role).Scan(&comment, &acl, &all, &perRole)
	if err != nil {
		t.Fatalf("settings of %s: %v", name, err)
	}
	out["comment"], out["acl"], out["settings"], out["role settings"] = comment.String, acl.String, all.String, perRole.String
	return out
}

// A restore with CreateDatabase gives the new database the dumped one's
// settings, comment and ACL (archive formats carry them).
func TestCreateDatabaseKeepsDatabaseSettings(t *testing.T) {
	srv := testdb.Postgres(t)
	role := testdb.Unique("dbarchive_reader")
	if _, err := srv.Admin.Exec(`CREATE ROLE ` + testdb.QuotePG(role) + ` NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the databases are dropped.
	t.Cleanup(func() { _, _ = srv.Admin.Exec(`DROP ROLE IF EXISTS ` + testdb.QuotePG(role)) })
	name, db := srv.Create(t, "pg_props")
	srv.Populate(t, db, 100)
	q := testdb.QuotePG(name)
	for _, stmt := range []string{
		`ALTER DATABASE ` + q + ` SET work_mem = '7MB'`,
		`ALTER DATABASE ` + q + ` SET search_path = audit, public`,
		`ALTER ROLE ` + testdb.QuotePG(role) + ` IN DATABASE ` + q + ` SET statement_timeout = '5s'`,
		// A literal with a semicolon, a quote, a line break and the
		// database's own name must come through unchanged.
		`COMMENT ON DATABASE ` + q + ` IS 'orders; it''s
the DATABASE ` + name + ` of record'`,
		`REVOKE TEMPORARY ON DATABASE ` + q + ` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE ` + q + ` TO ` + testdb.QuotePG(role),
	} {
		if _, err := srv.Admin.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	want := dbSettings(t, srv.Admin, name, role)
	if want["comment"] == "" || want["role settings"] == "" || !strings.Contains(want["acl"], role) {
		t.Fatalf("source settings %v: the test proves nothing", want)
	}
	for _, format := range []string{FormatCustom, FormatTar} {
		t.Run(format, func(t *testing.T) {
			var dump bytes.Buffer
			if err := open(t, srv.URL(name), sources.Options{Format: format}).Dump(context.Background(), &dump); err != nil {
				t.Fatal(err)
			}
			target := srv.Name(t, "pg_props_dst")
			if err := open(t, srv.URL(target), sources.Options{CreateDatabase: true}).Restore(context.Background(), &dump); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			got := dbSettings(t, srv.Admin, target, role)
			for k, v := range want {
				if k == "acl" {
					// The ACL names the grantor and grantees, not the database.
					v = strings.ReplaceAll(v, name, target)
				}
				if got[k] != v {
					t.Errorf("%s of the restored database = %q, want %q", k, got[k], v)
				}
			}
			testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), srv.Fingerprint(t, db))
		})
	}
	// Into an existing database the dump's database entries do not apply:
	// that database keeps its own.
	t.Run("existing database", func(t *testing.T) {
		var dump bytes.Buffer
		if err := open(t, srv.URL(name), sources.Options{}).Dump(context.Background(), &dump); err != nil {
			t.Fatal(err)
		}
		target, _ := srv.Create(t, "pg_props_keep")
		before := dbSettings(t, srv.Admin, target, role)
		if err := open(t, srv.URL(target), sources.Options{}).Restore(context.Background(), &dump); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if after := dbSettings(t, srv.Admin, target, role); after["comment"] != before["comment"] || after["settings"] != before["settings"] {
			t.Errorf("restoring into an existing database changed its settings: %v -> %v", before, after)
		}
	})
}

func TestDatabaseStatements(t *testing.T) {
	script := `--
-- Name: "odd;name"; Type: DATABASE
--
CREATE DATABASE "odd;name" WITH TEMPLATE = template0 ENCODING = 'UTF8';
ALTER DATABASE "odd;name" OWNER TO postgres;
\connect -reuse-previous=on "dbname='odd;name'"
\restrict abc
SET statement_timeout = 0;
COMMENT ON DATABASE "odd;name" IS 'x;
-- not a comment line
\not a meta line; DATABASE "odd;name"';
ALTER DATABASE "odd;name" SET work_mem TO '7MB';
ALTER ROLE r IN DATABASE "odd;name" SET statement_timeout TO '5s';
REVOKE CONNECT,TEMPORARY ON DATABASE "odd;name" FROM PUBLIC;
GRANT CONNECT ON DATABASE "odd;name" TO r;
\unrestrict abc
`
	got, err := databaseStatements(script, "new")
	if err != nil {
		t.Fatal(err)
	}
	want := `COMMENT ON DATABASE "new" IS 'x;
-- not a comment line
\not a meta line; DATABASE "odd;name"';
ALTER DATABASE "new" SET work_mem TO '7MB';
ALTER ROLE r IN DATABASE "new" SET statement_timeout TO '5s';
REVOKE CONNECT,TEMPORARY ON DATABASE "new" FROM PUBLIC;
GRANT CONNECT ON DATABASE "new" TO r;
`
	if got != want {
		t.Fatalf("databaseStatements =\n%s\nwant\n%s", got, want)
	}
}

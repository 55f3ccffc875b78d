package archiver_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
	_ "github.com/dbarchive/dbarchive/sources/exec"
	_ "github.com/dbarchive/dbarchive/sources/mysql"
	_ "github.com/dbarchive/dbarchive/sources/postgres"
)

// TestTableListRecorded backs up real PostgreSQL (custom and plain) and
// MariaDB databases: the manifest references a table list object whose
// counts are the tables' count(*), Verify checks the object, damage to it
// is corruption naming it, and prune removes it with its backup.
func TestTableListRecorded(t *testing.T) {
	ctx := context.Background()
	pg := testdb.Postgres(t)
	pgName, pgDB := pg.Create(t, "tables")
	if _, err := pgDB.Exec(`CREATE TABLE a (id int, s text);
		INSERT INTO a SELECT g, 'x' || g FROM generate_series(1, 1234) g;
		CREATE TABLE "B b" (x bytea); INSERT INTO "B b" VALUES (NULL), ('\x00');
		CREATE TABLE e (x int);
		CREATE VIEW v AS SELECT * FROM a;`); err != nil {
		t.Fatal(err)
	}
	my := testdb.MariaDB(t)
	myName, myDB := my.Create(t, "tables")
	if _, err := myDB.Exec("CREATE TABLE a (id int, s text); INSERT INTO a SELECT seq, CONCAT('x', seq) FROM seq_1_to_1234;" +
		"CREATE TABLE `B b` (x blob); INSERT INTO `B b` VALUES (NULL), (x'00'); CREATE TABLE e (x int); CREATE VIEW v AS SELECT * FROM a;"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, format, wantFormat string
		want                          map[string]int64
	}{
		{"postgres custom", pg.URL(pgName), "custom", dumpscan.FormatPostgresCustom, map[string]int64{"public.a": 1234, "public.B b": 2, "public.e": 0}},
		{"postgres plain", pg.URL(pgName), "plain", dumpscan.FormatPostgresPlain, map[string]int64{"public.a": 1234, "public.B b": 2, "public.e": 0}},
		{"mariadb", my.URL(myName), "", dumpscan.FormatMariaDB, map[string]int64{myName + ".a": 1234, myName + ".B b": 2, myName + ".e": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, dir := openFS(t)
			src, err := sources.Open(tc.url, sources.Options{Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			m, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Tables == nil || m.Tables.Object != archiver.TablesObject || m.Tables.Format != tc.wantFormat ||
				m.Tables.Count != len(tc.want) || m.Tables.Rows != 1236 || m.Tables.NotRecorded != "" {
				t.Fatalf("manifest tables %+v", m.Tables)
			}
			l, err := archiver.ReadTables(ctx, b, "p", m, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int64{}
			for _, tb := range l.Tables {
				got[tb.QualifiedName()] = tb.Rows
			}
			if len(got) != len(tc.want) || l.ID != m.ID || l.DigestAlgorithm != dumpscan.DigestAlgorithm {
				t.Fatalf("table list %+v, want %v", l, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("table %s: %d rows recorded, want %d (list %v)", k, got[k], v, got)
				}
			}
			if err := archiver.Verify(ctx, b, m, archiver.RestoreOptions{Prefix: "p"}); err != nil {
				t.Fatal(err)
			}

			// A changed list (one count edited) is corruption naming it.
			path := filepath.Join(dir, "p", m.ID, archiver.TablesObject)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			edited := bytes.Replace(orig, []byte(`"rows":1234`), []byte(`"rows":1235`), 1)
			if bytes.Equal(edited, orig) {
				t.Fatalf("table list %s has no count of 1234", orig)
			}
			if err := os.WriteFile(path, edited, 0o600); err != nil {
				t.Fatal(err)
			}
			err = archiver.Verify(ctx, b, m, archiver.RestoreOptions{Prefix: "p"})
			if corruption(t, err, m.ID, 0); !strings.Contains(err.Error(), archiver.TablesObject) {
				t.Fatalf("Verify of an edited table list = %v, want it named", err)
			}
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}

			// Prune removes the list with its backup.
			m2, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p", Now: func() time.Time { return time.Now().Add(time.Second) }})
			if err != nil {
				t.Fatal(err)
			}
			res, err := archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1}, nil)
			if err != nil || len(res.Deleted) != 1 || res.Deleted[0].ID != m.ID {
				t.Fatalf("Prune = %+v, %v; want %s deleted", res, err, m.ID)
			}
			if _, err := os.Stat(filepath.Join(dir, "p", m.ID)); !errors.Is(err, os.ErrNotExist) {
				if left, _ := os.ReadDir(filepath.Join(dir, "p", m.ID)); len(left) > 0 {
					t.Fatalf("prune left %v of the deleted backup", left)
				}
			}
			if _, err := archiver.ReadTables(ctx, b, "p", m2, nil); err != nil {
				t.Fatal(err)
			}
			// A backup whose list is gone fails Verify naming it, but it
			// still restores, so prune keeps it.
			if err := os.Remove(filepath.Join(dir, "p", m2.ID, archiver.TablesObject)); err != nil {
				t.Fatal(err)
			}
			err = archiver.Verify(ctx, b, m2, archiver.RestoreOptions{Prefix: "p"})
			if err == nil || !strings.Contains(err.Error(), archiver.TablesObject) || !strings.Contains(err.Error(), m2.ID) {
				t.Fatalf("Verify without the table list = %v, want an error naming it and the backup", err)
			}
			res, err = archiver.Prune(ctx, b, "p", archiver.Retention{KeepLast: 1, DryRun: true}, nil)
			if err != nil || len(res.Incomplete) != 0 || len(res.Kept) != 1 {
				t.Fatalf("Prune with the table list gone = %+v, %v; want the backup kept", res, err)
			}
		})
	}
}

// TestCutDumpFailsBackup: a dump tool that stops early and still exits 0 —
// an exec: command printing part of a dump, a real pg_dump piped through
// head -c — fails the backup, which leaves nothing behind. The whole dump
// through the same exec source is a backup that records no tables and says
// so.
func TestCutDumpFailsBackup(t *testing.T) {
	ctx := context.Background()
	pg := testdb.Postgres(t)
	name, db := pg.Create(t, "cut")
	if _, err := db.Exec(`CREATE TABLE a (id int, s text); INSERT INTO a SELECT g, md5(g::text) || md5((-g)::text) FROM generate_series(1, 5000) g;`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	for _, f := range []string{"custom", "plain"} {
		src, err := sources.Open(pg.URL(name), sources.Options{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := src.Dump(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		files[f] = buf.Bytes()
		if err := os.WriteFile(filepath.Join(dir, f), buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	my := testdb.MariaDB(t)
	myName, myDB := my.Create(t, "cut")
	if _, err := myDB.Exec("CREATE TABLE a (id int, s text); INSERT INTO a SELECT seq, REPEAT('x', 100) FROM seq_1_to_5000;"); err != nil {
		t.Fatal(err)
	}
	src, err := sources.Open(my.URL(myName), sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.Dump(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	files["mariadb"] = buf.Bytes()
	if err := os.WriteFile(filepath.Join(dir, "mariadb"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	for f, data := range files {
		for _, n := range []int{100, len(data) / 2, len(data) - 40} {
			t.Run(f, func(t *testing.T) {
				b, _ := openFS(t)
				cmd := "exec:head -c " + strconv.Itoa(n) + " " + filepath.Join(dir, f)
				src, err := sources.Open(cmd, sources.Options{})
				if err != nil {
					t.Fatal(err)
				}
				_, err = archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p"})
				var be *archiver.BackupError
				var ie *dumpscan.IncompleteError
				if !errors.As(err, &be) || !errors.As(err, &ie) || !strings.Contains(err.Error(), "head") || !strings.Contains(err.Error(), "incomplete") {
					t.Fatalf("Backup of %d of %d bytes = %v, want a BackupError naming the source and the incomplete dump", n, len(data), err)
				}
				requireNothingLeft(t, b, "p")
			})
		}
		t.Run(f+" whole", func(t *testing.T) {
			b, _ := openFS(t)
			src, err := sources.Open("exec:cat "+filepath.Join(dir, f), sources.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p"})
			if err != nil {
				t.Fatal(err)
			}
			wantFormat := map[string]string{"custom": dumpscan.FormatPostgresCustom, "plain": dumpscan.FormatPostgresPlain, "mariadb": dumpscan.FormatMariaDB}[f]
			if m.Tables == nil || m.Tables.Object != "" || m.Tables.NotRecorded != "exec sources record no tables" || m.Tables.Format != wantFormat {
				t.Fatalf("manifest tables %+v, want none recorded with the reason, and the format whose end was checked", m.Tables)
			}
			if l, err := archiver.ReadTables(ctx, b, "p", m, nil); l != nil || err != nil {
				t.Fatalf("ReadTables = %v, %v", l, err)
			}
		})
	}

	// The real tool, cut by head, which exits 0: pg_dump's own default
	// (compressed) custom format and its plain format.
	for format, want := range map[string]string{"c": dumpscan.FormatPostgresCustom, "p": dumpscan.FormatPostgresPlain} {
		b, _ := openFS(t)
		src, err = sources.Open("exec:sh -c 'pg_dump -h 127.0.0.1 -U postgres --no-password -F"+format+" \"$0\" | head -c 20000' "+name, sources.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "p"})
		var ie *dumpscan.IncompleteError
		if !errors.As(err, &ie) || ie.Format != want {
			t.Fatalf("Backup of pg_dump -F%s | head -c = %v, want an incomplete %s dump", format, err, want)
		}
		t.Log(err)
		requireNothingLeft(t, b, "p")
	}
}

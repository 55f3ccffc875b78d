package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
)

// bigRows makes the "big" table over 50 MB.
const bigRows = testdb.BigRows

func open(t *testing.T, raw string, opts sources.Options) *Source {
	t.Helper()
	s, err := sources.Open(raw, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s.(*Source)
}

func TestRoundTrip(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "pg_src")
	start := time.Now()
	srv.Populate(t, db, bigRows)
	var heap int64
	if err := db.QueryRow(`SELECT pg_relation_size('big')`).Scan(&heap); err != nil || heap < 50<<20 {
		t.Fatalf("big table is %d bytes (err %v), want at least 50 MiB", heap, err)
	}
	t.Logf("generated big: %d rows, %.1f MB heap in %v", bigRows, float64(heap)/1e6, time.Since(start).Round(time.Millisecond))
	want := srv.Fingerprint(t, db)

	for _, format := range []string{FormatCustom, FormatTar, FormatPlain} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			src := open(t, srv.URL(name), sources.Options{Format: format})
			if err := src.Check(ctx); err != nil {
				t.Fatalf("Check: %v", err)
			}
			file := filepath.Join(t.TempDir(), "dump")
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := src.Dump(ctx, f); err != nil {
				t.Fatalf("Dump: %v", err)
			}
			dumpTime := time.Since(start)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(file)

			target := srv.Name(t, "pg_dst")
			dst := open(t, srv.URL(target), sources.Options{Format: format, CreateDatabase: true})
			if err := dst.CheckRestore(ctx); err != nil {
				t.Fatalf("CheckRestore: %v", err)
			}
			in, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			start = time.Now()
			if err := dst.Restore(ctx, in); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			restoreTime := time.Since(start)
			t.Logf("%s: dump %.1f MB in %v, restore in %v", format, float64(fi.Size())/1e6, dumpTime.Round(time.Millisecond), restoreTime.Round(time.Millisecond))

			restored := srv.Connect(t, target)
			got := srv.Fingerprint(t, restored)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: restored %s, source %s", k, got[k], v)
				}
			}
			srv.CheckTrigger(t, restored)
		})
	}
}

// smallDump is a dump of the schema with a small big table, for failure tests.
func smallDump(t *testing.T, srv *testdb.Server, format string) []byte {
	t.Helper()
	name, db := srv.Create(t, "pg_small")
	srv.Populate(t, db, 1000)
	var buf bytes.Buffer
	if err := open(t, srv.URL(name), sources.Options{Format: format}).Dump(context.Background(), &buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

var errBroken = errors.New("input broke half-way")

// brokenReader yields the first n bytes of data, then fails.
type brokenReader struct {
	data []byte
	n    int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, errBroken
	}
	k := copy(p, b.data[:min(b.n, len(b.data))])
	b.data, b.n = b.data[k:], b.n-k
	return k, nil
}

// publicTables lists the tables in the target's public schema.
func publicTables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return testdb.Strings(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
}

func TestRestoreFailureLeavesTargetUnchanged(t *testing.T) {
	srv := testdb.Postgres(t)
	for _, format := range []string{FormatCustom, FormatPlain} {
		t.Run(format, func(t *testing.T) {
			dump := smallDump(t, srv, format)
			target, db := srv.Create(t, "pg_keep")
			if _, err := db.Exec(`CREATE TABLE keep (v text); INSERT INTO keep VALUES ('untouched')`); err != nil {
				t.Fatal(err)
			}
			dst := open(t, srv.URL(target), sources.Options{Format: format})

			t.Run("input fails half-way", func(t *testing.T) {
				err := dst.Restore(context.Background(), &brokenReader{data: dump, n: len(dump) / 2})
				if !errors.Is(err, errBroken) {
					t.Fatalf("Restore = %v, want the reader's error", err)
				}
				if got := publicTables(t, db); !slices.Equal(got, []string{"keep"}) {
					t.Fatalf("target tables after failed restore: %v, want [keep]", got)
				}
			})
			if format == FormatPlain {
				t.Run("statement fails at the end", func(t *testing.T) {
					bad := append(slices.Clone(dump), "SELECT 1/0;\n"...)
					err := dst.Restore(context.Background(), bytes.NewReader(bad))
					var te *sources.ToolError
					if !errors.As(err, &te) || te.Tool != "psql" || !strings.Contains(err.Error(), "division by zero") {
						t.Fatalf("Restore = %v, want a psql ToolError with the stderr tail", err)
					}
					// The dump's SELECT set_config(…) prints a result on
					// psql's stdout: that is not part of why it failed.
					if strings.Contains(err.Error(), "set_config") || strings.Contains(err.Error(), "(1 row)") {
						t.Fatalf("the error holds psql's stdout: %v", err)
					}
					if got := publicTables(t, db); !slices.Equal(got, []string{"keep"}) {
						t.Fatalf("target tables after failed restore: %v, want [keep]", got)
					}
				})
			}
			t.Run("format mismatch", func(t *testing.T) {
				other := FormatTar
				if format == FormatTar {
					other = FormatCustom
				}
				wrong := open(t, srv.URL(target), sources.Options{Format: other})
				err := wrong.Restore(context.Background(), bytes.NewReader(dump))
				if err == nil || !strings.Contains(err.Error(), "format") {
					t.Fatalf("Restore with the wrong format = %v, want a format error", err)
				}
			})
		})
	}
}

func TestRestoreDropsDatabaseItCreated(t *testing.T) {
	srv := testdb.Postgres(t)
	dump := smallDump(t, srv, FormatCustom)
	target := srv.Name(t, "pg_created")
	dst := open(t, srv.URL(target), sources.Options{CreateDatabase: true})
	err := dst.Restore(context.Background(), &brokenReader{data: dump, n: len(dump) / 2})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Restore = %v, want the reader's error", err)
	}
	t.Logf("Restore: %v", err)
	var exists bool
	err = srv.Admin.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1
		OR starts_with(datname, $2) AND shobj_description(oid, 'pg_database') = $3)`, target, incompletePrefix, incompleteComment(target)).Scan(&exists)
	if err != nil || exists {
		t.Fatalf("database created for a failed restore still exists (%v, err %v)", exists, err)
	}
}

func TestDumpMissingDatabase(t *testing.T) {
	srv := testdb.Postgres(t)
	src := open(t, srv.URL("dbarchive_no_such_db"), sources.Options{})
	var buf bytes.Buffer
	err := src.Dump(context.Background(), &buf)
	var te *sources.ToolError
	if !errors.As(err, &te) {
		t.Fatalf("Dump = %v, want a ToolError", err)
	}
	if te.Tool != "pg_dump" || te.ExitCode == 0 || !strings.Contains(te.Stderr, `"dbarchive_no_such_db" does not exist`) {
		t.Fatalf("ToolError = %+v, want pg_dump's exit status and stderr naming the database", te)
	}
	for _, want := range []string{"pg_dump", "exit status", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// failingWriter accepts n bytes and then fails, like an aborted upload.
type failingWriter struct{ n int }

var errUpload = errors.New("upload aborted")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errUpload
	}
	f.n -= len(p)
	return len(p), nil
}

func TestDumpWriterFails(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "pg_wfail")
	srv.Populate(t, db, 50_000)
	err := open(t, srv.URL(name), sources.Options{Format: FormatPlain}).Dump(context.Background(), &failingWriter{n: 1 << 20})
	if !errors.Is(err, errUpload) {
		t.Fatalf("Dump = %v, want the writer's error", err)
	}
}

func TestDumpCancelled(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "pg_cancel")
	srv.Populate(t, db, 50_000)
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancellingWriter{after: 1 << 20, cancel: cancel}
	err := open(t, srv.URL(name), sources.Options{Format: FormatPlain}).Dump(ctx, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dump = %v, want context.Canceled", err)
	}
}

// cancellingWriter cancels the context once it has seen some output, and
// keeps accepting bytes so that only the cancellation can stop the dump.
type cancellingWriter struct {
	after  int
	cancel func()
}

func (c *cancellingWriter) Write(p []byte) (int, error) {
	c.after -= len(p)
	if c.after <= 0 {
		c.cancel()
	}
	return len(p), nil
}

func TestPasswordNeverInArgs(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file-pw\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const raw = "postgres://alice@db.example:6543/sales?sslmode=require"
	cases := []struct {
		name string
		opts sources.Options
		want string
	}{
		{"options", sources.Options{Password: "opt-pw", PasswordFile: pwFile}, "opt-pw"},
		{"file", sources.Options{PasswordFile: pwFile}, "from-file-pw"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, raw, c.opts)
			if d := s.Describe(); strings.Contains(d, "pw") || d != "postgres://alice@db.example:6543/sales?sslmode=require" {
				t.Errorf("Describe = %q", d)
			}
			builders := map[string]func() (*sources.Command, error){
				"dump":   s.dumpCommand,
				"script": func() (*sources.Command, error) { return s.scriptCommand(FormatCustom, true, true) },
				"psql":   func() (*sources.Command, error) { return s.psqlCommand("sales", "target=sales") },
			}
			for what, build := range builders {
				cmd, err := build()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				ec := cmd.Cmd(context.Background())
				for _, a := range ec.Args {
					for _, secret := range []string{c.want, "url#pw", "url%23pw", "opt-pw", "from-file-pw"} {
						if strings.Contains(a, secret) {
							t.Errorf("%s: argument %q holds a password", what, a)
						}
					}
				}
				wantEnv := []string{"PGPASSWORD=" + c.want, "PGHOST=db.example", "PGPORT=6543", "PGUSER=alice", "PGDATABASE=sales", "PGSSLMODE=require"}
				for _, e := range wantEnv {
					if !slices.Contains(ec.Env, e) {
						t.Errorf("%s: environment lacks %s", what, strings.Replace(e, c.want, "<password>", 1))
					}
				}
			}
		})
	}
}

func TestPasswordNotInErrors(t *testing.T) {
	srv := testdb.Postgres(t)
	role := testdb.Unique("dbarchive_pw")
	const pw = "Sup3r-secret-pw"
	if _, err := srv.Admin.Exec(fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, testdb.QuotePG(role), pw)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = srv.Admin.Exec(`DROP ROLE IF EXISTS ` + testdb.QuotePG(role)) })
	// Trust authentication lets the role in without the password; the dump
	// still fails (no such database), and its error must not carry pw.
	raw := strings.Replace(srv.URL("dbarchive_no_such_db"), "postgres@", role+"@", 1)
	s, err := sources.Open(raw, sources.Options{Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Dump(context.Background(), io.Discard)
	if err == nil {
		t.Fatal("Dump of a missing database succeeded")
	}
	for _, text := range []string{err.Error(), s.Describe()} {
		if strings.Contains(text, pw) {
			t.Errorf("%q holds the password", text)
		}
	}
	if _, err := sources.Open("postgres://u@h/db?password="+pw, sources.Options{}); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Open with a password parameter = %v, want an error without the value", err)
	}
}

func TestCheckToolMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := open(t, "postgres://u@h/db", sources.Options{})
	err := s.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pg_dump is not on PATH") {
		t.Fatalf("Check = %v, want an error naming pg_dump", err)
	}
	err = open(t, "postgres://u@h/db", sources.Options{Format: "plain", CreateDatabase: true}).CheckRestore(context.Background())
	if err == nil || !strings.Contains(err.Error(), "psql is not on PATH") {
		t.Fatalf("CheckRestore = %v, want an error naming psql", err)
	}
}

func TestOpen(t *testing.T) {
	cases := []struct {
		raw, format, wantErr string
	}{
		{"postgres://u@h:5432/db", "", ""},
		{"postgresql://u@h/db", "tar", ""},
		{"postgres://u@h/db", "directory", "cannot be streamed"},
		{"postgres://u@h/db", "zip", "unknown dump format"},
		{"postgres://u@h/", "", "one database name"},
		{"postgres://u@h/a/b", "", "one database name"},
		{"postgres://u@h/db?sslmode=disable&application_name=x", "", ""},
		{"postgres://u@h/db?options=-csearch_path", "", `unsupported parameter "options"`},
		{"postgres:db", "", "want postgres://"},
	}
	for _, c := range cases {
		s, err := sources.Open(c.raw, sources.Options{Format: c.format})
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("Open(%q, %q) = %v", c.raw, c.format, err)
			} else if s.Type() != "postgres" || s.Database() == "" {
				t.Errorf("Open(%q): type %q, database %q", c.raw, s.Type(), s.Database())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("Open(%q, %q) = %v, want %q", c.raw, c.format, err, c.wantErr)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar\x0000")
	for head, want := range map[string]string{
		"PGDMP\x01\x0f":          FormatCustom,
		string(tarHead):          FormatTar,
		"--\n-- PostgreSQL dump": FormatPlain,
		"PGDM":                   FormatPlain,
	} {
		if got := detectFormat([]byte(head)); got != want {
			t.Errorf("detectFormat(%q…) = %s, want %s", head[:min(len(head), 8)], got, want)
		}
	}
}

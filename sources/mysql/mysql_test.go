package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
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
	srv := testdb.MariaDB(t)
	name, db := srv.Create(t, "my_src")
	start := time.Now()
	srv.Populate(t, db, bigRows)
	if _, err := db.Exec(`ANALYZE TABLE big`); err != nil {
		t.Fatal(err)
	}
	var size int64
	if err := db.QueryRow(`SELECT data_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'big'`).Scan(&size); err != nil || size < 50<<20 {
		t.Fatalf("big table is %d bytes (err %v), want at least 50 MiB", size, err)
	}
	t.Logf("generated big: %d rows, %.1f MB data in %v", bigRows, float64(size)/1e6, time.Since(start).Round(time.Millisecond))
	want := srv.Fingerprint(t, db)

	ctx := context.Background()
	src := open(t, srv.URL(name), sources.Options{})
	if err := src.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	file := filepath.Join(t.TempDir(), "dump.sql")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := src.Dump(ctx, f); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	dumpTime := time.Since(start)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(file)

	target := srv.Name(t, "my_dst")
	dst := open(t, srv.URL(target), sources.Options{CreateDatabase: true})
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
	t.Logf("dump %.1f MB in %v, restore in %v", float64(fi.Size())/1e6, dumpTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	restored := srv.Connect(t, target)
	got := srv.Fingerprint(t, restored)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: restored %q, source %q", k, got[k], v)
		}
	}
	srv.CheckTrigger(t, restored)
}

func smallDump(t *testing.T, srv *testdb.Server) []byte {
	t.Helper()
	name, db := srv.Create(t, "my_small")
	srv.Populate(t, db, 20_000)
	var buf bytes.Buffer
	if err := open(t, srv.URL(name), sources.Options{}).Dump(context.Background(), &buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return buf.Bytes()
}

var errBroken = errors.New("input broke half-way")

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

func databaseExists(t *testing.T, srv *testdb.Server, name string) bool {
	t.Helper()
	var n int
	if err := srv.Admin.QueryRow(`SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestRestoreFailureDropsCreatedDatabase(t *testing.T) {
	srv := testdb.MariaDB(t)
	dump := smallDump(t, srv)

	t.Run("input fails half-way", func(t *testing.T) {
		target := srv.Name(t, "my_created")
		err := open(t, srv.URL(target), sources.Options{CreateDatabase: true}).Restore(context.Background(), &brokenReader{data: dump, n: len(dump) / 2})
		if !errors.Is(err, errBroken) {
			t.Fatalf("Restore = %v, want the reader's error", err)
		}
		if databaseExists(t, srv, target) {
			t.Fatal("the database created for the failed restore still exists")
		}
	})
	t.Run("statement fails", func(t *testing.T) {
		target := srv.Name(t, "my_created")
		bad := append(slices.Clone(dump), "SELECT no_such_column FROM people;\n"...)
		err := open(t, srv.URL(target), sources.Options{CreateDatabase: true}).Restore(context.Background(), bytes.NewReader(bad))
		var te *sources.ToolError
		if !errors.As(err, &te) || !strings.Contains(te.Stderr, "no_such_column") {
			t.Fatalf("Restore = %v, want a ToolError with the client's stderr", err)
		}
		if databaseExists(t, srv, target) {
			t.Fatal("the database created for the failed restore still exists")
		}
	})
	t.Run("existing database is not dropped", func(t *testing.T) {
		target, db := srv.Create(t, "my_existing")
		if _, err := db.Exec(`CREATE TABLE keep (v TEXT); INSERT INTO keep VALUES ('mine')`); err != nil {
			t.Fatal(err)
		}
		err := open(t, srv.URL(target), sources.Options{}).Restore(context.Background(), &brokenReader{data: dump, n: len(dump) / 2})
		if !errors.Is(err, errBroken) {
			t.Fatalf("Restore = %v, want the reader's error", err)
		}
		var v string
		if err := db.QueryRow(`SELECT v FROM keep`).Scan(&v); err != nil || v != "mine" {
			t.Fatalf("existing table after a failed restore: %q, %v", v, err)
		}
	})
}

func TestDumpMissingDatabase(t *testing.T) {
	srv := testdb.MariaDB(t)
	err := open(t, srv.URL("dbarchive_no_such_db"), sources.Options{}).Dump(context.Background(), io.Discard)
	var te *sources.ToolError
	if !errors.As(err, &te) || te.ExitCode == 0 || !strings.Contains(te.Stderr, "Unknown database") {
		t.Fatalf("Dump = %v, want a ToolError with the dump tool's stderr", err)
	}
}

// A user that needs its password over TCP proves the option file carries
// it; the password holds what option files treat specially.
func TestPassword(t *testing.T) {
	srv := testdb.MariaDB(t)
	name, db := srv.Create(t, "my_pw")
	if _, err := db.Exec(`CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('secret data')`); err != nil {
		t.Fatal(err)
	}
	user := testdb.Unique("dbarchive_pw")
	const pw = `p#a ss\w"rd`
	// CREATE USER takes no placeholders; the literal escapes the backslash.
	if _, err := srv.Admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, strings.ReplaceAll(pw, `\`, `\\`))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = srv.Admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	if _, err := srv.Admin.Exec(fmt.Sprintf("GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON %s.* TO '%s'@'%%'", testdb.QuoteMy(name), user)); err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(srv.URL(name))
	base.User = url.User(user)

	t.Run("options password dumps", func(t *testing.T) {
		s := open(t, base.String(), sources.Options{Password: pw})
		var out bytes.Buffer
		if err := s.Dump(context.Background(), &out); err != nil {
			t.Fatalf("Dump: %v", err)
		}
		if !strings.Contains(out.String(), "secret data") {
			t.Fatal("the dump lacks the table's row")
		}
	})
	t.Run("url password refused, never shown", func(t *testing.T) {
		withPw := *base
		withPw.User = url.UserPassword(user, pw)
		_, err := sources.Open(withPw.String(), sources.Options{})
		if !errors.Is(err, sources.ErrPasswordInURL) || strings.Contains(err.Error(), `ss\w`) || strings.Contains(err.Error(), "p#a") {
			t.Errorf("Open = %v, want ErrPasswordInURL without the password", err)
		}
	})
	t.Run("wrong password fails without showing it", func(t *testing.T) {
		const wrong = "wrong-pw-1234"
		err := open(t, base.String(), sources.Options{Password: wrong}).Dump(context.Background(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), wrong) {
			t.Fatalf("Dump = %v, want access denied without the password", err)
		}
	})
	t.Run("never in arguments or environment", func(t *testing.T) {
		s := open(t, base.String(), sources.Options{Password: pw})
		dump, err1 := s.dumpCommand()
		restore, err2 := s.restoreCommand()
		create, err3 := s.sqlCommand("CREATE DATABASE x")
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		for what, cmd := range map[string]*sources.Command{"dump": dump, "restore": restore, "create": create} {
			ec := cmd.Cmd(context.Background())
			if ec.Args[1] != "--defaults-extra-file=/dev/fd/3" || len(ec.ExtraFiles) != 1 {
				t.Errorf("%s: first argument %q, %d extra files; want the option file on descriptor 3", what, ec.Args[1], len(ec.ExtraFiles))
			}
			for _, a := range append(slices.Clone(ec.Args), ec.Env...) {
				if strings.Contains(a, "ss\\w") {
					t.Errorf("%s: %q holds the password", what, a)
				}
			}
			// The pipe holds the option file, password included.
			b, _ := io.ReadAll(ec.ExtraFiles[0])
			if !strings.Contains(string(b), "password=") {
				t.Errorf("%s: the option pipe holds %d bytes without a password", what, len(b))
			}
			ec.ExtraFiles[0].Close()
		}
	})
}

func TestQuoteOption(t *testing.T) {
	cases := map[string]string{
		"plain":       `"plain"`,
		`a#b c`:       `"a#b c"`,
		`back\slash`:  `"back\\slash"`,
		`has"quote`:   `'has"quote'`,
		"new\nline\t": `"new\nline\t"`,
	}
	for in, want := range cases {
		if got, err := quoteOption(in); err != nil || got != want {
			t.Errorf("quoteOption(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := quoteOption(`both"'`); err == nil {
		t.Error("a value with both quote characters was accepted")
	}
}

func TestCheckToolMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	s := open(t, "mysql://root@h/db", sources.Options{})
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "neither mariadb-dump nor mysqldump is on PATH") {
		t.Fatalf("Check = %v", err)
	}
	if err := s.CheckRestore(context.Background()); err == nil || !strings.Contains(err.Error(), "neither mariadb nor mysql is on PATH") {
		t.Fatalf("CheckRestore = %v", err)
	}
}

func TestOpen(t *testing.T) {
	for raw, wantErr := range map[string]string{
		"mysql://root@127.0.0.1:3306/app":            "",
		"mariadb://root@localhost/app?socket=/run/x": "",
		"mysql://root@h/":                            "one database name",
		"mysql://root@h/app?tls=disable":             "",
		"mysql://root@h/app?tls=verify-full":         "",
		"mysql://root@h/app?tls=true":                `tls="true": want disable or verify-full`,
		"mysql://root@h/app?sslmode=require":         `unsupported parameter "sslmode"`,
		"mysql:app":                                  "want mysql://",
	} {
		s, err := sources.Open(raw, sources.Options{})
		if wantErr == "" {
			if err != nil || s.Type() != "mysql" || s.Database() != "app" {
				t.Errorf("Open(%q) = %v, %v", raw, s, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Open(%q) = %v, want %q", raw, err, wantErr)
		}
	}
}

// The tls mode reaches the client: against a server without TLS (the test
// server has none), verify-full is refused by the client, and disable
// dumps, whatever the client's own default.
func TestTLSMode(t *testing.T) {
	srv := testdb.MariaDB(t)
	name, db := srv.Create(t, "my_tls")
	srv.Populate(t, db, 100)
	var hasTLS int
	row := srv.Admin.QueryRow("SELECT @@have_ssl = 'YES'")
	if err := row.Scan(&hasTLS); err != nil {
		t.Fatal(err)
	}
	if hasTLS != 0 {
		t.Fatal("the test server has TLS; this test needs one without (DBARCHIVE_TEST_MARIADB)")
	}
	withTLS := func(mode string) string {
		u, err := url.Parse(srv.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("tls", mode)
		u.RawQuery = q.Encode()
		return u.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	if err := open(t, withTLS("disable"), sources.Options{}).Dump(ctx, &buf); err != nil {
		t.Fatalf("tls=disable: %v", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("CREATE TABLE")) {
		t.Fatalf("tls=disable: the dump holds no table:\n%.300s", buf.Bytes())
	}
	err := open(t, withTLS("verify-full"), sources.Options{}).Dump(ctx, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SSL") {
		t.Fatalf("tls=verify-full against a server without TLS: %v, want the client's SSL refusal", err)
	}
}

// A restore that creates the database gives it the dumped database's
// default character set and collation, not the server's.
func TestCreateDatabaseKeepsCharset(t *testing.T) {
	srv := testdb.MariaDB(t)
	name, db := srv.Create(t, "my_charset")
	if _, err := db.Exec("ALTER DATABASE " + testdb.QuoteMy(name) + " CHARACTER SET latin1 COLLATE latin1_german2_ci; CREATE TABLE t (v VARCHAR(10)); INSERT INTO t VALUES ('Straße')"); err != nil {
		t.Fatal(err)
	}
	defaults := func(db string) string {
		var cs, coll string
		if err := srv.Admin.QueryRow(`SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, db).Scan(&cs, &coll); err != nil {
			t.Fatalf("defaults of %s: %v", db, err)
		}
		return cs + "/" + coll
	}
	var dump bytes.Buffer
	if err := open(t, srv.URL(name), sources.Options{}).Dump(context.Background(), &dump); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dump.String(), "-- ") {
		t.Fatalf("the dump does not start with a comment line: %.80q", dump.String())
	}
	target := srv.Name(t, "my_charset_dst")
	if err := open(t, srv.URL(target), sources.Options{CreateDatabase: true}).Restore(context.Background(), bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got, want := defaults(target), defaults(name); got != want || want != "latin1/latin1_german2_ci" {
		t.Fatalf("restored database defaults %s, want %s", got, want)
	}
	var v string
	if err := srv.Connect(t, target).QueryRow(`SELECT v FROM t`).Scan(&v); err != nil || v != "Straße" {
		t.Fatalf("restored row %q (%v)", v, err)
	}
	// Into an existing database the header is only a comment.
	existing, _ := srv.Create(t, "my_charset_keep")
	before := defaults(existing)
	if err := open(t, srv.URL(existing), sources.Options{}).Restore(context.Background(), bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatalf("Restore into an existing database: %v", err)
	}
	if after := defaults(existing); after != before {
		t.Fatalf("restoring changed an existing database's defaults %s -> %s", before, after)
	}
}

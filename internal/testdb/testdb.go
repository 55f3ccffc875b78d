// Package testdb gives the sources and CLI tests their own databases on the real
// PostgreSQL and MariaDB servers of the machine: each test gets uniquely
// named databases that are dropped when it ends. A server that cannot be
// reached fails the test under CI=true and skips it elsewhere, with the line
// that starts it.
//
// It is test support: production code must never import it.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/dbarchive/dbarchive/conformance/emulators"
)

// Server URLs, overridable for machines whose servers live elsewhere. They
// name the server only; tests add the database.
var (
	PostgresURL = env("DBARCHIVE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	MariaDBURL  = env("DBARCHIVE_TEST_MARIADB", "mysql://root@127.0.0.1:3306/")
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Server is a database server the test may create databases on.
type Server struct {
	kind  string // "postgres" or "mariadb"
	base  *url.URL
	Admin *sql.DB
}

// Postgres connects to the PostgreSQL server or skips/fails the test.
func Postgres(t testing.TB) *Server {
	t.Helper()
	s := &Server{kind: "postgres", base: mustParse(t, PostgresURL)}
	db, err := sql.Open("pgx", PostgresURL)
	if err == nil {
		err = ping(db)
	}
	if err != nil {
		emulators.Missing(t, fmt.Sprintf("PostgreSQL at %s (%v)", s.base.Host, err),
			"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
	}
	t.Cleanup(func() { _ = db.Close() })
	s.Admin = db
	return s
}

// MariaDB connects to the MariaDB server or skips/fails the test.
func MariaDB(t testing.TB) *Server {
	t.Helper()
	s := &Server{kind: "mariadb", base: mustParse(t, MariaDBURL)}
	db, err := sql.Open("mysql", s.dsn(""))
	if err == nil {
		err = ping(db)
	}
	if err != nil {
		emulators.Missing(t, fmt.Sprintf("MariaDB at %s (%v)", s.base.Host, err),
			"start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")
	}
	t.Cleanup(func() { _ = db.Close() })
	s.Admin = db
	return s
}

func ping(db *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func mustParse(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("testdb: bad server URL: %v", err)
	}
	return u
}

// dsn is the go-sql-driver DSN for a database on the MariaDB server.
func (s *Server) dsn(db string) string {
	c := mysql.NewConfig()
	c.Net = "tcp"
	c.Addr = s.base.Host
	c.User = s.base.User.Username()
	c.Passwd, _ = s.base.User.Password()
	c.DBName = db
	c.MultiStatements = true
	c.ParseTime = true
	return c.FormatDSN()
}

// Unique returns prefix with a random suffix, for roles and users that
// concurrent test runs must not share.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Name returns a fresh database name and drops that database, if it came to
// exist, when the test ends. Use it for restore targets.
func (s *Server) Name(t testing.TB, prefix string) string {
	t.Helper()
	name := Unique("dbarchive_" + prefix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		if s.kind == "postgres" {
			_, err = s.Admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+QuotePG(name)+" WITH (FORCE)")
		} else {
			_, err = s.Admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+QuoteMy(name))
		}
		if err != nil {
			t.Errorf("testdb: dropping %s: %v", name, err)
		}
	})
	return name
}

// Create makes a new empty database, dropped when the test ends, and returns
// its name and a connection to it.
func (s *Server) Create(t testing.TB, prefix string) (string, *sql.DB) {
	t.Helper()
	name := s.Name(t, prefix)
	var err error
	if s.kind == "postgres" {
		_, err = s.Admin.Exec("CREATE DATABASE " + QuotePG(name))
	} else {
		_, err = s.Admin.Exec("CREATE DATABASE " + QuoteMy(name) + " CHARACTER SET utf8mb4")
	}
	if err != nil {
		t.Fatalf("testdb: creating %s: %v", name, err)
	}
	return name, s.Connect(t, name)
}

// Connect opens a connection to an existing database, closed (before the
// database is dropped) when the test ends.
func (s *Server) Connect(t testing.TB, name string) *sql.DB {
	t.Helper()
	var (
		db  *sql.DB
		err error
	)
	if s.kind == "postgres" {
		db, err = sql.Open("pgx", s.URL(name))
	} else {
		db, err = sql.Open("mysql", s.dsn(name))
	}
	if err != nil {
		t.Fatalf("testdb: connecting to %s: %v", name, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// URL is the source URL of a database on this server, as the sources
// package takes it.
func (s *Server) URL(name string) string {
	u := *s.base
	u.Path = "/" + name
	return u.String()
}

// QuotePG quotes a PostgreSQL identifier.
func QuotePG(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// QuoteMy quotes a MariaDB identifier.
func QuoteMy(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// Strings runs query and returns the first column of every row, failing t
// on any error (a Scan error too: a test must not read a half-listed result).
func Strings(t testing.TB, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

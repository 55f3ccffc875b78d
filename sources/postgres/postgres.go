// Package postgres is the PostgreSQL source: pg_dump streams one database to
// stdout, and a restore loads such a dump back in one transaction that
// commits only after the whole stream checked out: custom archives through
// pg_restore's own connection with the stream's last bytes held back until
// then (direct.go), other formats through psql (tar archives turned into
// SQL by pg_restore on the way), with dbarchive's COMMIT at the end.
//
// Connection settings reach the tools only through PG* environment variables,
// never through arguments, so a password cannot show in a process list. The
// package must not connect to the database itself: the tools do, and their
// exit status and stderr are the whole truth about a dump.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

func init() { sources.Register(Open, "postgres", "postgresql") }

const hint = "install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"

// Formats a dump can be written in. The directory format is refused: it
// writes many files and cannot be streamed.
const (
	FormatCustom = "custom"
	FormatPlain  = "plain"
	FormatTar    = "tar"
)

// queryEnv maps the URL query parameters we accept to libpq's variables.
var queryEnv = map[string]string{
	"sslmode":          "PGSSLMODE",
	"sslrootcert":      "PGSSLROOTCERT",
	"sslcert":          "PGSSLCERT",
	"sslkey":           "PGSSLKEY",
	"connect_timeout":  "PGCONNECT_TIMEOUT",
	"application_name": "PGAPPNAME",
	"host":             "PGHOST", // a Unix socket directory
}

// Source is one PostgreSQL database.
type Source struct {
	u      *url.URL
	db     string
	format string
	opts   sources.Options
	env    []string // connection settings, without the password
}

var (
	_ sources.Source    = (*Source)(nil)
	_ sources.Restorer  = (*Source)(nil)
	_ sources.Formatted = (*Source)(nil)
	_ sources.Scannable = (*Source)(nil)
)

// Open builds a source from postgres://user[:password]@host[:port]/db?sslmode=….
func Open(u *url.URL, opts sources.Options) (sources.Source, error) {
	if u.Opaque != "" || u.Host == "" && u.Path == "" {
		return nil, errors.New("postgres source URL: want postgres://user@host:port/dbname")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("postgres source URL %s: the path must be one database name", sources.WithoutPassword(u))
	}
	format, err := normalizeFormat(opts.Format)
	if err != nil {
		return nil, err
	}
	s := &Source{u: u, db: db, format: format, opts: opts}
	if h := u.Hostname(); h != "" {
		s.env = append(s.env, "PGHOST="+h)
	}
	if p := u.Port(); p != "" {
		s.env = append(s.env, "PGPORT="+p)
	}
	if u.User != nil && u.User.Username() != "" {
		s.env = append(s.env, "PGUSER="+u.User.Username())
	}
	s.env = append(s.env, "PGDATABASE="+db)
	q := u.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v, ok := queryEnv[k]
		if !ok {
			// The value is not echoed: an unknown parameter may be a password.
			return nil, fmt.Errorf("postgres source URL: unsupported parameter %q (supported: %s)", k, strings.Join(slices.Sorted(maps.Keys(queryEnv)), ", "))
		}
		s.env = append(s.env, v+"="+q.Get(k))
	}
	return s, nil
}

func normalizeFormat(f string) (string, error) {
	switch strings.ToLower(f) {
	case "", "c", FormatCustom:
		return FormatCustom, nil
	case "p", FormatPlain:
		return FormatPlain, nil
	case "t", FormatTar:
		return FormatTar, nil
	case "d", "directory":
		return "", errors.New("postgres: the directory format writes many files and cannot be streamed; use custom, plain or tar")
	default:
		return "", fmt.Errorf("postgres: unknown dump format %q (want custom, plain or tar)", f)
	}
}

func (s *Source) Type() string     { return "postgres" }
func (s *Source) Database() string { return s.db }
func (s *Source) Describe() string { return sources.WithoutPassword(s.u) }

// Format is the dump format: custom, plain or tar.
func (s *Source) Format() string { return s.format }

// connEnv is the environment every tool gets: the connection settings and,
// when one is given, PGPASSWORD. secrets lists what errors must redact,
// including a password inherited from our own environment.
func (s *Source) connEnv() (env, secrets []string, err error) {
	pw, err := s.opts.ResolvePassword(s.u)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres source %s: %w", s.Describe(), err)
	}
	env = slices.Clone(s.env)
	if pw != "" {
		env = append(env, "PGPASSWORD="+pw)
	}
	return env, []string{pw, os.Getenv("PGPASSWORD")}, nil
}

func (s *Source) command(tool string, args ...string) (*sources.Command, error) {
	env, secrets, err := s.connEnv()
	if err != nil {
		return nil, err
	}
	// --no-password: fail instead of prompting on a terminal nobody watches.
	return &sources.Command{Tool: tool, Path: tool, Args: append([]string{"--no-password"}, args...), Env: env, Secrets: secrets}, nil
}

// dumpCommand writes the custom format uncompressed: the archiver compresses
// the stream with zstd, which does better and faster on raw data than on
// pg_dump's zlib output. A restore reads both.
//
// Archives (custom, tar) carry the database's own entries (--create): its
// ALTER DATABASE … SET settings, comment and ACL, which a restore with
// CreateDatabase applies to the database it makes. A restore into an
// existing database skips them, as plain pg_restore does. A plain dump does
// not carry them: there they would be CREATE DATABASE and \connect lines
// inside the SQL, tying the dump to the original name.
func (s *Source) dumpCommand() (*sources.Command, error) {
	switch s.format {
	case FormatCustom:
		return s.command("pg_dump", "--format="+s.format, "--compress=0", "--create")
	case FormatTar:
		return s.command("pg_dump", "--format="+s.format, "--create")
	}
	return s.command("pg_dump", "--format="+s.format)
}

// psqlCommand runs SQL read from stdin against database db. No
// --single-transaction: psql commits that at the end of its input, and a
// killed dbarchive is an end of input too. The transaction is in the input
// instead (see Restore), so only dbarchive's COMMIT ends it.
func (s *Source) psqlCommand(db string, vars ...string) (*sources.Command, error) {
	args := []string{"--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"}
	for _, v := range vars {
		args = append(args, "--set="+v)
	}
	c, err := s.command("psql", append(args, "--file=-")...)
	if err != nil {
		return nil, err
	}
	c.Env = append(c.Env, "PGDATABASE="+db)
	return c, nil
}

// scriptCommand turns a custom or tar archive into the SQL script psql
// loads; with Options.Overwrite the script replaces the archive's objects. createDB adds the database-level entries (CREATE DATABASE, its
// settings, comment and ACL) and, with selectNothing, restricts the script
// to them: pg_restore applies its selection switches to everything but
// those entries.
func (s *Source) scriptCommand(format string, createDB, selectNothing bool) (*sources.Command, error) {
	args := []string{"--no-owner", "--format=" + format, "--file=-"}
	if createDB {
		args = append(args, "--create")
	}
	if selectNothing {
		args = append(args, "--schema-only", "--schema="+noSuchSchema)
	}
	if s.opts.Overwrite && !createDB && !selectNothing {
		// Each object of the archive is dropped (if it is there) before it
		// is made again, inside the restore's one transaction.
		args = append(args, "--clean", "--if-exists")
	}
	c, err := s.command("pg_restore", args...)
	if c != nil {
		c.MayStopReading = selectNothing
	}
	return c, err
}

// noSuchSchema selects no object of a real database.
const noSuchSchema = "dbarchive: no schema"

// DumpScanner reads the custom and plain formats; a tar archive is not
// read.
func (s *Source) DumpScanner() dumpscan.Scanner {
	switch s.format {
	case FormatCustom:
		return dumpscan.NewPostgresCustom()
	case FormatPlain:
		return dumpscan.NewPostgresPlain()
	}
	return nil
}

// Check verifies that pg_dump is on PATH and the password file, if any, is
// readable.
func (s *Source) Check(context.Context) error {
	if _, err := sources.LookTool(hint, "pg_dump"); err != nil {
		return fmt.Errorf("postgres source %s: %w", s.Describe(), err)
	}
	_, _, err := s.connEnv()
	return err
}

// CheckRestore verifies that the restore tools are on PATH: psql, which
// loads every format, and pg_restore unless the dump is known to be plain.
// Unless the restore creates the database or Options.Overwrite is set, it
// connects and refuses a target that holds any relation outside the system
// schemas (extension members aside) with a *sources.TargetNotEmptyError.
func (s *Source) CheckRestore(ctx context.Context) error {
	tools := []string{"psql", "pg_restore"}
	if s.opts.Format != "" && s.format == FormatPlain {
		tools = tools[:1]
	}
	for _, t := range tools {
		if _, err := sources.LookTool(hint, t); err != nil {
			return fmt.Errorf("postgres target %s: %w", s.Describe(), err)
		}
	}
	if _, _, err := s.connEnv(); err != nil {
		return err
	}
	if s.opts.CreateDatabase || s.opts.Overwrite {
		return nil
	}
	return s.checkEmpty(ctx)
}

// relationsQuery lists the target's relations that a restore would mix
// with: tables, partitioned tables, views, materialized views, sequences
// and foreign tables in schemas that are not the system's, except those an
// extension owns. The first column is the total.
const relationsQuery = `SELECT count(*) OVER (), format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 2 LIMIT :shown;
`

func (s *Source) checkEmpty(ctx context.Context) error {
	c, err := s.command("psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--field-separator=\t",
		"--set=ON_ERROR_STOP=1", fmt.Sprintf("--set=shown=%d", sources.ShownTables), "--file=-")
	if err != nil {
		return err
	}
	c.Env = append(c.Env, "PGDATABASE="+s.db)
	var out strings.Builder
	if err := c.Run(ctx, strings.NewReader(relationsQuery), &out); err != nil {
		return fmt.Errorf("postgres target %s: checking that it is empty: %w", s.Describe(), err)
	}
	return sources.CheckEmptyRows(s.Describe(), out.String())
}

// Dump runs pg_dump and streams its output to w.
func (s *Source) Dump(ctx context.Context, w io.Writer) error {
	cmd, err := s.dumpCommand()
	if err != nil {
		return err
	}
	if err := cmd.Run(ctx, nil, w); err != nil {
		return fmt.Errorf("postgres source %s: %w", s.Describe(), err)
	}
	return nil
}

// detectFormat tells the dump formats apart by their first bytes: custom
// archives start with "PGDMP", tar archives have the ustar magic at offset
// 257, and anything else is SQL for psql.
func detectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return FormatCustom
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatTar
	default:
		return FormatPlain
	}
}

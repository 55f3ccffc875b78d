// Package postgres is the PostgreSQL source: pg_dump streams one database to
// stdout, and pg_restore (custom and tar formats) or psql (plain) load such a
// dump back in a single transaction.
//
// Connection settings reach the tools only through PG* environment variables,
// never through arguments, so a password cannot show in a process list. The
// package must not connect to the database itself: the tools do, and their
// exit status and stderr are the whole truth about a dump.
package postgres

import (
	"bufio"
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
	"time"

	"github.com/dbarchive/dbarchive/sources"
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

// cleanupTimeout bounds dropping a database created for a restore that failed.
const cleanupTimeout = time.Minute

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
func (s *Source) dumpCommand() (*sources.Command, error) {
	if s.format == FormatCustom {
		return s.command("pg_dump", "--format="+s.format, "--compress=0")
	}
	return s.command("pg_dump", "--format="+s.format)
}

// restoreCommand loads a dump of the given format into the database named by
// PGDATABASE, in one transaction that any error rolls back.
func (s *Source) restoreCommand(format string) (*sources.Command, error) {
	if format == FormatPlain {
		// --file=- because psql only wraps -c/-f input in --single-transaction.
		return s.command("psql", "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1", "--file=-")
	}
	// An empty --dbname makes pg_restore connect (rather than print SQL)
	// while libpq takes the database from PGDATABASE.
	return s.command("pg_restore", "--single-transaction", "--no-owner", "--exit-on-error", "--format="+format, "--dbname=")
}

// createCommand and dropCommand let createdb and dropdb quote the name; "--"
// keeps a name that starts with "-" from reading as an option.
func (s *Source) createCommand() (*sources.Command, error) {
	return s.command("createdb", "--", s.db)
}

func (s *Source) dropCommand() (*sources.Command, error) {
	return s.command("dropdb", "--if-exists", "--", s.db)
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

// CheckRestore verifies that the restore tools are on PATH: pg_restore or
// psql for the format (both when no format is given: it is read from the
// dump), createdb and dropdb when the database is to be created.
func (s *Source) CheckRestore(context.Context) error {
	tools := []string{"pg_restore", "psql"}
	switch {
	case s.opts.Format == "":
	case s.format == FormatPlain:
		tools = []string{"psql"}
	default:
		tools = []string{"pg_restore"}
	}
	if s.opts.CreateDatabase {
		tools = append(tools, "createdb", "dropdb")
	}
	for _, t := range tools {
		if _, err := sources.LookTool(hint, t); err != nil {
			return fmt.Errorf("postgres target %s: %w", s.Describe(), err)
		}
	}
	_, _, err := s.connEnv()
	return err
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

// Restore loads a dump into the database named by the URL, creating it first
// when Options.CreateDatabase is set (it must not exist then). The format is
// read from the dump's first bytes; when Options.Format is set as well, the
// two must agree. The load is one transaction: when the tool fails or r
// fails half-way, the target is left as it was, and a database created for
// this restore is dropped again.
func (s *Source) Restore(ctx context.Context, r io.Reader) (err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, perr := br.Peek(512)
	if perr != nil && perr != io.EOF {
		return fmt.Errorf("postgres target %s: reading the dump: %w", s.Describe(), perr)
	}
	if len(head) == 0 {
		return fmt.Errorf("postgres target %s: the dump is empty", s.Describe())
	}
	format := detectFormat(head)
	if s.opts.Format != "" && format != s.format {
		return fmt.Errorf("postgres target %s: the dump is in %s format, not %s", s.Describe(), format, s.format)
	}
	cmd, err := s.restoreCommand(format)
	if err != nil {
		return err
	}
	if s.opts.CreateDatabase {
		create, cerr := s.createCommand()
		if cerr != nil {
			return cerr
		}
		if cerr := create.Run(ctx, nil, nil); cerr != nil {
			return fmt.Errorf("postgres target %s: creating the database: %w", s.Describe(), cerr)
		}
		// err here is Restore's result: the closure must see the final one.
		defer func() {
			if err != nil {
				err = errors.Join(err, s.dropCreated(ctx))
			}
		}()
	}
	if err := cmd.Run(ctx, br, nil); err != nil {
		return fmt.Errorf("postgres target %s: %w", s.Describe(), err)
	}
	return nil
}

// dropCreated removes the database this restore created, even when ctx has
// been cancelled: that cancellation is usually why the restore failed.
func (s *Source) dropCreated(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	drop, err := s.dropCommand()
	if err == nil {
		err = drop.Run(ctx, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("postgres target %s: dropping the database created for the failed restore: %w", s.Describe(), err)
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

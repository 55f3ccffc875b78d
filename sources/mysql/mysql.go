// Package mysql is the MySQL and MariaDB source: mariadb-dump (or mysqldump)
// streams one database to stdout as SQL, and the mariadb (or mysql) client
// loads it back.
//
// The password reaches the tools only through a private option file passed
// as --defaults-extra-file, never as an argument or an environment variable,
// and the file is removed when the tool ends. The package must not connect
// to the server itself.
//
// A restore is NOT transactional: the dump's CREATE and DROP statements
// commit on their own, so a restore that fails half-way leaves in the target
// the tables it had loaded by then. Restore into a database created for the
// restore (Options.CreateDatabase) to get all or nothing: on failure that
// database is dropped again.
package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dbarchive/dbarchive/sources"
)

func init() { sources.Register(Open, "mysql", "mariadb") }

const hint = "install the MariaDB or MySQL client (Debian: apt-get install mariadb-client)"

// The tools, preferred first: MariaDB's names, then MySQL's.
var (
	dumpTools    = []string{"mariadb-dump", "mysqldump"}
	clientTools  = []string{"mariadb", "mysql"}
	dumpOptions  = []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--default-character-set=utf8mb4", "--no-tablespaces"}
	cleanupLimit = time.Minute
)

// Source is one database on a MySQL or MariaDB server.
type Source struct {
	u      *url.URL
	db     string
	socket string
	opts   sources.Options
}

var (
	_ sources.Source   = (*Source)(nil)
	_ sources.Restorer = (*Source)(nil)
)

// Open builds a source from mysql://user[:password]@host[:port]/db, with an
// optional ?socket=/path for a local server.
func Open(u *url.URL, opts sources.Options) (sources.Source, error) {
	if u.Opaque != "" || u.Host == "" && u.Path == "" {
		return nil, errors.New("mysql source URL: want mysql://user@host:port/dbname")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("mysql source URL %s: the path must be one database name", sources.WithoutPassword(u))
	}
	if opts.Format != "" && opts.Format != "sql" {
		return nil, fmt.Errorf("mysql source: dumps are SQL; format %q does not apply", opts.Format)
	}
	s := &Source{u: u, db: db, opts: opts}
	for k := range u.Query() {
		if k != "socket" {
			return nil, fmt.Errorf("mysql source URL: unsupported parameter %q (supported: socket)", k)
		}
		s.socket = u.Query().Get("socket")
	}
	return s, nil
}

func (s *Source) Type() string     { return "mysql" }
func (s *Source) Database() string { return s.db }
func (s *Source) Describe() string { return sources.WithoutPassword(s.u) }

// tool returns the first of names on PATH, or the first name so that the
// run fails naming it.
func tool(names []string) string {
	if p, err := sources.LookTool(hint, names...); err == nil {
		return filepath.Base(p)
	}
	return names[0]
}

// optionFile renders the [client] group every tool reads: connection
// settings and the password.
func (s *Source) optionFile() (string, []string, error) {
	pw, err := s.opts.ResolvePassword(s.u)
	if err != nil {
		return "", nil, fmt.Errorf("mysql source %s: %w", s.Describe(), err)
	}
	var b strings.Builder
	b.WriteString("[client]\n")
	add := func(key, value string) error {
		if value == "" {
			return nil
		}
		q, err := quoteOption(value)
		if err != nil {
			return fmt.Errorf("mysql source %s: %s %w", s.Describe(), key, err)
		}
		fmt.Fprintf(&b, "%s=%s\n", key, q)
		return nil
	}
	var user string
	if s.u.User != nil {
		user = s.u.User.Username()
	}
	for _, kv := range [][2]string{{"user", user}, {"host", s.u.Hostname()}, {"port", s.u.Port()}, {"socket", s.socket}, {"password", pw}} {
		if err := add(kv[0], kv[1]); err != nil {
			return "", nil, err
		}
	}
	return b.String(), []string{pw}, nil
}

// quoteOption quotes a value for an option file. The option-file reader
// strips one pair of matching quotes, turns \\ \n \r \t \b into their
// characters and, outside quotes, reads # as a comment; a value holding both
// quote characters cannot be written safely.
func quoteOption(v string) (string, error) {
	q := `"`
	if strings.Contains(v, `"`) {
		if strings.Contains(v, "'") {
			return "", errors.New(`holds both ' and ", which an option file cannot carry`)
		}
		q = "'"
	}
	v = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`).Replace(v)
	return q + v + q, nil
}

// withOptionFile writes the option file with mode 0600, hands its path to
// fn and removes it when fn returns.
func (s *Source) withOptionFile(fn func(path string, secrets []string) error) error {
	content, secrets, err := s.optionFile()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "dbarchive-mysql-*.cnf") // mode 0600
	if err != nil {
		return fmt.Errorf("mysql source %s: option file: %w", s.Describe(), err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(content)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("mysql source %s: option file: %w", s.Describe(), werr)
	}
	return fn(f.Name(), secrets)
}

// command puts --defaults-extra-file first, where the tools require it.
func command(tool, optionFile string, secrets []string, args ...string) *sources.Command {
	return &sources.Command{
		Tool:    tool,
		Path:    tool,
		Args:    append([]string{"--defaults-extra-file=" + optionFile}, args...),
		Secrets: secrets,
	}
}

// dumpCommand dumps the one database without CREATE DATABASE or USE, so the
// dump loads into a database of any name. "--" keeps a name that starts
// with "-" from reading as an option.
func (s *Source) dumpCommand(optionFile string, secrets []string) *sources.Command {
	args := append(append([]string{}, dumpOptions...), "--", s.db)
	return command(tool(dumpTools), optionFile, secrets, args...)
}

func (s *Source) restoreCommand(optionFile string, secrets []string) *sources.Command {
	return command(tool(clientTools), optionFile, secrets, "--default-character-set=utf8mb4", "--", s.db)
}

func (s *Source) sqlCommand(optionFile string, secrets []string, sql string) *sources.Command {
	return command(tool(clientTools), optionFile, secrets, "--execute="+sql)
}

func quoteIdent(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// Check verifies that a dump tool is on PATH and the option file can be
// written (the password file is readable, the password representable).
func (s *Source) Check(context.Context) error {
	if _, err := sources.LookTool(hint, dumpTools...); err != nil {
		return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
	}
	_, _, err := s.optionFile()
	return err
}

// CheckRestore verifies that a client is on PATH.
func (s *Source) CheckRestore(context.Context) error {
	if _, err := sources.LookTool(hint, clientTools...); err != nil {
		return fmt.Errorf("mysql target %s: %w", s.Describe(), err)
	}
	_, _, err := s.optionFile()
	return err
}

// Dump runs mariadb-dump with --single-transaction (a consistent snapshot of
// InnoDB tables without locking them) and streams the SQL to w.
func (s *Source) Dump(ctx context.Context, w io.Writer) error {
	return s.withOptionFile(func(optionFile string, secrets []string) error {
		if err := s.dumpCommand(optionFile, secrets).Run(ctx, nil, w); err != nil {
			return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
		}
		return nil
	})
}

// Restore loads a dump into the database named by the URL, creating it
// first when Options.CreateDatabase is set (it must not exist then). The
// client stops at the first failing statement. Statements before it stay
// applied — DDL commits implicitly — unless the database was created for
// this restore: then it is dropped, and nothing half-restored is left.
func (s *Source) Restore(ctx context.Context, r io.Reader) error {
	return s.withOptionFile(func(optionFile string, secrets []string) (err error) {
		if s.opts.CreateDatabase {
			if cerr := s.sqlCommand(optionFile, secrets, "CREATE DATABASE "+quoteIdent(s.db)).Run(ctx, nil, nil); cerr != nil {
				return fmt.Errorf("mysql target %s: creating the database: %w", s.Describe(), cerr)
			}
			defer func() {
				if err != nil {
					err = errors.Join(err, s.dropCreated(ctx, optionFile, secrets))
				}
			}()
		}
		if rerr := s.restoreCommand(optionFile, secrets).Run(ctx, r, nil); rerr != nil {
			return fmt.Errorf("mysql target %s: %w", s.Describe(), rerr)
		}
		return nil
	})
}

// dropCreated removes the database this restore created, even when ctx has
// been cancelled: that cancellation is usually why the restore failed.
func (s *Source) dropCreated(ctx context.Context, optionFile string, secrets []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupLimit)
	defer cancel()
	if err := s.sqlCommand(optionFile, secrets, "DROP DATABASE IF EXISTS "+quoteIdent(s.db)).Run(ctx, nil, nil); err != nil {
		return fmt.Errorf("mysql target %s: dropping the database created for the failed restore: %w", s.Describe(), err)
	}
	return nil
}

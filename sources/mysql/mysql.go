// Package mysql is the MySQL and MariaDB source: mariadb-dump (or mysqldump)
// streams one database to stdout as SQL, and the mariadb (or mysql) client
// loads it back.
//
// The password reaches the tools only through an option file that they read
// from an inherited pipe (--defaults-extra-file=/dev/fd/3): never as an
// argument or an environment variable, and never on disk, so a killed
// dbarchive leaves nothing behind. The package must not connect to the
// server itself.
//
// A dump starts with a comment line recording the database's default
// character set and collation; a restore that creates the database creates
// it with them. The line is an SQL comment: the stream stays a plain dump.
//
// A restore is NOT transactional: the dump's CREATE and DROP statements
// commit on their own, so a restore that fails half-way leaves in the target
// the tables it had loaded by then. Restore into a database created for the
// restore (Options.CreateDatabase) to get all or nothing: on failure that
// database is dropped again.
package mysql

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
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
	tls    string // a key of tlsOptions
	opts   sources.Options
}

// tlsOptions are the option-file lines of each tls mode. MariaDB 11.4 and
// later clients turn TLS on and verify the server by default, and refuse a
// server without TLS ("SSL is required, but the server does not support
// it"); older ones try TLS without insisting. disable is for servers
// without TLS; verify-full insists on TLS with a verified certificate
// whatever the client's age (ssl-verify-server-cert is what makes a 10.x
// client refuse plain text).
var tlsOptions = map[string][]string{
	"":            nil,
	"disable":     {"skip-ssl"},
	"verify-full": {"ssl", "ssl-verify-server-cert"},
}

var (
	_ sources.Source    = (*Source)(nil)
	_ sources.Restorer  = (*Source)(nil)
	_ sources.Scannable = (*Source)(nil)
)

// Open builds a source from mysql://user[:password]@host[:port]/db, with an
// optional ?socket=/path for a local server and ?tls=disable|verify-full
// (unset: the client's default, see tlsOptions).
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
		switch k {
		case "socket":
			s.socket = u.Query().Get("socket")
		case "tls":
			s.tls = u.Query().Get("tls")
			if _, ok := tlsOptions[s.tls]; !ok {
				return nil, fmt.Errorf("mysql source URL %s: tls=%q: want disable or verify-full", sources.WithoutPassword(u), s.tls)
			}
		default:
			return nil, fmt.Errorf("mysql source URL: unsupported parameter %q (supported: socket, tls)", k)
		}
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
	for _, flag := range tlsOptions[s.tls] {
		b.WriteString(flag + "\n")
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

// optionFD is the descriptor the option file's pipe gets in the tool:
// the first of exec.Cmd.ExtraFiles.
const optionFD = 3

// command builds a run of tool that reads its connection settings and
// password from a pipe: the option file is written into the pipe here
// (it fits the pipe's buffer, so the write cannot block) and the tool
// opens /dev/fd/3, the read end it inherits. --defaults-extra-file must
// come first.
func (s *Source) command(tool string, args ...string) (*sources.Command, error) {
	content, secrets, err := s.optionFile()
	if err != nil {
		return nil, err
	}
	if len(content) > 4096 {
		return nil, fmt.Errorf("mysql source %s: connection settings too long (%d bytes)", s.Describe(), len(content))
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("mysql source %s: option pipe: %w", s.Describe(), err)
	}
	_, werr := w.WriteString(content)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		r.Close()
		return nil, fmt.Errorf("mysql source %s: option pipe: %w", s.Describe(), werr)
	}
	return &sources.Command{
		Tool:       tool,
		Path:       tool,
		Args:       append([]string{fmt.Sprintf("--defaults-extra-file=/dev/fd/%d", optionFD)}, args...),
		Secrets:    secrets,
		ExtraFiles: []*os.File{r},
	}, nil
}

// dumpCommand dumps the one database without CREATE DATABASE or USE, so the
// dump loads into a database of any name. "--" keeps a name that starts
// with "-" from reading as an option.
func (s *Source) dumpCommand() (*sources.Command, error) {
	args := append(append([]string{}, dumpOptions...), "--", s.db)
	return s.command(tool(dumpTools), args...)
}

func (s *Source) restoreCommand() (*sources.Command, error) {
	return s.command(tool(clientTools), "--default-character-set=utf8mb4", "--", s.db)
}

// sqlCommand runs statements outside any database; --batch and
// --skip-column-names make a query's output one tab-separated line a row.
func (s *Source) sqlCommand(sql string) (*sources.Command, error) {
	return s.command(tool(clientTools), "--batch", "--skip-column-names", "--execute="+sql)
}

// runSQL runs sql and returns its output.
func (s *Source) runSQL(ctx context.Context, sql string) (string, error) {
	c, err := s.sqlCommand(sql)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	err = c.Run(ctx, nil, &out)
	return out.String(), err
}

func quoteIdent(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// Check verifies that a dump tool and a client are on PATH and the option
// file can be written (the password file is readable, the password representable).
func (s *Source) Check(context.Context) error {
	if _, err := sources.LookTool(hint, dumpTools...); err != nil {
		return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
	}
	// The client reads the database's character set before the dump.
	if _, err := sources.LookTool(hint, clientTools...); err != nil {
		return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
	}
	_, _, err := s.optionFile()
	return err
}

// CheckRestore verifies that a client is on PATH. Unless the restore
// creates the database or Options.Overwrite is set, it connects and refuses
// a target that holds any table or view with a *sources.TargetNotEmptyError.
func (s *Source) CheckRestore(ctx context.Context) error {
	if _, err := sources.LookTool(hint, clientTools...); err != nil {
		return fmt.Errorf("mysql target %s: %w", s.Describe(), err)
	}
	if _, _, err := s.optionFile(); err != nil {
		return err
	}
	if s.opts.CreateDatabase || s.opts.Overwrite {
		return nil
	}
	out, err := s.runSQL(ctx, fmt.Sprintf("SELECT COUNT(*) OVER (), TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME LIMIT %d",
		quoteString(s.db), sources.ShownTables))
	if err != nil {
		return fmt.Errorf("mysql target %s: checking that it is empty: %w", s.Describe(), err)
	}
	return sources.CheckEmptyRows(s.Describe(), out)
}

// DumpScanner reads the dump's INSERT statements; the database is the
// tables' schema.
func (s *Source) DumpScanner() dumpscan.Scanner { return dumpscan.NewMariaDB(s.db) }

// Dump writes the header line with the database's defaults, then runs
// mariadb-dump with --single-transaction (a consistent snapshot of InnoDB
// tables without locking them) and streams the SQL to w.
func (s *Source) Dump(ctx context.Context, w io.Writer) error {
	out, err := s.runSQL(ctx, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+quoteString(s.db))
	if err != nil {
		return fmt.Errorf("mysql source %s: reading the database's character set: %w", s.Describe(), err)
	}
	if cs, coll, ok := strings.Cut(strings.TrimSpace(out), "\t"); ok && validName(cs) && validName(coll) {
		if _, err := fmt.Fprintf(w, "%s%s collate %s\n", headerPrefix, cs, coll); err != nil {
			return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
		}
	}
	c, err := s.dumpCommand()
	if err != nil {
		return err
	}
	if err := c.Run(ctx, nil, w); err != nil {
		return fmt.Errorf("mysql source %s: %w", s.Describe(), err)
	}
	return nil
}

// headerPrefix starts the comment line a dump begins with.
const headerPrefix = "-- dbarchive: database default character set "

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// validName reports whether a character set or collation name can go into
// a statement unquoted.
func validName(s string) bool { return nameRE.MatchString(s) }

// quoteString quotes a string literal for the server's default SQL mode,
// where a backslash escapes.
func quoteString(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// createStatement is CREATE DATABASE with the defaults the dump's header
// line records, if it has one.
func (s *Source) createStatement(head []byte) string {
	stmt := "CREATE DATABASE " + quoteIdent(s.db)
	line, _, _ := bytes.Cut(head, []byte("\n"))
	if rest, ok := bytes.CutPrefix(line, []byte(headerPrefix)); ok {
		cs, coll, _ := strings.Cut(string(rest), " collate ")
		if validName(cs) && validName(coll) {
			stmt += " CHARACTER SET " + cs + " COLLATE " + coll
		}
	}
	return stmt
}

// Restore loads a dump into the database named by the URL, creating it
// first when Options.CreateDatabase is set (it must not exist then), with
// the character set and collation the dump recorded. Into an existing
// database (Options.Overwrite), the dump's DROP TABLE IF EXISTS replaces
// each table it holds; tables it does not hold stay. The client stops at
// the first failing statement. Statements before it stay applied — DDL
// commits implicitly — unless the database was created for this restore:
// then it is dropped, and nothing half-restored is left.
func (s *Source) Restore(ctx context.Context, r io.Reader) (err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if s.opts.CreateDatabase {
		head, perr := br.Peek(len(headerPrefix) + 200)
		if perr != nil && perr != io.EOF && perr != bufio.ErrBufferFull {
			return fmt.Errorf("mysql target %s: reading the dump: %w", s.Describe(), perr)
		}
		if _, cerr := s.runSQL(ctx, s.createStatement(head)); cerr != nil {
			return fmt.Errorf("mysql target %s: creating the database: %w", s.Describe(), cerr)
		}
		defer func() {
			if err != nil {
				err = errors.Join(err, s.dropCreated(ctx))
			}
		}()
	}
	c, err := s.restoreCommand()
	if err != nil {
		return err
	}
	// The client's stdout is query output, not a reason for failing.
	if rerr := c.Run(ctx, br, io.Discard); rerr != nil {
		return fmt.Errorf("mysql target %s: %w", s.Describe(), rerr)
	}
	return nil
}

// dropCreated removes the database this restore created, even when ctx has
// been cancelled: that cancellation is usually why the restore failed.
func (s *Source) dropCreated(ctx context.Context) error {
	if err := s.Drop(ctx); err != nil {
		return fmt.Errorf("%w (it was created for the failed restore)", err)
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/dbarchive/dbarchive/sources"
)

// A custom archive is loaded by pg_restore over its own connection
// (--single-transaction) rather than as SQL through psql: psql parsing
// every COPY line of a 1 GiB archive, and the extra pipe hop through
// dbarchive, cost 1.7 times the CPU of the peer's plain pg_restore -d
// (bench/RESULTS.md, dbarchive_restore at a6dd6dd).
//
// The guarantee stays the same: nothing is committed before the whole
// stream checked out. pg_restore commits after its last entry, and it
// cannot finish the last entry without reading the archive's last bytes (a
// custom archive read from a pipe ends with the end marker of its last data
// block, which pg_restore reads to end that COPY). holdBack keeps the
// stream's last bytes from pg_restore until the reader has returned io.EOF,
// which the archiver returns only after every checksum and size matched;
// on any error pg_restore is killed before it has them, and its
// transaction dies with its connection.
//
// Tar archives keep the psql path: their restore.sql and trailer come after
// the data, so pg_restore may commit before it reads the end. So do
// restores where pg_restore is newer than a server before 17: pg_restore 17
// and later send SET transaction_timeout, which such a server refuses
// (timeout.go guards that line in the script instead).

// holdBackSize is how many of the stream's last bytes pg_restore gets only
// after the end checked out. A custom archive has no trailer, so one byte
// would do; the margin costs nothing.
// (A variable so that a test can show what happens without it.)
var holdBackSize = 256 << 10

// restoresDirectly tells whether a custom archive goes to pg_restore's own
// connection into database db, from the versions of pg_restore and of the
// server.
func (s *Source) restoresDirectly(ctx context.Context, db string) (bool, error) {
	tool, err := toolMajor(ctx, "pg_restore")
	if err != nil {
		return false, err
	}
	if directAllowed(tool, 0) {
		return true, nil // whatever the server: no need to start psql to ask
	}
	server, err := s.serverMajor(ctx, db)
	if err != nil {
		return false, err
	}
	return directAllowed(tool, server), nil
}

// directAllowed is the version rule: pg_restore 17 and later send SET
// transaction_timeout, which a server before 17 refuses.
func directAllowed(tool, server int) bool {
	return tool < 17 || server >= 17
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// toolMajor is the major version a PostgreSQL tool prints with --version
// ("pg_restore (PostgreSQL) 15.20 (Debian …)").
func toolMajor(ctx context.Context, tool string) (int, error) {
	path, err := sources.LookTool(hint, tool)
	if err != nil {
		return 0, err
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", tool, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s --version printed %q, not a PostgreSQL version", tool, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(string(m[1]))
}

// serverMajor asks the server, through psql on database db, for its major
// version (server_version_num is 150020 for 15.20).
func (s *Source) serverMajor(ctx context.Context, db string) (int, error) {
	c, err := s.command("psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1", "--file=-")
	if err != nil {
		return 0, err
	}
	c.Env = append(c.Env, "PGDATABASE="+db)
	var out strings.Builder
	if err := c.Run(ctx, strings.NewReader("SELECT current_setting('server_version_num');\n"), &out); err != nil {
		return 0, fmt.Errorf("asking the server for its version: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		return 0, fmt.Errorf("the server's version %q is not a number", strings.TrimSpace(out.String()))
	}
	return n / 10000, nil
}

// restoreCommand loads a custom archive from stdin into database db in one
// transaction (--single-transaction implies --exit-on-error); with
// Options.Overwrite each object of the archive is dropped, if it is there,
// before it is made again. The database goes in a connection string:
// a bare --dbname containing "=" would be read as one.
func (s *Source) restoreCommand(db string) (*sources.Command, error) {
	args := []string{"--no-owner", "--format=" + FormatCustom, "--single-transaction", "--exit-on-error", "--dbname=" + connDBName(db)}
	if s.opts.Overwrite {
		args = append(args, "--clean", "--if-exists")
	}
	return s.command("pg_restore", args...)
}

// connDBName is a libpq connection string naming only the database; the
// rest of the connection comes from the PG* environment.
func connDBName(db string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'"
}

// loadDirect restores a custom archive with pg_restore's own connection
// into database into. With CreateDatabase the database-level entries,
// read by a second pg_restore from the same stream, are applied after the
// data is in, in a transaction of their own that also removes the
// incomplete-restore marker; the rename to the target comes after both.
func (s *Source) loadDirect(ctx context.Context, dump io.Reader, into string) error {
	cmd, err := s.restoreCommand(into)
	if err != nil {
		return err
	}
	feed := dump
	var props *dbProps
	if s.opts.CreateDatabase {
		if props, feed, err = s.startProps(ctx, FormatCustom, dump, into); err != nil {
			return err
		}
	}
	err = cmd.Run(ctx, &holdBack{r: feed, buf: make([]byte, 0, max(4*holdBackSize, 64<<10))}, io.Discard)
	props.mainDone(err)
	if perr := props.wait(); err == nil {
		err = perr
	}
	if err != nil || props == nil {
		return err
	}
	stmts, err := props.statements()
	if err != nil {
		return err
	}
	psql, err := s.psqlCommand(into)
	if err != nil {
		return err
	}
	// The marker goes first: the dump's own comment, if any, replaces it.
	sql := "BEGIN;\nCOMMENT ON DATABASE " + quoteIdent(into) + " IS NULL;\n" + stmts + "COMMIT;\n"
	if err := psql.Run(ctx, strings.NewReader(sql), io.Discard); err != nil {
		return fmt.Errorf("applying the database's settings: %w", err)
	}
	return nil
}

// holdBack passes r through, except its last holdBackSize bytes, which it
// returns only once r has returned io.EOF. An error from r is returned as
// soon as it is seen, and the held bytes never are.
type holdBack struct {
	r   io.Reader
	buf []byte // buf[off:] is read from r and not yet returned
	off int
	err error
}

func (h *holdBack) Read(p []byte) (int, error) {
	for h.err == nil && len(h.buf)-h.off <= holdBackSize {
		if h.off > 0 {
			h.buf = h.buf[:copy(h.buf, h.buf[h.off:])]
			h.off = 0
		}
		n, err := h.r.Read(h.buf[len(h.buf):cap(h.buf)])
		h.buf, h.err = h.buf[:len(h.buf)+n], err
	}
	avail := len(h.buf) - h.off
	switch {
	case h.err == nil:
		avail -= holdBackSize
	case h.err != io.EOF:
		return 0, h.err
	case avail == 0:
		return 0, io.EOF
	}
	n := copy(p, h.buf[h.off:h.off+avail])
	h.off += n
	return n, nil
}

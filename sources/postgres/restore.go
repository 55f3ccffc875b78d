package postgres

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// cleanupTimeout bounds dropping a database created for a restore that failed.
const cleanupTimeout = time.Minute

// incompletePrefix starts the name of a database a restore with
// CreateDatabase loads before it renames it to the target. A database with
// this name is never a good restore: the rename is the restore's last step.
const incompletePrefix = "dbarchive-incomplete-"

// incompleteComment marks such a database for people and for the next run
// into the same target, which drops it (the name may be cut to 63 bytes;
// the comment holds the whole target). The restore's own transaction
// replaces the comment.
func incompleteComment(target string) string {
	return "dbarchive: incomplete restore into " + target + "; safe to drop"
}

// Restore loads a dump into the database named by the URL. The format is
// read from the dump's first bytes; when Options.Format is set as well, the
// two must agree.
//
// Every format is loaded in one transaction that commits only after r has
// returned io.EOF (for the archiver: after the whole stream checked out).
// Plain dumps and tar archives go through psql, in a transaction dbarchive
// opens and commits, tar archives turned into SQL by pg_restore on the way;
// custom archives go to pg_restore --single-transaction, which never gets
// the stream's last bytes before io.EOF (direct.go). A failure, a broken r,
// a killed dbarchive (its tools die with it on Linux; elsewhere they see an
// end of input without COMMIT, or a truncated archive) all leave the target
// as it was.
//
// With Options.Overwrite into an existing database, custom and tar
// archives drop each of their objects before making it again (pg_restore
// --clean --if-exists), in the same transaction; objects the archive does
// not hold stay. A plain dump is loaded as it is: where it makes an object
// that exists, the transaction fails and the target is unchanged.
//
// With Options.CreateDatabase the target must not exist. The dump is loaded
// into a new database named dbarchive-incomplete-…, which gets the dump's
// database-level settings, comment and ACL inside the same transaction, and
// is renamed to the target only after the commit. A restore that fails
// drops it; one that is killed leaves it under that name, and the next
// restore with CreateDatabase into the same target drops it.
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
	into := s.db
	if s.opts.CreateDatabase {
		if into, err = s.createIncomplete(ctx); err != nil {
			return fmt.Errorf("postgres target %s: creating the database: %w", s.Describe(), err)
		}
		// err here is Restore's result: the closure must see the final one.
		defer func() {
			if err != nil {
				err = errors.Join(err, s.dropIncomplete(ctx, into))
			}
		}()
	}
	if err := s.load(ctx, format, br, into); err != nil {
		return fmt.Errorf("postgres target %s: %w", s.Describe(), err)
	}
	if s.opts.CreateDatabase {
		if err := s.maintenance(ctx, `ALTER DATABASE :"incomplete" RENAME TO :"target";`, "incomplete="+into); err != nil {
			return fmt.Errorf("postgres target %s: renaming the restored database %s: %w", s.Describe(), into, err)
		}
	}
	return nil
}

// load runs psql on BEGIN, the dump as SQL, the database-level statements
// when the database was created for the restore, and COMMIT; a custom
// archive goes to pg_restore's own connection where it can (direct.go). io.MultiReader
// reads COMMIT only after the dump's reader returned io.EOF.
func (s *Source) load(ctx context.Context, format string, dump io.Reader, into string) error {
	if format == FormatCustom {
		direct, err := s.restoresDirectly(ctx, into)
		if err != nil {
			return err
		}
		if direct {
			return s.loadDirect(ctx, dump, into)
		}
	}
	psql, err := s.psqlCommand(into)
	if err != nil {
		return err
	}
	var (
		script             = dump
		dbLevel  io.Reader = strings.NewReader("")
		wait               = func() error { return nil }
		closeOut           = func(error) {}
	)
	if s.opts.CreateDatabase {
		// The marker goes in the transaction: it is gone once the data is in.
		dbLevel = strings.NewReader("\nCOMMENT ON DATABASE " + quoteIdent(into) + " IS NULL;\n")
	}
	if format != FormatPlain {
		p, err := s.startScript(ctx, format, dump, into)
		if err != nil {
			return err
		}
		script, wait, closeOut = p.script, p.wait, p.closeOut
		if s.opts.CreateDatabase {
			dbLevel = io.MultiReader(dbLevel, p.dbLevel)
		}
	}
	in := io.MultiReader(strings.NewReader("BEGIN;\n"), guardTransactionTimeout(script), dbLevel, strings.NewReader("\nCOMMIT;\n"))
	// psql's stdout (query results the dump's SELECTs print) is noise, and
	// must not end up in an error message.
	runErr := psql.Run(ctx, in, io.Discard)
	closeOut(runErr)
	werr := wait()
	if runErr != nil && werr != nil && errors.Is(runErr, werr) {
		return runErr // psql failed reading pg_restore's failure: say it once
	}
	return errors.Join(runErr, werr)
}

// pipeline is pg_restore turning an archive into SQL for psql.
type pipeline struct {
	script   io.Reader // the SQL; its error is pg_restore's
	dbLevel  io.Reader // database-level statements, ready once script ended
	wait     func() error
	closeOut func(error)
}

// startScript runs pg_restore --file=- on the archive. With CreateDatabase
// a second pg_restore reads the same stream and keeps only the database's
// own entries, rewritten for the database into.
func (s *Source) startScript(ctx context.Context, format string, dump io.Reader, into string) (*pipeline, error) {
	main, err := s.scriptCommand(format, false, false)
	if err != nil {
		return nil, err
	}
	outR, outW := io.Pipe()
	p := &pipeline{script: outR, dbLevel: strings.NewReader("")}
	feed := dump
	var props *dbProps
	if s.opts.CreateDatabase {
		if props, feed, err = s.startProps(ctx, format, dump, into); err != nil {
			return nil, err
		}
		p.dbLevel = &lazyReader{open: func() (io.Reader, error) {
			stmts, err := props.statements()
			return strings.NewReader(stmts), err
		}}
	}
	mainDone := make(chan error, 1)
	go func() {
		err := main.Run(ctx, feed, outW)
		outW.CloseWithError(err) // nil: psql reads on to COMMIT
		props.mainDone(err)
		mainDone <- err
	}()
	p.closeOut = func(err error) {
		// psql is done: a pg_restore still writing must not block.
		if err == nil {
			err = errors.New("psql exited")
		}
		outR.CloseWithError(err)
	}
	p.wait = func() error {
		err := <-mainDone
		// After a failure of the main pg_restore, the second one failed
		// because of it: wait for it, but report the cause.
		if perr := props.wait(); err == nil {
			err = perr
		}
		return err
	}
	return p, nil
}

// dbProps is a second pg_restore reading the same archive as the restore,
// for the database-level entries (settings, comment, ACL) a restore with
// CreateDatabase applies to the database it made. It reads only the
// archive's table of contents; the rest of the stream is discarded.
type dbProps struct {
	tee  *io.PipeWriter
	into string
	out  bytes.Buffer
	done chan error
	once sync.Once
	err  error
}

// startProps starts that pg_restore and returns the reader the main
// restore must read dump through, so both see the same bytes.
func (s *Source) startProps(ctx context.Context, format string, dump io.Reader, into string) (*dbProps, io.Reader, error) {
	cmd, err := s.scriptCommand(format, true, true)
	if err != nil {
		return nil, nil, err
	}
	tr, tw := io.Pipe()
	p := &dbProps{tee: tw, into: into, done: make(chan error, 1)}
	go func() {
		err := cmd.Run(ctx, tr, &p.out)
		if err != nil {
			// Fail the tee too, so the main pg_restore stops.
			tr.CloseWithError(fmt.Errorf("reading the database's settings: %w", err))
		} else {
			// It read the table of contents and stopped: the tee stops too.
			tr.CloseWithError(errPropsRead)
		}
		p.done <- err
	}()
	return p, &teeToPipe{r: dump, w: tw}, nil
}

// mainDone tells p that the main restore stopped reading, with its error:
// one that stopped early no longer feeds the tee, so the second
// pg_restore's input ends too (after a clean end the tee has closed it
// already, and this is a no-op). A nil p does nothing.
func (p *dbProps) mainDone(err error) {
	if p == nil {
		return
	}
	if err == nil {
		err = errors.New("the archive ended")
	}
	p.tee.CloseWithError(err)
}

// wait returns the second pg_restore's result; a nil p has none.
func (p *dbProps) wait() error {
	if p == nil {
		return nil
	}
	p.once.Do(func() { p.err = <-p.done })
	return p.err
}

// statements are the database-level statements for the database the
// restore made, once the second pg_restore has ended.
func (p *dbProps) statements() (string, error) {
	if err := p.wait(); err != nil {
		return "", err
	}
	return databaseStatements(p.out.String(), p.into)
}

// errPropsRead closes the second pg_restore's input once it has ended
// cleanly: it has the table of contents, which is all it reads.
var errPropsRead = errors.New("the database's settings are read")

// teeToPipe copies what is read from r into w, and closes w at r's end
// (with r's error when it breaks), so a second reader sees the same stream,
// until that reader has closed w with errPropsRead: the second pg_restore
// needs only the archive's first bytes, and copying the rest of a large
// stream to be discarded cost as much CPU as the hashes that check it.
type teeToPipe struct {
	r io.Reader
	w *io.PipeWriter // nil once the second reader has all it needs
}

func (t *teeToPipe) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && t.w != nil {
		if _, werr := t.w.Write(p[:n]); errors.Is(werr, errPropsRead) {
			t.w = nil
		} else if werr != nil {
			return n, werr
		}
	}
	switch {
	case t.w == nil:
	case err == io.EOF:
		_ = t.w.Close()
	case err != nil:
		_ = t.w.CloseWithError(err)
	}
	return n, err
}

// lazyReader opens its reader on the first Read.
type lazyReader struct {
	open func() (io.Reader, error)
	r    io.Reader
	err  error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.r == nil && l.err == nil {
		l.r, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(p)
}

// createIncomplete drops what killed restores into the same target left,
// makes the database the dump is loaded into, and marks it. It fails when
// the target exists.
func (s *Source) createIncomplete(ctx context.Context) (string, error) {
	into := incompleteName(s.db)
	const script = `SELECT format('DO $x$BEGIN RAISE EXCEPTION %L; END$x$', 'database ' || quote_ident(:'target') || ' exists; a restore with --create-db makes a new one')
 WHERE EXISTS (SELECT 1 FROM pg_database WHERE datname = :'target') \gexec
SELECT format('DROP DATABASE %I', datname) FROM pg_database d
 WHERE starts_with(datname, :'prefix') AND shobj_description(oid, 'pg_database') = :'comment'
   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid) \gexec
CREATE DATABASE :"incomplete";
COMMENT ON DATABASE :"incomplete" IS :'comment';
`
	if err := s.maintenance(ctx, script, "incomplete="+into, "prefix="+incompletePrefix, "comment="+incompleteComment(s.db)); err != nil {
		return "", err
	}
	return into, nil
}

// maintenance runs SQL on the maintenance database (postgres), outside
// any transaction, with :target and the given psql variables set.
func (s *Source) maintenance(ctx context.Context, sql string, vars ...string) error {
	c, err := s.psqlCommand("postgres", append([]string{"target=" + s.db}, vars...)...)
	if err != nil {
		return err
	}
	return c.Run(ctx, strings.NewReader(sql), io.Discard)
}

// dropIncomplete removes the database this restore created, even when ctx
// has been cancelled: that cancellation is usually why the restore failed.
func (s *Source) dropIncomplete(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.maintenance(ctx, `DROP DATABASE IF EXISTS :"incomplete";`, "incomplete="+name); err != nil {
		return fmt.Errorf("dropping the database %s created for the failed restore: %w", name, err)
	}
	return nil
}

// incompleteName is dbarchive-incomplete-<random>-<target>, cut to
// PostgreSQL's 63-byte limit on a character boundary.
func incompleteName(target string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := incompletePrefix + hex.EncodeToString(b) + "-" + target
	for len(name) > 63 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// databaseStatements picks from pg_restore --create output the statements
// about the database itself — ALTER DATABASE … SET, COMMENT ON DATABASE,
// GRANT and REVOKE on it, SECURITY LABEL, ALTER ROLE … IN DATABASE — and
// names database into in them instead of the dumped one. CREATE DATABASE,
// the owner (restores are --no-owner) and psql meta-commands (\connect)
// are left out.
func databaseStatements(script, into string) (string, error) {
	var orig string
	var out strings.Builder
	for _, st := range splitSQL(script) {
		switch {
		case strings.HasPrefix(st, "CREATE DATABASE "):
			orig = leadingIdent(strings.TrimPrefix(st, "CREATE DATABASE "))
			continue
		case strings.HasPrefix(st, "ALTER DATABASE ") && strings.Contains(st, " OWNER TO "):
			continue
		case hasAnyPrefix(st, "ALTER DATABASE ", "COMMENT ON DATABASE ", "GRANT ", "REVOKE ", "SECURITY LABEL ", "ALTER ROLE "):
		default:
			continue
		}
		if orig == "" {
			return "", errors.New("the dump's database entries have no CREATE DATABASE")
		}
		// The name comes before any literal: rewrite there only.
		code, rest := st, ""
		if i := strings.IndexByte(st, '\''); i >= 0 {
			code, rest = st[:i], st[i:]
		}
		k := strings.Index(code, " DATABASE "+orig)
		if k < 0 {
			return "", fmt.Errorf("cannot tell which database a statement of the dump is about: %.40s…", st)
		}
		k += len(" DATABASE ")
		out.WriteString(code[:k] + quoteIdent(into) + code[k+len(orig):] + rest + ";\n")
	}
	return out.String(), nil
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// leadingIdent returns the identifier s starts with, as written: "…"
// quoted (with "" inside) or bare up to a space or semicolon.
func leadingIdent(s string) string {
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			if s[i] == '"' {
				if i+1 < len(s) && s[i+1] == '"' {
					i++
					continue
				}
				return s[:i+1]
			}
		}
		return s
	}
	if i := strings.IndexAny(s, " ;\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// splitSQL splits a pg_dump script into statements, without their final
// semicolon, dropping comment lines and psql meta-command lines between
// statements. It knows the quoting pg_dump writes: '…' literals with ”
// and "…" identifiers with "" (standard_conforming_strings is on in every
// script pg_dump writes).
func splitSQL(script string) []string {
	var (
		out     []string
		cur     strings.Builder
		inQuote byte
	)
	for i := 0; i < len(script); i++ {
		c := script[i]
		if inQuote == 0 && strings.TrimSpace(cur.String()) == "" {
			// Between statements, at a line's start: skip a comment or a
			// meta-command line.
			if atLineStart(script, i) && (c == '\\' || strings.HasPrefix(script[i:], "--")) {
				if j := strings.IndexByte(script[i:], '\n'); j >= 0 {
					i += j
				} else {
					i = len(script)
				}
				cur.Reset()
				continue
			}
		}
		switch {
		case inQuote != 0 && c == inQuote:
			inQuote = 0
		case inQuote == 0 && (c == '\'' || c == '"'):
			inQuote = c
		case inQuote == 0 && c == ';':
			if st := strings.TrimSpace(cur.String()); st != "" {
				out = append(out, st)
			}
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return out
}

func atLineStart(s string, i int) bool {
	j := i
	for j > 0 && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return j == 0 || s[j-1] == '\n'
}

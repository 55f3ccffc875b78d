// Package sources reads databases into a byte stream and writes such a stream
// back: one small driver per source type (postgres, mysql, http, exec),
// registered by URL scheme like the storage drivers are by repo type.
//
// A source knows its dump and restore tools and nothing about storage or
// compression: the archiver hands it a writer to dump into and a reader to
// restore from. Credentials reach the tools through their environment or an
// inherited pipe, never through process arguments or a file on disk, and
// never appear in an error, a log line or Describe. Tools run in their own
// process group and, on Linux, die with dbarchive.
package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// Source is one database (or other stream producer) named by a URL.
type Source interface {
	// Type is the source type recorded in the manifest: postgres, mysql,
	// http, exec.
	Type() string
	// Database is the database name recorded in the manifest, or "" when the
	// type has none.
	Database() string
	// Describe is the URL with every credential removed, for logs.
	Describe() string
	// Check verifies before anything is uploaded that the dump can start:
	// the tool is on PATH, the options are consistent. It does not connect.
	Check(ctx context.Context) error
	// Dump writes the whole dump to w. It returns nil only when the dump is
	// complete: a tool that exits non-zero, is killed, or stops early yields
	// an error that carries the tail of its stderr (credentials redacted).
	Dump(ctx context.Context, w io.Writer) error
}

// Restorer is a Source that can load a dump back.
type Restorer interface {
	// CheckRestore verifies that the restore can start (tool on PATH).
	CheckRestore(ctx context.Context) error
	// Restore loads the dump read from r into the target. Where the tool
	// allows, it runs in a single transaction, so that a failure (including
	// r returning an error half-way) leaves the target unchanged.
	Restore(ctx context.Context, r io.Reader) error
}

// Options are settings that do not belong in a URL.
type Options struct {
	// Password, when set, overrides any password source below. It is never
	// passed on a command line.
	Password string
	// PasswordFile names a file whose first line is the password.
	PasswordFile string
	// Format is the dump format where the tool has several (postgres:
	// custom, plain, tar, directory is refused because it is not a stream).
	Format string
	// CreateDatabase makes Restore create the target database first.
	CreateDatabase bool
	// Overwrite lets a restore load into a target that already holds
	// tables. Without it, CheckRestore refuses such a target with a
	// *TargetNotEmptyError: restoring on top of live data mixes the two,
	// and under pressure the wrong target is an easy mistake. What loading
	// on top does is the source type's (see its Restore).
	Overwrite bool
}

// TargetNotEmptyError is CheckRestore's refusal of a target that already
// holds tables when Options.Overwrite is not set.
type TargetNotEmptyError struct {
	// Target is the target with credentials removed.
	Target string
	// Tables are the first few tables found (schema-qualified where the
	// type has schemas), of Count in all.
	Tables []string
	Count  int
}

func (e *TargetNotEmptyError) Error() string {
	found := strings.Join(e.Tables, ", ")
	if more := e.Count - len(e.Tables); more > 0 {
		found += fmt.Sprintf(" and %d more", more)
	}
	return fmt.Sprintf("target %s is not empty: it holds %s; restore into a new or empty database, or allow overwriting it", e.Target, found)
}

// ShownTables is how many tables a TargetNotEmptyError names.
const ShownTables = 5

// CheckEmptyRows reads the output of a target's table query, one
// "<total>\t<table>" line per row (at most ShownTables rows), and returns a
// *TargetNotEmptyError when there is any row.
func CheckEmptyRows(target, rows string) error {
	var tables []string
	count := 0
	for line := range strings.Lines(rows) {
		n, name, ok := strings.Cut(strings.TrimRight(line, "\r\n"), "\t")
		if !ok {
			continue
		}
		count, _ = strconv.Atoi(n)
		tables = append(tables, name)
	}
	if len(tables) == 0 {
		return nil
	}
	return &TargetNotEmptyError{Target: target, Tables: tables, Count: max(count, len(tables))}
}

// ResolvePassword returns the password in order of precedence: Options.Password,
// the first line of Options.PasswordFile (Open refuses a password in the URL). It
// returns "" when there is none, leaving the tool's own defaults (PGPASSWORD,
// ~/.pgpass, ~/.my.cnf) to apply. An error names the file, never its content.
func (o Options) ResolvePassword(u *url.URL) (string, error) {
	if o.Password != "" {
		return o.Password, nil
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			return "", fmt.Errorf("password file %s: first line is empty", o.PasswordFile)
		}
		return line, nil
	}
	return "", nil
}

// Formatted is a Source whose dump comes in one of several formats that a
// restore must be told (postgres: custom, plain, tar). The archiver records
// Format in the manifest and passes it back as Options.Format on restore.
type Formatted interface {
	Format() string
}

// Scannable is a Source whose dump the archiver reads as it streams past,
// to record each table's rows and to fail a dump that did not end the way
// its tool ends a complete one.
type Scannable interface {
	// DumpScanner returns a new scanner for one dump, or nil when this
	// source's dump format is not read (postgres tar).
	DumpScanner() dumpscan.Scanner
}

// Opener builds a Source from a URL. A URL whose scheme is not followed by
// "//" is opaque: u.Opaque holds the rest exactly as given (exec: command
// lines hold spaces, %, # and ? that URL parsing would mangle).
type Opener func(u *url.URL, opts Options) (Source, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a source type available under one or more URL schemes. It
// panics on an empty or duplicate scheme.
func Register(opener Opener, schemes ...string) {
	mu.Lock()
	defer mu.Unlock()
	if opener == nil || len(schemes) == 0 {
		panic("sources: Register needs an opener and a scheme")
	}
	for _, s := range schemes {
		if s == "" {
			panic("sources: Register with an empty scheme")
		}
		if _, dup := openers[s]; dup {
			panic("sources: Register called twice for scheme " + s)
		}
		openers[s] = opener
	}
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// ErrPasswordInURL is a source URL with a password in it: the URL is a
// process argument, which every user of the machine can read (ps), and a
// password must come from a file or the environment instead.
var ErrPasswordInURL = errors.New("a password does not belong in the source URL, where ps shows it")

// Open parses a source URL and opens it with the registered driver. A URL
// with a password is refused (ErrPasswordInURL). The error never repeats the
// URL's password.
func Open(raw string, opts Options) (Source, error) {
	scheme, _, ok := strings.Cut(raw, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("source URL: missing scheme; known schemes: %s", strings.Join(Schemes(), ", "))
	}
	scheme = strings.ToLower(scheme)
	mu.RLock()
	opener, found := openers[scheme]
	mu.RUnlock()
	if !found {
		return nil, fmt.Errorf("source URL: unknown scheme %q; known schemes: %s", scheme, strings.Join(Schemes(), ", "))
	}
	if rest := raw[len(scheme)+1:]; !strings.HasPrefix(rest, "//") {
		return opener(&url.URL{Scheme: scheme, Opaque: rest}, opts)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input, which may hold a password.
		return nil, fmt.Errorf("source URL (%s): cannot parse", scheme)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return nil, fmt.Errorf("source URL %s: %w", WithoutPassword(u), ErrPasswordInURL)
		}
	}
	return opener(u, opts)
}

// WithoutPassword returns u as a string with the password removed (the user
// name stays: it helps reading a log and is not a credential).
func WithoutPassword(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// Querier is a target a drill can inspect after restoring into it: Query
// runs one SQL statement in the target database through the type's own
// client and returns its rows as text (NULL is ""), and Drop removes the
// target database. Both connect as the Restorer does, with the same
// credentials handling.
type Querier interface {
	Query(ctx context.Context, sql string) ([][]string, error)
	Drop(ctx context.Context) error
}

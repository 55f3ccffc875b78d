// Package dumpscan reads a database dump as it streams past, without a
// second pass over the database and without holding the dump: it records
// each table's schema, name, row count and an order-independent digest of
// its rows, and it knows whether the dump ended the way its tool ends a
// complete dump. A dump tool that is cut off (a killed pipe, a full disk, an
// exec: command that stops early) may still exit 0; the missing end is the
// only evidence, and a backup that lacks it must fail.
//
// Formats: PostgreSQL custom archives (pg_dump -Fc; rows are read from
// uncompressed archives only, as dbarchive writes them with -Z0, while a
// compressed archive is still checked for completeness), PostgreSQL plain
// SQL (COPY … FROM stdin sections), and mariadb-dump / mysqldump output
// (extended INSERT statements, read by a lexer that knows the quoting and
// escapes). Sniff picks one of them by a stream's first bytes.
//
// A scanner is an io.Writer: the archiver tees the dump into it beside the
// compressor. Memory is bounded by the largest table-of-contents entry or
// statement header, never by a row: a row split across writes is hashed
// piece by piece.
//
// The digest of a table is the sum, modulo 2^64, of the 64-bit XXH3 hash of
// each row's text exactly as the dump writes it (a COPY line without its
// newline; the text between an INSERT tuple's parentheses). A sum does not
// depend on row order, so a restore that loads rows in another order still
// matches; PostgreSQL's custom and plain dumps write the same COPY text, so
// their digests agree.
package dumpscan

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/zeebo/xxh3"
)

// DigestAlgorithm names how Table.Digest is computed, for readers of the
// recorded list.
// XXH3 rather than XXH64: rows are short, where XXH3 is about twice as
// fast, and hashing is most of what the scanners cost.
const DigestAlgorithm = "xxh3-64-sum"

// Formats a scanner reads.
const (
	FormatPostgresCustom = "postgres-custom"
	FormatPostgresPlain  = "postgres-plain"
	FormatMariaDB        = "mariadb"
)

// Table is what a dump holds of one table.
type Table struct {
	Schema string `json:"schema,omitempty"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	// Digest is 16 hex digits; see DigestAlgorithm.
	Digest string `json:"digest"`

	sum uint64
}

// QualifiedName is schema.name, or the name alone without a schema.
func (t *Table) QualifiedName() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

func (t *Table) add(h uint64) {
	t.Rows++
	t.sum += h
}

func (t *Table) finish() { t.Digest = fmt.Sprintf("%016x", t.sum) }

// Result is what a scanner learnt from a complete dump.
type Result struct {
	// Format is the format read, or "" when Sniff did not recognise the
	// stream (then nothing was checked).
	Format string
	// Tables lists the tables in dump order; nil when the rows could not be
	// read (NotRead says why).
	Tables  []Table
	NotRead string
}

// Scanner reads one dump. Write returns an error as soon as the stream
// cannot be the format it reads; Close reports whether the dump ended
// properly, as an *IncompleteError when it did not.
type Scanner interface {
	io.Writer
	Close() (*Result, error)
}

// IncompleteError is a dump that stopped before its end.
type IncompleteError struct {
	Format string
	// Missing says what the stream lacks, e.g. "the data of table public.t".
	Missing string
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("the dump is incomplete (%s): %s", e.Format, e.Missing)
}

// FormatError is a stream that is not the format its scanner reads.
type FormatError struct {
	Format string
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("the dump is not a valid %s stream at byte %d: %s", e.Format, e.Offset, e.Msg)
}

// rowHasher hashes newline-terminated rows (COPY text) fed in pieces of any
// size. A row that arrives whole in one piece is hashed in one call; one
// split across pieces goes through the streaming digest.
type rowHasher struct {
	d       *xxh3.Hasher
	open    bool // a row's first bytes were fed, its newline not yet
	size    int  // bytes of the open row, up to 2
	head    [2]byte
	endSeen bool // the COPY terminator line `\.` was read
}

// feed consumes rows from p into t until p ends or the terminator line
// `\.` has been read. It returns the bytes consumed (all of p unless the
// terminator was found) and whether the terminator was found.
func (r *rowHasher) feed(t *Table, p []byte) (int, bool) {
	consumed := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !r.open {
				r.d = resetHasher(r.d)
				r.open, r.size = true, 0
			}
			r.note(p)
			_, _ = r.d.Write(p)
			return consumed + len(p), false
		}
		line := p[:i]
		p = p[i+1:]
		consumed += i + 1
		var h uint64
		if r.open {
			r.note(line)
			_, _ = r.d.Write(line)
			h = r.d.Sum64()
			r.open = false
			if r.size == 2 && r.head == [2]byte{'\\', '.'} {
				r.endSeen = true
				return consumed, true
			}
		} else {
			if len(line) == 2 && line[0] == '\\' && line[1] == '.' {
				r.endSeen = true
				return consumed, true
			}
			h = xxh3.Hash(line)
		}
		t.add(h)
	}
	return consumed, false
}

// note keeps the open row's first two bytes and counts its size up to 3,
// enough to tell the terminator `\.` from a row.
func (r *rowHasher) note(p []byte) {
	for _, c := range p {
		if r.size >= 3 {
			return
		}
		if r.size < 2 {
			r.head[r.size] = c
		}
		r.size++
	}
}

// flush ends an open row that had no newline (a custom archive's data
// block whose last row lacks one): it counts as a row.
func (r *rowHasher) flush(t *Table) {
	if r.open {
		r.open = false
		if !(r.size == 2 && r.head == [2]byte{'\\', '.'}) {
			t.add(r.d.Sum64())
		}
	}
}

// resetHasher returns h reset, or a new hasher when h is nil.
func resetHasher(h *xxh3.Hasher) *xxh3.Hasher {
	if h == nil {
		return xxh3.New()
	}
	h.Reset()
	return h
}

// Sniff returns a scanner that picks its format by the stream's first bytes:
// a PostgreSQL custom archive, a pg_dump plain script, or a mariadb-dump /
// mysqldump script. A stream it does not recognise passes unchecked, and
// Close returns a Result with an empty Format.
func Sniff() Scanner { return &sniffer{} }

// sniffLimit is how much of the stream Sniff looks at: mariadb-dump's
// header comment follows a sandbox-mode line and dbarchive's own header.
const sniffLimit = 1024

type sniffer struct {
	head []byte
	s    Scanner // nil until decided; passthrough when unrecognised
	none bool
}

func (s *sniffer) Write(p []byte) (int, error) {
	if s.s != nil {
		return s.s.Write(p)
	}
	if s.none {
		return len(p), nil
	}
	s.head = append(s.head, p...)
	if len(s.head) < sniffLimit {
		return len(p), nil
	}
	if err := s.decide(); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *sniffer) decide() error {
	h := s.head
	switch {
	case bytes.HasPrefix(h, []byte("PGDMP")):
		s.s = NewPostgresCustom()
	case bytes.HasPrefix(h, []byte("--\n-- PostgreSQL database dump\n")):
		s.s = NewPostgresPlain()
	case bytes.HasPrefix(h, []byte("-- dbarchive: database default character set ")), // the mysql source's own first line
		bytes.HasPrefix(h, []byte("/*M!999999\\- enable the sandbox mode */")),
		bytes.Contains(h[:min(len(h), sniffLimit)], []byte("\n-- MariaDB dump ")),
		bytes.Contains(h[:min(len(h), sniffLimit)], []byte("\n-- MySQL dump ")),
		bytes.HasPrefix(h, []byte("-- MariaDB dump ")),
		bytes.HasPrefix(h, []byte("-- MySQL dump ")):
		s.s = NewMariaDB("")
	default:
		s.none = true
		s.head = nil
		return nil
	}
	head := s.head
	s.head = nil
	_, err := s.s.Write(head)
	return err
}

func (s *sniffer) Close() (*Result, error) {
	if s.s == nil && !s.none {
		if err := s.decide(); err != nil {
			return nil, err
		}
	}
	if s.s == nil {
		return &Result{NotRead: "the stream is not a dump format dbarchive reads"}, nil
	}
	return s.s.Close()
}

// quoteForError shows a piece of the stream in an error message.
func quoteForError(b []byte) string {
	if len(b) > 60 {
		return strconv.Quote(string(b[:60])) + "…"
	}
	return strconv.Quote(string(b))
}

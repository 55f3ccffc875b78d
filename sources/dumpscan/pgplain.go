package dumpscan

import (
	"bytes"
	"fmt"
)

// pg_dump's plain script: SQL lines, with each table's rows in a section
// that starts with a line `COPY schema.table (columns) FROM stdin;` and
// ends with a line `\.`, one row a line in between (COPY text escapes
// newlines, so a row never spans lines). A complete script ends with the
// comment `-- PostgreSQL database dump complete`, followed by blank and
// comment lines and, since PostgreSQL 17.6/16.10/15.14, `\unrestrict key`.
const pgDumpComplete = "-- PostgreSQL database dump complete"

// Longest line prefixes kept: a COPY line must be whole (its column list is
// at most 1600 quoted names); any other line is only looked at for its
// start.
const (
	maxCopyLine  = 1 << 20
	maxOtherLine = 128
)

// NewPostgresPlain returns a scanner of a pg_dump plain script.
func NewPostgresPlain() Scanner { return &pgPlain{} }

type pgPlain struct {
	off      int64
	line     []byte // the current line's kept prefix
	lineLong bool   // the line was longer than what is kept
	inCopy   bool
	cur      *Table
	rows     rowHasher
	tables   []Table
	complete bool
	// restrictKey is the key of the script's opening `\restrict` line;
	// a script that has one is complete only with the matching
	// `\unrestrict` after the closing comment.
	restrictKey  string
	unrestricted bool
	err          error
}

func (s *pgPlain) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := len(p)
	for len(p) > 0 {
		if s.inCopy {
			k, done := s.rows.feed(s.cur, p)
			p = p[k:]
			s.off += int64(k)
			if done {
				s.cur.finish()
				s.tables = append(s.tables, *s.cur)
				s.cur, s.inCopy = nil, false
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		s.keep(seg)
		if i < 0 {
			s.off += int64(len(p))
			break
		}
		s.off += int64(i + 1)
		p = p[i+1:]
		if err := s.endLine(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// keep appends seg to the current line up to the prefix it needs.
func (s *pgPlain) keep(seg []byte) {
	limit := maxOtherLine
	if bytes.HasPrefix(s.line, []byte("COPY ")) || len(s.line) < 5 && bytes.HasPrefix([]byte("COPY "), s.line) {
		limit = maxCopyLine
	}
	room := limit - len(s.line)
	if len(seg) > room {
		s.lineLong = true
		seg = seg[:max(room, 0)]
	}
	s.line = append(s.line, seg...)
}

func (s *pgPlain) endLine() error {
	line, long := s.line, s.lineLong
	s.line, s.lineLong = s.line[:0], false
	if bytes.HasPrefix(line, []byte("COPY ")) {
		if long {
			s.err = &FormatError{Format: FormatPostgresPlain, Offset: s.off, Msg: fmt.Sprintf("COPY line longer than %d bytes", maxCopyLine)}
			return s.err
		}
		if rest, ok := bytes.CutSuffix(line, []byte(" FROM stdin;")); ok {
			schema, name, ok := parseCopyTarget(rest[len("COPY "):])
			if !ok {
				s.err = &FormatError{Format: FormatPostgresPlain, Offset: s.off, Msg: "cannot read the table of " + quoteForError(line)}
				return s.err
			}
			s.cur = &Table{Schema: schema, Name: name}
			s.rows = rowHasher{}
			s.inCopy = true
			s.complete = false
			return nil
		}
	}
	switch {
	case string(line) == pgDumpComplete:
		s.complete = true
		s.unrestricted = false
	case s.restrictKey == "" && !s.complete && bytes.HasPrefix(line, []byte(`\restrict `)):
		s.restrictKey = string(line[len(`\restrict `):])
	case s.complete && bytes.HasPrefix(line, []byte(`\unrestrict `)):
		s.unrestricted = s.restrictKey != "" && string(line[len(`\unrestrict `):]) == s.restrictKey
	case len(bytes.TrimSpace(line)) == 0, bytes.HasPrefix(line, []byte("--")):
	default:
		s.complete = false
	}
	return nil
}

// parseCopyTarget reads `schema.table (columns)` or `table (columns)` as
// pg_dump writes them: identifiers double-quoted when needed, with "" for
// a quote inside.
func parseCopyTarget(b []byte) (schema, name string, ok bool) {
	first, rest, ok := parseIdent(b)
	if !ok {
		return "", "", false
	}
	if len(rest) > 0 && rest[0] == '.' {
		second, rest2, ok := parseIdent(rest[1:])
		if !ok {
			return "", "", false
		}
		schema, name, rest = first, second, rest2
	} else {
		name = first
	}
	if len(rest) > 0 && rest[0] != ' ' {
		return "", "", false
	}
	return schema, name, true
}

func parseIdent(b []byte) (string, []byte, bool) {
	if len(b) == 0 {
		return "", nil, false
	}
	if b[0] != '"' {
		i := bytes.IndexAny(b, ". (")
		if i < 0 {
			i = len(b)
		}
		if i == 0 {
			return "", nil, false
		}
		return string(b[:i]), b[i:], true
	}
	var out []byte
	for i := 1; i < len(b); i++ {
		if b[i] != '"' {
			out = append(out, b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '"' {
			out = append(out, '"')
			i++
			continue
		}
		return string(out), b[i+1:], true
	}
	return "", nil, false
}

func (s *pgPlain) Close() (*Result, error) {
	if s.err != nil {
		return nil, s.err
	}
	incomplete := func(what string) (*Result, error) {
		return nil, &IncompleteError{Format: FormatPostgresPlain, Missing: what}
	}
	if s.inCopy {
		return incomplete(fmt.Sprintf("the stream ended inside the rows of table %s (after %d rows), before their closing \\.", s.cur.QualifiedName(), s.cur.Rows))
	}
	if len(s.line) > 0 {
		if err := s.endLine(); err != nil {
			return nil, err
		}
	}
	if !s.complete {
		return incomplete("it lacks pg_dump's closing line " + pgDumpComplete)
	}
	if s.restrictKey != "" && !s.unrestricted {
		return incomplete("it lacks the \\unrestrict line that closes its \\restrict line")
	}
	tables := s.tables
	if tables == nil {
		tables = []Table{}
	}
	return &Result{Format: FormatPostgresPlain, Tables: tables}, nil
}

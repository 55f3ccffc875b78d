package dumpscan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"

	"github.com/zeebo/xxh3"
)

// mariadb-dump and mysqldump write one statement after another, each
// starting on a line of its own. A table's rows are in extended INSERT
// statements, `INSERT INTO `name` VALUES (…),(…);`, which newer
// mariadb-dump versions break after VALUES and after each tuple; the lexer
// follows the quoting ('…' and "…" with backslash escapes and doubled
// quotes) so that parentheses, commas, semicolons and newlines inside
// values are never taken for structure. Stored routines and triggers sit
// between `DELIMITER ;;` and `DELIMITER ;`; whatever their bodies say is
// not data. A complete dump ends with the comment `-- Dump completed` (with
// the date unless --skip-dump-date).
const myDumpCompleted = "-- Dump completed"

// The hour is space-padded (mariadb-dump prints it with %2d): "on
// 2026-11-30  0:00:56" before 10:00.
var dumpDateRE = regexp.MustCompile(`^ on \d{4}-\d\d-\d\d [ \d]\d:\d\d:\d\d\s*$`)

const (
	myInsert = "INSERT INTO "
	myCreate = "CREATE TABLE `"
	// maxMyLine bounds the kept start of any line: enough for CREATE TABLE
	// and the longest quoted table name (64 characters of 4 bytes, every
	// one a doubled backtick).
	maxMyLine = 1024
)

// NewMariaDB returns a scanner of a mariadb-dump or mysqldump script of
// database db (the tables' schema). With db empty, the schema is the one
// the dump's header comment names.
func NewMariaDB(db string) Scanner {
	return &mariadb{db: db, delim: ";", index: map[string]int{}}
}

type mariadb struct {
	db       string
	off      int64
	line     []byte
	skipLine bool // the rest of the line follows a statement the lexer ended
	delim    string
	tables   []Table
	index    map[string]int
	complete bool
	err      error

	ins bool // inside an INSERT statement
	lx  insertLexer
}

func (m *mariadb) fail(msg string, args ...any) error {
	m.err = &FormatError{Format: FormatMariaDB, Offset: m.off, Msg: fmt.Sprintf(msg, args...)}
	return m.err
}

func (m *mariadb) table(name string) *Table {
	i, ok := m.index[name]
	if !ok {
		i = len(m.tables)
		m.index[name] = i
		m.tables = append(m.tables, Table{Schema: m.db, Name: name})
	}
	return &m.tables[i]
}

func (m *mariadb) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n := len(p)
	for len(p) > 0 {
		if m.ins {
			k, err := m.lex(p)
			if err != nil {
				return 0, err
			}
			p = p[k:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		take := 0
		if !m.skipLine {
			take = min(len(seg), maxMyLine-len(m.line))
			m.line = append(m.line, seg[:take]...)
			if m.delim == ";" && len(m.line) >= len(myInsert) && string(m.line[:len(myInsert)]) == myInsert {
				// The statement's own bytes go to the lexer from here on.
				rest := m.line[len(myInsert):]
				m.line = m.line[:0]
				m.off += int64(take - len(rest))
				m.ins = true
				m.lx = insertLexer{}
				k, err := m.lex(rest)
				if err != nil {
					return 0, err
				}
				if k < len(rest) {
					// The statement ended inside the line: ignore the rest.
					m.skipLine = true
				}
				p = p[take:]
				continue
			}
		}
		if i < 0 {
			m.off += int64(len(p))
			break
		}
		m.off += int64(i + 1)
		p = p[i+1:]
		if m.skipLine {
			m.skipLine = false
			m.line = m.line[:0]
			continue
		}
		m.endLine()
	}
	return n, nil
}

func (m *mariadb) endLine() {
	line := m.line
	m.line = m.line[:0]
	switch {
	case bytes.HasPrefix(line, []byte("DELIMITER ")):
		m.delim = string(bytes.TrimSpace(line[len("DELIMITER "):]))
	case m.delim == ";" && bytes.HasPrefix(line, []byte(myCreate)):
		if name, _, ok := parseBacktick(line[len(myCreate)-1:]); ok {
			m.table(name)
		}
	case m.db == "" && bytes.HasPrefix(line, []byte("-- Host: ")):
		if _, db, ok := bytes.Cut(line, []byte("Database: ")); ok {
			m.db = string(bytes.TrimSpace(db))
		}
	}
	switch {
	case bytes.HasPrefix(line, []byte(myDumpCompleted)):
		// The whole line, so that a dump cut inside the date is not taken
		// for a complete one; without the date (--skip-dump-date) it is
		// the bare comment.
		rest := line[len(myDumpCompleted):]
		m.complete = len(rest) == 0 || dumpDateRE.Match(rest)
	case len(bytes.TrimSpace(line)) > 0:
		m.complete = false
	}
}

// parseBacktick reads a backtick-quoted name, a doubled backtick standing
// for one inside.
func parseBacktick(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '`' {
		return "", nil, false
	}
	var out []byte
	for i := 1; i < len(b); i++ {
		if b[i] != '`' {
			out = append(out, b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '`' {
			out = append(out, '`')
			i++
			continue
		}
		return string(out), b[i+1:], true
	}
	return "", nil, false
}

// lexer states.
const (
	lxName      = iota // before and inside the table name
	lxNameQuote        // a backtick inside the name: the end or a doubled one
	lxAfterName        // spaces, an optional column list, VALUES
	lxColumns          // inside the column list
	lxColQuote         // inside a quoted column name
	lxKeyword          // inside VALUES
	lxBetween          // between tuples: spaces, commas, ( or ;
	lxTuple            // inside a tuple, outside quotes
	lxString           // inside a quoted value
	lxEscape           // after a backslash in a quoted value
	lxQuote            // after the closing quote: the end or a doubled quote
)

type insertLexer struct {
	state int
	name  []byte
	kw    int // bytes of VALUES matched
	depth int
	quote byte
	table *Table
	// the tuple being read: hashed in place when it lies in one piece,
	// else through d.
	split bool
	d     *xxh3.Hasher
}

// special marks the bytes that change the state inside a tuple.
var special = func() (t [256]bool) {
	for _, c := range []byte("'\"()") {
		t[c] = true
	}
	return
}()

// indexEither returns the index of the first a or b in p, or len(p). Most
// of a dump's bytes are inside quoted values, where this is all the lexer
// looks for: it tests eight bytes at a time (the "has a zero byte" trick on
// p xor the byte repeated) instead of one.
func indexEither(p []byte, a, b byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ma, mb := lo*uint64(a), lo*uint64(b)
	i := 0
	for ; i+8 <= len(p); i += 8 {
		v := binary.LittleEndian.Uint64(p[i:])
		x, y := v^ma, v^mb
		if (x-lo)&^x&hi != 0 || (y-lo)&^y&hi != 0 {
			break
		}
	}
	for ; i < len(p); i++ {
		if p[i] == a || p[i] == b {
			return i
		}
	}
	return len(p)
}

// lex consumes an INSERT statement's bytes from p and returns how many it
// used: all of p, or up to and including the statement's final semicolon.
func (m *mariadb) lex(p []byte) (int, error) {
	x := &m.lx
	start := -1 // where the open tuple's text starts in p
	if x.state >= lxTuple {
		start = 0
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch x.state {
		case lxTuple:
			// Fast path: skip the bytes that cannot end or quote anything.
			for i < len(p) && !special[p[i]] {
				i++
			}
			if i == len(p) {
				break
			}
			c = p[i]
			switch c {
			case '\'', '"':
				x.quote = c
				x.state = lxString
			case '(':
				x.depth++
			case ')':
				x.depth--
				if x.depth == 0 {
					m.endTuple(p[start:i])
					start = -1
					x.state = lxBetween
				}
			}
		case lxString:
			i += indexEither(p[i:], x.quote, '\\')
			if i == len(p) {
				break
			}
			if p[i] == '\\' {
				x.state = lxEscape
			} else {
				x.state = lxQuote
			}
		case lxEscape:
			x.state = lxString
		case lxQuote:
			if c == x.quote {
				x.state = lxString // a doubled quote
			} else {
				x.state = lxTuple
				i-- // look at c again outside the string
			}
		case lxBetween:
			switch c {
			case ' ', '\n', '\r', '\t', ',':
			case '(':
				x.state = lxTuple
				x.depth = 1
				x.split = false
				start = i + 1
			case ';':
				m.ins = false
				m.off += int64(i + 1)
				return i + 1, nil
			default:
				m.off += int64(i)
				return 0, m.fail("unexpected %q between the rows of an INSERT into %s", c, x.table.Name)
			}
		case lxName:
			switch {
			case c == '`' && x.name == nil:
				x.name = []byte{}
			case c == '`':
				x.state = lxNameQuote
			case x.name == nil:
				m.off += int64(i)
				return 0, m.fail("INSERT without a `quoted` table name")
			case len(x.name) >= maxMyLine:
				m.off += int64(i)
				return 0, m.fail("INSERT with a table name longer than %d bytes", maxMyLine)
			default:
				x.name = append(x.name, c)
			}
		case lxNameQuote:
			if c == '`' {
				x.name = append(x.name, '`')
				x.state = lxName
			} else {
				x.table = m.table(string(x.name))
				x.state = lxAfterName
				i--
			}
		case lxAfterName:
			switch c {
			case ' ', '\n', '\r', '\t':
			case '(':
				x.state = lxColumns
			case 'V':
				x.kw = 1
				x.state = lxKeyword
			default:
				m.off += int64(i)
				return 0, m.fail("unexpected %q after INSERT INTO `%s`", c, x.table.Name)
			}
		case lxColumns:
			switch c {
			case '`':
				x.state = lxColQuote
			case ')':
				x.state = lxAfterName
			}
		case lxColQuote:
			if c == '`' {
				x.state = lxColumns // a doubled backtick reopens at once
			}
		case lxKeyword:
			const kw = "VALUES"
			if c != kw[x.kw] {
				m.off += int64(i)
				return 0, m.fail("INSERT INTO `%s` without VALUES", x.table.Name)
			}
			x.kw++
			if x.kw == len(kw) {
				x.state = lxBetween
			}
		}
	}
	// The tuple goes on in the next write: hash what it has so far.
	if x.state >= lxTuple && start >= 0 {
		if !x.split {
			x.d = resetHasher(x.d)
			x.split = true
		}
		_, _ = x.d.Write(p[start:])
	}
	m.off += int64(len(p))
	return len(p), nil
}

// endTuple counts a tuple whose last piece is b.
func (m *mariadb) endTuple(b []byte) {
	x := &m.lx
	var h uint64
	if x.split {
		_, _ = x.d.Write(b)
		h = x.d.Sum64()
		x.split = false
	} else {
		h = xxh3.Hash(b)
	}
	x.table.add(h)
}

func (m *mariadb) Close() (*Result, error) {
	if m.err != nil {
		return nil, m.err
	}
	incomplete := func(what string) (*Result, error) {
		return nil, &IncompleteError{Format: FormatMariaDB, Missing: what}
	}
	if m.ins {
		name := "a table"
		if m.lx.table != nil {
			name = "table " + m.lx.table.Name
		}
		return incomplete(fmt.Sprintf("the stream ended inside an INSERT into %s", name))
	}
	if len(m.line) > 0 && !m.skipLine {
		m.endLine()
	}
	if !m.complete {
		return incomplete("it lacks the dump tool's closing line " + myDumpCompleted)
	}
	tables := make([]Table, len(m.tables))
	for i := range m.tables {
		m.tables[i].finish()
		tables[i] = m.tables[i]
	}
	return &Result{Format: FormatMariaDB, Tables: tables}, nil
}

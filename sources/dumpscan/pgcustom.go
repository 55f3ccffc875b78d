package dumpscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/zeebo/xxh3"
)

// The custom archive, as pg_dump writes it to a pipe (pg_backup_archiver.c,
// pg_backup_custom.c): a header; the table of contents (TOC), one entry per
// object, where an entry whose object has data says so; then one data block
// per such entry and nothing after the last. Written to a pipe, the archive
// cannot go back to fill in offsets, so the TOC never says where a block
// is, and the end of the stream is only known to be right by counting the
// blocks the TOC promised.
//
// Integers are a sign byte then intSize bytes, little-endian; a string is
// an integer length (negative: NULL) then its bytes; an offset is a flag
// byte then offSize bytes.
const (
	blkData  = 1
	blkBlobs = 3

	offsetNoData = 3

	// Archive versions (major, minor) whose fields the TOC gains.
	vers1_10 = 1<<8 | 10 // tablespace, remote and pg_dump versions
	vers1_11 = 1<<8 | 11 // section
	vers1_14 = 1<<8 | 14 // table access method
	vers1_15 = 1<<8 | 15 // compression algorithm in the header
	vers1_16 = 1<<8 | 16 // relkind
	versMax  = 1<<8 | 16
)

// errShort is a header or TOC item that has not fully arrived yet.
var errShort = errors.New("short")

// NewPostgresCustom returns a scanner of a pg_dump custom archive.
func NewPostgresCustom() Scanner { return &pgCustom{} }

type tocEntry struct {
	id      int64
	desc    string
	table   *Table // TABLE DATA entries
	hasData bool
	seen    bool
}

type pgCustom struct {
	off     int64  // stream offset of pending[0]
	pending []byte // bytes of an item not complete yet
	err     error

	// newer says why an archive of a newer version than this code knows
	// is passed through unread.
	newer string

	// header
	headerDone bool
	version    int
	intSize    int
	offSize    int
	compressed bool

	// table of contents
	tocCount int64 // -1 until read
	tocRead  int64
	entries  map[int64]*tocEntry
	tables   []*tocEntry // TABLE DATA entries in TOC order

	// data blocks
	inData    bool
	st        blockState
	cur       *tocEntry
	blob      bool // the block is a BLOBS block
	chunkLeft int64
	rows      rowHasher
}

type blockState int

const (
	stBlockType blockState = iota
	stBlockID
	stChunkLen
	stPayload
	stBlobOID
)

func (c *pgCustom) fail(msg string, args ...any) error {
	c.err = &FormatError{Format: FormatPostgresCustom, Offset: c.off, Msg: fmt.Sprintf(msg, args...)}
	return c.err
}

func (c *pgCustom) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n := len(p)
	if c.newer != "" {
		return n, nil
	}
	if !c.inData {
		c.pending = append(c.pending, p...)
		if err := c.readTOC(); err != nil {
			return 0, err
		}
		if c.newer != "" {
			c.pending = nil
			return n, nil
		}
		if !c.inData {
			return n, nil
		}
		// The rest of pending is the first bytes of the data blocks.
		p = c.pending
		c.pending = nil
	}
	if err := c.data(p); err != nil {
		return 0, err
	}
	return n, nil
}

// reader decodes header and TOC items from pending. A read past the end
// sets short; the caller then waits for more bytes and parses the item
// again from its start.
type reader struct {
	b       []byte
	pos     int
	intSize int
	short   bool
}

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.short = true
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) int() int64 {
	if r.pos+1+r.intSize > len(r.b) {
		r.short = true
		r.pos = len(r.b)
		return 0
	}
	sign := r.b[r.pos]
	var v uint64
	for i := r.intSize - 1; i >= 0; i-- {
		v = v<<8 | uint64(r.b[r.pos+1+i])
	}
	r.pos += 1 + r.intSize
	if sign != 0 {
		return -int64(v)
	}
	return int64(v)
}

// str returns a string's bytes (aliasing the buffer) and whether it is
// NULL.
func (r *reader) str() ([]byte, bool) {
	n := r.int()
	if r.short {
		return nil, false
	}
	if n < 0 {
		return nil, true
	}
	if int64(len(r.b)-r.pos) < n {
		r.short = true
		r.pos = len(r.b)
		return nil, false
	}
	s := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return s, false
}

func (r *reader) skip(n int) {
	if r.pos+n > len(r.b) {
		r.short = true
		r.pos = len(r.b)
		return
	}
	r.pos += n
}

// readTOC parses as much of the header and the TOC as pending holds,
// dropping what it consumed.
func (c *pgCustom) readTOC() error {
	consumed := 0
	defer func() {
		c.pending = append(c.pending[:0], c.pending[consumed:]...)
		c.off += int64(consumed)
	}()
	for {
		r := &reader{b: c.pending[consumed:], intSize: c.intSize}
		err := c.readItem(r)
		if err == errShort || r.short || c.newer != "" {
			return nil
		}
		if err != nil {
			return err
		}
		consumed += r.pos
		if c.inData {
			return nil
		}
	}
}

// readItem reads the header, the TOC count or one TOC entry.
func (c *pgCustom) readItem(r *reader) error {
	if !c.headerDone {
		return c.readHeader(r)
	}
	if c.tocCount < 0 {
		n := r.int()
		if r.short {
			return errShort
		}
		if n < 0 {
			return c.fail("negative TOC entry count %d", n)
		}
		c.tocCount = n
		c.entries = make(map[int64]*tocEntry)
		if c.tocCount == 0 {
			c.inData = true
		}
		return nil
	}
	e, err := c.readEntry(r)
	if err != nil || r.short {
		return err
	}
	if _, dup := c.entries[e.id]; dup {
		return c.fail("TOC entry %d appears twice", e.id)
	}
	c.entries[e.id] = e
	if e.table != nil {
		c.tables = append(c.tables, e)
	}
	c.tocRead++
	if c.tocRead == c.tocCount {
		c.inData = true
	}
	return nil
}

func (c *pgCustom) readHeader(r *reader) error {
	if len(r.b) < 12 {
		return errShort
	}
	if string(r.b[:5]) != "PGDMP" {
		return c.fail("missing the PGDMP magic")
	}
	vmaj, vmin := int(r.b[5]), int(r.b[6])
	c.version = vmaj<<8 | vmin
	if c.version > versMax && vmaj == 1 {
		// A newer pg_dump: its TOC may have fields this code does not
		// know. Its backups must not fail for that; they go unread, and
		// the manifest says why.
		c.newer = fmt.Sprintf("archive version %d.%d is newer than dbarchive reads (up to 1.16)", vmaj, vmin)
		return nil
	}
	if c.version < vers1_10 || c.version > versMax {
		return c.fail("archive version %d.%d is not one dbarchive reads (1.10 to 1.16)", vmaj, vmin)
	}
	c.intSize, c.offSize = int(r.b[8]), int(r.b[9])
	if c.intSize < 1 || c.intSize > 8 || c.offSize < 1 || c.offSize > 8 {
		return c.fail("integer size %d or offset size %d out of range", c.intSize, c.offSize)
	}
	if r.b[10] != 1 {
		return c.fail("format byte %d is not the custom format (1)", r.b[10])
	}
	r.pos = 11
	r.intSize = c.intSize
	if c.version >= vers1_15 {
		c.compressed = r.byte() != 0
	} else {
		c.compressed = r.int() != 0
	}
	for range 7 { // creation time
		r.int()
	}
	r.str() // database name
	r.str() // server version
	r.str() // pg_dump version
	if r.short {
		return errShort
	}
	c.headerDone = true
	c.tocCount = -1
	return nil
}

func (c *pgCustom) readEntry(r *reader) (*tocEntry, error) {
	e := &tocEntry{}
	e.id = r.int()
	hadDumper := r.int()
	r.str() // tableoid
	r.str() // oid
	tag, _ := r.str()
	desc, _ := r.str()
	if c.version >= vers1_11 {
		r.int() // section
	}
	r.str() // definition
	r.str() // drop statement
	r.str() // copy statement
	namespace, _ := r.str()
	r.str() // tablespace
	if c.version >= vers1_14 {
		r.str() // table access method
	}
	if c.version >= vers1_16 {
		r.int() // relkind
	}
	r.str() // owner
	r.str() // "false": with oids
	for !r.short {
		if _, null := r.str(); null {
			break // end of the dependency list
		}
	}
	flag := r.byte()
	r.skip(c.offSize)
	if r.short {
		return nil, errShort
	}
	if e.id <= 0 {
		return nil, c.fail("TOC entry id %d out of range", e.id)
	}
	if flag < 1 || flag > offsetNoData {
		return nil, c.fail("TOC entry %d has data offset flag %d", e.id, flag)
	}
	e.desc = string(desc)
	// Flags 1 (offset not set: written to a pipe) and 2 (set) both say a
	// data block follows; hadDumper says the same for archives that
	// predate the flag's meaning, and must agree.
	e.hasData = flag != offsetNoData
	if e.hasData != (hadDumper != 0) {
		return nil, c.fail("TOC entry %d: data offset flag %d disagrees with its dumper flag %d", e.id, flag, hadDumper)
	}
	if e.hasData && e.desc == "TABLE DATA" {
		e.table = &Table{Schema: string(namespace), Name: string(tag)}
	}
	return e, nil
}

// data consumes data-block bytes.
func (c *pgCustom) data(p []byte) error {
	for len(p) > 0 {
		if c.st == stChunkLen && len(c.pending) == 0 && c.rowsReadable() {
			p = c.wholeRows(p)
			if len(p) == 0 {
				return nil
			}
		}
		switch c.st {
		case stPayload:
			k := int(min(c.chunkLeft, int64(len(p))))
			if c.cur.table != nil && !c.compressed && !c.blob && !c.rows.endSeen {
				c.rows.feed(c.cur.table, p[:k])
			}
			p = p[k:]
			c.off += int64(k)
			c.chunkLeft -= int64(k)
			if c.chunkLeft == 0 {
				c.st = stChunkLen
			}
		case stBlockType:
			t := p[0]
			p = p[1:]
			c.off++
			switch t {
			case blkData:
				c.blob = false
			case blkBlobs:
				c.blob = true
			default:
				return c.fail("unknown data block type %d", t)
			}
			c.st = stBlockID
		default: // an integer: block id, chunk length, blob oid
			if w := 1 + c.intSize; len(c.pending) == 0 && len(p) >= w {
				// The common case, once a row: the integer lies whole in p.
				v := decodeInt(p[:w])
				p = p[w:]
				c.off += int64(w)
				if err := c.gotInt(v); err != nil {
					return err
				}
				continue
			}
			need := 1 + c.intSize - len(c.pending)
			k := min(need, len(p))
			c.pending = append(c.pending, p[:k]...)
			p = p[k:]
			c.off += int64(k)
			if k < need {
				return nil
			}
			v := decodeInt(c.pending)
			c.pending = c.pending[:0]
			if err := c.gotInt(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowsReadable reports whether the current block is COPY text whose rows
// are counted.
func (c *pgCustom) rowsReadable() bool {
	return c.cur != nil && c.cur.table != nil && !c.compressed && !c.blob && !c.rows.endSeen && !c.rows.open
}

// wholeRows is the fast path of a table's data, where nearly all the bytes
// of a dump are: pg_dump writes each row as a chunk of its own, so while p
// holds whole chunks of one row each, count and hash them without going
// through the state machine. It returns the rest of p for the general path
// (a chunk split across writes or holding other than one row, the end of
// the block, the terminator line).
func (c *pgCustom) wholeRows(p []byte) []byte {
	if c.intSize != 4 {
		return p
	}
	t := c.cur.table
	done := 0
	for len(p)-done >= 5 {
		q := p[done:]
		if q[0] != 0 {
			break
		}
		n := int(binary.LittleEndian.Uint32(q[1:5]))
		if n < 2 || len(q)-5 < n {
			break
		}
		row := q[5 : 5+n-1]
		if q[5+n-1] != '\n' || bytes.IndexByte(row, '\n') >= 0 || len(row) == 2 && row[0] == '\\' && row[1] == '.' {
			break
		}
		t.add(xxh3.Hash(row))
		done += 5 + n
	}
	c.off += int64(done)
	return p[done:]
}

func decodeInt(b []byte) int64 {
	var v int64
	if len(b) == 5 {
		v = int64(binary.LittleEndian.Uint32(b[1:])) // pg_dump's int size on every platform it runs on
	} else {
		var buf [8]byte
		copy(buf[:], b[1:])
		v = int64(binary.LittleEndian.Uint64(buf[:]))
	}
	if b[0] != 0 {
		return -v
	}
	return v
}

func (c *pgCustom) gotInt(v int64) error {
	switch c.st {
	case stBlockID:
		e := c.entries[v]
		switch {
		case e == nil:
			return c.fail("data block for entry %d, which the TOC does not list", v)
		case !e.hasData:
			return c.fail("data block for entry %d (%s), which the TOC says has none", v, e.desc)
		case e.seen:
			return c.fail("second data block for entry %d (%s)", v, e.desc)
		}
		e.seen = true
		c.cur = e
		c.rows = rowHasher{}
		if c.blob {
			c.st = stBlobOID
		} else {
			c.st = stChunkLen
		}
	case stBlobOID:
		if v == 0 {
			c.endBlock()
		} else {
			c.st = stChunkLen
		}
	case stChunkLen:
		switch {
		case v < 0:
			return c.fail("negative chunk length %d", v)
		case v == 0 && c.blob:
			c.st = stBlobOID
		case v == 0:
			if c.cur.table != nil && !c.compressed {
				c.rows.flush(c.cur.table)
			}
			c.endBlock()
		default:
			c.chunkLeft = v
			c.st = stPayload
		}
	}
	return nil
}

func (c *pgCustom) endBlock() {
	c.cur = nil
	c.st = stBlockType
}

func (c *pgCustom) Close() (*Result, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.newer != "" {
		return &Result{Format: FormatPostgresCustom, NotRead: c.newer}, nil
	}
	incomplete := func(what string) (*Result, error) {
		return nil, &IncompleteError{Format: FormatPostgresCustom, Missing: what}
	}
	switch {
	case !c.headerDone:
		return incomplete("the stream ended inside the archive header")
	case !c.inData:
		return incomplete(fmt.Sprintf("the stream ended inside the table of contents (%d of %d entries read)", c.tocRead, max(c.tocCount, 0)))
	case c.st != stBlockType || len(c.pending) > 0:
		what := "a data block"
		if c.cur != nil {
			what = "the data of " + c.describe(c.cur)
		}
		return incomplete("the stream ended inside " + what)
	}
	var missing []*tocEntry
	for _, e := range c.entries {
		if e.hasData && !e.seen {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		// Name the first missing one in TOC order.
		first := missing[0]
		for _, e := range missing {
			if e.id < first.id {
				first = e
			}
		}
		more := ""
		if len(missing) > 1 {
			more = fmt.Sprintf(" and of %d more entries", len(missing)-1)
		}
		return incomplete(fmt.Sprintf("the stream ended before the data of %s%s", c.describe(first), more))
	}
	res := &Result{Format: FormatPostgresCustom}
	if c.compressed {
		res.NotRead = "the archive's data is compressed; dbarchive reads rows of uncompressed (-Z0) archives"
		return res, nil
	}
	res.Tables = make([]Table, 0, len(c.tables))
	for _, e := range c.tables {
		e.table.finish()
		res.Tables = append(res.Tables, *e.table)
	}
	return res, nil
}

func (c *pgCustom) describe(e *tocEntry) string {
	if e.table != nil {
		return "table " + e.table.QualifiedName()
	}
	return e.desc + " entry " + strconv.FormatInt(e.id, 10)
}

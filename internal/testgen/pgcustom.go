package testgen

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// PGCustomHeader is the start of a PostgreSQL custom archive (format 1.14,
// uncompressed, written to a pipe: no data offsets) whose table of contents
// has one TABLE DATA entry per name, with dump ids 1, 2, …; the data blocks
// follow it (PGCustomBlock). With compressed set, the header says the data
// is compressed (the blocks are then not COPY text to a reader).
func PGCustomHeader(names []string, compressed bool) []byte {
	var b bytes.Buffer
	b.WriteString("PGDMP")
	b.Write([]byte{1, 14, 0, 4, 8, 1}) // version 1.14.0, int size 4, offset size 8, custom
	if compressed {
		pgInt(&b, -1) // Z_DEFAULT_COMPRESSION
	} else {
		pgInt(&b, 0)
	}
	for _, v := range []int{0, 0, 12, 29, 10, 126, 0} { // creation time
		pgInt(&b, v)
	}
	pgStr(&b, "testdb")
	pgStr(&b, "15.20")
	pgStr(&b, "15.20")
	pgInt(&b, len(names))
	for i, name := range names {
		schema, table := "public", name
		if s, t, ok := bytes.Cut([]byte(name), []byte(".")); ok {
			schema, table = string(s), string(t)
		}
		pgInt(&b, i+1) // dump id
		pgInt(&b, 1)   // has a dumper
		pgStr(&b, "1259")
		pgStr(&b, strconv.Itoa(16384+i))
		pgStr(&b, table)
		pgStr(&b, "TABLE DATA")
		pgInt(&b, 3) // SECTION_DATA
		pgStr(&b, "")
		pgStr(&b, "")
		pgStr(&b, "COPY "+schema+"."+table+" FROM stdin;\n")
		pgStr(&b, schema)
		pgStr(&b, "")
		pgStr(&b, "heap")
		pgStr(&b, "postgres")
		pgStr(&b, "false")
		pgStr(&b, strconv.Itoa(100+i)) // a dependency
		pgNull(&b)
		b.WriteByte(1) // offset not set: data follows
		b.Write(make([]byte, 8))
	}
	return b.Bytes()
}

// PGCustomBlock is the data block of entry id holding rows (each without
// its newline), one chunk a row as pg_dump writes them, with the `\.`
// terminator pg_dump 17 and older put in the data.
func PGCustomBlock(id int, rows [][]byte) []byte {
	var b bytes.Buffer
	b.WriteByte(1) // BLK_DATA
	pgInt(&b, id)
	for _, r := range rows {
		b.Write(PGCustomChunk(r))
	}
	b.Write(PGCustomChunk([]byte(`\.`)))
	pgInt(&b, 0)
	return b.Bytes()
}

// PGCustomChunk is one row (without its newline) as a data chunk.
func PGCustomChunk(row []byte) []byte {
	var b bytes.Buffer
	pgInt(&b, len(row)+1)
	b.Write(row)
	b.WriteByte('\n')
	return b.Bytes()
}

// PGCustomBlockStart and PGCustomBlockEnd frame a data block whose chunks
// are written separately.
func PGCustomBlockStart(id int) []byte {
	var b bytes.Buffer
	b.WriteByte(1)
	pgInt(&b, id)
	return b.Bytes()
}

// PGCustomBlockEnd ends a data block.
func PGCustomBlockEnd() []byte { return []byte{0, 0, 0, 0, 0} }

// PGCustomPool turns a pool of newline-terminated rows into the same rows
// as data chunks, cut at the last whole row.
func PGCustomPool(pool []byte) []byte {
	out := make([]byte, 0, len(pool)+len(pool)/16)
	for len(pool) > 0 {
		i := bytes.IndexByte(pool, '\n')
		if i < 0 {
			break
		}
		out = append(out, PGCustomChunk(pool[:i])...)
		pool = pool[i+1:]
	}
	return out
}

func pgInt(b *bytes.Buffer, v int) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	b.WriteByte(sign)
	var x [4]byte
	binary.LittleEndian.PutUint32(x[:], uint32(v))
	b.Write(x[:])
}

func pgStr(b *bytes.Buffer, s string) {
	pgInt(b, len(s))
	b.WriteString(s)
}

func pgNull(b *bytes.Buffer) { pgInt(b, -1) }

// MariaDBInserts turns a pool of tab-separated rows into mariadb-dump's
// extended INSERT statements into table `bench`, each field a quoted
// string, 1000 rows a statement, broken after each tuple as mariadb-dump
// 10.11 writes them.
func MariaDBInserts(pool []byte) []byte {
	var my bytes.Buffer
	for i, row := range bytes.Split(bytes.TrimSuffix(pool, []byte("\n")), []byte("\n")) {
		if i%1000 == 0 {
			if i > 0 {
				my.WriteString(";\n")
			}
			my.WriteString("INSERT INTO `bench` VALUES\n")
		} else {
			my.WriteString(",\n")
		}
		my.WriteString("(")
		for j, f := range bytes.Split(row, []byte("\t")) {
			if j > 0 {
				my.WriteByte(',')
			}
			my.WriteByte('\'')
			my.Write(bytes.ReplaceAll(f, []byte(`'`), []byte(`\'`)))
			my.WriteByte('\'')
		}
		my.WriteString(")")
	}
	my.WriteString(";\n")
	return my.Bytes()
}

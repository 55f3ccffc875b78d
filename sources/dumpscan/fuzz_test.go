package dumpscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// The fuzz targets feed any bytes to each scanner, whole and in pieces cut
// where the fuzzer says: no panic, the same outcome however the stream is
// cut, an error of the package's own types, and the buffers a scanner keeps
// between writes stay within their bounds (memory does not grow with the
// input beyond the custom format's table of contents).

// pieces splits data at the offsets encoded in cuts.
func pieces(data, cuts []byte) [][]byte {
	var out [][]byte
	for len(cuts) >= 2 && len(data) > 0 {
		n := int(binary.LittleEndian.Uint16(cuts)) % (len(data) + 1)
		cuts = cuts[2:]
		out = append(out, data[:n])
		data = data[n:]
	}
	return append(out, data)
}

func run(s Scanner, parts [][]byte, check func()) (*Result, error) {
	for _, p := range parts {
		if _, err := s.Write(p); err != nil {
			return nil, err
		}
		check()
	}
	return s.Close()
}

func fuzzScanner(f *testing.F, mk func() Scanner, check func(s Scanner), seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s, []byte{1, 0, 7, 0, 200, 0})
		if len(s) > 10 {
			f.Add(s[:len(s)/2], []byte{3, 0})
		}
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole, errWhole := run(mk(), [][]byte{data}, func() {})
		s := mk()
		split, errSplit := run(s, pieces(data, cuts), func() { check(s) })
		if (errWhole == nil) != (errSplit == nil) || !reflect.DeepEqual(whole, split) {
			t.Fatalf("whole: %+v, %v; in pieces: %+v, %v", whole, errWhole, split, errSplit)
		}
		for _, err := range []error{errWhole, errSplit} {
			var ie *IncompleteError
			var fe *FormatError
			if err != nil && !errors.As(err, &ie) && !errors.As(err, &fe) {
				t.Fatalf("error of an unexpected type: %T %v", err, err)
			}
		}
		if whole != nil {
			var rows int64
			for _, tb := range whole.Tables {
				if tb.Rows < 0 || len(tb.Digest) != 16 {
					t.Fatalf("table %+v", tb)
				}
				rows += tb.Rows
			}
			if rows > int64(len(data)) {
				t.Fatalf("%d rows from %d bytes", rows, len(data))
			}
		}
	})
}

func customSeed() []byte {
	// A minimal version 1.14 archive: one TABLE DATA entry and its block.
	var b bytes.Buffer
	wi := func(v int) {
		b.WriteByte(0)
		_ = binary.Write(&b, binary.LittleEndian, uint32(v))
	}
	ws := func(s string) { wi(len(s)); b.WriteString(s) }
	b.WriteString("PGDMP\x01\x0e\x00\x04\x08\x01")
	wi(0)
	for range 7 {
		wi(0)
	}
	ws("db")
	ws("15")
	ws("15")
	wi(1)
	wi(1)
	wi(1)
	ws("1259")
	ws("1")
	ws("t")
	ws("TABLE DATA")
	wi(3)
	ws("")
	ws("")
	ws("COPY public.t FROM stdin;\n")
	ws("public")
	ws("")
	ws("heap")
	ws("me")
	ws("false")
	b.Write([]byte{1, 0xff, 0xff, 0xff, 0xff}) // NULL: end of dependencies
	b.WriteByte(1)
	b.Write(make([]byte, 8))
	b.WriteByte(1)
	wi(1)
	ws("1\ta\n")
	ws("2\tb\n\\.\n\n")
	wi(0)
	return b.Bytes()
}

func FuzzPostgresCustom(f *testing.F) {
	fuzzScanner(f, NewPostgresCustom, func(s Scanner) {
		c := s.(*pgCustom)
		if c.inData && len(c.pending) > 1+c.intSize {
			panic("the data phase holds more than one integer")
		}
	}, customSeed(), []byte("PGDMP"), []byte("PGDMP\x01\x10\x00\x08\x08\x01"))
}

func FuzzPostgresPlain(f *testing.F) {
	fuzzScanner(f, NewPostgresPlain, func(s Scanner) {
		if len(s.(*pgPlain).line) > maxCopyLine {
			panic("a line beyond its bound is kept")
		}
	},
		[]byte("--\nCOPY public.t (a) FROM stdin;\n1\n\\.\n-- PostgreSQL database dump complete\n"),
		[]byte("\\restrict k\nCOPY \"a\"\"b\".\"c\" (x) FROM stdin;\nx\ny\n\\.\n-- PostgreSQL database dump complete\n\\unrestrict k\n"),
		[]byte("COPY x FROM stdin;\n"))
}

func FuzzMariaDB(f *testing.F) {
	fuzzScanner(f, func() Scanner { return NewMariaDB("db") }, func(s Scanner) {
		m := s.(*mariadb)
		if len(m.line) > maxMyLine || len(m.lx.name) > maxMyLine {
			panic("a line or name beyond its bound is kept")
		}
	},
		[]byte("CREATE TABLE `t` (\n`a` int);\nINSERT INTO `t` VALUES\n(1,'a\\'b'),\n(2,\"x\"\"y\",')(');\n-- Dump completed on 2026-01-01 00:00:00\n"),
		[]byte("INSERT INTO `a``b` (`c`) VALUES (1);\nDELIMITER ;;\nINSERT INTO `x` VALUES (2);\n;;\nDELIMITER ;\n-- Dump completed\n"),
		[]byte("INSERT INTO `t` VALUES ('"))
}

// FuzzSniff: whatever the stream, Sniff agrees with itself however it is
// cut.
func FuzzSniff(f *testing.F) {
	fuzzScanner(f, Sniff, func(Scanner) {}, customSeed(), []byte("--\n-- PostgreSQL database dump\n"), []byte("-- MariaDB dump 10\n"))
}

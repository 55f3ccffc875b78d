package dumpscan_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"

	"github.com/dbarchive/dbarchive/internal/testgen"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// scan feeds data to s in writes of random sizes (seeded) and closes it.
func scan(s dumpscan.Scanner, data []byte, seed uint64) (*dumpscan.Result, error) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+r.IntN(64))
		if seed == 0 {
			n = len(rest)
		}
		if k, err := s.Write(rest[:n]); err != nil {
			return nil, err
		} else if k != n {
			return nil, fmt.Errorf("Write took %d of %d bytes without an error", k, n)
		}
		rest = rest[n:]
	}
	return s.Close()
}

// sum is the digest the package documents: the sum of xxh64 of each row.
func sum(rows ...string) string {
	var s uint64
	for _, r := range rows {
		s += xxh3.HashString(r)
	}
	return fmt.Sprintf("%016x", s)
}

func customArchive(compressed bool) ([]byte, map[string][]string) {
	rows := map[string][]string{
		"public.t":     {"1\tx", "2\t\\N", "3\tüñï \\\\ \\n"},
		"other.empty":  nil,
		"public.Big T": {"a", "b", "a"},
	}
	names := []string{"public.t", "other.empty", "public.Big T"}
	data := testgen.PGCustomHeader(names, compressed)
	for i, n := range names {
		var rs [][]byte
		for _, r := range rows[n] {
			rs = append(rs, []byte(r))
		}
		data = append(data, testgen.PGCustomBlock(i+1, rs)...)
	}
	return data, rows
}

func TestPostgresCustom(t *testing.T) {
	data, rows := customArchive(false)
	for _, seed := range []uint64{0, 1, 2, 3} {
		res, err := scan(dumpscan.NewPostgresCustom(), data, seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.Format != dumpscan.FormatPostgresCustom || len(res.Tables) != 3 {
			t.Fatalf("result %+v", res)
		}
		for _, tb := range res.Tables {
			want := rows[tb.QualifiedName()]
			if tb.Rows != int64(len(want)) || tb.Digest != sum(want...) {
				t.Fatalf("seed %d: table %s: %d rows, digest %s; want %d, %s", seed, tb.QualifiedName(), tb.Rows, tb.Digest, len(want), sum(want...))
			}
		}
	}
}

// TestPostgresCustomEveryCut: every proper prefix of an archive is
// incomplete, and the error says where it stopped.
func TestPostgresCustomEveryCut(t *testing.T) {
	data, _ := customArchive(false)
	for n := range len(data) {
		_, err := scan(dumpscan.NewPostgresCustom(), data[:n], uint64(n))
		var ie *dumpscan.IncompleteError
		if !errors.As(err, &ie) {
			t.Fatalf("cut at %d of %d: %v, want an IncompleteError", n, len(data), err)
		}
	}
	// The last block missing entirely names its table.
	last := bytes.LastIndex(data, testgen.PGCustomBlockStart(3))
	_, err := scan(dumpscan.NewPostgresCustom(), data[:last], 0)
	if err == nil || !strings.Contains(err.Error(), "before the data of table public.Big T") {
		t.Fatalf("without the last block: %v", err)
	}
	// Cut inside the second block's rows.
	second := bytes.Index(data, testgen.PGCustomBlockStart(2))
	_, err = scan(dumpscan.NewPostgresCustom(), data[:second-3], 0)
	if err == nil || !strings.Contains(err.Error(), "inside the data of table public.t") {
		t.Fatalf("cut inside the first block: %v", err)
	}
}

func TestPostgresCustomMalformed(t *testing.T) {
	data, _ := customArchive(false)
	header := testgen.PGCustomHeader([]string{"public.t"}, false)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not an archive", []byte("-- PostgreSQL database dump\n\nSET x = 1;\n"), "PGDMP"},
		{"unknown block", append(append([]byte{}, header...), 7, 0, 1, 0, 0, 0), "unknown data block type 7"},
		{"block for no entry", append(append([]byte{}, header...), testgen.PGCustomBlock(9, nil)...), "entry 9"},
		{"block twice", append(append(append([]byte{}, header...), testgen.PGCustomBlock(1, nil)...), testgen.PGCustomBlock(1, nil)...), "second data block"},
		{"version 2", append([]byte("PGDMP\x02\x01"), data[7:]...), "archive version 2.1"},
		{"negative chunk", append(append(append([]byte{}, header...), testgen.PGCustomBlockStart(1)...), 1, 5, 0, 0, 0), "negative chunk length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan(dumpscan.NewPostgresCustom(), tc.data, 5)
			var fe *dumpscan.FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a FormatError about %q", err, tc.want)
			}
		})
	}
}

// TestPostgresCustomNewer: an archive of a newer version than the scanner
// knows (a newer pg_dump) does not fail the backup; it goes unread, and the
// result says why.
func TestPostgresCustomNewer(t *testing.T) {
	data, _ := customArchive(false)
	newer := append([]byte("PGDMP\x01\x20"), data[7:]...)
	res, err := scan(dumpscan.NewPostgresCustom(), newer, 2)
	if err != nil || res.Tables != nil || !strings.Contains(res.NotRead, "archive version 1.32 is newer") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

// TestPostgresCustomCompressed: a compressed archive (pg_dump's default
// outside dbarchive) is still checked for completeness, but its rows are
// not read.
func TestPostgresCustomCompressed(t *testing.T) {
	data, _ := customArchive(true)
	res, err := scan(dumpscan.NewPostgresCustom(), data, 3)
	if err != nil || res.Tables != nil || !strings.Contains(res.NotRead, "compressed") {
		t.Fatalf("got %+v, %v; want no tables and a reason", res, err)
	}
	if _, err := scan(dumpscan.NewPostgresCustom(), data[:len(data)-1], 3); err == nil {
		t.Fatal("a cut compressed archive passed")
	}
}

const plainDump = `--
-- PostgreSQL database dump
--

\restrict abcdef

SET statement_timeout = 0;
CREATE FUNCTION public.f() RETURNS text
    LANGUAGE sql
    AS $$SELECT 'COPY x FROM stdin;'$$;

COPY public.t (a, b) FROM stdin;
1	x
2	\N
3	üñï \\ \n
\.


COPY other.empty (a) FROM stdin;
\.


COPY public."Big ""T""" (a) FROM stdin;
a
b
a
\.


SELECT pg_catalog.setval('public.s', 1, false);

--
-- PostgreSQL database dump complete
--

\unrestrict abcdef

`

func TestPostgresPlain(t *testing.T) {
	for _, seed := range []uint64{0, 1, 2} {
		res, err := scan(dumpscan.NewPostgresPlain(), []byte(plainDump), seed)
		if err != nil {
			t.Fatal(err)
		}
		want := []dumpscan.Table{
			{Schema: "public", Name: "t", Rows: 3, Digest: sum("1\tx", "2\t\\N", "3\tüñï \\\\ \\n")},
			{Schema: "other", Name: "empty", Rows: 0, Digest: sum()},
			{Schema: "public", Name: `Big "T"`, Rows: 3, Digest: sum("a", "b", "a")},
		}
		if !equalTables(res.Tables, want) {
			t.Fatalf("seed %d: tables %+v, want %+v", seed, res.Tables, want)
		}
	}
}

func equalTables(got, want []dumpscan.Table) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Schema != w.Schema || g.Name != w.Name || g.Rows != w.Rows || g.Digest != w.Digest {
			return false
		}
	}
	return true
}

// TestPostgresPlainEveryCut: a plain script cut anywhere before its
// \unrestrict line is incomplete.
func TestPostgresPlainEveryCut(t *testing.T) {
	data := []byte(plainDump)
	end := strings.Index(plainDump, `\unrestrict abcdef`) + len(`\unrestrict abcdef`)
	for n := range len(data) {
		_, err := scan(dumpscan.NewPostgresPlain(), data[:n], uint64(n))
		var ie *dumpscan.IncompleteError
		if n < end && !errors.As(err, &ie) {
			t.Fatalf("cut at %d of %d: %v, want an IncompleteError", n, len(data), err)
		}
		if n >= end && err != nil {
			t.Fatalf("cut at %d, in the trailing blank lines: %v", n, err)
		}
	}
	cut := plainDump[:strings.Index(plainDump, "b\na\n")]
	_, err := scan(dumpscan.NewPostgresPlain(), []byte(cut), 0)
	if err == nil || !strings.Contains(err.Error(), `inside the rows of table public.Big "T" (after 1 rows)`) {
		t.Fatalf("cut inside COPY: %v", err)
	}
	// Without \restrict (pg_dump before 17.6, 16.10, 15.14), the closing
	// comment ends it.
	old := strings.NewReplacer("\\restrict abcdef\n", "", "\\unrestrict abcdef\n", "").Replace(plainDump)
	if _, err := scan(dumpscan.NewPostgresPlain(), []byte(old), 0); err != nil {
		t.Fatal(err)
	}
	noEnd := strings.Replace(old, "-- PostgreSQL database dump complete", "-- something else", 1)
	_, err = scan(dumpscan.NewPostgresPlain(), []byte(noEnd), 0)
	if err == nil || !strings.Contains(err.Error(), "-- PostgreSQL database dump complete") {
		t.Fatalf("without the closing line: %v", err)
	}
}

const mariaDump = "-- dbarchive: database default character set utf8mb4 collate utf8mb4_general_ci\n" +
	"/*M!999999\\- enable the sandbox mode */ \n" +
	"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n" +
	"--\n-- Host: 127.0.0.1    Database: shop\n" +
	"DROP TABLE IF EXISTS `empty`;\n" +
	"CREATE TABLE `empty` (\n  `x` int(11) DEFAULT NULL\n) ENGINE=InnoDB;\n" +
	"CREATE TABLE `t` (\n  `id` int(11) DEFAULT NULL\n) ENGINE=InnoDB;\n" +
	"INSERT INTO `t` VALUES\n(1,NULL,0x00FF),\n(2,'a\tb\\nc\\\\d \\\"q\\\" \\'x\\' (paren) ; ''y''','\"x\"'),\n(3,'ünï','');\n" +
	"INSERT INTO `t` VALUES (4,'),(');\n" +
	"CREATE TABLE `we``ird` (\n  `x` int(11)\n);\n" +
	"INSERT INTO `we``ird` (`x`, `y``)`) VALUES (1,\"a\"\"b\");\n" +
	"/*!50001 CREATE VIEW `v` AS SELECT\n 1 AS `id` */;\n" +
	"DELIMITER ;;\n" +
	"CREATE PROCEDURE `pr`()\nbegin\nINSERT INTO `empty` VALUES (5);\nCREATE TABLE `fake` (x int);\nend\n;;\n" +
	"DELIMITER ;\n" +
	"\n-- Dump completed on 2026-11-29 19:34:33\n"

func TestMariaDB(t *testing.T) {
	for _, seed := range []uint64{0, 1, 2, 3, 4} {
		res, err := scan(dumpscan.NewMariaDB(""), []byte(mariaDump), seed)
		if err != nil {
			t.Fatal(err)
		}
		want := []dumpscan.Table{
			{Schema: "shop", Name: "empty", Rows: 0, Digest: sum()},
			{Schema: "shop", Name: "t", Rows: 4, Digest: sum("1,NULL,0x00FF", "2,'a\tb\\nc\\\\d \\\"q\\\" \\'x\\' (paren) ; ''y''','\"x\"'", "3,'ünï',''", "4,'),('")},
			{Schema: "shop", Name: "we`ird", Rows: 1, Digest: sum(`1,"a""b"`)},
		}
		if !equalTables(res.Tables, want) {
			t.Fatalf("seed %d: tables %+v, want %+v", seed, res.Tables, want)
		}
	}
}

func TestMariaDBEveryCut(t *testing.T) {
	data := []byte(mariaDump)
	end := len(mariaDump) - len(" on 2026-11-29 19:34:33\n")
	for n := range len(data) {
		_, err := scan(dumpscan.NewMariaDB("shop"), data[:n], uint64(n))
		var ie *dumpscan.IncompleteError
		// The bare "-- Dump completed" is what --skip-dump-date writes.
		if n != end && n < len(data)-1 && !errors.As(err, &ie) {
			t.Fatalf("cut at %d of %d (%q): %v, want an IncompleteError", n, len(data), data[max(0, n-20):n], err)
		}
	}
	cut := mariaDump[:strings.Index(mariaDump, "(3,")]
	_, err := scan(dumpscan.NewMariaDB("shop"), []byte(cut), 0)
	if err == nil || !strings.Contains(err.Error(), "inside an INSERT into table t") {
		t.Fatalf("cut inside INSERT: %v", err)
	}
	_, err = scan(dumpscan.NewMariaDB("shop"), []byte(strings.Replace(mariaDump, "-- Dump completed on", "-- Dump compl", 1)), 0)
	if err == nil || !strings.Contains(err.Error(), "-- Dump completed") {
		t.Fatalf("without the trailer: %v", err)
	}
}

// Before 10:00 mariadb-dump pads the hour with a space: such a dump is
// complete, and a cut inside its date is not.
func TestMariaDBMorningDumpDate(t *testing.T) {
	morning := strings.Replace(mariaDump, "2026-11-29 19:34:33", "2026-11-30  0:00:56", 1)
	if _, err := scan(dumpscan.NewMariaDB("shop"), []byte(morning), 0); err != nil {
		t.Fatalf("dump completed at 0:00:56: %v", err)
	}
	for _, cut := range []string{"2026-11-30  0:00:5", "2026-11-30  0", "2026-11-30 "} {
		data := morning[:strings.Index(morning, "2026-11-30")] + cut + "\n"
		var ie *dumpscan.IncompleteError
		if _, err := scan(dumpscan.NewMariaDB("shop"), []byte(data), 0); !errors.As(err, &ie) {
			t.Errorf("dump cut at %q: %v, want an IncompleteError", cut, err)
		}
	}
}

func TestMariaDBMalformed(t *testing.T) {
	for _, stmt := range []string{
		"INSERT INTO t VALUES (1);\n",
		"INSERT INTO `t` VALUE (1);\n",
		"INSERT INTO `t` VALUES 1;\n",
	} {
		_, err := scan(dumpscan.NewMariaDB("x"), []byte(stmt+"-- Dump completed\n"), 0)
		var fe *dumpscan.FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%q: %v, want a FormatError", stmt, err)
		}
	}
}

func TestSniff(t *testing.T) {
	custom, _ := customArchive(false)
	for _, tc := range []struct {
		name, format string
		data         []byte
	}{
		{"custom", dumpscan.FormatPostgresCustom, custom},
		{"plain", dumpscan.FormatPostgresPlain, []byte(plainDump)},
		{"mariadb", dumpscan.FormatMariaDB, []byte(mariaDump)},
		{"other", "", []byte(strings.Repeat("{\"mongo\": 1}\n", 200))},
		{"short other", "", []byte("hello")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := scan(dumpscan.Sniff(), tc.data, 7)
			if err != nil || res.Format != tc.format {
				t.Fatalf("got %+v, %v; want format %q", res, err, tc.format)
			}
			if tc.format == "" {
				return
			}
			if _, err := scan(dumpscan.Sniff(), tc.data[:len(tc.data)-30], 7); err == nil {
				t.Fatal("a cut dump passed")
			}
		})
	}
}

// TestHugeRowBoundedMemory: a row of 256 MiB, written in 1 MiB pieces as a
// dump tool's pipe delivers it, costs each scanner almost nothing: no row
// is held.
func TestHugeRowBoundedMemory(t *testing.T) {
	const size = 256 << 20
	piece := bytes.Repeat([]byte("abcdefgh"), 1<<17) // 1 MiB, no special bytes
	for _, tc := range []struct {
		name       string
		s          dumpscan.Scanner
		head, tail []byte
	}{
		{"custom", dumpscan.NewPostgresCustom(),
			append(append(testgen.PGCustomHeader([]string{"public.big"}, false), testgen.PGCustomBlockStart(1)...), 0, 1, 0, 0, 0x10),
			append([]byte("\n"), testgen.PGCustomBlockEnd()...)},
		{"plain", dumpscan.NewPostgresPlain(),
			[]byte("--\nCOPY public.big (a) FROM stdin;\n"),
			[]byte("\n\\.\n-- PostgreSQL database dump complete\n")},
		{"mariadb", dumpscan.NewMariaDB("x"),
			[]byte("INSERT INTO `big` VALUES ('"),
			[]byte("');\n-- Dump completed\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if _, err := tc.s.Write(tc.head); err != nil {
				t.Fatal(err)
			}
			for range size / len(piece) {
				if _, err := tc.s.Write(piece); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := tc.s.Write(tc.tail); err != nil {
				t.Fatal(err)
			}
			res, err := tc.s.Close()
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tables) != 1 || res.Tables[0].Rows != 1 {
				t.Fatalf("tables %+v, want one row", res.Tables)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Fatalf("scanning a %d MiB row allocated %d bytes", size>>20, alloc)
			}
		})
	}
}

// TestSplitWritesAgree: where the writes break a stream changes nothing.
func TestSplitWritesAgree(t *testing.T) {
	custom, _ := customArchive(false)
	for _, tc := range []struct {
		name string
		new  func() dumpscan.Scanner
		data []byte
	}{
		{"custom", dumpscan.NewPostgresCustom, custom},
		{"plain", dumpscan.NewPostgresPlain, []byte(plainDump)},
		{"mariadb", func() dumpscan.Scanner { return dumpscan.NewMariaDB("x") }, []byte(mariaDump)},
	} {
		whole, err := scan(tc.new(), tc.data, 0)
		if err != nil {
			t.Fatal(err)
		}
		for seed := uint64(1); seed < 50; seed++ {
			got, err := scan(tc.new(), tc.data, seed)
			if err != nil || !reflect.DeepEqual(got, whole) {
				t.Fatalf("%s seed %d: %+v, %v; want %+v", tc.name, seed, got, err, whole)
			}
		}
	}
}

// TestLongRowsSplit: rows longer than the hash's internal blocks, fed in
// pieces of every size, hash as they do whole (the streaming hasher and the
// one-shot hash agree).
func TestLongRowsSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var rows []string
	var dump strings.Builder
	dump.WriteString("COPY public.t (a) FROM stdin;\n")
	for _, n := range []int{0, 1, 15, 16, 17, 128, 129, 240, 241, 255, 256, 1023, 1024, 1025, 4096, 70000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		rows = append(rows, string(b))
		dump.Write(b)
		dump.WriteByte('\n')
	}
	dump.WriteString("\\.\n-- PostgreSQL database dump complete\n")
	for _, seed := range []uint64{0, 1, 2, 3} {
		res, err := scan(dumpscan.NewPostgresPlain(), []byte(dump.String()), seed)
		if err != nil {
			t.Fatal(err)
		}
		if tb := res.Tables[0]; tb.Rows != int64(len(rows)) || tb.Digest != sum(rows...) {
			t.Fatalf("seed %d: %d rows, digest %s; want %d, %s", seed, tb.Rows, tb.Digest, len(rows), sum(rows...))
		}
	}
}

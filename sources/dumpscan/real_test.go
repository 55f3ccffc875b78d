package dumpscan_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
	_ "github.com/dbarchive/dbarchive/sources/mysql"
	_ "github.com/dbarchive/dbarchive/sources/postgres"
)

// bigRows is the size of the big table of the real databases.
const bigRows = 200_000

const pgSchema = `
CREATE SCHEMA other;
CREATE TABLE mixed (id int PRIMARY KEY, s text, b bytea, j jsonb, ts timestamptz);
INSERT INTO mixed VALUES
  (1, NULL, NULL, NULL, NULL),
  (2, E'tab\there\nnewline \\ backslash ''single'' "double"', '\x00ff10', '{"a": [1, "ü"]}', '2026-11-29 10:00:00+00'),
  (3, 'ünïcödé 日本語 🎉', '', '[]', '-infinity'),
  (4, '\N', '\x5c4e', 'null', NULL),
  (5, E'\\.', NULL, NULL, NULL);
CREATE TABLE empty (x int);
CREATE TABLE big (id bigint, label text);
INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 200000) g;
CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (50);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (50) TO (100);
INSERT INTO parted SELECT g, g % 100 FROM generate_series(1, 1000) g;
CREATE TABLE other."Odd ""Name"" é" ("a b" text);
INSERT INTO other."Odd ""Name"" é" VALUES ('x'), ('x'), (NULL);
CREATE VIEW v AS SELECT id FROM mixed;
CREATE MATERIALIZED VIEW mv AS SELECT id FROM mixed;
SELECT lo_from_bytea(0, '\x0102');
`

// TestPostgresRealDumps dumps a real database through the postgres source
// (the flags a backup uses) in custom and plain format: the recorded tables
// are the tables with data, each with count(*) rows; custom and plain
// agree on every digest; a second dump gives the same digests; and dumps
// cut anywhere are incomplete.
func TestPostgresRealDumps(t *testing.T) {
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "scan")
	if _, err := db.Exec(pgSchema); err != nil {
		t.Fatal(err)
	}
	custom := dumpWith(t, srv.URL(name), "custom")
	plain := dumpWith(t, srv.URL(name), "plain")
	rc := mustScan(t, dumpscan.NewPostgresCustom(), custom)
	rp := mustScan(t, dumpscan.NewPostgresPlain(), plain)
	want := []string{"other.Odd \"Name\" é", "public.big", "public.empty", "public.mixed", "public.parted_high", "public.parted_low"}
	for _, res := range []*dumpscan.Result{rc, rp} {
		if got := names(res.Tables); !equalStrings(got, want) {
			t.Fatalf("%s: tables %q, want %q (no view, no partitioned parent)", res.Format, got, want)
		}
		for _, tb := range res.Tables {
			if n := count(t, db, `SELECT count(*) FROM `+testdb.QuotePG(tb.Schema)+"."+testdb.QuotePG(tb.Name)); n != tb.Rows {
				t.Fatalf("%s: table %s: %d rows recorded, count(*) = %d", res.Format, tb.QualifiedName(), tb.Rows, n)
			}
		}
	}
	if byName(rc.Tables)["public.big"].Rows != bigRows {
		t.Fatalf("big: %d rows", byName(rc.Tables)["public.big"].Rows)
	}
	// Custom and plain write the same COPY text.
	for _, tb := range rc.Tables {
		if p := byName(rp.Tables)[tb.QualifiedName()]; p.Digest != tb.Digest {
			t.Fatalf("table %s: custom digest %s, plain %s", tb.QualifiedName(), tb.Digest, p.Digest)
		}
	}
	// Stable across dumps, and it does change when a row does.
	again := mustScan(t, dumpscan.NewPostgresCustom(), dumpWith(t, srv.URL(name), "custom"))
	if !equalResults(again, rc) {
		t.Fatalf("a second dump recorded %+v, the first %+v", again.Tables, rc.Tables)
	}
	if _, err := db.Exec(`UPDATE mixed SET s = s || '!' WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	changed := mustScan(t, dumpscan.NewPostgresCustom(), dumpWith(t, srv.URL(name), "custom"))
	if byName(changed.Tables)["public.mixed"].Digest == byName(rc.Tables)["public.mixed"].Digest ||
		byName(changed.Tables)["public.big"].Digest != byName(rc.Tables)["public.big"].Digest {
		t.Fatal("changing one row of mixed did not change its digest alone")
	}

	everyCutFails(t, "custom", dumpscan.NewPostgresCustom, custom, len(custom))
	everyCutFails(t, "plain", dumpscan.NewPostgresPlain, plain, bytes.LastIndex(plain, []byte(`\unrestrict `))+len(`\unrestrict `)+1)
}

const mySchema = `
CREATE TABLE mixed (id int PRIMARY KEY, s text, b blob, d datetime);
INSERT INTO mixed VALUES
  (1, NULL, NULL, NULL),
  (2, 'tab\there\nnewline \\ backslash ''single'' "double" (paren) ; semi', x'00ff275c', '2026-11-29 10:00:00'),
  (3, 'ünïcödé 日本語 🎉', '', NULL),
  (4, '),(', x'28', NULL);
CREATE TABLE empty (x int);
CREATE TABLE big (id bigint, label varchar(40));
INSERT INTO big SELECT seq, CONCAT('row ', seq) FROM seq_1_to_200000;
CREATE TABLE ` + "`odd``name é`" + ` (` + "`a b`" + ` text);
INSERT INTO ` + "`odd``name é`" + ` VALUES ('x'), ('x'), (NULL);
CREATE VIEW v AS SELECT id FROM mixed;
CREATE TRIGGER trg BEFORE INSERT ON empty FOR EACH ROW SET NEW.x = NEW.x + 1;
CREATE PROCEDURE pr() BEGIN INSERT INTO empty VALUES (5); END;
`

// TestMariaDBRealDumps does for MariaDB what TestPostgresRealDumps does for
// PostgreSQL, through the mysql source.
func TestMariaDBRealDumps(t *testing.T) {
	srv := testdb.MariaDB(t)
	name, db := srv.Create(t, "scan")
	if _, err := db.Exec(mySchema); err != nil {
		t.Fatal(err)
	}
	dump := dumpWith(t, srv.URL(name), "")
	res := mustScan(t, dumpscan.NewMariaDB(name), dump)
	want := []string{name + ".big", name + ".empty", name + ".mixed", name + ".odd`name é"}
	if got := names(res.Tables); !equalStrings(got, want) {
		t.Fatalf("tables %q, want %q (no view)", got, want)
	}
	for _, tb := range res.Tables {
		if n := count(t, db, "SELECT count(*) FROM "+testdb.QuoteMy(tb.Name)); n != tb.Rows {
			t.Fatalf("table %s: %d rows recorded, count(*) = %d", tb.Name, tb.Rows, n)
		}
	}
	if byName(res.Tables)[name+".big"].Rows != bigRows {
		t.Fatalf("big: %d rows", byName(res.Tables)[name+".big"].Rows)
	}
	if again := mustScan(t, dumpscan.NewMariaDB(name), dumpWith(t, srv.URL(name), "")); !equalResults(again, res) {
		t.Fatalf("a second dump recorded %+v, the first %+v", again.Tables, res.Tables)
	}
	// Sniff finds the format behind dbarchive's header line.
	if sniffed := mustScan(t, dumpscan.Sniff(), dump); !equalResults(sniffed, res) {
		t.Fatalf("sniffed %+v, want %+v", sniffed, res)
	}
	// "-- Dump completed on YYYY-MM-DD HH:MM:SS\n": a cut inside the date
	// is incomplete, one after it (only the newline lost) is not.
	everyCutFails(t, "mariadb", func() dumpscan.Scanner { return dumpscan.NewMariaDB(name) }, dump, len(dump)-1)
}

func dumpWith(t *testing.T, url, format string) []byte {
	t.Helper()
	src, err := sources.Open(url, sources.Options{Format: format})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.Dump(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustScan(t *testing.T, s dumpscan.Scanner, data []byte) *dumpscan.Result {
	t.Helper()
	res, err := scan(s, data, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// everyCutFails scans prefixes of data shorter than complete: every 97th
// byte of the first 64 KiB (the header, TOC, first tables) and 40 random
// places after it; each must be incomplete.
func everyCutFails(t *testing.T, what string, mk func() dumpscan.Scanner, data []byte, complete int) {
	t.Helper()
	cuts := []int{0, 1, complete - 1}
	for n := 2; n < min(64<<10, complete); n += 97 {
		cuts = append(cuts, n)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 40 {
		cuts = append(cuts, r.IntN(complete))
	}
	for _, n := range cuts {
		_, err := scan(mk(), data[:n], 0)
		var ie *dumpscan.IncompleteError
		if !errors.As(err, &ie) {
			t.Fatalf("%s dump cut at %d of %d: %v, want an IncompleteError", what, n, len(data), err)
		}
	}
}

func count(t *testing.T, db *sql.DB, q string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func names(ts []dumpscan.Table) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.QualifiedName())
	}
	slices.Sort(out)
	return out
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

func byName(ts []dumpscan.Table) map[string]dumpscan.Table {
	m := map[string]dumpscan.Table{}
	for _, t := range ts {
		m[t.QualifiedName()] = t
	}
	return m
}

func equalResults(a, b *dumpscan.Result) bool {
	return a.Format == b.Format && equalTables(a.Tables, b.Tables)
}

package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
)

// BigRows makes the "big" table of Populate over 50 MB: about 68 MB of
// PostgreSQL heap, about 70 MB of InnoDB data.
const BigRows = 500_000

// pgSchema covers what a restore must bring back: unicode and awkward text,
// binary values of every byte, NULLs, a sequence, a view, a SQL function and
// a trigger with its plpgsql function, and the (still empty) big table.
const pgSchema = `
CREATE TABLE people (id int PRIMARY KEY, name text, note text, born date, score numeric(10,2));
CREATE TABLE audit (id serial PRIMARY KEY, person int, what text);
CREATE FUNCTION log_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit(person, what) VALUES (NEW.id, 'inserted'); RETURN NEW; END $$;
CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW EXECUTE FUNCTION log_person();
INSERT INTO people VALUES
  (1, 'Zoë Ñúñez', '日本語テキスト 🎉 Ελληνικά', '1990-01-02', 12.5),
  (2, 'Ødegaard', NULL, NULL, NULL),
  (3, E'line\nbreak\ttab', 'quote '' "dq" \ backslash', '2000-02-29', -1);
CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
INSERT INTO blobs VALUES (1, '\x00ff10'), (2, NULL), (3, ''), (4, decode(repeat('00ff', 5000), 'hex'));
INSERT INTO blobs SELECT 5, decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex') FROM generate_series(0, 255) i;
CREATE VIEW named AS SELECT id, upper(name) AS name FROM people WHERE note IS NOT NULL;
CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE TABLE big (id bigint PRIMARY KEY, a text, b text);
`

// pgFillBig is set-based so that 50 MB take seconds, not minutes.
const pgFillBig = `INSERT INTO big SELECT i, md5(i::text) || md5((i + 1)::text), md5((i * 3)::text) FROM generate_series(1, %d) i`

// mySchema is pgSchema for MariaDB: an AUTO_INCREMENT for the sequence, a
// stored function, and NUL bytes in text (seq_0_to_255 comes from MariaDB's
// built-in Sequence engine).
const mySchema = `
CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(100), note TEXT, born DATE, score DECIMAL(10,2)) CHARACTER SET utf8mb4;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, person INT, what VARCHAR(20));
CREATE TRIGGER people_audit AFTER INSERT ON people FOR EACH ROW INSERT INTO audit (person, what) VALUES (NEW.id, 'inserted');
INSERT INTO people VALUES
  (1, 'Zoë Ñúñez', '日本語テキスト 🎉 Ελληνικά', '1990-01-02', 12.5),
  (2, 'Ødegaard', NULL, NULL, NULL),
  (3, 'line\nbreak\ttab', 'quote '' "dq" \\ backslash \0 nul', '2000-02-29', -1);
CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB);
INSERT INTO blobs VALUES (1, X'00FF10'), (2, NULL), (3, ''), (4, REPEAT(X'00FF', 5000));
INSERT INTO blobs SELECT 5, UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')) FROM seq_0_to_255;
CREATE VIEW named AS SELECT id, UPPER(name) AS name FROM people WHERE note IS NOT NULL;
CREATE FUNCTION add_int(a INT, b INT) RETURNS INT DETERMINISTIC RETURN a + b;
CREATE TABLE big (id BIGINT PRIMARY KEY, a VARCHAR(64), b CHAR(32));
`

const myFillBig = `INSERT INTO big SELECT seq, CONCAT(MD5(seq), MD5(seq + 1)), MD5(seq * 3) FROM seq_1_to_%d`

// Populate creates the test schema in db (a database on s) and fills its
// "big" table with rows rows; BigRows makes it over 50 MB.
func (s *Server) Populate(t testing.TB, db *sql.DB, rows int) {
	t.Helper()
	schema, fill := pgSchema, pgFillBig
	if s.kind != "postgres" {
		schema, fill = mySchema, myFillBig
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatalf("testdb: schema: %v", err)
	}
	if _, err := db.Exec(fmt.Sprintf(fill, rows)); err != nil {
		t.Fatalf("testdb: filling big: %v", err)
	}
}

// BigTableSize is the size of the big table's data as the server counts it
// (pg_relation_size; InnoDB data_length after ANALYZE).
func (s *Server) BigTableSize(t testing.TB, db *sql.DB) int64 {
	t.Helper()
	var size int64
	var err error
	if s.kind == "postgres" {
		err = db.QueryRow(`SELECT pg_relation_size('big')`).Scan(&size)
	} else {
		if _, err = db.Exec(`ANALYZE TABLE big`); err == nil {
			err = db.QueryRow(`SELECT data_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'big'`).Scan(&size)
		}
	}
	if err != nil {
		t.Fatalf("testdb: size of big: %v", err)
	}
	return size
}

// Fingerprint is a checksum of every table's rows in key order, the view,
// the sequence's (AUTO_INCREMENT's) position and what the function returns:
// two databases with equal fingerprints hold the same data.
func (s *Server) Fingerprint(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	if s.kind == "postgres" {
		return pgFingerprint(t, db)
	}
	return myFingerprint(t, db)
}

func pgFingerprint(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range []string{"people", "audit", "blobs", "big", "named"} {
		var n int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM %s t`, tbl)
		if err := db.QueryRow(q).Scan(&n, &sum); err != nil {
			t.Fatalf("testdb: checksum of %s: %v", tbl, err)
		}
		out[tbl] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	var seq, add string
	if err := db.QueryRow(`SELECT last_value::text FROM audit_id_seq`).Scan(&seq); err != nil {
		t.Fatalf("testdb: sequence: %v", err)
	}
	if err := db.QueryRow(`SELECT add(2, 3)::text`).Scan(&add); err != nil {
		t.Fatalf("testdb: function add: %v", err)
	}
	out["audit_id_seq"], out["add(2,3)"] = seq, add
	return out
}

// myFingerprint is CHECKSUM TABLE of every base table, an ordered hex dump of
// the small tables and the view, the next AUTO_INCREMENT value, and what the
// function returns.
func myFingerprint(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET SESSION group_concat_max_len = 1 << 30`); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tbl := range []string{"people", "audit", "blobs", "big"} {
		var name string
		var sum sql.NullString
		if err := conn.QueryRowContext(ctx, "CHECKSUM TABLE "+tbl).Scan(&name, &sum); err != nil {
			t.Fatalf("testdb: checksum %s: %v", tbl, err)
		}
		out["checksum "+tbl] = sum.String
	}
	for tbl, cols := range map[string]string{
		"people": "id, HEX(name), HEX(note), born, score",
		"blobs":  "id, HEX(data), data IS NULL",
		"named":  "id, HEX(name)",
	} {
		var n int
		var sum string
		q := fmt.Sprintf(`SELECT COUNT(*), MD5(COALESCE(GROUP_CONCAT(CONCAT_WS('|', %s) ORDER BY id SEPARATOR ','), '')) FROM %s`, cols, tbl)
		if err := conn.QueryRowContext(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("testdb: rows of %s: %v", tbl, err)
		}
		out["rows "+tbl] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	var auto sql.NullString
	var add string
	if err := conn.QueryRowContext(ctx, `SELECT AUTO_INCREMENT FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'audit'`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT add_int(2, 3)`).Scan(&add); err != nil {
		t.Fatalf("testdb: function add_int: %v", err)
	}
	out["audit AUTO_INCREMENT"], out["add_int(2,3)"] = auto.String, add
	return out
}

// CompareFingerprints fails the test for every entry of want that got does
// not match.
func CompareFingerprints(t testing.TB, got, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("testdb: empty fingerprint")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: restored %q, source %q", k, got[k], v)
		}
	}
}

// CheckTrigger inserts a row into people of a populated database and fails
// the test unless the trigger wrote its audit row: a restore must bring
// triggers back working, not just their definitions.
func (s *Server) CheckTrigger(t testing.TB, db *sql.DB) {
	t.Helper()
	if _, err := db.Exec(`INSERT INTO people (id, name) VALUES (100, 'after restore')`); err != nil {
		t.Fatalf("testdb: insert into restored people: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE person = 100`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("testdb: trigger after restore: %d audit rows, err %v; want 1", n, err)
	}
}

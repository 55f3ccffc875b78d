package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// scaleSpec sizes the data set. The pgbench tables compress about 100
// times and so prove nothing alone; the bench_ tables of words, uuids,
// numerics, timestamps and jsonb bring the whole dump's zstd -3 ratio into
// the 3 to 6 of real databases.
type scaleSpec struct {
	Name    string
	DB      string
	PGBench int // pgbench -s
	Orders  int // rows of bench_orders
	Events  int // rows of bench_events
	// Mixed is the rows of bench_mixed: uuid, md5 text, numeric,
	// timestamp and jsonb, the table of issue 15 on which zstd levels 1 and
	// 3 differ in CPU far more than in size (1.5 M rows: a 359 MB dump).
	Mixed int
	// RSSSizes are the two exec: stream sizes of the memory scenario.
	RSSSizes [2]string
}

var scales = map[string]scaleSpec{
	// About 1 GiB on disk.
	"full": {Name: "full", DB: "dbarchive_bench", PGBench: 20, Orders: 1_100_000, Events: 700_000, Mixed: 1_500_000, RSSSizes: [2]string{"1GiB", "8GiB"}},
	// About 100 MB, for working on the bench itself.
	"small": {Name: "small", DB: "dbarchive_bench_small", PGBench: 2, Orders: 110_000, Events: 70_000, Mixed: 150_000, RSSSizes: [2]string{"256MiB", "2GiB"}},
}

// datasetVersion changes whenever the SQL below does, so an old database is
// rebuilt rather than reused. Version 2 added bench_mixed: a version 1
// database of the same scale is extended with it (mixedSQL) instead.
const datasetVersion = 2

func (s scaleSpec) recipe() string {
	return s.recipeVersion(datasetVersion)
}

func (s scaleSpec) recipeVersion(v int) string {
	r := fmt.Sprintf("dbarchive-bench v%d pgbench=%d orders=%d events=%d", v, s.PGBench, s.Orders, s.Events)
	if v >= 2 {
		r += fmt.Sprintf(" mixed=%d", s.Mixed)
	}
	return r
}

// dataset describes the database the backup scenarios dump.
type dataset struct {
	DB        string `json:"database"`
	Recipe    string `json:"recipe"`
	SizeBytes int64  `json:"size_on_disk_bytes"`
	// PlainBytes and ZstdBytes are pg_dump -Fp's output and what zstd -3
	// makes of it, measured when the database was built.
	PlainBytes int64   `json:"plain_dump_bytes"`
	ZstdBytes  int64   `json:"plain_dump_zstd3_bytes"`
	Ratio      float64 `json:"plain_dump_zstd3_ratio"`
	Reused     bool    `json:"reused"`
	// Rows are the row counts of the three big tables, which every restore
	// is checked against.
	Rows string `json:"rows"`
}

func psql(ctx context.Context, db, sql string) (string, error) {
	return runOutput(ctx, nil, "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ensureDataset reuses the scale's database when its comment carries the
// current recipe, and otherwise builds it from scratch.
func ensureDataset(ctx context.Context, s scaleSpec, rebuild bool) (dataset, error) {
	d := dataset{DB: s.DB, Recipe: s.recipe()}
	comment, err := psql(ctx, "postgres", "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = "+quoteLit(s.DB))
	if err != nil {
		return d, fmt.Errorf("PostgreSQL at %s:%s as %s: %w", os.Getenv("PGHOST"), os.Getenv("PGPORT"), os.Getenv("PGUSER"), err)
	}
	if rest, ok := strings.CutPrefix(comment, d.Recipe+" "); ok && !rebuild {
		if _, err := fmt.Sscanf(rest, "plain=%d zstd=%d", &d.PlainBytes, &d.ZstdBytes); err == nil {
			d.Reused = true
			logf("reusing database %s (%s)", s.DB, d.Recipe)
			return d.finish(ctx)
		}
	}
	if strings.HasPrefix(comment, s.recipeVersion(1)+" ") && !rebuild {
		// Version 1 lacks only bench_mixed: adding it takes a minute,
		// rebuilding everything many.
		logf("extending database %s to %s", s.DB, d.Recipe)
		for _, stmt := range append([]string{"DROP TABLE IF EXISTS bench_mixed"}, mixedSQL(s)...) {
			if _, err := psql(ctx, s.DB, stmt); err != nil {
				return d, err
			}
		}
		if _, err := psql(ctx, s.DB, "VACUUM (FREEZE, ANALYZE) bench_mixed"); err != nil {
			return d, err
		}
		return d.mark(ctx)
	}
	logf("building database %s (%s); a few minutes at full scale", s.DB, d.Recipe)
	if _, err := runOutput(ctx, nil, "dropdb", "--if-exists", s.DB); err != nil {
		return d, err
	}
	if _, err := runOutput(ctx, nil, "createdb", s.DB); err != nil {
		return d, err
	}
	if _, err := runOutput(ctx, nil, "pgbench", "-i", "-q", "-s", strconv.Itoa(s.PGBench), s.DB); err != nil {
		return d, err
	}
	for _, stmt := range append(datasetSQL(s), mixedSQL(s)...) {
		if _, err := psql(ctx, s.DB, stmt); err != nil {
			return d, err
		}
	}
	// Freeze now, so no dump in the measured runs pays for setting hint
	// bits the first time it reads a page.
	if _, err := psql(ctx, s.DB, "VACUUM (FREEZE, ANALYZE)"); err != nil {
		return d, err
	}
	return d.mark(ctx)
}

// mark measures the plain dump's ratio and writes the marker comment.
func (d dataset) mark(ctx context.Context) (dataset, error) {
	var err error
	logf("measuring the zstd -3 ratio of the plain dump")
	if d.PlainBytes, d.ZstdBytes, err = plainRatio(ctx, d.DB); err != nil {
		return d, err
	}
	// The comment is the marker: written last, so a build that was
	// interrupted is rebuilt next time.
	mark := fmt.Sprintf("%s plain=%d zstd=%d", d.Recipe, d.PlainBytes, d.ZstdBytes)
	if _, err := psql(ctx, "postgres", fmt.Sprintf("COMMENT ON DATABASE %s IS %s", d.DB, quoteLit(mark))); err != nil {
		return d, err
	}
	return d.finish(ctx)
}

func (d dataset) finish(ctx context.Context) (dataset, error) {
	if d.ZstdBytes > 0 {
		d.Ratio = float64(d.PlainBytes) / float64(d.ZstdBytes)
	}
	size, err := psql(ctx, "postgres", "SELECT pg_database_size("+quoteLit(d.DB)+")")
	if err != nil {
		return d, err
	}
	d.SizeBytes, _ = strconv.ParseInt(size, 10, 64)
	d.Rows, err = rowCounts(ctx, d.DB)
	return d, err
}

// rowCounts fingerprints a restored database cheaply.
func rowCounts(ctx context.Context, db string) (string, error) {
	return psql(ctx, db, "SELECT (SELECT count(*) FROM pgbench_accounts) || ' accounts, ' || (SELECT count(*) FROM bench_orders) || ' orders, ' || (SELECT count(*) FROM bench_events) || ' events, ' || (SELECT count(*) FROM bench_mixed) || ' mixed'")
}

// plainRatio pipes pg_dump -Fp through zstd -3 and counts both sides.
func plainRatio(ctx context.Context, db string) (plain, packed int64, err error) {
	dump := exec.CommandContext(ctx, "pg_dump", "-Fp", db)
	zs := exec.CommandContext(ctx, "zstd", "-3", "-T0", "-q", "-c")
	dumpOut, err := dump.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	in := &countWriter{}
	zsIn, err := zs.StdinPipe()
	if err != nil {
		return 0, 0, err
	}
	out := &countWriter{}
	zs.Stdout = out
	var dumpErr, zsErr tailBuffer
	dump.Stderr, zs.Stderr = &dumpErr, &zsErr
	if err := zs.Start(); err != nil {
		return 0, 0, err
	}
	if err := dump.Start(); err != nil {
		return 0, 0, err
	}
	_, cerr := io.Copy(io.MultiWriter(zsIn, in), dumpOut)
	zsIn.Close()
	if err := dump.Wait(); err != nil {
		return 0, 0, fmt.Errorf("pg_dump -Fp %s: %w\n%s", db, err, dumpErr.String())
	}
	if err := zs.Wait(); err != nil {
		return 0, 0, fmt.Errorf("zstd: %w\n%s", err, zsErr.String())
	}
	return in.n, out.n, cerr
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// words is a fixed vocabulary of 600 made-up words: each drawn word
// carries about 9 bits, which is what makes free text compress 3 to 4
// times, like the names, addresses and comments of real tables.
func words() []string {
	r := rand.New(rand.NewPCG(5, 7))
	cons := []string{"b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "st", "tr", "ch", "sh"}
	vow := []string{"a", "e", "i", "o", "u", "ai", "ea", "ou"}
	seen := map[string]bool{}
	var out []string
	for len(out) < 600 {
		var sb strings.Builder
		for range 2 + r.IntN(3) {
			sb.WriteString(cons[r.IntN(len(cons))])
			sb.WriteString(vow[r.IntN(len(vow))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// datasetSQL creates and fills the bench_ tables. Each randomly drawn
// value is computed per row: the subqueries are correlated with the row's
// g, so PostgreSQL cannot evaluate them once as an InitPlan, and their
// aggregates order by the inner i, which makes them aggregates of the
// subquery (an aggregate over outer columns alone belongs to the outer
// query).
func datasetSQL(s scaleSpec) []string {
	var arr strings.Builder
	arr.WriteString("ARRAY[")
	for i, w := range words() {
		if i > 0 {
			arr.WriteByte(',')
		}
		arr.WriteString(quoteLit(w))
	}
	arr.WriteString("]::text[]")
	vocab := "(SELECT " + arr.String() + " AS w) AS vocab"
	word := "w[1 + floor(random() * cardinality(w))::int]"
	return []string{
		`CREATE TABLE bench_orders (
			id          bigint PRIMARY KEY,
			order_uuid  uuid NOT NULL,
			customer_id integer NOT NULL,
			status      text NOT NULL,
			amount      numeric(12,2) NOT NULL,
			tax_rate    numeric(6,4) NOT NULL,
			created_at  timestamptz NOT NULL,
			shipped_at  timestamptz,
			ship_to     text NOT NULL,
			note        text NOT NULL,
			attrs       jsonb NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_orders
		SELECT g,
			gen_random_uuid(),
			1 + floor(random() * 200000)::int,
			(ARRAY['new','paid','packed','shipped','delivered','returned','cancelled'])[1 + floor(random() * 7)::int],
			round((random() * 2500)::numeric, 2),
			(ARRAY[0, 0.07, 0.19, 0.2, 0.21])[1 + floor(random() * 5)::int],
			timestamptz '2023-01-01 00:00:00+00' + random() * interval '900 days',
			CASE WHEN random() < 0.7 THEN timestamptz '2023-01-01 00:00:00+00' + random() * interval '900 days' END,
			initcap(%[2]s) || ' ' || (1 + floor(random() * 300)::int) || ', ' || initcap(%[2]s) || ' ' || lpad(floor(random() * 99999)::int::text, 5, '0'),
			(SELECT string_agg(%[2]s, ' ' ORDER BY i) FROM generate_series(1, 3 + g %% 10) AS i),
			jsonb_build_object(
				'sku', 'SKU-' || lpad(floor(random() * 99999)::int::text, 5, '0'),
				'qty', 1 + floor(random() * 9)::int,
				'channel', (ARRAY['web','app','store','phone'])[1 + floor(random() * 4)::int],
				'gift', random() < 0.1,
				'tags', (SELECT jsonb_agg(%[2]s ORDER BY i) FROM generate_series(1, 1 + g %% 3) AS i))
		FROM generate_series(1, %[1]d) AS g, %[3]s`, s.Orders, word, vocab),
		`CREATE TABLE bench_events (
			id          bigint PRIMARY KEY,
			occurred_at timestamptz NOT NULL,
			session_id  uuid NOT NULL,
			kind        text NOT NULL,
			message     text NOT NULL,
			payload     jsonb NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_events
		SELECT g,
			timestamptz '2025-01-01 00:00:00+00' + g * interval '37 ms' + random() * interval '30 ms',
			gen_random_uuid(),
			(ARRAY['login','logout','view','search','add_to_cart','checkout','error'])[1 + floor(random() * 7)::int],
			(SELECT string_agg(%[2]s, ' ' ORDER BY i) FROM generate_series(1, 6 + g %% 12) AS i),
			jsonb_build_object(
				'user', jsonb_build_object('id', floor(random() * 200000)::int, 'name', initcap(%[2]s) || ' ' || initcap(%[2]s)),
				'ip', '10.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int || '.' || floor(random() * 256)::int,
				'path', '/' || %[2]s || '/' || %[2]s,
				'status', (ARRAY[200,200,200,200,201,304,404,500])[1 + floor(random() * 8)::int],
				'latency_ms', round((random() * 800)::numeric, 1),
				'items', (SELECT jsonb_agg(jsonb_build_object('id', floor(random() * 1000000)::int, 'price', round((random() * 100)::numeric, 2)) ORDER BY i) FROM generate_series(1, 1 + g %% 4) AS i))
		FROM generate_series(1, %[1]d) AS g, %[3]s`, s.Events, word, vocab),
	}
}

// mixedSQL creates and fills bench_mixed, about 240 bytes a row in a
// custom-format dump: a random uuid and md5 hex (which compress only about
// 2x), a numeric, a timestamp and a small jsonb document.
func mixedSQL(s scaleSpec) []string {
	return []string{
		`CREATE TABLE bench_mixed (
			id       bigint PRIMARY KEY,
			ref      uuid NOT NULL,
			digest   text NOT NULL,
			amount   numeric(14,4) NOT NULL,
			seen_at  timestamptz NOT NULL,
			doc      jsonb NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_mixed
		SELECT g,
			gen_random_uuid(),
			md5(g::text),
			round((random() * 1000000)::numeric, 4),
			timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days',
			jsonb_build_object('key', md5((g * 7)::text), 'n', g %% 1000, 'ok', g %% 3 = 0,
				'at', timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days')
		FROM generate_series(1, %d) AS g`, s.Mixed),
	}
}

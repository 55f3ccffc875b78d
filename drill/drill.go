package drill

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
	"github.com/dbarchive/dbarchive/sources/dumpscan"
)

// Check is a check of the restored database: SQL that must return exactly
// one row whose first column is true or a non-zero number.
type Check struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// Table is what the backup recorded of one table, to be found again in
// the restored database.
type Table struct {
	Schema string
	Name   string
	Rows   int64
	// Digest is the recorded order-independent digest of the table's rows
	// (dumpscan.DigestAlgorithm), "" when none was recorded.
	Digest string
}

func (t Table) String() string {
	if t.Schema == "" {
		return t.Name
	}
	return t.Schema + "." + t.Name
}

// Options say where to restore and what to check.
type Options struct {
	// RestoreTo is a database URL on an existing server to restore into
	// instead of a throwaway server. Its database must not exist: the
	// drill creates it, and drops it at the end whatever happened.
	RestoreTo string
	// Target carries the RestoreTo server's password settings.
	Target sources.Options
	// Tables is what the backup recorded; each must be there after the
	// restore with as many rows.
	Tables []Table
	// Checks run on the restored database after the table checks.
	Checks []Check
	// Restore is passed to both reads of the backup.
	Restore archiver.RestoreOptions
	// Dir is where a throwaway server's directory is made ("": the
	// temporary directory); it needs room for the restored database.
	Dir string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Result is the outcome of one check.
type Result struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // integrity, restore, table, rows, check
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// ServerInfo says what the backup was restored into.
type ServerInfo struct {
	Type      string `json:"type"`
	Version   string `json:"version,omitempty"`
	Throwaway bool   `json:"throwaway"`
	// DumpMajor is the major version of the server the dump came from, as
	// its header says (0: not known); Major is the drill server's, in the
	// same terms (MariaDB 10.11 is 1011).
	DumpMajor int `json:"dumpMajor,omitempty"`
	Major     int `json:"major,omitempty"`
}

// Report is a drill's evidence, printed and stored beside the backup.
type Report struct {
	BackupID  string     `json:"backupId"`
	Set       string     `json:"set"`
	StartTime time.Time  `json:"startTime"`
	EndTime   time.Time  `json:"endTime"`
	Server    ServerInfo `json:"server"`
	// DownloadSeconds is the integrity pass: reading the whole backup and
	// checking every sha256 and size.
	DownloadSeconds float64 `json:"downloadSeconds"`
	// RestoreSeconds is the recovery time: reading, checking and loading
	// the backup into the server, until the restore tool finished.
	RestoreSeconds float64 `json:"restoreSeconds"`
	Tables         int     `json:"tables"`
	// DigestsChecked says whether the rows' digests were compared: only on
	// a server of the dump's own major (see Run).
	DigestsChecked bool     `json:"digestsChecked"`
	Rows           int64    `json:"rows"`
	Checks         []Result `json:"checks"`
	Passed         bool     `json:"passed"`
}

func (r *Report) add(res Result) *Result {
	r.Checks = append(r.Checks, res)
	return &r.Checks[len(r.Checks)-1]
}

// Failed lists the checks that failed.
func (r *Report) Failed() []Result {
	var out []Result
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, c)
		}
	}
	return out
}

// FailedError is a drill that ran and found the backup wanting: the
// integrity pass, the restore, a table or a check failed. Err is the
// integrity or restore error, when that is what failed.
type FailedError struct {
	BackupID string
	Failed   []Result
	Err      error
}

func (e *FailedError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		parts = append(parts, f.Name+": "+f.Detail)
	}
	return fmt.Sprintf("drill of backup %s failed: %s", e.BackupID, strings.Join(parts, "; "))
}

func (e *FailedError) Unwrap() error { return e.Err }

// Run drills backup m: it reads the whole backup and checks it, restores
// it into a throwaway server (or into opts.RestoreTo), checks the recorded
// tables and opts.Checks, and stops and removes everything it started,
// also when ctx is cancelled. The report is nil only when the drill could
// not run (no server to restore into); an error with a report is a
// *FailedError unless ctx ended the drill.
func Run(ctx context.Context, b *drivers.Bucket, m *archiver.Manifest, opts Options) (*Report, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rep := &Report{BackupID: m.ID, Set: m.Set().String(), StartTime: now(), Server: ServerInfo{Type: m.Source.Type}}
	finish := func(err error) (*Report, error) {
		rep.EndTime = now()
		rep.Passed = err == nil && len(rep.Failed()) == 0
		if err == nil && !rep.Passed {
			err = &FailedError{BackupID: m.ID, Failed: rep.Failed()}
		}
		return rep, err
	}

	// 1. Integrity: the whole backup, every checksum, before any server
	// sees a byte. The dump's head tells which server major to start.
	head := &headCapture{limit: headSize}
	start := now()
	err := archiver.Restore(ctx, b, m, opts.Restore, func(r io.Reader) error {
		_, err := io.Copy(head, r)
		return err
	})
	rep.DownloadSeconds = now().Sub(start).Seconds()
	if err != nil {
		if ctx.Err() != nil {
			return finish(ctx.Err())
		}
		rep.add(Result{Name: "integrity", Kind: "integrity", Detail: err.Error()})
		return finish(&FailedError{BackupID: m.ID, Failed: rep.Failed(), Err: err})
	}
	rep.add(Result{Name: "integrity", Kind: "integrity", Passed: true,
		Detail: fmt.Sprintf("%d bytes stored, %d uncompressed, sha256 verified", m.StoredSize, m.UncompressedSize)})
	rep.Server.DumpMajor = dumpServerMajor(m.Source.Type, head.buf)

	// 2. Restore into a database that exists only for the drill.
	target, cleanup, err := drillTarget(ctx, m, opts, rep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	tgt, err := sources.Open(target, sourceOptions(m, opts))
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	restorer, ok1 := tgt.(sources.Restorer)
	querier, ok2 := tgt.(sources.Querier)
	if !ok1 || !ok2 || tgt.Type() != m.Source.Type {
		return nil, fmt.Errorf("drill: backup %s holds a %s dump, which cannot be drilled (postgres and mysql can)", m.ID, m.Source.Type)
	}
	if err := restorer.CheckRestore(ctx); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	start = now()
	err = archiver.Restore(ctx, b, m, opts.Restore, func(r io.Reader) error { return restorer.Restore(ctx, r) })
	rep.RestoreSeconds = now().Sub(start).Seconds()
	if err != nil {
		if ctx.Err() != nil {
			return finish(ctx.Err())
		}
		rep.add(Result{Name: "restore", Kind: "restore", Detail: err.Error()})
		return finish(&FailedError{BackupID: m.ID, Failed: rep.Failed(), Err: err})
	}
	rep.add(Result{Name: "restore", Kind: "restore", Passed: true, Detail: fmt.Sprintf("restored in %.1fs", rep.RestoreSeconds)})

	// 3. What the backup recorded, then the user's checks.
	if err := checkTables(ctx, querier, m.Source.Type, opts.Tables, rep); err != nil {
		return finish(err)
	}
	if rep.Server.Throwaway && rep.Server.DumpMajor != 0 && rep.Server.DumpMajor == rep.Server.Major {
		if err := checkDigests(ctx, tgt, opts.Tables, rep); err != nil {
			return finish(err)
		}
	}
	for _, c := range opts.Checks {
		rep.add(runCheck(ctx, querier, c))
	}
	if ctx.Err() != nil {
		return finish(ctx.Err())
	}
	return finish(nil)
}

// sourceOptions are the restore's: a new database, the dump's format, and
// the RestoreTo server's password settings.
func sourceOptions(m *archiver.Manifest, opts Options) sources.Options {
	o := sources.Options{CreateDatabase: true, Format: m.Source.Format}
	if opts.RestoreTo != "" {
		o.Password, o.PasswordFile = opts.Target.Password, opts.Target.PasswordFile
	}
	return o
}

// drillTarget starts the throwaway server, or takes RestoreTo, and returns
// the URL to restore into and what undoes it.
func drillTarget(ctx context.Context, m *archiver.Manifest, opts Options, rep *Report) (string, func(), error) {
	if opts.RestoreTo != "" {
		// The drill restores into a database of its own name, never the
		// URL's: dropping it afterwards must not be able to touch a
		// database somebody else made.
		u, err := url.Parse(opts.RestoreTo)
		if err != nil {
			return "", nil, errors.New("drill: --restore-to is not a URL")
		}
		u.Path = "/" + drillDatabaseName()
		target := u.String()
		drop := func() {
			if t, err := sources.Open(target, sourceOptions(m, opts)); err == nil {
				if q, ok := t.(sources.Querier); ok {
					_ = q.Drop(ctx)
				}
			}
		}
		return target, drop, nil
	}
	var srv *Server
	var err error
	switch m.Source.Type {
	case "postgres":
		srv, err = StartPostgres(ctx, rep.Server.DumpMajor, opts.Dir)
	case "mysql":
		srv, err = StartMariaDB(ctx, rep.Server.DumpMajor, opts.Dir)
	default:
		return "", nil, fmt.Errorf("drill: backup %s holds a %s dump; only postgres and mysql backups can be drilled in a throwaway server", m.ID, m.Source.Type)
	}
	if err != nil {
		return "", nil, err
	}
	rep.Server.Version, rep.Server.Major, rep.Server.Throwaway = srv.Version, srv.Major, true
	db := m.Source.Database
	if db == "" {
		db = "restored"
	}
	return srv.URL(db), func() { _ = srv.Stop() }, nil
}

// drillDatabaseName is a fresh database name for a drill on a shared server.
func drillDatabaseName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "dbarchive_drill_" + hex.EncodeToString(b[:])
}

// headCapture keeps the first bytes written to it and discards the rest.
type headCapture struct {
	buf   []byte
	limit int
}

func (h *headCapture) Write(p []byte) (int, error) {
	if room := h.limit - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// runCheck runs one user check: one row, first column true or non-zero.
func runCheck(ctx context.Context, q sources.Querier, c Check) Result {
	res := Result{Name: c.Name, Kind: "check"}
	rows, err := q.Query(ctx, c.SQL)
	switch {
	case err != nil:
		res.Detail = err.Error()
	case len(rows) != 1 || len(rows[0]) == 0:
		res.Detail = fmt.Sprintf("returned %d rows, want one", len(rows))
	case !truthy(rows[0][0]):
		res.Detail = fmt.Sprintf("returned %q, want true or non-zero", rows[0][0])
	default:
		res.Passed, res.Detail = true, "returned "+rows[0][0]
	}
	return res
}

// truthy is true for t/true (PostgreSQL's booleans) and non-zero numbers.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "t", "true":
		return true
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	return err == nil && f != 0
}

// checkTables finds every recorded table in the restored database with as
// many rows as the backup recorded.
func checkTables(ctx context.Context, q sources.Querier, sourceType string, tables []Table, rep *Report) error {
	if len(tables) == 0 {
		return nil
	}
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	if sourceType == "mysql" {
		quote = func(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
		lit = func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'" }
	}
	existing, err := q.Query(ctx, "SELECT table_schema, table_name FROM information_schema.tables")
	if err != nil {
		return fmt.Errorf("drill: listing the restored tables: %w", err)
	}
	have := map[string]bool{}
	for _, row := range existing {
		if len(row) == 2 {
			have[row[0]+"."+row[1]] = true
			have["."+row[1]] = true // MariaDB records no schema
		}
	}
	var present []Table
	for _, t := range tables {
		if !have[t.Schema+"."+t.Name] {
			rep.add(Result{Name: "table " + t.String(), Kind: "table", Detail: "recorded in the backup, missing after the restore"})
			continue
		}
		present = append(present, t)
	}
	// Counted a batch of tables per query: one round trip per table would
	// make a 100,000-table drill take hours.
	const batch = 200
	for i := 0; i < len(present); i += batch {
		part := present[i:min(i+batch, len(present))]
		var sel []string
		for j, t := range part {
			from := quote(t.Name)
			if t.Schema != "" && sourceType != "mysql" {
				from = quote(t.Schema) + "." + from
			}
			sel = append(sel, fmt.Sprintf("SELECT %d, %s, count(*) FROM %s", j, lit(t.String()), from))
		}
		rows, err := q.Query(ctx, strings.Join(sel, " UNION ALL "))
		if err != nil {
			return fmt.Errorf("drill: counting rows: %w", err)
		}
		counts := make([]int64, len(part))
		for _, row := range rows {
			if len(row) != 3 {
				continue
			}
			j, err1 := strconv.Atoi(row[0])
			n, err2 := strconv.ParseInt(row[2], 10, 64)
			if err1 == nil && err2 == nil && j >= 0 && j < len(part) {
				counts[j] = n
			}
		}
		for j, t := range part {
			res := Result{Name: "rows " + t.String(), Kind: "rows", Passed: counts[j] == t.Rows,
				Detail: fmt.Sprintf("%d rows, recorded %d", counts[j], t.Rows)}
			rep.add(res)
			rep.Tables++
			rep.Rows += counts[j]
		}
	}
	return nil
}

// RestoreToURL checks a --restore-to URL early: a database URL of a type
// that can be drilled.
func RestoreToURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("--restore-to: not a URL")
	}
	switch u.Scheme {
	case "postgres", "postgresql", "mysql", "mariadb":
		return nil
	}
	return fmt.Errorf("--restore-to %s: want a postgres:// or mysql:// database URL", sources.WithoutPassword(u))
}

// RecordedTables is the table list backup m recorded, for the drill to
// find again; nil when the backup recorded none (before format 3, or an
// http or exec source). A list that does not match its sha256 in the
// manifest is an error: the drill would check against a lie.
func RecordedTables(ctx context.Context, b *drivers.Bucket, prefix string, m *archiver.Manifest, ids *archiver.Identities) ([]Table, error) {
	l, err := archiver.ReadTables(ctx, b, prefix, m, ids)
	if err != nil || l == nil {
		return nil, err
	}
	out := make([]Table, len(l.Tables))
	for i, t := range l.Tables {
		out[i] = Table{Schema: t.Schema, Name: t.Name, Rows: t.Rows, Digest: t.Digest}
	}
	return out, nil
}

// checkDigests dumps the restored database again through the same scanner
// the backup used and compares each table's row digest with the recorded
// one. It runs only where the server's major is the dump's: another major
// may write the same values differently, which is no fault of the backup.
func checkDigests(ctx context.Context, tgt sources.Source, tables []Table, rep *Report) error {
	sc, ok := tgt.(sources.Scannable)
	var scanner dumpscan.Scanner
	if ok {
		scanner = sc.DumpScanner()
	}
	if scanner == nil || len(tables) == 0 || tables[0].Digest == "" {
		return nil
	}
	if err := tgt.Dump(ctx, scanner); err != nil {
		return fmt.Errorf("drill: dumping the restored database to compare digests: %w", err)
	}
	res, err := scanner.Close()
	if err != nil {
		return fmt.Errorf("drill: reading the restored database's dump: %w", err)
	}
	got := map[string]string{}
	for _, t := range res.Tables {
		got[t.QualifiedName()] = t.Digest
	}
	for _, t := range tables {
		d, found := got[t.String()]
		if !found {
			continue // reported by the table check
		}
		res := Result{Name: "digest " + t.String(), Kind: "digest", Passed: d == t.Digest, Detail: "rows' digest " + d}
		if !res.Passed {
			res.Detail = fmt.Sprintf("rows' digest %s, recorded %s: the restored rows differ from the dumped ones", d, t.Digest)
		}
		rep.add(res)
	}
	rep.DigestsChecked = true
	return nil
}

package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
)

func TestDirectAllowed(t *testing.T) {
	for _, c := range []struct {
		tool, server int
		want         bool
	}{
		{15, 15, true}, {16, 17, true}, {17, 17, true}, {18, 17, true},
		{17, 15, false}, {18, 16, false}, {15, 13, true},
	} {
		if got := directAllowed(c.tool, c.server); got != c.want {
			t.Errorf("directAllowed(pg_restore %d, server %d) = %v, want %v", c.tool, c.server, got, c.want)
		}
	}
}

// choppy returns its data in reads of random sizes.
type choppy struct {
	data []byte
	rnd  *rand.Rand
}

func (c *choppy) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rnd.IntN(100<<10))], c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestHoldBack(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, holdBackSize - 1, holdBackSize, holdBackSize + 1, 3*holdBackSize + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		t.Run(fmt.Sprintf("%d bytes, clean end", size), func(t *testing.T) {
			got, err := io.ReadAll(&holdBack{r: &choppy{data: data, rnd: rnd}, buf: make([]byte, 0, 4*holdBackSize)})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: read %d bytes, %v; want them all and no error", size, len(got), err)
			}
		})
		t.Run(fmt.Sprintf("%d bytes, broken end", size), func(t *testing.T) {
			// Every byte arrives, then an error instead of io.EOF: what
			// the archiver's reader does when a checksum does not match.
			r := io.MultiReader(&choppy{data: data, rnd: rnd}, iotest.ErrReader(errBroken))
			got, err := io.ReadAll(&holdBack{r: r, buf: make([]byte, 0, 4*holdBackSize)})
			if !errors.Is(err, errBroken) {
				t.Fatalf("size %d: error %v, want the reader's", size, err)
			}
			if want := max(size-holdBackSize, 0); len(got) > want || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("size %d: %d bytes got through before the error, want at most %d, in order", size, len(got), want)
			}
		})
	}
}

// endBroken yields all of data, then waits until seen() holds or the wait
// runs out, then fails instead of returning io.EOF: a backup whose last
// checksum does not match, with time for a restore that is not held back
// to commit.
type endBroken struct {
	data []byte
	wait time.Duration
	seen func() bool
	saw  bool
}

func (e *endBroken) Read(p []byte) (int, error) {
	if len(e.data) > 0 {
		n := copy(p, e.data)
		e.data = e.data[n:]
		return n, nil
	}
	for deadline := time.Now().Add(e.wait); !e.saw && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		e.saw = e.seen()
	}
	return 0, errBroken
}

// TestRestoreFailingAtTheEndCommitsNothing is the restore's promise with
// the check that fails last: every byte of the dump reached the tool, and
// still nothing is committed. It waits up to 3 s after the last byte for
// the restored table to show; without the hold-back, pg_restore commits in
// that time (the "not held back" case shows the wait is long enough).
func TestRestoreFailingAtTheEndCommitsNothing(t *testing.T) {
	srv := testdb.Postgres(t)
	name, src := srv.Create(t, "pg_endsrc")
	srv.Populate(t, src, 20000)
	for _, format := range []string{FormatCustom, FormatPlain, FormatTar} {
		var buf bytes.Buffer
		if err := open(t, srv.URL(name), sources.Options{Format: format}).Dump(context.Background(), &buf); err != nil {
			t.Fatalf("Dump: %v", err)
		}
		dump := buf.Bytes()
		if len(dump) < 4*holdBackSize {
			t.Fatalf("the %s dump has %d bytes: too small to show anything", format, len(dump))
		}
		run := func(t *testing.T, wantCommitted bool) {
			target, db := srv.Create(t, "pg_end")
			if _, err := db.Exec(`CREATE TABLE keep (v text)`); err != nil {
				t.Fatal(err)
			}
			dst := open(t, srv.URL(target), sources.Options{Format: format})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r := &endBroken{data: dump, wait: 3 * time.Second, seen: func() bool { return hasTable(t, db, "big") }}
			if err := dst.Restore(ctx, r); !errors.Is(err, errBroken) {
				t.Fatalf("Restore = %v, want the reader's error", err)
			}
			if r.saw != wantCommitted {
				t.Fatalf("restored table visible before the reader failed: %v, want %v", r.saw, wantCommitted)
			}
			if !wantCommitted {
				if got := publicTables(t, db); !slices.Equal(got, []string{"keep"}) {
					t.Fatalf("target tables after the failed restore: %v, want [keep]", got)
				}
			}
		}
		t.Run(format, func(t *testing.T) { run(t, false) })
		if format == FormatCustom && directAvailable(t, srv) {
			t.Run("custom not held back", func(t *testing.T) {
				defer func(n int) { holdBackSize = n }(holdBackSize)
				holdBackSize = 0
				run(t, true)
			})
		}
	}
}

// directAvailable tells whether this machine's pg_restore loads custom
// archives over its own connection (directAllowed).
func directAvailable(t *testing.T, srv *testdb.Server) bool {
	t.Helper()
	direct, err := open(t, srv.URL("postgres"), sources.Options{}).restoresDirectly(context.Background(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("custom archives restore directly with pg_restore: %v", direct)
	return direct
}

func hasTable(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Once the second pg_restore has ended cleanly (its reader closed with
// errPropsRead), the tee passes the rest of the stream through without
// copying it, and no error; any other end of that reader fails the restore.
func TestTeeStopsOnceThePropsAreRead(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	for _, tc := range []struct {
		name  string
		close error
	}{{"props read", errPropsRead}, {"props failed", errors.New("pg_restore failed")}} {
		t.Run(tc.name, func(t *testing.T) {
			tr, tw := io.Pipe()
			teed := make(chan int64, 1)
			go func() {
				n, _ := io.CopyN(io.Discard, tr, 64<<10)
				tr.CloseWithError(tc.close)
				teed <- n
			}()
			out, err := io.ReadAll(&teeToPipe{r: bytes.NewReader(src), w: tw})
			if n := <-teed; n != 64<<10 {
				t.Fatalf("the second reader got %d bytes, want %d", n, 64<<10)
			}
			if tc.close == errPropsRead {
				if err != nil || !bytes.Equal(out, src) {
					t.Fatalf("read %d of %d bytes, err %v", len(out), len(src), err)
				}
				return
			}
			if !errors.Is(err, tc.close) {
				t.Fatalf("err = %v, want the second reader's %v", err, tc.close)
			}
		})
	}
}

package exec

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dbarchive/dbarchive/sources"
)

func open(t *testing.T, raw string) sources.Source {
	t.Helper()
	s, err := sources.Open(raw, sources.Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", raw, err)
	}
	return s
}

func TestDump(t *testing.T) {
	// #, % and ? would be mangled by URL parsing; quotes group words.
	s := open(t, `exec:sh -c 'printf "%s|" "# 100%?" "$0"' 'two words'`)
	var out bytes.Buffer
	if err := s.Dump(context.Background(), &out); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if got := out.String(); got != "# 100%?|two words|" {
		t.Fatalf("stdout = %q", got)
	}
	if s.Type() != "exec" || s.Database() != "" {
		t.Fatalf("Type %q, Database %q", s.Type(), s.Database())
	}
}

func TestDumpFailsHalfWay(t *testing.T) {
	s := open(t, `exec:sh -c 'echo partial; echo "disk on fire" >&2; exit 3'`)
	var out bytes.Buffer
	err := s.Dump(context.Background(), &out)
	var te *sources.ToolError
	if !errors.As(err, &te) || te.ExitCode != 3 || te.Stderr != "disk on fire" {
		t.Fatalf("Dump = %v, want a ToolError with exit 3 and the stderr tail", err)
	}
	for _, want := range []string{"exit status 3", "disk on fire", "sh failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRestore(t *testing.T) {
	out := filepath.Join(t.TempDir(), "restored")
	s := open(t, `exec:sh -c 'cat > "$0"' `+out)
	r, ok := s.(sources.Restorer)
	if !ok {
		t.Fatal("exec source is not a Restorer")
	}
	if err := r.CheckRestore(context.Background()); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("row\x00\xff\n"), 100_000)
	if err := r.Restore(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored %d bytes (err %v), want %d", len(got), err, len(data))
	}
}

func TestDescribeHidesURLPassword(t *testing.T) {
	s := open(t, `exec:mongodump --archive --uri mongodb://backup:hunter2@db:27017/app`)
	if d := s.Describe(); strings.Contains(d, "hunter2") || !strings.Contains(d, "mongodb://backup:[redacted]@db") {
		t.Fatalf("Describe = %q", d)
	}
	err := open(t, `exec:sh -c 'echo "auth failed: $0" >&2; exit 1' mongodb://backup:hunter2@db`).Dump(context.Background(), &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Dump = %v, want an error without the password", err)
	}
}

func TestCheck(t *testing.T) {
	if err := open(t, "exec:sh -c true").Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	err := open(t, "exec:dbarchive-no-such-dumper --all").Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "dbarchive-no-such-dumper is not on PATH") {
		t.Fatalf("Check = %v, want an error naming the program", err)
	}
}

func TestOpenRejects(t *testing.T) {
	cases := map[string]sources.Options{
		"exec:":                {},
		"exec:   ":             {},
		`exec:sh -c 'unclosed`: {},
		"exec:pg_dumpall":      {Password: "x"},
		"exec:mysqldump":       {CreateDatabase: true},
	}
	for raw, opts := range cases {
		if _, err := sources.Open(raw, opts); err == nil {
			t.Errorf("Open(%q, %+v) succeeded", raw, opts)
		}
	}
}

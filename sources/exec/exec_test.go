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

// New runs the argument list exactly: no word of it is split, unquoted or
// expanded, whatever characters it holds.
func TestNewTakesArgvAsIs(t *testing.T) {
	argv := []string{"sh", "-c", `printf '%s|' "$@"`, "sh", "two words", `it's "quoted"`, "$HOME", "# not a comment", `back\slash`, "", "tab\there"}
	s, err := New(argv)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Dump(context.Background(), &out); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if want := strings.Join(argv[4:], "|") + "|"; out.String() != want {
		t.Fatalf("stdout = %q, want %q", out.String(), want)
	}
	// Describe quotes each word so that splitting it gives argv back.
	back, err := Split(strings.TrimPrefix(s.Describe(), "exec:"))
	if err != nil || strings.Join(back, "\x00") != strings.Join(argv, "\x00") {
		t.Fatalf("Split(Describe()) = %q, %v; want %q", back, err, argv)
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

// A command line that needs a shell is refused instead of being run with
// its $VAR, pipe or redirection taken as literal words.
func TestSplitRefusesShellSyntax(t *testing.T) {
	for _, line := range []string{
		"pg_dumpall --host $PGHOST", `echo "$(id)"`, "echo `id`", "pg_dumpall | gzip",
		"pg_dumpall > /tmp/x", "true; false", "true && false", "PGHOST=x pg_dumpall", "sleep 1 &",
	} {
		_, err := sources.Open("exec:"+line, sources.Options{})
		if err == nil || !strings.Contains(err.Error(), "needs a shell") {
			t.Errorf("Open(exec:%s) = %v, want a refusal naming the shell", line, err)
		}
	}
	got, err := Split(`mongodump --archive "--query={\"a\": 1}" 'x y' z\ w`)
	if err != nil || strings.Join(got, "|") != `mongodump|--archive|--query={"a": 1}|x y|z w` {
		t.Fatalf("Split = %q, %v", got, err)
	}
}

package sources

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func sh(script string, secrets ...string) *Command {
	return &Command{Tool: "sh", Path: "sh", Args: []string{"-c", script}, Secrets: secrets}
}

func TestRunStreamsStdout(t *testing.T) {
	var out bytes.Buffer
	if err := sh(`printf 'hello\n'; echo noise >&2`).Run(context.Background(), nil, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.String() != "hello\n" {
		t.Fatalf("stdout = %q", out.String())
	}
}

func TestRunFailureCarriesStderrTail(t *testing.T) {
	var out bytes.Buffer
	err := sh(`echo partial; echo "dump: boom" >&2; exit 3`).Run(context.Background(), nil, &out)
	var te *ToolError
	if !errors.As(err, &te) {
		t.Fatalf("Run = %v, want a ToolError", err)
	}
	if te.Tool != "sh" || te.ExitCode != 3 || te.Stderr != "dump: boom" {
		t.Fatalf("ToolError = %+v", te)
	}
	if got := err.Error(); got != "sh failed (exit status 3): dump: boom" {
		t.Fatalf("Error() = %q", got)
	}
	if out.String() != "partial\n" {
		t.Fatalf("stdout = %q", out.String())
	}
}

func TestRunRedactsSecrets(t *testing.T) {
	err := sh(`echo "FATAL: password s3cr3t-pw rejected" >&2; exit 1`, "s3cr3t-pw", "").Run(context.Background(), nil, io.Discard)
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), "password [redacted] rejected") {
		t.Fatalf("Run = %v, want the password redacted", err)
	}
}

func TestRunKeepsOnlyTheTail(t *testing.T) {
	err := sh(`head -c 100000 /dev/zero | tr '\0' x >&2; echo >&2; echo "the reason" >&2; exit 1`).Run(context.Background(), nil, io.Discard)
	var te *ToolError
	if !errors.As(err, &te) {
		t.Fatalf("Run = %v", err)
	}
	if len(te.Stderr) > StderrTail+len("…") || !strings.HasSuffix(te.Stderr, "the reason") {
		t.Fatalf("tail is %d bytes ending %q", len(te.Stderr), te.Stderr[max(0, len(te.Stderr)-20):])
	}
}

func TestTailDropsSecretCutByWindow(t *testing.T) {
	const secret = "SECRETPASSWORD"
	tb := newTailBuffer(16, []string{secret})
	_, _ = tb.Write([]byte("0123456789" + secret + "\ntail line"))
	got := tb.String()
	for k := 3; k < len(secret); k++ {
		if strings.Contains(got, secret[len(secret)-k:]) {
			t.Fatalf("tail %q shows the end of the secret", got)
		}
	}
	if !strings.HasSuffix(got, "tail line") {
		t.Fatalf("tail = %q", got)
	}
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelledAt := make(chan time.Time, 1)
	go func() {
		// Cancel once the grandchild runs (its pid is written), not at a
		// fixed time a loaded machine may reach before the shell forks.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				break
			}
		}
		cancelledAt <- time.Now()
		cancel()
	}()
	// The grandchild holds stdout open: only a group kill ends the copy.
	err := sh(`sleep 60 & echo $! > `+pidFile+`; wait`).Run(ctx, nil, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want Canceled", err)
	}
	if d := time.Since(<-cancelledAt); d > 3*time.Second {
		t.Fatalf("Run took %v after the cancel", d)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The grandchild is gone, or a zombie waiting for its new parent.
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errBroken = errors.New("input broke")

type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBroken
	}
	k := min(len(p), b.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	b.n -= k
	return k, nil
}

// A tool must never see a clean end of input for a stream that broke: psql
// would commit what it had read.
func TestRunBrokenInputKillsBeforeEOF(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "saw-eof")
	err := sh(`cat > `+filepath.Join(dir, "in")+`; touch `+marker).Run(context.Background(), &brokenReader{n: 1 << 20}, nil)
	if !errors.Is(err, errBroken) {
		t.Fatalf("Run = %v, want the reader's error", err)
	}
	if _, serr := os.Stat(marker); serr == nil {
		t.Fatal("the tool saw end of input although the reader failed")
	}
}

func TestRunToolStopsReading(t *testing.T) {
	err := sh(`head -c 10 >/dev/null`).Run(context.Background(), bytes.NewReader(make([]byte, 4<<20)), nil)
	if err == nil || !strings.Contains(err.Error(), "before reading all its input") {
		t.Fatalf("Run = %v, want an error saying the input was not all read", err)
	}
}

func TestRunWriterFails(t *testing.T) {
	errUpload := errors.New("upload aborted")
	err := (&Command{Tool: "yes", Path: "yes"}).Run(context.Background(), nil, writerFunc(func(p []byte) (int, error) { return 0, errUpload }))
	if !errors.Is(err, errUpload) {
		t.Fatalf("Run = %v, want the writer's error", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRunMissingProgram(t *testing.T) {
	err := (&Command{Tool: "nosuchtool", Path: "dbarchive-no-such-tool"}).Run(context.Background(), nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "nosuchtool: cannot start") {
		t.Fatalf("Run = %v", err)
	}
}

func TestLookTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := LookTool("install it", "pg_dump"); err == nil || err.Error() != "pg_dump is not on PATH; install it" {
		t.Errorf("LookTool = %v", err)
	}
	if _, err := LookTool("install it", "mariadb-dump", "mysqldump"); err == nil || err.Error() != "neither mariadb-dump nor mysqldump is on PATH; install it" {
		t.Errorf("LookTool = %v", err)
	}
}

func TestOpenOpaqueKeepsRest(t *testing.T) {
	var got *url.URL
	Register(func(u *url.URL, _ Options) (Source, error) { got = u; return nil, nil }, "sourcestest")
	const rest = `sh -c 'echo "# 100%" ?x'`
	if _, err := Open("sourcestest:"+rest, Options{}); err != nil {
		t.Fatal(err)
	}
	if got.Opaque != rest || got.Scheme != "sourcestest" {
		t.Fatalf("opener got %#v", got)
	}
	if _, err := Open("sourcestest://u:pw@h/%zz", Options{}); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("Open of a bad URL = %v, want an error without the password", err)
	}
	if _, err := Open("nosuch://x", Options{}); err == nil || !strings.Contains(err.Error(), "sourcestest") {
		t.Fatalf("Open of an unknown scheme = %v, want the known schemes listed", err)
	}
}

func TestResolvePassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte("from-file\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("postgres://u:from-url@h/db")
	cases := []struct {
		opts Options
		u    *url.URL
		want string
	}{
		{Options{Password: "opt", PasswordFile: file}, u, "opt"},
		{Options{PasswordFile: file}, u, "from-file"},
		{Options{}, u, ""}, // Open refuses a URL with a password
		{Options{}, &url.URL{Scheme: "postgres", User: url.User("u"), Host: "h"}, ""},
	}
	for _, c := range cases {
		got, err := c.opts.ResolvePassword(c.u)
		if err != nil || got != c.want {
			t.Errorf("ResolvePassword(%+v) = %q, %v; want %q", c.opts, got, err, c.want)
		}
	}
	if _, err := (Options{PasswordFile: filepath.Join(t.TempDir(), "missing")}).ResolvePassword(nil); err == nil {
		t.Error("a missing password file is not an error")
	}
}

// A password inside a source URL is refused: the URL is a process argument.
func TestOpenRefusesPasswordInURL(t *testing.T) {
	for _, raw := range []string{"sourcestest://u:hunter2-pw@h/db", "sourcestest://:hunter2-pw@h/db"} {
		_, err := Open(raw, Options{})
		if !errors.Is(err, ErrPasswordInURL) || strings.Contains(err.Error(), "hunter2-pw") {
			t.Errorf("Open(%s) = %v, want ErrPasswordInURL without the password", raw, err)
		}
	}
	if _, err := Open("sourcestest://u@h/db", Options{Password: "x"}); err != nil {
		t.Errorf("Open with a user and no password: %v", err)
	}
}

func TestWithoutPassword(t *testing.T) {
	u, _ := url.Parse("mysql://root:hunter2@127.0.0.1:3306/app")
	if got := WithoutPassword(u); got != "mysql://root@127.0.0.1:3306/app" {
		t.Fatalf("WithoutPassword = %q", got)
	}
}

// TestHelperRunSleeper is not a test: TestToolDiesWithDbarchive runs the test
// binary with it as a stand-in dbarchive, which starts a tool and waits.
func TestHelperRunSleeper(t *testing.T) {
	pidFile := os.Getenv("DBARCHIVE_TEST_SLEEPER_PID")
	if pidFile == "" {
		// Run by go test itself: nothing to do (the os/exec helper-process
		// pattern), and no skip to count.
		return
	}
	_ = sh(`echo $$ > `+pidFile+`.tmp; mv `+pidFile+`.tmp `+pidFile+`; exec sleep 60`).Run(context.Background(), strings.NewReader(""), io.Discard)
	os.Exit(0)
}

// A tool must not outlive a dbarchive killed with SIGKILL: a restore tool
// would take its closed stdin for the end of the dump.
func TestToolDiesWithDbarchive(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperRunSleeper$")
	helper.Env = append(os.Environ(), "DBARCHIVE_TEST_SLEEPER_PID="+pidFile)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(30 * time.Second)
	for pid == 0 {
		if b, err := os.ReadFile(pidFile); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		} else if time.Now().After(deadline) {
			_ = helper.Process.Kill()
			t.Fatal("the helper did not start its tool")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the tool %d outlived the killed dbarchive: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A tool that may stop reading early (MayStopReading) is no error when it
// does, and the rest of its input is left unread for the caller, who checks
// the stream where it reads it in full (a restore's second pg_restore needs
// only the archive's first bytes). A tool that fails, or an input that
// breaks before it stops, is still an error.
func TestRunMayStopReading(t *testing.T) {
	ctx := context.Background()
	c := sh(`head -c 10 >/dev/null`)
	c.MayStopReading = true
	data := bytes.NewReader(make([]byte, 64<<20))
	if err := c.Run(ctx, data, nil); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if data.Len() == 0 {
		t.Fatal("the input was read to its end after the tool had stopped reading")
	}

	failing := sh(`head -c 10 >/dev/null; exit 3`)
	failing.MayStopReading = true
	var te *ToolError
	if err := failing.Run(ctx, bytes.NewReader(make([]byte, 4<<20)), nil); !errors.As(err, &te) || te.ExitCode != 3 {
		t.Fatalf("Run of a tool that exits 3 = %v, want its ToolError", err)
	}

	reading := sh(`cat >/dev/null`)
	reading.MayStopReading = true
	if err := reading.Run(ctx, io.MultiReader(bytes.NewReader(make([]byte, 4<<20)), &brokenReader{}), nil); !errors.Is(err, errBroken) {
		t.Fatalf("Run over a broken input = %v, want its error", err)
	}
}

// A tool inherits dbarchive's environment without its password variables
// and its age identity: a tool gets a password only as its source passes it
// on, and never a key.
func TestToolsDoNotInheritSecrets(t *testing.T) {
	t.Setenv("DBARCHIVE_SOURCE_PASSWORD", "pw-not-for-tools")
	t.Setenv("DBARCHIVE_IDENTITY", "AGE-SECRET-KEY-1NOTFORTOOLS")
	t.Setenv("DBARCHIVE_REPO", "file:///kept")
	var out bytes.Buffer
	if err := sh(`env`).Run(context.Background(), nil, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	env := out.String()
	if strings.Contains(env, "pw-not-for-tools") || strings.Contains(env, "NOTFORTOOLS") || !strings.Contains(env, "DBARCHIVE_REPO=file:///kept") {
		t.Fatalf("tool environment:\n%s", env)
	}
}

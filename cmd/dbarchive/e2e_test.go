package main

// The tests in this package run dbarchive as a real process: TestMain builds
// the binary (and the testgen stream generator) once, and each test runs it
// with a controlled environment against the machine's database servers, a
// temp-dir repo or an emulator. They check what a user sees — exit codes,
// messages, what list shows, what lands in the repo — and not the internals,
// which the archiver's own tests cover.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/archiver"
)

var (
	dbarchiveBin string // the built CLI
	testgenBin   string // the built stream generator
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dbarchive-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		dbarchiveBin = filepath.Join(dir, "dbarchive")
		testgenBin = filepath.Join(dir, "testgen")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		for bin, pkg := range map[string]string{
			dbarchiveBin: "github.com/dbarchive/dbarchive/cmd/dbarchive",
			testgenBin:   "github.com/dbarchive/dbarchive/internal/testgen/cmd/testgen",
		} {
			out, err := exec.Command(gobin, "build", "-o", bin, pkg).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// cli runs the built dbarchive with an environment that holds only what
// the test gives it: a private HOME and XDG_DATA_HOME (so the default repo
// is the test's), PATH, and the variables set with setenv. Nothing of the
// developer's DBARCHIVE_*, AWS_* or cloud settings leaks in.
type cli struct {
	t       *testing.T
	env     map[string]string
	dataDir string // XDG_DATA_HOME
	dir     string // working directory; "" is the test's
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	home := t.TempDir()
	c := &cli{t: t, dataDir: filepath.Join(home, "data"), env: map[string]string{
		"PATH":          os.Getenv("PATH"),
		"HOME":          home,
		"XDG_DATA_HOME": filepath.Join(home, "data"),
		"TMPDIR":        os.TempDir(),
		"LANG":          "C.UTF-8",
	}}
	return c
}

func (c *cli) setenv(k, v string) *cli { c.env[k] = v; return c }

func (c *cli) environ() []string {
	out := make([]string, 0, len(c.env))
	for k, v := range c.env {
		out = append(out, k+"="+v)
	}
	return out
}

// result is one finished run.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	state          *os.ProcessState
}

func (r result) String() string {
	return fmt.Sprintf("dbarchive %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// command builds the exec.Cmd for one run.
func (c *cli) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, dbarchiveBin, args...)
	cmd.Env = c.environ()
	cmd.Dir = c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	return cmd, &stdout, &stderr
}

// run runs dbarchive to its end (at most 5 minutes) and returns what it did.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, stdout, stderr := c.command(ctx, args...)
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), state: cmd.ProcessState}
	if cmd.ProcessState == nil {
		c.t.Fatalf("dbarchive %s did not run: %v", strings.Join(args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	return r
}

// ok runs dbarchive and fails the test unless it exits 0.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("%v", r)
	}
	return r
}

// fail runs dbarchive and fails the test unless it exits with code.
func (c *cli) fail(code int, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code {
		c.t.Fatalf("want exit %d; got %v", code, r)
	}
	return r
}

// backup runs a backup with -o json and returns its manifest; an empty
// source or repo leaves the flag out.
func (c *cli) backup(source, repo string, extra ...string) *archiver.Manifest {
	c.t.Helper()
	args := append([]string{"backup", "-o", "json"}, extra...)
	if source != "" { // "": DBARCHIVE_SOURCE
		args = append(args, "--source", source)
	}
	if repo != "" { // "": DBARCHIVE_REPO or the default repo
		args = append(args, "--repo", repo)
	}
	r := c.ok(args...)
	var m archiver.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		c.t.Fatalf("backup -o json printed no manifest: %v\n%v", err, r)
	}
	return &m
}

// list runs list -o json.
func (c *cli) list(repo string) []archiver.Manifest {
	c.t.Helper()
	args := []string{"list", "-o", "json"}
	if repo != "" {
		args = append(args, "--repo", repo)
	}
	r := c.ok(args...)
	var out []archiver.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		c.t.Fatalf("list -o json: %v\n%v", err, r)
	}
	return out
}

// listed fails the test unless list shows exactly the backups ids.
func (c *cli) listed(repo string, ids ...string) []archiver.Manifest {
	c.t.Helper()
	got := c.list(repo)
	var gotIDs []string
	for _, m := range got {
		gotIDs = append(gotIDs, m.ID)
	}
	if strings.Join(gotIDs, ",") != strings.Join(ids, ",") {
		c.t.Fatalf("list shows %v, want %v", gotIDs, ids)
	}
	return got
}

// gen is an exec: source URL running testgen with the given flags.
func gen(flags string) string { return "exec:" + testgenBin + " " + flags }

// repoFiles lists the files under an fs repo's directory, relative to it.
func repoFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// fileURL is the repo URL of a directory.
func fileURL(dir string) string { return "file://" + dir }

// execCommand is exec.Command; a variable so the helpers read alike.
var execCommand = exec.Command

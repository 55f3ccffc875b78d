package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// StderrTail is how much of a tool's stderr an error keeps: the end of it,
// where dump and restore tools put the reason they stopped.
const StderrTail = 4 << 10

// waitDelay bounds how long Wait waits for a killed tool's pipes to close, in
// case something outside its process group still holds them.
const waitDelay = 5 * time.Second

// Command is one run of an external tool as a source builds it. Drivers
// build it in small methods and run it with Run, so that tests can inspect
// exactly what would run — program, arguments, added environment — without
// running it. Credentials go in Env (or a private file named in Args), never
// in Args.
type Command struct {
	// Tool names the program in errors: pg_dump, mariadb, ...
	Tool string
	// Path is the program; a bare name is looked up on PATH when it runs.
	Path string
	// Args follow the program name.
	Args []string
	// Env is added to the inherited environment; a later entry for the same
	// variable wins.
	Env []string
	// Secrets are values that must never appear in an error: they are
	// replaced in the stderr tail.
	Secrets []string
	// MayStopReading tells Run that the tool may legitimately stop reading
	// its input before the end (pg_restore reading only an archive's table
	// of contents). Run then stops feeding it and leaves the rest of the
	// input unread: the caller reads, and checks, the stream elsewhere (a
	// drain here copied a whole restore's stream a second time).
	MayStopReading bool
	// ExtraFiles are passed to the tool as descriptors 3, 4, … (see
	// exec.Cmd.ExtraFiles); Run closes them once the tool has started.
	ExtraFiles []*os.File
}

// Cmd builds the exec.Cmd that Run starts. The process gets its own process
// group so that cancelling ctx kills the tool and everything it started, and
// on Linux it dies with dbarchive.
func (c *Command) Cmd(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = append(inheritedEnv(), c.Env...)
	cmd.ExtraFiles = c.ExtraFiles
	ownProcessGroup(cmd)
	dieWithParent(cmd)
	cmd.Cancel = func() error { return killTree(cmd) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// inheritedEnv is our environment without dbarchive's own password
// variables (DBARCHIVE_SOURCE_PASSWORD, …) and its age identity
// (DBARCHIVE_IDENTITY): a tool gets a password only the way its source
// passes it on, and never a key.
func inheritedEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "DBARCHIVE_") && (strings.HasSuffix(name, "PASSWORD") || name == "DBARCHIVE_IDENTITY")
	})
}

// ToolError is a tool that exited non-zero or was killed. Its message holds
// the tool name, the exit status and the tail of stderr with credentials
// redacted.
type ToolError struct {
	Tool string
	// Status is "exit status N" or "signal: killed".
	Status string
	// ExitCode is the exit status, or -1 when a signal ended the tool.
	ExitCode int
	// Stderr is the last StderrTail bytes of stderr, redacted and trimmed.
	Stderr string
	// Err is the cause: the *exec.ExitError, or the context's error when
	// the tool was killed because the context ended.
	Err error
}

func (e *ToolError) Error() string {
	msg := fmt.Sprintf("%s failed (%s)", e.Tool, e.Status)
	if errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded) {
		msg = fmt.Sprintf("%s killed: %v", e.Tool, e.Err)
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *ToolError) Unwrap() error { return e.Err }

// Run starts the command, copies stdin (when not nil) to its standard input
// and its standard output to stdout (when nil, the output joins the stderr
// tail), and waits for it.
//
// Run returns nil only when the tool exited 0 after reading all of stdin and
// all its output reached stdout. When stdin's Read fails, the tool is killed
// before its input is closed: a tool must never see a clean end of input
// for a stream that broke, because psql would commit what it read. When
// stdout's Write fails, or ctx ends, the tool's process group is killed too.
// Run does not return before the process has been waited for, so it leaves
// no zombie.
func (c *Command) Run(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	cmd := c.Cmd(ctx)
	tail := newTailBuffer(StderrTail, c.Secrets)
	cmd.Stderr = tail

	var outPipe io.ReadCloser
	if stdout == nil {
		cmd.Stdout = tail
	} else {
		p, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("%s: %w", c.Tool, err)
		}
		growPipe(p)
		outPipe = p
	}
	var inPipe io.WriteCloser
	if stdin != nil {
		p, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("%s: %w", c.Tool, err)
		}
		growPipe(p)
		inPipe = p
	}
	err := cmd.Start()
	// The child has its copies; ours must not keep a pipe open.
	for _, f := range c.ExtraFiles {
		_ = f.Close()
	}
	if err != nil {
		// The error names the program and PATH, nothing from Env.
		return fmt.Errorf("%s: cannot start: %w", c.Tool, err)
	}

	var (
		killOnce sync.Once
		kill     = func() { killOnce.Do(func() { _ = killTree(cmd) }) }
		feed     = make(chan feedResult, 1)
	)
	if inPipe != nil {
		go func() { feed <- feedInput(inPipe, stdin, kill, c.MayStopReading) }()
	} else {
		feed <- feedResult{}
	}

	var writeErr error
	if outPipe != nil {
		w := &errWriter{w: stdout}
		// Not io.Copy: *os.File's WriteTo would copy 32 KiB at a time.
		if _, err := io.CopyBuffer(w, struct{ io.Reader }{outPipe}, make([]byte, copySize)); err != nil {
			if w.err != nil {
				writeErr = w.err
			}
			// A read error on the pipe only happens once the tool is gone;
			// Wait reports why.
			kill()
		}
	}
	// The input is finished with before Wait: until Wait reaps the tool its
	// pid cannot be reused, so a kill of its group cannot hit a stranger.
	fed := <-feed
	waitErr := cmd.Wait()

	switch {
	case fed.readErr != nil:
		return fmt.Errorf("%s: reading its input: %w", c.Tool, fed.readErr)
	case writeErr != nil:
		return fmt.Errorf("%s: writing its output: %w", c.Tool, writeErr)
	}
	if waitErr != nil {
		te := &ToolError{Tool: c.Tool, Status: waitErr.Error(), ExitCode: -1, Stderr: tail.String(), Err: waitErr}
		var exitErr *exec.ExitError
		if errors.As(waitErr, &exitErr) {
			te.ExitCode = exitErr.ExitCode()
			te.Status = exitErr.String()
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			te.Err = ctxErr
		}
		return te
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", c.Tool, ctxErr)
	}
	if fed.writeErr != nil {
		return &ToolError{Tool: c.Tool, Status: "exited before reading all its input", Stderr: tail.String(), Err: fed.writeErr}
	}
	return nil
}

// pipeSize is the capacity asked for the pipes to and from a tool, and
// copySize the size of one read or write on them: 256 KiB a system call
// instead of 32 KiB (io.Copy's) cuts the restore's system time.
const (
	pipeSize = 1 << 20
	copySize = 256 << 10
)

type feedResult struct {
	readErr  error // the caller's reader failed: the input is broken
	writeErr error // the tool stopped reading: Wait says why
}

// feedInput copies r into the tool's stdin. On a read error it kills the tool
// first and leaves the pipe open (Wait closes it after the tool is dead), so
// the tool never sees a clean end of input. With mayStop, a tool that stops
// reading is no error, and the rest of r is left unread.
func feedInput(in io.WriteCloser, r io.Reader, kill func(), mayStop bool) feedResult {
	er := &errReader{r: r}
	// Not io.Copy: *os.File's ReadFrom would copy 32 KiB at a time.
	_, err := io.CopyBuffer(struct{ io.Writer }{in}, er, make([]byte, copySize))
	if er.err == nil && err != nil && mayStop {
		_ = in.Close()
		return feedResult{}
	}
	if er.err != nil {
		kill()
		return feedResult{readErr: er.err}
	}
	if err != nil {
		return feedResult{writeErr: err}
	}
	if err := in.Close(); err != nil {
		return feedResult{writeErr: err}
	}
	return feedResult{}
}

// errReader records its reader's error so a copy can tell a broken input from
// a tool that stopped reading.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// errWriter records its writer's error, for the same reason.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	} else if n < len(p) {
		e.err = io.ErrShortWrite
		err = e.err
	}
	return n, err
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	keep    int
	buf     []byte
	dropped bool
	secrets []string
}

func newTailBuffer(keep int, secrets []string) *tailBuffer {
	return &tailBuffer{keep: keep, secrets: secrets}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.keep {
		t.dropped = true
		// Compact once the slice has doubled, so writes stay amortised O(1).
		if len(t.buf) > 2*t.keep {
			t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.keep:]...)
		}
	}
	return len(p), nil
}

// String returns the tail, redacted and trimmed of surrounding space.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.keep {
		b = b[len(b)-t.keep:]
	}
	if t.dropped {
		// The window may start inside a secret, where a full-match redaction
		// cannot see it: drop any leading end of a secret, then start at a line.
		b = trimSecretSuffix(b, t.secrets)
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
		b = append([]byte("…"), b...)
	}
	return strings.TrimSpace(string(Redact(b, t.secrets)))
}

// trimSecretSuffix drops the longest proper suffix of a secret that b starts with.
func trimSecretSuffix(b []byte, secrets []string) []byte {
	cut := 0
	for _, s := range secrets {
		for k := len(s) - 1; k > cut; k-- {
			if bytes.HasPrefix(b, []byte(s[len(s)-k:])) {
				cut = k
				break
			}
		}
	}
	return b[cut:]
}

// Redact replaces every occurrence of each non-empty secret in b.
func Redact(b []byte, secrets []string) []byte {
	for _, s := range secrets {
		if s != "" {
			b = bytes.ReplaceAll(b, []byte(s), []byte("[redacted]"))
		}
	}
	return b
}

// LookTool returns the first of the candidate programs found on PATH, or an
// error naming them all. hint says how to install them.
func LookTool(hint string, candidates ...string) (string, error) {
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	names := strings.Join(candidates, " or ")
	if len(candidates) > 1 {
		names = "neither " + strings.Join(candidates, " nor ")
		return "", fmt.Errorf("%s is on PATH; %s", names, hint)
	}
	return "", fmt.Errorf("%s is not on PATH; %s", names, hint)
}

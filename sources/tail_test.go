package sources

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// failWithStderr runs a tool that writes stderr exactly (no newline added)
// and exits 1, and returns the stderr tail its error carries.
func failWithStderr(t *testing.T, stderr string, secrets ...string) string {
	t.Helper()
	c := sh(`printf '%s' "$STDERR_TEXT" >&2; exit 1`, secrets...)
	c.Env = []string{"STDERR_TEXT=" + stderr}
	err := c.Run(context.Background(), nil, io.Discard)
	var te *ToolError
	if !errors.As(err, &te) || te.ExitCode != 1 {
		t.Fatalf("Run = %v, want a ToolError with exit code 1", err)
	}
	if !strings.HasSuffix(err.Error(), te.Stderr) {
		t.Fatalf("the error %q does not end with the stderr tail %q", err, te.Stderr)
	}
	return te.Stderr
}

// TestTailDropsSecretCutByWindowWithoutNewline: when the stderr window
// starts inside a secret and no line break follows (a tool that prints one
// long line), the part of the secret left in the window is dropped all the
// same: redaction cannot see a secret cut in two, and there is no line
// start to move to.
func TestTailDropsSecretCutByWindowWithoutNewline(t *testing.T) {
	const secret = "p4ssw0rd-0f-the-d4tabase"
	rest := strings.Repeat("B", StderrTail-6) // the window holds the secret's last 6 bytes
	got := failWithStderr(t, strings.Repeat("A", 5000)+secret+rest, secret)
	for k := 3; k <= len(secret); k++ {
		if strings.Contains(got, secret[len(secret)-k:]) {
			t.Fatalf("the stderr tail shows the last %d bytes of the secret: %q…", k, got[:min(len(got), 40)])
		}
	}
	if got != "…"+rest {
		t.Fatalf("tail = %q… (%d bytes), want … and the %d bytes after the secret", got[:min(len(got), 40)], len(got), len(rest))
	}
}

// TestTailLineStart: a window cut mid-line starts at the next line, but a
// line break that is the window's last byte is no line to start at: the
// reason on the last line is kept.
func TestTailLineStart(t *testing.T) {
	got := failWithStderr(t, strings.Repeat("x", 5000)+"\nthe reason")
	if got != "…the reason" {
		t.Fatalf("tail = %q, want …the reason", got)
	}
	// The window starts exactly at a line break: the next line is whole.
	rest := "the reason " + strings.Repeat("z", StderrTail-1-len("the reason "))
	if got := failWithStderr(t, strings.Repeat("x", 5000)+"\n"+rest); got != "…"+rest {
		t.Fatalf("tail = %q…, want …the reason zzz…", got[:min(len(got), 20)])
	}
	got = failWithStderr(t, strings.Repeat("x", 5000)+" the reason\n")
	if !strings.HasPrefix(got, "…x") || !strings.HasSuffix(got, "xx the reason") || len(got) != len("…")+StderrTail-1 {
		t.Fatalf("tail = %q…%q (%d bytes), want the whole window but its final line break", got[:min(len(got), 10)], got[max(0, len(got)-20):], len(got))
	}
}

// TestTailExactlyTheWindow: stderr that fits the window whole is kept whole,
// without the mark of a cut.
func TestTailExactlyTheWindow(t *testing.T) {
	text := "first line\n" + strings.Repeat("y", StderrTail-len("first line\n")-len("\nlast line")) + "\nlast line"
	if len(text) != StderrTail {
		t.Fatalf("test text has %d bytes", len(text))
	}
	if got := failWithStderr(t, text); got != text {
		t.Fatalf("tail of %d bytes = %q… (%d bytes), want it unchanged", len(text), got[:min(len(got), 20)], len(got))
	}
}

// TestRunShortWrite: a writer that takes less than it is given without an
// error has lost output; Run reports it rather than a complete dump.
func TestRunShortWrite(t *testing.T) {
	half := writerFunc(func(p []byte) (int, error) { return len(p) / 2, nil })
	err := sh(`printf 'some output'`).Run(context.Background(), nil, half)
	if !errors.Is(err, io.ErrShortWrite) || !strings.Contains(err.Error(), "writing its output") {
		t.Fatalf("Run into a short writer = %v, want io.ErrShortWrite", err)
	}
}

// TestRunKilledByCancel: a tool killed because the context ended says so
// and names the context's error, not just a signal.
func TestRunKilledByCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := sh(`echo started; exec sleep 30`)
	err := c.Run(ctx, nil, writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil }))
	var te *ToolError
	if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || te.ExitCode != -1 || !strings.HasPrefix(err.Error(), "sh killed: context canceled") {
		t.Fatalf("Run cancelled = %v, want the tool reported as killed by the cancellation", err)
	}
}

// TestToolsGetNoDbarchivePasswords: dbarchive's own password variables are
// not passed on to the tools it runs; other variables are.
func TestToolsGetNoDbarchivePasswords(t *testing.T) {
	t.Setenv("DBARCHIVE_SOURCE_PASSWORD", "src-secret")
	t.Setenv("DBARCHIVE_TARGET_PASSWORD", "dst-secret")
	t.Setenv("DBARCHIVE_LOG_LEVEL", "debug")
	var out strings.Builder
	if err := sh(`env`).Run(context.Background(), nil, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "secret") || !strings.Contains(out.String(), "DBARCHIVE_LOG_LEVEL=debug") {
		t.Fatalf("the tool's environment:\n%s\nwant no DBARCHIVE_*PASSWORD, other variables kept", out.String())
	}
}

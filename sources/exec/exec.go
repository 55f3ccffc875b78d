// Package exec is the source for any command whose standard output is the
// dump, named by a URL of the form "exec:" followed by a command line, for
// example `exec:mongodump --archive`. Restore pipes the dump into a command
// named the same way.
//
// The command line is split into words like a shell would (quotes and
// backslashes), but no shell runs it: no variables, globs or pipes. Write
// `exec:sh -c '…'` for those. The package must not add arguments of its own:
// the command is exactly what the user wrote.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/google/shlex"

	"github.com/dbarchive/dbarchive/sources"
)

func init() { sources.Register(Open, "exec") }

// Source is one command line.
type Source struct {
	line string   // as given after "exec:"
	argv []string // split
	opts sources.Options
}

var (
	_ sources.Source   = (*Source)(nil)
	_ sources.Restorer = (*Source)(nil)
)

// Open builds a source from exec:<command line>.
func Open(u *url.URL, opts sources.Options) (sources.Source, error) {
	if u.Opaque == "" {
		return nil, errors.New("exec source: want exec: followed by a command line, e.g. exec:mongodump --archive")
	}
	if opts.Password != "" || opts.PasswordFile != "" {
		return nil, errors.New("exec source: a password option has nowhere to go; give the command its credentials through its own environment or files")
	}
	if opts.CreateDatabase || opts.Format != "" {
		return nil, errors.New("exec source: format and create-database options do not apply to a command")
	}
	argv, err := shlex.Split(u.Opaque)
	if err != nil {
		// shlex's errors do not echo the line.
		return nil, fmt.Errorf("exec source: cannot split the command line: %w", err)
	}
	if len(argv) == 0 {
		return nil, errors.New("exec source: the command line is empty")
	}
	return &Source{line: u.Opaque, argv: argv, opts: opts}, nil
}

func (s *Source) Type() string     { return "exec" }
func (s *Source) Database() string { return "" }

// Describe is the command line with the password of any URL among its words
// removed (mongodump --uri mongodb://user:pw@…).
func (s *Source) Describe() string {
	line := s.line
	for _, w := range s.argv {
		if !strings.Contains(w, "://") {
			continue
		}
		if u, err := url.Parse(w); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				line = strings.ReplaceAll(line, pw, "[redacted]")
			}
		}
	}
	return "exec:" + line
}

func (s *Source) command() *sources.Command {
	return &sources.Command{Tool: s.argv[0], Path: s.argv[0], Args: s.argv[1:], Secrets: s.urlPasswords()}
}

func (s *Source) urlPasswords() []string {
	var out []string
	for _, w := range s.argv {
		if u, err := url.Parse(w); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				out = append(out, pw)
			}
		}
	}
	return out
}

// Check verifies that the program is on PATH (or, when it names a path, that
// it is an executable file).
func (s *Source) Check(context.Context) error {
	if _, err := sources.LookTool("check the exec: command line", s.argv[0]); err != nil {
		return fmt.Errorf("exec source: %w", err)
	}
	return nil
}

// CheckRestore is Check: the same command line runs.
func (s *Source) CheckRestore(ctx context.Context) error { return s.Check(ctx) }

// Dump runs the command and streams its stdout to w. A non-zero exit is an
// error with the tail of the command's stderr, even when output was written.
func (s *Source) Dump(ctx context.Context, w io.Writer) error {
	if err := s.command().Run(ctx, nil, w); err != nil {
		return fmt.Errorf("exec source %s: %w", s.Describe(), err)
	}
	return nil
}

// Restore runs the command with r as its stdin. When r fails, the command is
// killed before it sees the end of its input; whether that leaves its target
// unchanged is up to the command.
func (s *Source) Restore(ctx context.Context, r io.Reader) error {
	if err := s.command().Run(ctx, r, nil); err != nil {
		return fmt.Errorf("exec target %s: %w", s.Describe(), err)
	}
	return nil
}

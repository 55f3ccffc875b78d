// Package exec is the source for any command whose standard output is the
// dump. The job builds it from an argument list (New); the CLI from a URL of
// the form "exec:" followed by a command line, for example
// `exec:mongodump --archive`. Restore pipes the dump into a command named the
// same way.
//
// A command line is split into words with shell quoting (single and double
// quotes, backslashes), but no shell runs it: anything a shell would expand
// or interpret — variables, command substitution, pipes, redirections — is
// refused rather than passed on literally. Write `exec:sh -c '…'` for those.
// The package must not add arguments of its own: the command is exactly
// what the user wrote.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/dbarchive/dbarchive/sources"
)

func init() { sources.Register(Open, "exec") }

// Source is one command.
type Source struct {
	argv []string
}

var (
	_ sources.Source   = (*Source)(nil)
	_ sources.Restorer = (*Source)(nil)
)

// Open builds a source from exec:<command line>.
func Open(u *url.URL, opts sources.Options) (sources.Source, error) {
	if strings.TrimSpace(u.Opaque) == "" {
		return nil, errors.New("exec source: want exec: followed by a command line, e.g. exec:mongodump --archive")
	}
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	argv, err := Split(u.Opaque)
	if err != nil {
		return nil, fmt.Errorf("exec source: %w", err)
	}
	return New(argv)
}

// New builds a source that runs argv as it is: argv[0] is the program, the
// rest its arguments. No shell and no splitting is involved.
func New(argv []string) (*Source, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("exec source: the command is empty")
	}
	return &Source{argv: append([]string(nil), argv...)}, nil
}

func checkOptions(opts sources.Options) error {
	if opts.Password != "" || opts.PasswordFile != "" {
		return errors.New("exec source: a password option has nowhere to go; give the command its credentials through its own environment or files")
	}
	if opts.CreateDatabase || opts.Format != "" {
		return errors.New("exec source: format and create-database options do not apply to a command")
	}
	return nil
}

// Split splits a command line into words by shell quoting rules. A line that
// would need a shell to mean what it says (a variable, a glob-free but
// otherwise expanding word, a pipe, a redirection, several commands) is an
// error, so nothing is silently taken literally that a shell would expand.
// Errors do not repeat the line: it may hold credentials.
func Split(line string) ([]string, error) {
	f, err := syntax.NewParser().Parse(strings.NewReader(line), "")
	if err != nil {
		return nil, errors.New("cannot split the command line (unbalanced quotes?)")
	}
	needShell := errors.New("the command line needs a shell (variables, substitutions, pipes, redirections or several commands); write exec:sh -c '…'")
	if len(f.Stmts) != 1 {
		if len(f.Stmts) == 0 {
			return nil, errors.New("the command line is empty")
		}
		return nil, needShell
	}
	st := f.Stmts[0]
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || st.Negated || st.Background || st.Coprocess || len(st.Redirs) > 0 || len(call.Assigns) > 0 || len(call.Args) == 0 {
		return nil, needShell
	}
	for _, w := range call.Args {
		if !literalWord(w.Parts) {
			return nil, needShell
		}
	}
	// With only literal words, expansion is quote and backslash removal.
	argv, err := expand.Fields(nil, call.Args...)
	if err != nil {
		return nil, needShell
	}
	return argv, nil
}

// literalWord reports whether a word's value is its text with quotes
// removed: plain, single-quoted or double-quoted text without expansions.
func literalWord(parts []syntax.WordPart) bool {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit, *syntax.SglQuoted:
		case *syntax.DblQuoted:
			if !literalWord(p.Parts) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (s *Source) Type() string     { return "exec" }
func (s *Source) Database() string { return "" }

// Argv is the command as it runs.
func (s *Source) Argv() []string { return append([]string(nil), s.argv...) }

// Describe is the command line, shell-quoted, with the password of any URL
// among its words removed (mongodump --uri mongodb://user:pw@…).
func (s *Source) Describe() string {
	words := make([]string, len(s.argv))
	for i, w := range s.argv {
		if u, err := url.Parse(w); err == nil && u.User != nil && strings.Contains(w, "://") {
			w = sources.WithoutPassword(u)
			if _, ok := u.User.Password(); ok {
				w = strings.Replace(w, "@", ":[redacted]@", 1)
			}
		}
		q, err := syntax.Quote(w, syntax.LangBash)
		if err != nil {
			q = fmt.Sprintf("%q", w)
		}
		words[i] = q
	}
	return "exec:" + strings.Join(words, " ")
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

// CheckRestore is Check: the same command runs.
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

package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a throwaway database server: one process tree and one
// temporary directory, both gone after Stop.
type Server struct {
	// Type is the source type it serves: postgres or mysql.
	Type string
	// Version is what the server binary reports, e.g. "15.14".
	Version string
	// Major is the version's first number (PostgreSQL) or first two
	// (MariaDB, as 10.11 → 1011), for choosing and comparing.
	Major int

	dir     string    // temporary directory: data, socket, log
	cmd     *exec.Cmd // the server's main process (its own process group)
	exited  chan struct{}
	urlFor  func(db string) string
	logFile string
}

// URL is the sources URL of database db on the server.
func (s *Server) URL(db string) string { return s.urlFor(db) }

// Dir is the server's temporary directory (for tests that check it is gone).
func (s *Server) Dir() string { return s.dir }

// Pid is the server's main process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// stopGrace is how long a server gets to shut down before its process
// group is killed: it is thrown away, so nothing it would flush matters.
const stopGrace = 10 * time.Second

// Stop shuts the server down (quit, then kill of its whole process group)
// and removes its directory. It is safe to call twice.
func (s *Server) Stop() error {
	if s == nil || s.dir == "" {
		return nil
	}
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGQUIT)
			select {
			case <-s.exited:
			case <-time.After(stopGrace):
			}
		}
		// Whatever is left of the group (backends of a PostgreSQL whose
		// postmaster went first) goes now.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	if err != nil {
		return fmt.Errorf("drill: removing the throwaway server's directory: %w", err)
	}
	return nil
}

// logTail is the end of the server's log, for errors.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return ""
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return strings.TrimSpace(string(b))
}

// account is who runs the server's processes. PostgreSQL refuses to run as
// root and MariaDB should not, so a drill started as root runs them as the
// first of names that exists (and as nobody otherwise).
type account struct {
	cred *syscall.Credential
	uid  int
	gid  int
}

func serverAccount(names ...string) (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: -1, gid: -1}, nil
	}
	for _, n := range append(names, "nobody") {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
	}
	return account{}, errors.New("drill: running as root, and there is no unprivileged user to run the throwaway server as (tried " + strings.Join(append(names, "nobody"), ", ") + ")")
}

// own gives the account the directory tree, when the account is not us.
func (a account) own(dir string) error {
	if a.cred == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, a.uid, a.gid)
	})
}

// command is a server-side program run as the account, in its own process
// group, killed when dbarchive dies (Linux), with output into the log.
func (a account) command(ctx context.Context, logFile string, path string, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = sysProcAttr(a.cred)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	// The server needs no credentials of ours: a clean environment keeps
	// DBARCHIVE_* and cloud secrets out of its /proc/<pid>/environ.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "TZ=UTC"}
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	return cmd, nil
}

// run runs a setup program (initdb, mariadb-install-db) to its end.
func (a account) run(ctx context.Context, logFile, what string, path string, args ...string) error {
	cmd, err := a.command(ctx, logFile, path, args...)
	if err != nil {
		return err
	}
	defer cmd.Stdout.(*os.File).Close()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("drill: %s: %w", what, err)
	}
	return nil
}

// start starts the server process and returns once ready reports nil, the
// process exits, or the wait runs out.
func (s *Server) start(ctx context.Context, a account, ready func(context.Context) error, path string, args ...string) error {
	cmd, err := a.command(context.WithoutCancel(ctx), s.logFile, path, args...)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		cmd.Stdout.(*os.File).Close()
		return fmt.Errorf("drill: starting %s: %w", filepath.Base(path), err)
	}
	cmd.Stdout.(*os.File).Close()
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
			return fmt.Errorf("drill: the throwaway %s server exited while starting: %s", s.Type, s.logTail())
		case <-deadline.C:
			return fmt.Errorf("drill: the throwaway %s server was not ready after %v (%v): %s", s.Type, startTimeout, err, s.logTail())
		case <-tick.C:
		}
	}
}

// startTimeout bounds a server's start (initdb excluded).
const startTimeout = 2 * time.Minute

// newDir makes the server's temporary directory. Its path is short: a Unix
// socket path has a limit of about 100 bytes.
func newDir(a account, root string) (string, error) {
	if root == "" {
		root = shortTempRoot()
	}
	if a.cred != nil && !traversable(root) {
		// The server's account must reach its directory.
		root = "/tmp"
	}
	sweepStale(root)
	dir, err := os.MkdirTemp(root, dirPattern)
	if err != nil {
		return "", fmt.Errorf("drill: %w", err)
	}
	if err := a.own(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("drill: giving the server its directory: %w", err)
	}
	return dir, nil
}

const dirPattern = "dbarchive-drill-"

// staleAfter is how old a drill directory without a running server must
// be before another drill removes it: a drill that is still starting its
// server (initdb) has no pid file yet.
const staleAfter = time.Hour

// sweepStale removes what drills killed with SIGKILL left under root: the
// kernel stops their servers (parent-death signal), but nothing runs to
// remove the directory. A directory whose server's pid file names a live
// process, or that is younger than staleAfter, is left alone.
func sweepStale(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, dirPattern+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < staleAfter || serverAlive(d) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}

// serverAlive reports whether the pid file of the server in dir (the
// postmaster's or mariadbd's) names a running process.
func serverAlive(dir string) bool {
	for _, f := range []string{filepath.Join(dir, "data", "postmaster.pid"), filepath.Join(dir, "mysqld.pid")} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		line, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			return true
		}
	}
	return false
}

func shortTempRoot() string {
	if t := os.TempDir(); len(t) < 60 {
		return t
	}
	return "/tmp"
}

// traversable reports whether every directory from / to dir lets others
// pass (the x bit for others).
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}

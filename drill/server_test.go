package drill

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processGone reports whether pid no longer runs (or is a zombie nobody
// reaped, which holds no resources).
func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return strings.Contains(string(b), ") Z ")
}

// A throwaway PostgreSQL starts, answers on its socket only, and leaves
// neither a process nor a directory after Stop.
func TestThrowawayPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := StartPostgres(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	dir, pid := s.Dir(), s.Pid()
	t.Cleanup(func() { _ = s.Stop() })
	out, err := exec.CommandContext(ctx, "psql", "--no-psqlrc", "-At", "-h", dir, "-U", "postgres", "-d", "postgres", "-c", "SHOW listen_addresses").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("psql on the socket: %q, %v; want an empty listen_addresses", out, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there (%v)", dir, err)
	}
	if !processGone(pid) {
		t.Errorf("the server process %d still runs after Stop", pid)
	}
}

// A throwaway MariaDB starts with networking off, answers on its socket,
// and leaves neither a process nor a directory after Stop.
func TestThrowawayMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := StartMariaDB(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	dir, pid := s.Dir(), s.Pid()
	t.Cleanup(func() { _ = s.Stop() })
	out, err := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--socket="+dir+"/mysqld.sock", "-uroot", "-N", "-e", "SELECT @@skip_networking").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("mariadb on the socket: %q, %v; want skip_networking 1", out, err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there (%v)", dir, err)
	}
	if !processGone(pid) {
		t.Errorf("the server process %d still runs after Stop", pid)
	}
}

// A drill directory left by a drill killed with SIGKILL (its server gone)
// is removed by the next drill; one whose server still runs, and a young
// one still starting its server, are not.
func TestSweepStale(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, age time.Duration, pid int) string {
		d := filepath.Join(root, dirPattern+name)
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if pid != 0 {
			if err := os.WriteFile(filepath.Join(d, "data", "postmaster.pid"), []byte(strconv.Itoa(pid)+"\n/data\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	left := mk("killed", 2*time.Hour, dead.Process.Pid)
	running := mk("running", 2*time.Hour, os.Getpid())
	starting := mk("starting", time.Minute, 0)
	sweepStale(root)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the directory of a killed drill is still there (%v)", err)
	}
	for _, d := range []string{running, starting} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
}

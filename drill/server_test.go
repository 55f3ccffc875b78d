package drill

import (
	"context"
	"errors"
	"os"
	"os/exec"
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

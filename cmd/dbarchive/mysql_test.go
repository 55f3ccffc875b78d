package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/internal/testdb"
)

// The MariaDB password reaches mariadb-dump through a pipe, not a file: a
// backup killed with SIGKILL leaves no file holding it, and it is never in
// the tool's arguments or environment. A stand-in mariadb-dump (the real
// client still reads the database's character set first, with the
// password) records what it got and waits to be killed.
func TestMariaDBPasswordNeverOnDisk(t *testing.T) {
	srv := testdb.MariaDB(t)
	name, _ := srv.Create(t, "cli_mypw")
	user := testdb.Unique("dbarchive_cli")
	const pw = "My-pw-never-on-disk-4c1e"
	if _, err := srv.Admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, pw)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = srv.Admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	if _, err := srv.Admin.Exec(fmt.Sprintf("GRANT SELECT ON %s.* TO '%s'@'%%'", testdb.QuoteMy(name), user)); err != nil {
		t.Fatal(err)
	}
	src, _ := url.Parse(srv.URL(name))
	src.User = url.User(user)

	bin, seen := t.TempDir(), filepath.Join(t.TempDir(), "seen")
	script := fmt.Sprintf(`#!/bin/sh
tr '\0' ' ' < /proc/$$/cmdline > %[1]s.cmdline
tr '\0' '\n' < /proc/$$/environ > %[1]s.environ
cat "${1#--defaults-extra-file=}" > %[1]s.options
echo $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s.pid
exec sleep 60
`, seen)
	if err := os.WriteFile(filepath.Join(bin, "mariadb-dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, repo := t.TempDir(), t.TempDir()
	c := newCLI(t).setenv("PATH", bin+":"+os.Getenv("PATH")).setenv("TMPDIR", tmp).setenv("DBARCHIVE_SOURCE_PASSWORD", pw)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, _, stderr := c.command(ctx, "backup", "--source", src.String(), "--repo", fileURL(repo))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var pid int
	for deadline := time.Now().Add(time.Minute); pid == 0; {
		if b, err := os.ReadFile(seen + ".pid"); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			continue
		}
		select {
		case <-done:
			t.Fatalf("the backup ended before the dump tool ran: %s", stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the dump tool did not start within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	options, _ := os.ReadFile(seen + ".options")
	if !bytes.Contains(options, []byte(`password="`+pw+`"`)) {
		t.Fatalf("the tool's option file lacks the password; it holds %d bytes", len(options))
	}
	for _, what := range []string{"cmdline", "environ"} {
		b, _ := os.ReadFile(seen + "." + what)
		if bytes.Contains(b, []byte(pw)) || len(b) == 0 {
			t.Errorf("the dump tool's %s (%d bytes) holds the password", what, len(b))
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	for _, dir := range []string{tmp, c.env["HOME"], repo} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, rerr := os.ReadFile(p); rerr == nil && bytes.Contains(b, []byte(pw)) {
					t.Errorf("%s holds the password after the killed backup", p)
				}
			}
			return nil
		})
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rcloneVersion is the pinned rclone: the peer's uploader and, with
// `serve s3`, the S3 server both sides upload to. From v1.76 serve s3
// streams in-order multipart parts straight into the backing directory and
// completes with a rename, so the server neither buffers whole objects in
// memory nor copies them at completion.
const rcloneVersion = "v1.76.0"

// aptPackages says where a missing tool comes from on Debian and Ubuntu.
var aptPackages = map[string]string{
	"pg_dump":    "postgresql-client",
	"pg_restore": "postgresql-client",
	"psql":       "postgresql-client",
	"createdb":   "postgresql-client",
	"dropdb":     "postgresql-client",
	"pgbench":    "postgresql-contrib",
	"zstd":       "zstd",
	"bash":       "bash",
}

// ensureTools finds the command-line tools the scenarios run and, when some
// are missing and we are root on a machine with apt-get, installs them.
func ensureTools(ctx context.Context) error {
	var missing []string
	pkgs := map[string]bool{}
	for tool, pkg := range aptPackages {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
			pkgs[pkg] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var list []string
	for p := range pkgs {
		list = append(list, p)
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return fmt.Errorf("missing tools %v: install the packages %v", missing, list)
	}
	logf("installing %v for %v", list, missing)
	if _, err := runOutput(ctx, nil, "apt-get", "update"); err != nil {
		return err
	}
	if _, err := runOutput(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", append([]string{"install", "-y", "--no-install-recommends"}, list...)...); err != nil {
		return err
	}
	for _, tool := range missing {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s still missing after installing %v", tool, list)
		}
	}
	return nil
}

// buildBinaries builds dbarchive (with the version make build stamps) and
// the exec: generator into the work directory, so the bench never replaces
// a bin/dbarchive someone else is testing, and rclone at the pinned version
// into bin/ of the module.
func (b *bench) buildBinaries(ctx context.Context) error {
	binDir := filepath.Join(b.work, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	b.version, _ = runOutput(ctx, nil, "git", "-C", b.root, "describe", "--tags", "--always", "--dirty")
	if b.version == "" {
		b.version = "dev"
	}
	b.dbarchive = filepath.Join(binDir, "dbarchive")
	b.testgen = filepath.Join(binDir, "testgen")
	logf("building dbarchive %s and testgen", b.version)
	// As make build builds it (cgo: libzstd), and as CGO_ENABLED=0 go
	// install does (the pure-Go zstd): the lever rows compare the two.
	b.dbarchivePure = filepath.Join(binDir, "dbarchive-purego")
	for bin, cgo := range map[string]string{b.dbarchive: "CGO_ENABLED=1", b.dbarchivePure: "CGO_ENABLED=0"} {
		if _, err := runOutput(ctx, []string{cgo}, "go", "build", "-C", b.root, "-trimpath", "-tags", "disable_grpc_modules", "-ldflags", "-X main.version="+b.version,
			"-o", bin, "./cmd/dbarchive"); err != nil {
			return err
		}
	}
	if _, err := runOutput(ctx, nil, "go", "build", "-C", b.root, "-trimpath", "-o", b.testgen, "./internal/testgen/cmd/testgen"); err != nil {
		return err
	}
	for _, bin := range []string{b.dbarchive, b.dbarchivePure, b.testgen} {
		if err := evictPageCache(bin); err != nil {
			return err
		}
	}
	b.rclone = filepath.Join(b.root, "bin", "rclone")
	// The module version in the binary's build info, not `rclone version`:
	// a build from the module proxy calls itself v1.76.0-DEV.
	if v, err := runOutput(ctx, nil, "go", "version", "-m", b.rclone); err == nil && strings.Contains(v, "\tgithub.com/rclone/rclone\t"+rcloneVersion+"\t") {
		return nil
	}
	logf("building rclone %s into bin/ (once; a few minutes on 2 cores)", rcloneVersion)
	_, err := runOutput(ctx, []string{"GOBIN=" + filepath.Join(b.root, "bin")}, "go", "install", "github.com/rclone/rclone@"+rcloneVersion)
	return err
}

// evictPageCache drops a just-built binary's pages from the page cache, so
// that it starts as an installed one does, read from disk. The pages a
// linker leaves behind can sit in large folios, and a process mapping one
// page of a large folio maps all of it: on this machine's kernel a
// cgo-linked dbarchive straight from gcc's linker showed 16 MiB more
// file-backed RSS (VmHWM 93 MiB) than the same bytes read back from disk
// (77 MiB), with the same 42 MiB of private memory.
func evictPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // dirty pages cannot be dropped
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop the page cache of %s: %w", path, err)
	}
	return nil
}

// s3Server is `rclone serve s3` on a loopback port over a local directory.
type s3Server struct {
	cmd  *exec.Cmd
	dir  string // the served directory; each subdirectory is a bucket
	addr string
	log  *os.File
}

const (
	s3Bucket    = "bench"
	s3AccessKey = "benchaccess"
	s3SecretKey = "benchsecret-not-a-real-one"
	// rcloneRemote names the remote defined by rcloneEnv.
	rcloneRemote = "benchs3"
)

func startS3Server(ctx context.Context, rclone, work string) (*s3Server, error) {
	dir := filepath.Join(work, "s3")
	// A fresh directory each run: objects of an earlier, interrupted run
	// would otherwise fill the disk.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, s3Bucket), 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logFile, err := os.Create(filepath.Join(work, "rclone-serve.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rclone, "serve", "s3", dir,
		"--addr", addr,
		"--auth-key", s3AccessKey+","+s3SecretKey,
		// Objects are written behind nobody's back, but the bench removes
		// finished runs' directories itself.
		"--dir-cache-time", "1s",
		// No ETags: over a local directory, which keeps no MD5s, the
		// default MD5 ETag makes the server hash the whole object for
		// every GET and HEAD. A ranged reader (dbarchive restore, 25
		// GETs for 200 MiB) then cost the server 10 times the CPU of one
		// whole-object GET (rclone cat), and on 2 cores that CPU is taken
		// from pg_restore. Real object stores keep the ETag.
		"--etag-hash", "",
		"--log-level", "NOTICE")
	cmd.Env = append(os.Environ(), "RCLONE_CONFIG="+os.DevNull)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so an interrupted bench can stop it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start rclone serve s3: %w", err)
	}
	s := &s3Server{cmd: cmd, dir: dir, addr: addr, log: logFile}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("rclone serve s3 did not listen on %s (see %s)", addr, logFile.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *s3Server) pid() int { return s.cmd.Process.Pid }

func (s *s3Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.log.Close()
	// The objects kept for the restores are of no use after the run.
	_ = os.RemoveAll(s.dir)
}

// repoURL is dbarchive's repo URL for prefix on this server.
func (s *s3Server) repoURL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=http://%s&path_style=true&region=us-east-1", s3Bucket, prefix, s.addr)
}

// dbarchiveEnv carries the credentials the way the README says: the AWS
// variables, never the URL.
func (s *s3Server) dbarchiveEnv() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s3AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3SecretKey}
}

// rcloneEnv defines the remote "benchs3" entirely in the environment, with
// no config file read or written.
func (s *s3Server) rcloneEnv() []string {
	p := "RCLONE_CONFIG_" + strings.ToUpper(rcloneRemote) + "_"
	return []string{
		"RCLONE_CONFIG=" + os.DevNull,
		p + "TYPE=s3",
		p + "PROVIDER=Rclone",
		p + "ENDPOINT=http://" + s.addr,
		p + "ACCESS_KEY_ID=" + s3AccessKey,
		p + "SECRET_ACCESS_KEY=" + s3SecretKey,
		p + "REGION=us-east-1",
	}
}

// objectPath is where the server keeps key on disk.
func (s *s3Server) objectPath(key string) string {
	return filepath.Join(s.dir, s3Bucket, filepath.FromSlash(key))
}

// removePrefix deletes a finished run's objects from the served directory.
func (s *s3Server) removePrefix(prefix string) error {
	if prefix == "" || strings.Contains(prefix, "..") {
		return errors.New("refusing to remove an empty or relative prefix")
	}
	return os.RemoveAll(s.objectPath(prefix))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

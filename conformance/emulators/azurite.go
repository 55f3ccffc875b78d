package emulators

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dbarchive/dbarchive/drivers"
)

// Azurite's well-known development account, published in its README and in
// Microsoft's docs; it opens nothing but a local emulator.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStartTimeout bounds Azurite's start-up: node loads a few hundred
// modules first, which on a busy 2-core machine takes seconds.
const azuriteStartTimeout = 60 * time.Second

// Azurite starts an Azurite blob service on a free loopback port and returns
// a config for a fresh container in it (CreateBucket set, shared-key
// credentials of the well-known account). Callers that want one container
// per test copy the config and change Bucket. The process, and any process
// it starts, is killed in t.Cleanup.
//
// Azurite comes from the repo's package.json (`npm ci` in the repo root puts
// it in node_modules/.bin) or from PATH.
func Azurite(t testing.TB) drivers.Config {
	t.Helper()
	bin := azuriteBinary()
	if bin == "" {
		Missing(t, "Azurite", "npm ci (in the repo root)")
		return drivers.Config{}
	}
	if _, err := exec.LookPath("node"); err != nil {
		Missing(t, "Node.js (Azurite runs on it)", "apt-get install nodejs npm, then npm ci (in the repo root)")
		return drivers.Config{}
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("azurite: no free loopback port: %v", err)
		}
		log := filepath.Join(dir, fmt.Sprintf("azurite-%d.log", attempt))
		err = startAzurite(t, bin, dir, log, port)
		if err == nil {
			return drivers.Config{
				Name:         "azurite",
				Type:         "azure",
				Bucket:       NewContainerName(),
				Endpoint:     fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount),
				CreateBucket: true,
				Secrets: drivers.SecretsFromStrings(map[string]string{
					"AccountName": AzuriteAccount,
					"AccountKey":  AzuriteKey,
				}),
			}
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("azurite: %v", lastErr)
	return drivers.Config{}
}

// NewContainerName returns a valid, unused-looking container name.
func NewContainerName() string {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	return "test-" + hex.EncodeToString(raw[:])
}

// azuriteBinary finds azurite-blob under the module root, else on PATH.
func azuriteBinary() string {
	if root := moduleRoot(); root != "" {
		bin := filepath.Join(root, "node_modules", ".bin", "azurite-blob")
		if st, err := os.Stat(bin); err == nil && !st.IsDir() {
			return bin
		}
	}
	if bin, err := exec.LookPath("azurite-blob"); err == nil {
		return bin
	}
	return ""
}

// moduleRoot walks up from the working directory (a test runs in its
// package's directory) to the directory holding go.mod.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before Azurite binds it; startAzurite reports that as errPortTaken
// and Azurite tries again with a new one.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var errPortTaken = errors.New("port already in use")

func startAzurite(t testing.TB, bin, dir, logPath string, port int) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin,
		"--blobHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(port),
		// Nothing on disk, nothing kept between runs. (Azurite refuses
		// --location with it; the working directory is a temp dir instead.)
		"--inMemoryPersistence",
		// Azurite would take up to half the machine's memory for blob data;
		// tests store far less, and a runaway test should fail, not swap.
		"--extentMemoryLimit", "2048",
		// The SDK speaks a newer API version than Azurite may know.
		"--skipApiVersionCheck",
		// The account is the first path segment, never the host name.
		"--disableProductStyleUrl",
		// No telemetry: the machine has no network beyond the loopback.
		"--disableTelemetry",
	)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A process group of its own, so that cleanup can kill node and every
	// child it started with one signal; and SIGKILL if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(azuriteStartTimeout)
	for {
		select {
		case <-exited:
			out := tail(logPath)
			if strings.Contains(out, "EADDRINUSE") {
				return fmt.Errorf("%w: %d", errPortTaken, port)
			}
			return fmt.Errorf("exited before listening on %s; log:\n%s", addr, out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Cleanup(stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("not listening on %s after %v; log:\n%s", addr, azuriteStartTimeout, tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail returns the last few KiB of a log, for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

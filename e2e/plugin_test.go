package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/plugin"
)

// pluginCLI runs the dbarchive binary as kubectl runs a plugin: through a
// link named kubectl-dbarchive, with a kubeconfig whose context is ns.
type pluginCLI struct {
	t          *testing.T
	bin        string
	kubeconfig string
}

func newPluginCLI(t *testing.T, cl *cluster) *pluginCLI {
	t.Helper()
	dir := t.TempDir()
	link := filepath.Join(dir, "kubectl-dbarchive")
	must(t, os.Symlink(binary, link))
	kc := clientcmdapi.NewConfig()
	cfg := cl.k.cfg
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: cl.ns}
	kc.CurrentContext = "e2e"
	path := filepath.Join(dir, "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	return &pluginCLI{t: t, bin: link, kubeconfig: path}
}

func (p *pluginCLI) start(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, p.bin, append(args, "--kubeconfig", p.kubeconfig)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	must(p.t, cmd.Start())
	return cmd, &stdout, &stderr
}

// run runs the plugin to its end and returns its exit code and output.
func (p *pluginCLI) run(args ...string) (int, string, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdout, stderr := p.start(ctx, args...)
	_ = cmd.Wait()
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestKubectlPlugin: `kubectl dbarchive backup NAME` sets the manual trigger
// and follows the Job to its outcome (exit 0 with the backup id; exit 1
// with the cause when it fails); `status` shows the newest backup against
// the RPO annotation, as a table and as JSON; usage mistakes exit 2.
func TestKubectlPlugin(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	cl.k.claims["backups"] = t.TempDir()
	ctx := context.Background()
	p := newPluginCLI(t, cl)
	repos := []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "pg"}}}
	must(t, cl.c.Create(ctx, &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: cl.ns, Annotations: map[string]string{plugin.AnnotationRPO: "26h"}},
		Spec:       dbv1.DatabaseBackupSpec{Repos: repos, Source: pgSource(dbName)},
	}))
	missing := pgSource("dbarchive_no_such_database")
	must(t, cl.c.Create(ctx, &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: cl.ns},
		Spec:       dbv1.DatabaseBackupSpec{Repos: repos, Source: missing},
	}))

	code, out, _ := p.run("status", "orders")
	if code != 0 || !strings.Contains(out, "orders") || !strings.Contains(out, "26h MISSED") {
		t.Fatalf("status before any backup: exit %d\n%s\nwant orders with its RPO missed", code, out)
	}

	for _, c := range []struct {
		name     string
		wantCode int
		want     string
	}{
		{"orders", 0, "succeeded"},
		{"broken", 1, "dbarchive_no_such_database"},
	} {
		runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		cmd, stdout, stderr := p.start(runCtx, "backup", c.name)
		j := waitForJob(t, cl.c, cl.ns, c.name+"-manual-")
		run := cl.k.runJob(ctx, j)
		_ = cmd.Wait()
		cancel()
		if got := cmd.ProcessState.ExitCode(); got != c.wantCode || !strings.Contains(stdout.String()+stderr.String(), c.want) {
			t.Fatalf("backup %s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s\njob:\n%s", c.name, got, c.wantCode, c.want, stdout, stderr, run.output)
		}
		if !strings.Contains(stderr.String(), j.Name) {
			t.Errorf("backup %s: the progress does not name Job %s:\n%s", c.name, j.Name, stderr)
		}
	}

	code, out, _ = p.run("status", "-o", "json")
	var rows []plugin.Status
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 2 {
		t.Fatalf("status -o json: exit %d, %v\n%s", code, err, out)
	}
	for _, r := range rows {
		switch r.Name {
		case "orders":
			if r.LastBackup == nil || r.WithinRPO == nil || !*r.WithinRPO {
				t.Errorf("orders: %+v; want a backup within its RPO", r)
			}
		case "broken":
			if r.LastBackup != nil || r.LastFailure == nil || !strings.Contains(r.LastFailure.Message, "dbarchive_no_such_database") {
				t.Errorf("broken: %+v; want no backup and the failure's cause", r)
			}
		}
	}
	code, out, _ = p.run("status", "-A")
	if code != 0 || !strings.Contains(out, cl.ns) || !strings.Contains(out, "26h ok") {
		t.Errorf("status -A: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{{"backup"}, {"backup", "orders", "--repo", "elsewhere"}, {"status", "-o", "xml"}, {"nosuch"}} {
		if code, _, stderr := p.run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
	if code, _, stderr := p.run("backup", "nosuch"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("backup of a missing resource: exit %d\n%s", code, stderr)
	}
}

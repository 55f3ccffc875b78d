package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// binary is the dbarchive CLI built from this tree by TestMain.
var binary string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "dbarchive-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "dbarchive")
		build := exec.Command("go", "build", "-o", binary, "../cmd/dbarchive")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build dbarchive:", err)
			return 1
		}
		return m.Run()
	}()
	if err := envtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// cluster is one namespace on the shared API server with the operator
// running in it and a kubelet stand-in.
type cluster struct {
	t  *testing.T
	c  client.Client
	ns string
	k  *kubelet
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	env := envtest.Shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	must(t, env.Client.Create(ctx, nsObj))
	cacheOpts := controller.CacheOptions()
	cacheOpts.DefaultNamespaces = map[string]cache.Config{nsObj.Name: {}}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	must(t, err)
	metrics, err := controller.NewMetrics(prometheus.NewRegistry())
	must(t, err)
	must(t, (&controller.Reconciler{Metrics: metrics, DefaultJobImage: dbv1.JobImage("v0.0.0-e2e")}).SetupWithManager(mgr))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return &cluster{t: t, c: env.Client, ns: nsObj.Name, k: &kubelet{
		t: t, c: env.Client, cfg: env.Config, binary: binary, claims: map[string]string{},
	}}
}

// waitSucceeded waits for the Succeeded condition of the current generation
// to leave BackupRunning, and returns the resource.
func (cl *cluster) waitOutcome(name string) *dbv1.DatabaseBackup {
	cl.t.Helper()
	db := &dbv1.DatabaseBackup{}
	eventually(cl.t, 60*time.Second, func() error {
		if err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: cl.ns, Name: name}, db); err != nil {
			return err
		}
		c := meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil || c.Reason == dbv1.ReasonBackupRunning {
			return fmt.Errorf("Succeeded condition is %+v", c)
		}
		return nil
	})
	return db
}

func requireSucceeded(t *testing.T, db *dbv1.DatabaseBackup) {
	t.Helper()
	c := meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionTrue || c.Reason != "BackupSucceeded" || c.Message != "Database has been archived" {
		t.Fatalf("Succeeded = %s/%s/%q, want True/BackupSucceeded/\"Database has been archived\"", c.Status, c.Reason, c.Message)
	}
	if c.ObservedGeneration != db.Generation {
		t.Errorf("Succeeded.observedGeneration = %d, generation %d", c.ObservedGeneration, db.Generation)
	}
	lb := db.Status.LastBackup
	if lb == nil || lb.ID == "" || lb.StoredSize <= 0 || lb.FinishedTime == nil || lb.Duration == nil || lb.ObjectKey == "" {
		t.Fatalf("lastBackup = %+v, want id, object key, size, duration and time", lb)
	}
}

// sourceDB makes a PostgreSQL database with content worth comparing.
func sourceDB(t *testing.T) (*testdb.Server, string, *sql.DB) {
	t.Helper()
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "e2e")
	for _, q := range []string{
		`CREATE TABLE persons (id serial PRIMARY KEY, name text NOT NULL, note text, photo bytea)`,
		`INSERT INTO persons (name, note, photo) VALUES ('Zoë Ångström', 'ünïcødé ✓', '\x00ff10'), ('李小龙', NULL, NULL), ('O''Brien', 'quote', '\xdeadbeef')`,
		`INSERT INTO persons (name, note) SELECT 'person ' || g, md5(g::text) FROM generate_series(1, 20000) g`,
		`CREATE VIEW named AS SELECT id, name FROM persons WHERE note IS NOT NULL`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return srv, name, db
}

func fingerprint(t *testing.T, db *sql.DB) string {
	t.Helper()
	var sum, view string
	must(t, db.QueryRow(`SELECT md5(string_agg(p::text, ',' ORDER BY id)) FROM persons p`).Scan(&sum))
	must(t, db.QueryRow(`SELECT count(*)::text FROM named`).Scan(&view))
	return sum + "/" + view
}

// restoreWithCLI restores the newest backup of repoURL into a new database
// with the dbarchive binary and returns that database's fingerprint.
func restoreWithCLI(t *testing.T, srv *testdb.Server, repoURL string, env ...string) string {
	t.Helper()
	target := srv.Name(t, "e2e_restore")
	cmd := exec.Command(binary, "restore", "--repo", repoURL, "--target", srv.URL(target), "--create-db")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dbarchive restore: %v\n%s", err, out)
	}
	return fingerprint(t, srv.Connect(t, target))
}

func pgSource(database string) *dbv1.Source {
	return &dbv1.Source{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: database, User: "postgres"}
}

func manual(repo string) *dbv1.ManualTrigger {
	return &dbv1.ManualTrigger{Enabled: true, Time: time.Now().UTC().Format(time.RFC3339), Repo: repo}
}

func TestManualBackupToFS(t *testing.T) {
	cl := startCluster(t)
	srv, dbName, db := sourceDB(t)
	want := fingerprint(t, db)
	claim := t.TempDir()
	cl.k.claims["backups"] = claim
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "pg"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
		},
	}
	ctx := context.Background()
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "orders-manual-")
	if run := cl.k.runJob(ctx, j); run.exitErr != nil {
		t.Fatalf("job failed: %v", run.exitErr)
	}
	got := cl.waitOutcome("orders")
	requireSucceeded(t, got)
	if got.Status.LastBackup.Repo != "local" {
		t.Errorf("lastBackup.repo = %q", got.Status.LastBackup.Repo)
	}
	// The job keeps each resource's backups under <namespace>/<name>.
	repoDir := filepath.Join(claim, "pg", cl.ns, "orders")
	if _, err := os.Stat(filepath.Join(repoDir, got.Status.LastBackup.ID, "manifest.json")); err != nil {
		t.Fatalf("manifest of %s: %v", got.Status.LastBackup.ID, err)
	}
	if fp := restoreWithCLI(t, srv, "file://"+repoDir); fp != want {
		t.Fatalf("restored content %s, want %s", fp, want)
	}
}

// TestPermanentFailureExitsThree: a failure no retry can fix (here the Job
// names a repo the resource does not have) ends the container with exit
// code 3, which the Job's podFailurePolicy turns into a failed Job at once,
// and is reported in status naming the repo.
func TestPermanentFailureExitsThree(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	cl.k.claims["backups"] = t.TempDir()
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
		},
	}
	ctx := context.Background()
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "ledger-manual-")
	// The pod as the Job would run it, but told to use a repo that is not
	// in spec.repos: the job must refuse it, not retry it.
	ctr := &j.Spec.Template.Spec.Containers[0]
	found := false
	for i := range ctr.Env {
		if ctr.Env[i].Name == dbv1.JobEnvRepo {
			ctr.Env[i].Value, found = "elsewhere", true
		}
	}
	if !found {
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: dbv1.JobEnvRepo, Value: "elsewhere"})
	}
	run := cl.k.runJob(ctx, j)
	var exitErr *exec.ExitError
	if !errors.As(run.exitErr, &exitErr) || exitErr.ExitCode() != dbv1.JobExitPermanent {
		t.Fatalf("job ended with %v, want exit code %d\n%s", run.exitErr, dbv1.JobExitPermanent, run.output)
	}
	got := cl.waitOutcome("ledger")
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonBackupFailed || !strings.Contains(c.Message, `"elsewhere"`) {
		t.Fatalf("Succeeded = %+v, want False/BackupFailed naming the repo", c)
	}
}

func TestManualBackupToS3(t *testing.T) {
	cl := startCluster(t)
	srv, dbName, db := sourceDB(t)
	want := fingerprint(t, db)
	s3 := emulators.S3(t)
	ctx := context.Background()
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3-keys", Namespace: cl.ns},
		StringData: map[string]string{
			"AccessKeyId":     s3.Secrets.Get("AccessKeyId").Reveal(),
			"SecretAccessKey": s3.Secrets.Get("SecretAccessKey").Reveal(),
		},
	}))
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos: []dbv1.Repo{{
				Name: "s3", Type: dbv1.RepoTypeS3, SecretName: "s3-keys", ServiceEndpoint: s3.Endpoint,
				Bucket: s3.Bucket, Region: s3.Region, PathStyle: true, Prefix: "prod/billing",
			}},
			ManualTrigger: manual("s3"),
			Source:        pgSource(dbName),
		},
	}
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "billing-manual-")
	// No secret value may sit in the Job: only references.
	spec, _ := json.Marshal(j.Spec)
	if strings.Contains(string(spec), s3.Secrets.Get("SecretAccessKey").Reveal()) {
		t.Fatal("the Job spec carries the secret access key")
	}
	if run := cl.k.runJob(ctx, j); run.exitErr != nil {
		t.Fatalf("job failed: %v", run.exitErr)
	}
	got := cl.waitOutcome("billing")
	requireSucceeded(t, got)
	if !strings.HasPrefix(got.Status.LastBackup.ObjectKey, "prod/billing/") {
		t.Errorf("lastBackup.objectKey = %q, want it under the repo prefix", got.Status.LastBackup.ObjectKey)
	}
	repoURL := fmt.Sprintf("s3://%s/prod/billing?endpoint=%s&region=%s&path_style=true", s3.Bucket, s3.Endpoint, s3.Region)
	fp := restoreWithCLI(t, srv, repoURL,
		"AWS_ACCESS_KEY_ID="+s3.Secrets.Get("AccessKeyId").Reveal(),
		"AWS_SECRET_ACCESS_KEY="+s3.Secrets.Get("SecretAccessKey").Reveal())
	if fp != want {
		t.Fatalf("restored content %s, want %s", fp, want)
	}
}

func TestScheduledBackup(t *testing.T) {
	cl := startCluster(t)
	srv, dbName, db := sourceDB(t)
	want := fingerprint(t, db)
	claim := t.TempDir()
	cl.k.claims["nightly"] = claim
	ctx := context.Background()
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:            []dbv1.Repo{{Name: "vol", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "nightly"}}},
			ScheduledTrigger: &dbv1.ScheduledTrigger{Enabled: true, Schedule: "0 3 * * *", Repo: "vol"},
			Source:           pgSource(dbName),
			Retention:        &dbv1.Retention{KeepLast: ptr.To[int32](1)},
		},
	}
	must(t, cl.c.Create(ctx, res))
	cj := waitForCronJob(t, cl, controller.CronJobName("nightly"))
	// There is no CronJob controller in envtest: create the Job from the
	// template as it would, then run it. Twice, so retention has work.
	for i := range 2 {
		j := jobFromCronJob(t, cl, cj, i)
		if run := cl.k.runJob(ctx, j); run.exitErr != nil {
			t.Fatalf("scheduled job %d failed: %v", i, run.exitErr)
		}
	}
	got := cl.waitOutcome("nightly")
	requireSucceeded(t, got)
	repoDir := filepath.Join(claim, cl.ns, "nightly")
	entries, err := os.ReadDir(repoDir)
	must(t, err)
	if len(entries) != 1 || entries[0].Name() != got.Status.LastBackup.ID {
		t.Fatalf("repo holds %v, want only the last backup %s (keepLast 1)", entries, got.Status.LastBackup.ID)
	}
	if fp := restoreWithCLI(t, srv, "file://"+repoDir); fp != want {
		t.Fatalf("restored content %s, want %s", fp, want)
	}
}

func TestWrongPasswordFails(t *testing.T) {
	cl := startCluster(t)
	// PostgreSQL here trusts loopback connections, so the wrong password is
	// tried on MariaDB, which checks it.
	srv := testdb.MariaDB(t)
	dbName, _ := srv.Create(t, "e2e_pw")
	user := testdb.Unique("e2e_user")
	const right, wrong = "right-Pa55word-1", "wrong-Pa55word-2"
	if _, err := srv.Admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, right)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	if _, err := srv.Admin.Exec(fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", testdb.QuoteMy(dbName), user)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: cl.ns},
		StringData: map[string]string{"password": wrong},
	}))
	cl.k.claims["vol"] = t.TempDir()
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "vol", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "vol"}}},
			ManualTrigger: manual("vol"),
			Source: &dbv1.Source{Type: dbv1.SourceTypeMySQL, Host: "127.0.0.1", Port: 3306, Database: dbName, User: user,
				PasswordSecretRef: &dbv1.SecretKeyRef{Name: "db-password", Key: "password"}},
		},
	}
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "shop-manual-")
	run := cl.k.runJob(ctx, j)
	if run.exitErr == nil {
		t.Fatal("the job succeeded with a wrong password")
	}
	got := cl.waitOutcome("shop")
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonBackupFailed || !strings.Contains(c.Message, "Access denied") {
		t.Fatalf("Succeeded = %s/%s/%q, want False/BackupFailed naming the denied access", c.Status, c.Reason, c.Message)
	}
	status, _ := json.Marshal(got.Status)
	for _, secret := range []string{wrong, right} {
		if strings.Contains(string(status), secret) || strings.Contains(run.output, secret) {
			t.Fatalf("a password appears in the status or the job's log:\n%s\n%s", status, run.output)
		}
	}
	if got.Status.LastBackup != nil {
		t.Errorf("lastBackup set after a failed backup: %+v", got.Status.LastBackup)
	}
}

//go:build cluster

package cluster

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/conformance/emulators"
	"github.com/dbarchive/dbarchive/drivers"
	_ "github.com/dbarchive/dbarchive/drivers/ibmcos"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// Bounds of the waits. A backup of the test database takes seconds; the
// first pod of a namespace waits for its ServiceAccount and token.
const (
	backupBound = 4 * time.Minute
	// minuteBound: the CronJob controller acts on minute boundaries.
	minuteBound = 150 * time.Second
)

// fixture is one namespace with the article's ibmcos repo on the IAM
// emulator (API key mode: the job exchanges the key for a token).
type fixture struct {
	t    *testing.T
	ns   string
	c    client.Client
	cos  drivers.Config
	iam  *emulators.IAMStats
	ctx  context.Context
	name string
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "database-"}}
	must(t, env.Client.Create(ctx, ns))
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, ns.Name)
		}
		_ = env.Client.Delete(context.Background(), ns)
	})
	cos, iam := emulators.IBMCOS(t, emulators.IBMCOSAPIKey)
	must(t, env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "ibmcos-repo", Namespace: ns.Name},
		StringData: map[string]string{
			"ApiKey":            cos.Secrets.Get("ApiKey").Reveal(),
			"ServiceInstanceId": cos.Secrets.Get("ServiceInstanceId").Reveal(),
		},
	}))
	return &fixture{t: t, ns: ns.Name, c: env.Client, cos: cos, iam: iam, ctx: ctx, name: name}
}

// article is config/samples/article_databasebackup.yaml as the article
// writes it, in the fixture's namespace, its repo pointed at the emulator
// and a source added.
func (f *fixture) article(src *dbv1.Source) *dbv1.DatabaseBackup {
	f.t.Helper()
	raw, err := os.ReadFile(filepath.Join(env.Root, "config", "samples", "article_databasebackup.yaml"))
	must(f.t, err)
	b := &dbv1.DatabaseBackup{}
	must(f.t, yaml.UnmarshalStrict(raw, b))
	b.Name, b.Namespace = f.name, f.ns
	repo := &b.Spec.Repos[0]
	repo.ServiceEndpoint, repo.AuthEndpoint, repo.Region = f.cos.Endpoint, f.cos.AuthEndpoint, f.cos.Region
	repo.PathStyle = true
	b.Spec.Source = src
	b.Spec.ManualTrigger.Time = time.Now().UTC().Format(time.RFC3339)
	return b
}

// bucket opens the bucket the job writes to (bucketNamePrefix + name).
func (f *fixture) bucket(b *dbv1.DatabaseBackup) *drivers.Bucket {
	f.t.Helper()
	cfg := f.cos
	cfg.Bucket = b.Spec.Repos[0].ResolvedBucket(b.Name)
	bk, err := drivers.Open(f.ctx, cfg)
	must(f.t, err)
	f.t.Cleanup(func() { _ = bk.Close() })
	return bk
}

// listed is the backups of b the repo lists (under <namespace>/<name>).
func (f *fixture) listed(b *dbv1.DatabaseBackup) []*archiver.Manifest {
	f.t.Helper()
	list, problems, err := archiver.List(f.ctx, f.bucket(b), b.Namespace+"/"+b.Name)
	if err != nil && !strings.Contains(err.Error(), "NoSuchBucket") && drivers.CodeOf(err) != drivers.NotFound {
		f.t.Fatalf("list backups: %v", err)
	}
	if len(problems) > 0 {
		f.t.Logf("list problems: %v", problems)
	}
	return list
}

// outcome waits until the Succeeded condition leaves BackupRunning (and
// its lastBackup differs from prev when wantNew).
func (f *fixture) outcome(name string, bound time.Duration, done func(*dbv1.DatabaseBackup) bool) *dbv1.DatabaseBackup {
	f.t.Helper()
	db := &dbv1.DatabaseBackup{}
	eventually(f.t, bound, func() error {
		if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: name}, db); err != nil {
			return err
		}
		c := meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil || c.Reason == dbv1.ReasonBackupRunning {
			return fmt.Errorf("Succeeded condition is %+v", c)
		}
		if done != nil && !done(db) {
			return fmt.Errorf("status is %+v", db.Status)
		}
		return nil
	})
	return db
}

func requireSucceeded(t *testing.T, db *dbv1.DatabaseBackup) {
	t.Helper()
	c := meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionTrue || c.Reason != dbv1.ReasonBackupSucceeded || c.Message != "Database has been archived" {
		t.Fatalf("Succeeded = %s/%s/%q, want True/BackupSucceeded/\"Database has been archived\"", c.Status, c.Reason, c.Message)
	}
	if lb := db.Status.LastBackup; lb == nil || lb.ID == "" || lb.StoredSize <= 0 {
		t.Fatalf("lastBackup = %+v, want id and size", lb)
	}
}

// sourceDB makes a PostgreSQL database with testdb's schema (unicode,
// binary values, a view, a trigger, a sequence) and 20,000 big rows.
func sourceDB(t *testing.T) (*testdb.Server, string, *sql.DB) {
	t.Helper()
	srv := testdb.Postgres(t)
	name, db := srv.Create(t, "cluster")
	srv.Populate(t, db, 20_000)
	return srv, name, db
}

func pgSource(database string) *dbv1.Source {
	return &dbv1.Source{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: database, User: "postgres"}
}

// The article's manual backup, run by the operator's pod from its image and
// by the job image on the node: it ends as the article shows, the manifest
// records the version make images stamped, the job ran as 65532 with a
// read-only root filesystem, and a DatabaseRestore brings the content back.
func TestManualBackupAndRestore(t *testing.T) {
	f := newFixture(t, "databasebackup-manual")
	srv, dbName, db := sourceDB(t)
	want := srv.Fingerprint(t, db)
	b := f.article(pgSource(dbName))
	must(t, f.c.Create(f.ctx, b))

	got := f.outcome(b.Name, backupBound, nil)
	requireSucceeded(t, got)
	if f.iam.TokensIssued() == 0 {
		t.Error("the job never exchanged its API key for an IAM token")
	}
	// The Job the operator made ran from the job image the operator of
	// this version defaults to, in the job sandbox.
	jobs := f.jobs(b.Name)
	if len(jobs) != 1 {
		t.Fatalf("jobs: %d, want 1", len(jobs))
	}
	pod := jobs[0].Spec.Template.Spec
	if img := pod.Containers[0].Image; img != dbv1.JobImage(version) {
		t.Errorf("job image %s, want %s", img, dbv1.JobImage(version))
	}
	if sc := pod.Containers[0].SecurityContext; sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.RunAsUser, 0) != 65532 {
		t.Errorf("job container security context %+v, want read-only root as 65532", sc)
	}

	list := f.listed(b)
	if len(list) != 1 || list[0].ID != got.Status.LastBackup.ID {
		t.Fatalf("repo lists %d backups, want the one in status (%s)", len(list), got.Status.LastBackup.ID)
	}
	if v := list[0].Tool.Version; v != version {
		t.Errorf("manifest tool version %q, want %q (make images' VERSION)", v, version)
	}

	// Restore into a new database with a DatabaseRestore (dbr).
	target := srv.Name(t, "cluster_restore")
	dr := &dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "restore", Namespace: f.ns},
		Spec: dbv1.DatabaseRestoreSpec{
			From:           dbv1.RestoreFrom{DatabaseBackup: b.Name},
			Target:         dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: target, User: "postgres"},
			CreateDatabase: true,
		},
	}
	must(t, f.c.Create(f.ctx, dr))
	eventually(t, backupBound, func() error {
		if err := f.c.Get(f.ctx, client.ObjectKeyFromObject(dr), dr); err != nil {
			return err
		}
		c := meta.FindStatusCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil || c.Status == metav1.ConditionUnknown {
			return fmt.Errorf("restore Succeeded is %+v", c)
		}
		if c.Status != metav1.ConditionTrue || c.Reason != dbv1.ReasonRestoreSucceeded {
			t.Fatalf("restore ended %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	if dr.Status.Backup == nil || dr.Status.Backup.ID != got.Status.LastBackup.ID {
		t.Errorf("restored backup %+v, want %s", dr.Status.Backup, got.Status.LastBackup.ID)
	}
	if fp := srv.Fingerprint(t, srv.Connect(t, target)); !maps.Equal(fp, want) {
		t.Fatalf("restored content %s, want %s", fp, want)
	}
}

// jobs lists the Jobs of a DatabaseBackup (by the operator's label).
func (f *fixture) jobs(name string) []batchv1.Job {
	f.t.Helper()
	list := &batchv1.JobList{}
	must(f.t, f.c.List(f.ctx, list, client.InNamespace(f.ns)))
	var out []batchv1.Job
	for _, j := range list.Items {
		if strings.HasPrefix(j.Name, name+"-") {
			out = append(out, j)
		}
	}
	return out
}

func dumpNamespace(t *testing.T, ns string) {
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		st, _ := json.Marshal(p.Status.ContainerStatuses)
		t.Logf("pod %s (%s) %s\n%s", p.Name, p.Status.Phase, st, agent.Logs(ns, p.Name))
	}
	jobs, err := cs.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, j := range jobs.Items {
			st, _ := json.Marshal(j.Status.Conditions)
			t.Logf("job %s: active %d succeeded %d failed %d %s", j.Name, j.Status.Active, j.Status.Succeeded, j.Status.Failed, st)
		}
	}
	list := &dbv1.DatabaseBackupList{}
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err == nil {
		for _, b := range list.Items {
			st, _ := json.Marshal(b.Status)
			t.Logf("databasebackup %s: %s", b.Name, st)
		}
	}
	events, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			t.Logf("event %s %s/%s: %s %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %v", timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = apierrors.IsNotFound

// A scheduledTrigger of every minute runs through the real CronJob
// controller. Each backup runs longer than a minute (an exec source that
// waits 65 s), so a schedule falls while one runs: concurrencyPolicy Forbid
// must skip it, never run two at once. A second backup still succeeds; then
// deleting the DatabaseBackup removes its CronJob and Jobs through the
// garbage collector.
func TestScheduledForbidAndGarbageCollection(t *testing.T) {
	f := newFixture(t, "databasebackup-scheduled")
	b := f.article(&dbv1.Source{Type: dbv1.SourceTypeExec, Command: []string{"sh", "-c", "sleep 65; echo scheduled-by-the-cronjob-controller"}})
	b.Spec.ManualTrigger = nil
	b.Spec.ScheduledTrigger.Enabled = true
	b.Spec.ScheduledTrigger.Schedule = "* * * * *"
	// The default deadline of a scheduled Job ends it before the next run
	// (54 s here); this one must outlive a minute boundary.
	b.Spec.ActiveDeadlineSeconds = ptr.To[int64](150)
	must(t, f.c.Create(f.ctx, b))

	// Watch the Jobs until two backups have succeeded: never two active.
	var first string
	overlapSeen := false
	deadline := time.Now().Add(2*minuteBound + 3*time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no second successful scheduled backup within the bound")
		}
		jobs := f.jobs(b.Name)
		active := 0
		for _, j := range jobs {
			if !jobFinished(&j) {
				active++
				// A minute boundary passed while this Job ran: the CronJob
				// controller had a schedule to skip.
				if j.Status.StartTime != nil && time.Since(j.Status.StartTime.Time) > 61*time.Second {
					overlapSeen = true
				}
			}
		}
		if active > 1 {
			t.Fatalf("%d backup Jobs active at once under concurrencyPolicy Forbid", active)
		}
		cur := &dbv1.DatabaseBackup{}
		must(t, f.c.Get(f.ctx, client.ObjectKeyFromObject(b), cur))
		if c := meta.FindStatusCondition(cur.Status.Conditions, dbv1.ConditionSucceeded); c != nil && c.Reason == dbv1.ReasonBackupFailed {
			t.Fatalf("scheduled backup failed: %s", c.Message)
		}
		if lb := cur.Status.LastBackup; lb != nil {
			if first == "" {
				requireSucceeded(t, f.outcome(b.Name, time.Second, nil))
				first = lb.ID
				t.Logf("first scheduled backup %s", first)
			} else if lb.ID != first {
				requireSucceeded(t, f.outcome(b.Name, time.Second, nil))
				t.Logf("second scheduled backup %s", lb.ID)
				break
			}
		}
		time.Sleep(time.Second)
	}
	if !overlapSeen {
		t.Fatal("no Job ran across a minute boundary: Forbid was not exercised")
	}
	if n := len(f.listed(b)); n < 2 {
		t.Fatalf("repo lists %d backups, want 2", n)
	}
	// The CronJob named them: they came from the CronJob controller.
	for _, j := range f.jobs(b.Name) {
		if ref := metav1.GetControllerOf(&j); ref == nil || ref.Kind != "CronJob" {
			t.Errorf("Job %s is not controlled by a CronJob: %+v", j.Name, ref)
		}
	}

	must(t, f.c.Delete(f.ctx, b))
	eventually(t, minuteBound, func() error {
		cjs, err := cs.BatchV1().CronJobs(f.ns).List(f.ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if n := len(cjs.Items); n > 0 {
			return fmt.Errorf("%d CronJobs left", n)
		}
		if n := len(f.jobs(b.Name)); n > 0 {
			return fmt.Errorf("%d Jobs left", n)
		}
		pods, err := cs.CoreV1().Pods(f.ns).List(f.ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if n := len(pods.Items); n > 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// A wrong database password ends the backup BackupFailed with the
// server's reason, not with the Job controller's BackoffLimitExceeded, and
// the password appears nowhere in the status. The local PostgreSQL trusts
// loopback connections, so the server is a PostgreSQL of the job image's
// own (its restore-drill server) that checks passwords (scram-sha-256).
func TestWrongPasswordFails(t *testing.T) {
	f := newFixture(t, "databasebackup-password")
	const right, wrong = "right-Pa55word-1", "wrong-Pa55word-2"
	port := passwordPostgres(t, right)
	must(t, f.c.Create(f.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: f.ns},
		StringData: map[string]string{"password": wrong},
	}))
	b := f.article(&dbv1.Source{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: int32(port), Database: "postgres", User: "postgres",
		PasswordSecretRef: &dbv1.SecretKeyRef{Name: "db-password", Key: "password"}})
	must(t, f.c.Create(f.ctx, b))
	got := f.outcome(b.Name, backupBound, nil)
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonBackupFailed || !strings.Contains(c.Message, "password authentication failed") {
		t.Fatalf("Succeeded = %s/%s/%q, want False/BackupFailed naming the failed password authentication", c.Status, c.Reason, c.Message)
	}
	status, _ := json.Marshal(got.Status)
	for _, secret := range []string{wrong, right} {
		if strings.Contains(string(status), secret) {
			t.Fatalf("a password appears in the status: %s", status)
		}
	}
	for _, j := range f.jobs(b.Name) {
		spec, _ := json.Marshal(j.Spec)
		if strings.Contains(string(spec), wrong) {
			t.Fatalf("the Job spec carries the password")
		}
	}
	if got.Status.LastBackup != nil {
		t.Errorf("lastBackup set after a failed backup: %+v", got.Status.LastBackup)
	}
	if n := len(f.listed(b)); n != 0 {
		t.Errorf("repo lists %d backups after a failed one", n)
	}
}

// passwordPostgres runs the job image's PostgreSQL server on a free
// loopback port, with password authentication for postgres, until the test
// ends. The password goes in through an env file, not the command line.
func passwordPostgres(t *testing.T, password string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	envFile := filepath.Join(t.TempDir(), "env")
	must(t, os.WriteFile(envFile, []byte("PGPASS_INIT="+password+"\n"), 0o600))
	name := fmt.Sprintf("dbarchive-pg-%d", port)
	script := fmt.Sprintf(`set -e; bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n1); printf '%%s' "$PGPASS_INIT" > /tmp/pw
"$bin/initdb" -D /tmp/pg -U postgres --auth=scram-sha-256 --pwfile=/tmp/pw >/dev/null; rm /tmp/pw
exec "$bin/postgres" -D /tmp/pg -p %d -k /tmp -c listen_addresses=127.0.0.1`, port)
	args := append(append([]string{}, agent.podman[1:]...), "run", "--detach", "--name", name, "--network", "host", "--env-file", envFile,
		"--tmpfs", "/tmp:mode=1777")
	args = append(args, agent.ulimits...)
	args = append(args, "--entrypoint", `["sh","-c"]`, dbv1.JobImage(version), script)
	if out, err := exec.Command(agent.podman[0], args...).CombinedOutput(); err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(agent.podman[0], append(append([]string{}, agent.podman[1:]...), "rm", "--force", "--time", "5", name)...).Run()
	})
	eventually(t, time.Minute, func() error {
		out, err := exec.Command(agent.podman[0], append(append([]string{}, agent.podman[1:]...), "exec", name, "sh", "-c",
			fmt.Sprintf(`"$(ls -d /usr/lib/postgresql/*/bin | tail -n1)/pg_isready" -h 127.0.0.1 -p %d`, port))...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("PostgreSQL on %d not ready: %v %s", port, err, out)
		}
		return nil
	})
	return port
}

// A backup that outlives the Job's activeDeadlineSeconds is stopped by the
// Job controller deleting its pod: the container gets SIGTERM, the job
// aborts the upload it had started and reports BackupFailed with the
// reason, and the repo lists no backup.
func TestActiveDeadlineStopsBackup(t *testing.T) {
	f := newFixture(t, "databasebackup-deadline")
	// 20 MB at once (the upload starts), then nothing for ten minutes.
	b := f.article(&dbv1.Source{Type: dbv1.SourceTypeExec, Command: []string{"sh", "-c", "head -c 20000000 /dev/urandom; sleep 600"}})
	b.Spec.ActiveDeadlineSeconds = ptr.To[int64](25)
	must(t, f.c.Create(f.ctx, b))
	got := f.outcome(b.Name, backupBound, nil)
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonBackupFailed {
		t.Fatalf("Succeeded = %s/%s/%q, want False/BackupFailed", c.Status, c.Reason, c.Message)
	}
	if !strings.Contains(c.Message, "deadline") && !strings.Contains(c.Message, "DeadlineExceeded") && !strings.Contains(c.Message, "stopped before it finished") {
		t.Errorf("Succeeded message %q does not say the deadline stopped it", c.Message)
	}
	jobs := f.jobs(b.Name)
	if len(jobs) != 1 {
		t.Fatalf("jobs: %d, want 1", len(jobs))
	}
	eventually(t, time.Minute, func() error {
		j, err := cs.BatchV1().Jobs(f.ns).Get(f.ctx, jobs[0].Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, jc := range j.Status.Conditions {
			if jc.Type == batchv1.JobFailed && jc.Status == corev1.ConditionTrue {
				if jc.Reason != batchv1.JobReasonDeadlineExceeded {
					t.Fatalf("Job failed with %s, want DeadlineExceeded", jc.Reason)
				}
				return nil
			}
		}
		return fmt.Errorf("job conditions %+v", j.Status.Conditions)
	})
	if got.Status.LastBackup != nil {
		t.Errorf("lastBackup set after a stopped backup: %+v", got.Status.LastBackup)
	}
	if n := len(f.listed(b)); n != 0 {
		t.Errorf("repo lists %d backups after a stopped one", n)
	}
	// The upload was started (20 MB sat in the pipe) and then aborted, not
	// left pending for the bucket's lifecycle rules.
	pending, err := f.bucket(b).ListUploads(f.ctx, "")
	must(t, err)
	if len(pending) != 0 {
		t.Errorf("%d multipart uploads left pending: %+v", len(pending), pending)
	}
	if f.iam.Authorized() == 0 {
		t.Error("the job never reached the repo before it was stopped")
	}
	t.Logf("Succeeded: %s/%s/%q", c.Status, c.Reason, c.Message)
}

// The job image's MariaDB 11.8 client insists on TLS unless told not to:
// against the host's MariaDB 10.11, which has none, a backup with the
// client's default fails naming the cause, and one with tls: disable
// succeeds.
func TestMariaDBWithoutTLS(t *testing.T) {
	srv := testdb.MariaDB(t)
	dbName, db := srv.Create(t, "cluster_my")
	srv.Populate(t, db, 2000)
	source := func(tls dbv1.TLSMode) *dbv1.Source {
		return &dbv1.Source{Type: dbv1.SourceTypeMySQL, Host: "127.0.0.1", Port: 3306, Database: dbName, User: "root", TLS: tls}
	}
	def := newFixture(t, "databasebackup-mariadb-default")
	withDefault := def.article(source(""))
	must(t, def.c.Create(def.ctx, withDefault))
	off := newFixture(t, "databasebackup-mariadb")
	withoutTLS := off.article(source(dbv1.TLSDisable))
	must(t, off.c.Create(off.ctx, withoutTLS))

	got := def.outcome(withDefault.Name, backupBound, nil)
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonBackupFailed || !strings.Contains(c.Message, "SSL") {
		t.Errorf("client default against a server without TLS: Succeeded = %s/%s/%q, want False/BackupFailed naming SSL", c.Status, c.Reason, c.Message)
	}
	if n := len(def.listed(withDefault)); n != 0 {
		t.Errorf("repo lists %d backups after a failed one", n)
	}

	requireSucceeded(t, off.outcome(withoutTLS.Name, backupBound, nil))
	if list := off.listed(withoutTLS); len(list) != 1 || list[0].Source.Type != "mysql" {
		t.Fatalf("repo lists %+v, want one mysql backup", list)
	}
}

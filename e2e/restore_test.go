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

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/testdb"
)

// backedUp is a DatabaseBackup that has made two backups of a database whose
// content changed in between.
type backedUp struct {
	srv     *testdb.Server
	name    string // the DatabaseBackup
	claim   string // the directory standing in for its volume
	ids     [2]string
	prints  [2]map[string]string // the database's content at each backup
	between time.Time            // after the first backup ended, before the second started
}

// backUpTwice backs a populated database up through a DatabaseBackup, changes
// the content, and backs it up again.
func backUpTwice(t *testing.T, cl *cluster, srv *testdb.Server, src *dbv1.Source, db *sql.DB) *backedUp {
	t.Helper()
	ctx := context.Background()
	bu := &backedUp{srv: srv, name: "orders", claim: t.TempDir()}
	cl.k.claims["backups"] = bu.claim
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: bu.name, Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups"}}},
			ManualTrigger: manual("local"),
			Source:        src,
		},
	}
	must(t, cl.c.Create(ctx, res))
	for i := range 2 {
		bu.prints[i] = srv.Fingerprint(t, db)
		j := waitForJob(t, cl.c, cl.ns, controller.ManualJobName(bu.name, mustTime(t, res.Spec.ManualTrigger.Time)))
		if run := cl.k.runJob(ctx, j); run.exitErr != nil {
			t.Fatalf("backup %d failed: %v", i, run.exitErr)
		}
		got := cl.waitOutcome(bu.name)
		requireSucceeded(t, got)
		if got.Status.LastBackup.ID == bu.ids[0] {
			t.Fatalf("backup %d has the id of the first", i)
		}
		bu.ids[i] = got.Status.LastBackup.ID
		if i == 1 {
			break
		}
		bu.between = time.Now().UTC()
		time.Sleep(1100 * time.Millisecond) // a distinct manualTrigger.time (seconds) and backup time
		for _, q := range []string{
			`INSERT INTO people (id, name, note) VALUES (10, 'second backup', 'only in the second')`,
			`UPDATE big SET a = 'changed' WHERE id <= 10`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		must(t, cl.c.Get(ctx, client.ObjectKeyFromObject(res), res))
		res.Spec.ManualTrigger = manual("local")
		must(t, cl.c.Update(ctx, res))
	}
	if fmt.Sprint(bu.prints[0]) == fmt.Sprint(bu.prints[1]) {
		t.Fatal("the two backups have the same content: the test would prove nothing")
	}
	return bu
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	must(t, err)
	return at
}

// restoreRun is one DatabaseRestore run through the operator and the job.
type restoreRun struct {
	dr  *dbv1.DatabaseRestore
	run podRun
	job *batchv1.Job
}

// runRestore creates dr, waits for its Job, runs it, and waits for the
// outcome the job reports.
func (cl *cluster) runRestore(dr *dbv1.DatabaseRestore) restoreRun {
	cl.t.Helper()
	ctx := context.Background()
	dr.Namespace = cl.ns
	must(cl.t, cl.c.Create(ctx, dr))
	j := waitForJob(cl.t, cl.c, cl.ns, dbv1.RestoreJobName(dr.Name))
	run := cl.k.runJob(ctx, j)
	got := &dbv1.DatabaseRestore{}
	eventually(cl.t, 60*time.Second, func() error {
		if err := cl.c.Get(ctx, client.ObjectKeyFromObject(dr), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil || c.Status == metav1.ConditionUnknown {
			return fmt.Errorf("Succeeded condition is %+v", c)
		}
		return nil
	})
	return restoreRun{dr: got, run: run, job: j}
}

func pgTarget(database string) dbv1.RestoreTarget {
	return dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: database, User: "postgres"}
}

func fromBackup(name string) dbv1.RestoreFrom { return dbv1.RestoreFrom{DatabaseBackup: name} }

// requireRestored checks the condition and status of a successful restore of
// backup id.
func requireRestored(t *testing.T, rr restoreRun, id string) {
	t.Helper()
	if rr.run.exitErr != nil {
		t.Fatalf("restore job failed: %v\n%s", rr.run.exitErr, rr.run.output)
	}
	dr := rr.dr
	c := meta.FindStatusCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionTrue || c.Reason != dbv1.ReasonRestoreSucceeded || c.Message != "Database has been restored" {
		t.Fatalf("Succeeded = %s/%s/%q, want True/RestoreSucceeded/\"Database has been restored\"", c.Status, c.Reason, c.Message)
	}
	if c.ObservedGeneration != dr.Generation {
		t.Errorf("observedGeneration %d, generation %d", c.ObservedGeneration, dr.Generation)
	}
	b := dr.Status.Backup
	if b == nil || b.ID != id || b.StoredSize <= 0 || b.UncompressedSize <= b.StoredSize || b.Repo == "" {
		t.Fatalf("status.backup = %+v, want id %s with its sizes and repo", b, id)
	}
	st := dr.Status
	if st.StartTime == nil || st.CompletionTime == nil || st.Duration == nil || st.Duration.Duration <= 0 || st.Job != dbv1.RestoreJobName(dr.Name) {
		t.Fatalf("status times/job = %v %v %v %q", st.StartTime, st.CompletionTime, st.Duration, st.Job)
	}
}

// requireFailed checks a refused or failed restore: the reason, words the
// message must hold, and that the job exited with code want.
func requireFailed(t *testing.T, rr restoreRun, reason string, exit int, words ...string) *metav1.Condition {
	t.Helper()
	var exitErr *exec.ExitError
	if !errors.As(rr.run.exitErr, &exitErr) || exitErr.ExitCode() != exit {
		t.Fatalf("job ended with %v, want exit code %d\n%s", rr.run.exitErr, exit, rr.run.output)
	}
	c := meta.FindStatusCondition(rr.dr.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != reason {
		t.Fatalf("Succeeded = %s/%s/%q, want False/%s", c.Status, c.Reason, c.Message, reason)
	}
	for _, w := range words {
		if !strings.Contains(c.Message, w) {
			t.Errorf("message %q does not contain %q", c.Message, w)
		}
	}
	if rr.dr.Status.CompletionTime == nil {
		t.Error("completionTime not set after a failure")
	}
	return c
}

// events are the Events about one DatabaseRestore.
func (cl *cluster) events(name string) []eventsv1.Event {
	cl.t.Helper()
	var out []eventsv1.Event
	list := &eventsv1.EventList{}
	must(cl.t, cl.c.List(context.Background(), list, client.InNamespace(cl.ns)))
	for _, e := range list.Items {
		if e.Regarding.Kind == "DatabaseRestore" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event of reason about the DatabaseRestore name.
func (cl *cluster) waitEvent(name, reason string) eventsv1.Event {
	cl.t.Helper()
	var found eventsv1.Event
	eventually(cl.t, 30*time.Second, func() error {
		for _, e := range cl.events(name) {
			if e.Reason == reason {
				found = e
				return nil
			}
		}
		return fmt.Errorf("no Event %s for DatabaseRestore %s", reason, name)
	})
	return found
}

func databaseExists(t *testing.T, srv *testdb.Server, name string) bool {
	t.Helper()
	var n int
	must(t, srv.Admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n))
	return n == 1
}

// TestRestoreFromDatabaseBackup: a DatabaseBackup makes two backups of
// different content; DatabaseRestores of latest, of the first backup's id
// and of before:<a time between the two> each restore the expected content
// into a new database, compared table by table. Then the refusals and
// failures, each ending in a clear condition with nothing changed.
func TestRestoreFromDatabaseBackup(t *testing.T) {
	cl := startCluster(t)
	srv := testdb.Postgres(t)
	dbName, db := srv.Create(t, "e2e_src")
	srv.Populate(t, db, 2000)
	bu := backUpTwice(t, cl, srv, pgSource(dbName), db)
	ctx := context.Background()

	targets := map[string]string{}             // restore name -> target database
	contents := map[string]map[string]string{} // restore name -> the target's fingerprint at the end
	for _, tc := range []struct {
		name, backup string
		want         int // which backup's content
	}{
		{"latest", "", 1},
		{"first-id", bu.ids[0], 0},
		{"before", "before:" + bu.between.Format(time.RFC3339Nano), 0},
	} {
		target := srv.Name(t, "e2e_"+strings.ReplaceAll(tc.name, "-", "_"))
		targets[tc.name] = target
		rr := cl.runRestore(&dbv1.DatabaseRestore{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name},
			Spec: dbv1.DatabaseRestoreSpec{
				From: fromBackup(bu.name), Backup: tc.backup, Target: pgTarget(target), CreateDatabase: true,
			},
		})
		requireRestored(t, rr, bu.ids[tc.want])
		if tc.backup == "" && rr.dr.Spec.Backup != dbv1.BackupLatest {
			t.Errorf("spec.backup defaulted to %q, want latest", rr.dr.Spec.Backup)
		}
		testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), bu.prints[tc.want])
		srv.CheckTrigger(t, srv.Connect(t, target))
		contents[tc.name] = srv.Fingerprint(t, srv.Connect(t, target))
		cl.waitEvent(tc.name, dbv1.ReasonRestoreSucceeded)
		cl.waitEvent(tc.name, "RestoreStarted")

		// The Job is the resource's, and runs as its own ServiceAccount.
		j := rr.job
		if !metav1.IsControlledBy(j, rr.dr) || *j.Spec.BackoffLimit != 0 {
			t.Errorf("Job %s: controlled by the restore %v, backoffLimit %d", j.Name, metav1.IsControlledBy(j, rr.dr), *j.Spec.BackoffLimit)
		}
		if sa := j.Spec.Template.Spec.ServiceAccountName; sa != controller.RestoreRBACName(tc.name) {
			t.Errorf("Job runs as %q", sa)
		}
	}

	// spec is immutable
	{
		dr := &dbv1.DatabaseRestore{}
		must(t, cl.c.Get(ctx, types.NamespacedName{Namespace: cl.ns, Name: "latest"}, dr))
		dr.Spec.Target.Database = "elsewhere"
		err := cl.c.Update(ctx, dr)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "create a new DatabaseRestore") {
			t.Fatalf("update of the spec: %v, want a refusal saying to create a new DatabaseRestore", err)
		}
	}

	// target not empty
	{
		target, tdb := srv.Create(t, "e2e_busy")
		if _, err := tdb.Exec(`CREATE TABLE keep (id int PRIMARY KEY, v text); INSERT INTO keep VALUES (1, 'mine')`); err != nil {
			t.Fatal(err)
		}
		before := tableDump(t, tdb)
		rr := cl.runRestore(&dbv1.DatabaseRestore{
			ObjectMeta: metav1.ObjectMeta{Name: "busy"},
			Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup(bu.name), Target: pgTarget(target)},
		})
		requireFailed(t, rr, dbv1.ReasonTargetNotEmpty, dbv1.JobExitPermanent, target, "overwrite")
		if rr.dr.Status.Backup == nil || rr.dr.Status.Backup.ID != bu.ids[1] {
			t.Errorf("status.backup = %+v, want the resolved latest %s", rr.dr.Status.Backup, bu.ids[1])
		}
		if after := tableDump(t, tdb); after != before {
			t.Fatalf("the target changed: %s, was %s", after, before)
		}
		cl.waitEvent("busy", dbv1.ReasonTargetNotEmpty)
	}

	// backup id that does not exist
	{
		const missing = "20200101T000000.000Z-0badc0de"
		target := srv.Name(t, "e2e_missing")
		rr := cl.runRestore(&dbv1.DatabaseRestore{
			ObjectMeta: metav1.ObjectMeta{Name: "missing"},
			Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup(bu.name), Backup: missing, Target: pgTarget(target), CreateDatabase: true},
		})
		requireFailed(t, rr, dbv1.ReasonRestoreFailed, dbv1.JobExitPermanent, missing)
		if databaseExists(t, srv, target) {
			t.Fatalf("database %s exists after a restore of a missing backup", target)
		}
		if rr.dr.Status.Backup != nil {
			t.Errorf("status.backup = %+v for a backup that does not exist", rr.dr.Status.Backup)
		}
		cl.waitEvent("missing", dbv1.ReasonRestoreFailed)
	}

	// flipped byte
	{
		data := filepath.Join(bu.claim, cl.ns, bu.name, bu.ids[0], "data.zst")
		flipByte(t, data)
		target := srv.Name(t, "e2e_damaged")
		rr := cl.runRestore(&dbv1.DatabaseRestore{
			ObjectMeta: metav1.ObjectMeta{Name: "damaged"},
			Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup(bu.name), Backup: bu.ids[0], Target: pgTarget(target), CreateDatabase: true},
		})
		requireFailed(t, rr, dbv1.ReasonRestoreFailed, dbv1.JobExitPermanent, bu.ids[0], "corruption")
		if databaseExists(t, srv, target) {
			t.Fatalf("database %s exists after a failed restore that created it", target)
		}
		if rr.dr.Status.Backup == nil || rr.dr.Status.Backup.ID != bu.ids[0] {
			t.Errorf("status.backup = %+v, want %s", rr.dr.Status.Backup, bu.ids[0])
		}
	}

	// deleting the restore deletes its Job
	{
		dr := &dbv1.DatabaseRestore{}
		must(t, cl.c.Get(ctx, types.NamespacedName{Namespace: cl.ns, Name: "first-id"}, dr))
		j := &batchv1.Job{}
		must(t, cl.c.Get(ctx, types.NamespacedName{Namespace: cl.ns, Name: dbv1.RestoreJobName(dr.Name)}, j))
		// envtest runs no garbage collector: check what it acts on, the
		// controller reference with blockOwnerDeletion.
		ref := metav1.GetControllerOf(j)
		if ref == nil || ref.UID != dr.UID || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Fatalf("Job's controller reference = %+v", ref)
		}
		must(t, cl.c.Delete(ctx, dr))
		eventually(t, 30*time.Second, func() error {
			if err := cl.c.Get(ctx, client.ObjectKeyFromObject(dr), dr); !apierrors.IsNotFound(err) {
				return fmt.Errorf("DatabaseRestore still there: %v", err)
			}
			return nil
		})
		// The operator saw the deletion and left the restored database alone.
		testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, targets["first-id"])), contents["first-id"])
	}
}

// TestRestoreDisasterRecovery: the DatabaseBackup is gone; a restore in
// another namespace names the repo in full and gets the latest backup. Its
// job can read nothing of the first namespace.
func TestRestoreDisasterRecovery(t *testing.T) {
	cl := startCluster(t)
	srv := testdb.Postgres(t)
	dbName, db := srv.Create(t, "e2e_dr")
	srv.Populate(t, db, 500)
	bu := backUpTwice(t, cl, srv, pgSource(dbName), db)
	ctx := context.Background()
	must(t, cl.c.Delete(ctx, &dbv1.DatabaseBackup{ObjectMeta: metav1.ObjectMeta{Namespace: cl.ns, Name: bu.name}}))

	other := startCluster(t)
	other.k.claims["restored-volume"] = bu.claim
	target := srv.Name(t, "e2e_dr_target")
	rr := other.runRestore(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "recover"},
		Spec: dbv1.DatabaseRestoreSpec{
			From: dbv1.RestoreFrom{Repo: &dbv1.Repo{
				Name: "vault", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "restored-volume"}, Prefix: cl.ns + "/" + bu.name,
			}},
			Target: pgTarget(target), CreateDatabase: true,
		},
	})
	requireRestored(t, rr, bu.ids[1])
	testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), bu.prints[1])

	// The job's RBAC: exactly its own DatabaseRestore and that resource's
	// status, nothing of another namespace, no Secrets.
	sa := rr.job.Spec.Template.Spec.ServiceAccountName
	asJob := impersonate(t, other, sa)
	if err := asJob.Get(ctx, client.ObjectKeyFromObject(rr.dr), &dbv1.DatabaseRestore{}); err != nil {
		t.Fatalf("the restore job cannot read its own DatabaseRestore: %v", err)
	}
	must(t, cl.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: cl.ns, Name: "db-password"}, StringData: map[string]string{"password": "x"}}))
	for what, obj := range map[string]struct {
		key types.NamespacedName
		obj client.Object
	}{
		"a DatabaseBackup of another namespace":  {types.NamespacedName{Namespace: cl.ns, Name: bu.name}, &dbv1.DatabaseBackup{}},
		"a DatabaseRestore of another namespace": {types.NamespacedName{Namespace: cl.ns, Name: "recover"}, &dbv1.DatabaseRestore{}},
		"a Secret of another namespace":          {types.NamespacedName{Namespace: cl.ns, Name: "db-password"}, &corev1.Secret{}},
		"a Secret of its own namespace":          {types.NamespacedName{Namespace: other.ns, Name: "db-password"}, &corev1.Secret{}},
	} {
		if err := asJob.Get(ctx, obj.key, obj.obj); !apierrors.IsForbidden(err) {
			t.Errorf("the restore job reading %s: %v, want Forbidden", what, err)
		}
	}
	if err := asJob.List(ctx, &dbv1.DatabaseRestoreList{}, client.InNamespace(other.ns)); !apierrors.IsForbidden(err) {
		t.Errorf("the restore job listing DatabaseRestores: %v, want Forbidden", err)
	}
	// Nor may it change its own spec.
	mine := &dbv1.DatabaseRestore{}
	must(t, cl.c.Get(ctx, client.ObjectKeyFromObject(rr.dr), mine))
	if err := asJob.Update(ctx, mine); !apierrors.IsForbidden(err) {
		t.Errorf("the restore job updating its DatabaseRestore: %v, want Forbidden", err)
	}
}

// impersonate is a client acting as ServiceAccount sa of cl's namespace,
// as the kubelet stand-in runs the job.
func impersonate(t *testing.T, cl *cluster, sa string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(cl.k.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", cl.ns, sa),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + cl.ns, "system:authenticated"},
	}
	c, err := client.New(cfg, client.Options{Scheme: cl.c.Scheme()})
	must(t, err)
	return c
}

// TestRestoreMariaDB: a MariaDB backup restores through a DatabaseRestore;
// a wrong target password fails it with Access denied and the password
// appears nowhere: not in status, Events or the job's log.
func TestRestoreMariaDB(t *testing.T) {
	cl := startCluster(t)
	srv := testdb.MariaDB(t)
	dbName, db := srv.Create(t, "e2e_my")
	srv.Populate(t, db, 2000)
	src := &dbv1.Source{Type: dbv1.SourceTypeMySQL, Host: "127.0.0.1", Port: 3306, Database: dbName, User: "root"}
	bu := backUpTwice(t, cl, srv, src, db)
	ctx := context.Background()
	myTarget := func(database string) dbv1.RestoreTarget {
		return dbv1.RestoreTarget{Type: dbv1.SourceTypeMySQL, Host: "127.0.0.1", Port: 3306, Database: database, User: "root"}
	}

	target := srv.Name(t, "e2e_my_first")
	rr := cl.runRestore(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "first"},
		Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup(bu.name), Backup: bu.ids[0], Target: myTarget(target), CreateDatabase: true},
	})
	requireRestored(t, rr, bu.ids[0])
	testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), bu.prints[0])

	user := testdb.Unique("e2e_user")
	const right, wrong = "right-Pa55word-1", "wrong-Pa55word-2"
	if _, err := srv.Admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, right)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Admin.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	victim, vdb := srv.Create(t, "e2e_my_victim")
	if _, err := srv.Admin.Exec(fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", testdb.QuoteMy(victim), user)); err != nil {
		t.Fatal(err)
	}
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: cl.ns},
		StringData: map[string]string{"password": wrong},
	}))
	tt := myTarget(victim)
	tt.User = user
	tt.PasswordSecretRef = &dbv1.SecretKeyRef{Name: "db-password", Key: "password"}
	rr = cl.runRestore(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "wrong-password"},
		Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup(bu.name), Target: tt, Overwrite: true},
	})
	if rr.run.exitErr == nil {
		t.Fatal("the restore succeeded with a wrong password")
	}
	c := meta.FindStatusCondition(rr.dr.Status.Conditions, dbv1.ConditionSucceeded)
	if c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonRestoreFailed || !strings.Contains(c.Message, "Access denied") {
		t.Fatalf("Succeeded = %s/%s/%q, want False/RestoreFailed naming the denied access", c.Status, c.Reason, c.Message)
	}
	if n := len(testdb.Strings(t, vdb, "SHOW TABLES")); n != 0 {
		t.Fatalf("the target has %d tables after a refused restore", n)
	}
	ev := cl.waitEvent("wrong-password", dbv1.ReasonRestoreFailed)
	status, _ := json.Marshal(rr.dr.Status)
	spec, _ := json.Marshal(rr.job.Spec)
	var notes []string
	for _, e := range cl.events("wrong-password") {
		notes = append(notes, e.Note)
	}
	for _, secret := range []string{wrong, right} {
		for what, text := range map[string]string{"status": string(status), "job log": rr.run.output, "Job spec": string(spec), "events": strings.Join(notes, "\n") + ev.Note} {
			if strings.Contains(text, secret) {
				t.Fatalf("a password appears in the %s:\n%s", what, text)
			}
		}
	}
}

// tableDump is the content of every table of a PostgreSQL database's public
// schema, for comparing before and after.
func tableDump(t *testing.T, db *sql.DB) string {
	t.Helper()
	var out []string
	for _, tbl := range testdb.Strings(t, db, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`) {
		var sum string
		must(t, db.QueryRow(fmt.Sprintf(`SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM %s t`, testdb.QuotePG(tbl))).Scan(&sum))
		out = append(out, tbl+"="+sum)
	}
	return strings.Join(out, ";")
}

// flipByte inverts one byte in the middle of a file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	must(t, os.Chmod(path, 0o644))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	st, err := f.Stat()
	must(t, err)
	b := make([]byte, 1)
	off := st.Size() / 2
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	must(t, err)
}

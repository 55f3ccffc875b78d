package job

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/internal/envtest"
	"github.com/dbarchive/dbarchive/internal/testdb"
	"github.com/dbarchive/dbarchive/sources"
	_ "github.com/dbarchive/dbarchive/sources/mysql"
	_ "github.com/dbarchive/dbarchive/sources/postgres"
)

// pausingStore runs hook on the first status patch, before it is written:
// the operator's own status write racing the job's.
type pausingStore struct {
	RestoreStore
	hook    func()
	patches int
}

func (s *pausingStore) PatchRestoreStatus(ctx context.Context, dr *dbv1.DatabaseRestore) error {
	s.patches++
	if s.patches == 1 && s.hook != nil {
		s.hook()
	}
	return s.RestoreStore.PatchRestoreStatus(ctx, dr)
}

// The restore job on the real API server and PostgreSQL: it resolves the
// backup, records it, restores it, and reports, through status patches that
// survive a conflicting write of the operator; a second run into the now
// filled target is refused as TargetNotEmpty with the permanent exit code.
func TestRestoreRunner(t *testing.T) {
	env := envtest.Shared(t)
	srv := testdb.Postgres(t)
	srcName, srcDB := srv.Create(t, "job_src")
	srv.Populate(t, srcDB, 500)
	want := srv.Fingerprint(t, srcDB)
	ctx := context.Background()

	// A backup as a backup job writes it, into a directory repo.
	mountRoot := t.TempDir()
	repo := &dbv1.Repo{Name: "vol", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "c"}, Prefix: "prod/orders"}
	cfg, err := driverConfig(mountRoot, repo, "")
	must(t, err)
	cfg.CreateBucket = true
	b, err := drivers.Open(ctx, cfg)
	must(t, err)
	defer b.Close()
	src, err := sources.Open(srv.URL(srcName), sources.Options{})
	must(t, err)
	m, err := archiver.Backup(ctx, b, src, archiver.BackupOptions{Prefix: "prod/orders", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "job-"}}
	must(t, env.Client.Create(ctx, ns))
	target := srv.Name(t, "job_target")
	newRestore := func(name string, create bool) *dbv1.DatabaseRestore {
		dr := &dbv1.DatabaseRestore{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name},
			Spec: dbv1.DatabaseRestoreSpec{
				From:           dbv1.RestoreFrom{Repo: repo},
				Target:         dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: target, User: "postgres"},
				CreateDatabase: create,
			},
		}
		must(t, env.Client.Create(ctx, dr))
		return dr
	}
	base, err := NewRestoreStore(env.Config)
	must(t, err)
	run := func(dr *dbv1.DatabaseRestore, store RestoreStore) (*dbv1.DatabaseRestore, error) {
		r := &RestoreRunner{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Env: RestoreEnv{ResourceName: dr.Name, Namespace: dr.Namespace, MountRoot: mountRoot, JobName: dr.Name + "-restore"}}
		err := r.Run(ctx)
		got := &dbv1.DatabaseRestore{}
		must(t, env.Client.Get(ctx, client.ObjectKeyFromObject(dr), got))
		return got, err
	}

	dr := newRestore("first", true)
	// The operator marks the restore running while the job writes.
	store := &pausingStore{RestoreStore: base, hook: func() {
		cur := &dbv1.DatabaseRestore{}
		must(t, env.Client.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: dr.Name}, cur))
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: dbv1.ConditionSucceeded, Status: metav1.ConditionUnknown,
			Reason: dbv1.ReasonRestoreRunning, Message: "Job first-restore is running"})
		must(t, env.Client.Status().Update(ctx, cur))
	}}
	got, err := run(dr, store)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != dbv1.ReasonRestoreSucceeded || c.Message != dbv1.MessageRestoreSucceeded {
		t.Fatalf("Succeeded = %+v", c)
	}
	if bk := got.Status.Backup; bk == nil || bk.ID != m.ID || bk.StoredSize != m.StoredSize || bk.UncompressedSize != m.UncompressedSize || bk.Prefix != "prod/orders" || bk.Database != srcName {
		t.Fatalf("status.backup = %+v, want %s with its sizes", bk, m.ID)
	}
	if got.Status.Job != "first-restore" || got.Status.Duration == nil || got.Status.StartTime == nil {
		t.Errorf("status job/start/duration = %q %v %v", got.Status.Job, got.Status.StartTime, got.Status.Duration)
	}
	testdb.CompareFingerprints(t, srv.Fingerprint(t, srv.Connect(t, target)), want)

	got, err = run(newRestore("again", false), base)
	if ExitCode(err) != dbv1.JobExitPermanent {
		t.Fatalf("restore into the filled target: %v (exit %d), want exit %d", err, ExitCode(err), dbv1.JobExitPermanent)
	}
	c = meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Reason != dbv1.ReasonTargetNotEmpty || !strings.Contains(c.Message, m.ID) || !strings.Contains(c.Message, "spec.overwrite") {
		t.Fatalf("Succeeded = %+v, want TargetNotEmpty naming the backup and spec.overwrite", c)
	}
}

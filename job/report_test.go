package job

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	_ "github.com/dbarchive/dbarchive/drivers/fs"
	"github.com/dbarchive/dbarchive/internal/envtest"
	_ "github.com/dbarchive/dbarchive/sources/exec"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := envtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// newResource creates a DatabaseBackup with an fs repo in a fresh namespace of
// the shared API server.
func newResource(t *testing.T, env *envtest.Env, src *dbv1.Source) *dbv1.DatabaseBackup {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "job-"}}
	must(t, env.Client.Create(ctx, ns))
	db := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns.Name},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:  []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups"}}},
			Source: src,
		},
	}
	must(t, env.Client.Create(ctx, db))
	return db
}

func runner(t *testing.T, env *envtest.Env, store Store, db *dbv1.DatabaseBackup) *Runner {
	t.Helper()
	return &Runner{
		Store: store,
		Env: Env{ResourceName: db.Name, Namespace: db.Namespace, Repo: "local", Trigger: dbv1.JobTriggerManual,
			JobName: db.Name + "-manual-0123abcd", MountRoot: t.TempDir()},
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		ToolVersion: "test",
	}
}

func succeeded(t *testing.T, env *envtest.Env, db *dbv1.DatabaseBackup) (*metav1.Condition, *dbv1.DatabaseBackup) {
	t.Helper()
	got := &dbv1.DatabaseBackup{}
	must(t, env.Client.Get(context.Background(), client.ObjectKeyFromObject(db), got))
	return meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded), got
}

// A job stopped by SIGTERM (its context cancelled mid-backup) still writes
// why it failed, with its Job's name, on a context of its own.
func TestStoppedJobReportsItsFailure(t *testing.T) {
	env := envtest.Shared(t)
	started := filepath.Join(t.TempDir(), "started")
	db := newResource(t, env, &dbv1.Source{Type: dbv1.SourceTypeExec, Command: []string{"sh", "-c", "touch " + started + "; exec sleep 30"}})
	store, err := NewStoreFor(env.Config)
	must(t, err)
	r := runner(t, env, store, db)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Stopped mid-backup: once the source runs, not at a fixed time that a
	// loaded machine may reach before the job has read its resource.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup's source did not start within 30s")
		}
	}
	cancel() // what SIGTERM does to the job's context
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a stopped backup returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not stop within 30s of its context being cancelled")
	}
	cond, got := succeeded(t, env, db)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != dbv1.ReasonBackupFailed {
		t.Fatalf("Succeeded = %+v, want False/BackupFailed", cond)
	}
	if !strings.Contains(cond.Message, "stopped") {
		t.Errorf("Succeeded message %q does not say the backup was stopped", cond.Message)
	}
	if got.Status.ReportedJob != r.Env.JobName {
		t.Errorf("reportedJob = %q, want %q", got.Status.ReportedJob, r.Env.JobName)
	}
}

// bumpingStore changes the resource's spec right after the job first read
// it: the backup runs generation 1 while the stored object becomes 2.
type bumpingStore struct {
	Store
	once sync.Once
	bump func()
}

func (s *bumpingStore) Get(ctx context.Context, key types.NamespacedName) (*dbv1.DatabaseBackup, error) {
	db, err := s.Store.Get(ctx, key)
	s.once.Do(s.bump)
	return db, err
}

// The job stamps its outcome with the generation it read, not the one
// stored when it reports.
func TestReportStampsTheGenerationItRan(t *testing.T) {
	env := envtest.Shared(t)
	db := newResource(t, env, nil) // no source: the backup fails at once
	base, err := NewStoreFor(env.Config)
	must(t, err)
	store := &bumpingStore{Store: base, bump: func() {
		must(t, retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			cur := &dbv1.DatabaseBackup{}
			if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(db), cur); err != nil {
				return err
			}
			cur.Spec.Concurrency = ptr.To[int32](8)
			return env.Client.Update(context.Background(), cur)
		}))
	}}
	r := runner(t, env, store, db)
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("a backup without source succeeded")
	}
	cond, got := succeeded(t, env, db)
	if got.Generation != 2 {
		t.Fatalf("generation %d, want 2 after the change", got.Generation)
	}
	if cond == nil || cond.ObservedGeneration != 1 {
		t.Fatalf("Succeeded = %+v, want observedGeneration 1 (the spec the backup ran)", cond)
	}
}

package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/archiver"
	"github.com/dbarchive/dbarchive/drivers"
	"github.com/dbarchive/dbarchive/sources"
)

// RestoreEnv is the restore job's environment, read once at start.
type RestoreEnv struct {
	ResourceName string
	Namespace    string
	// Repo is the repo the operator chose (spec.from.repoName or the
	// DatabaseBackup's last backup's); the job uses the same one.
	Repo   string
	Bucket string
	// TargetPassword is never logged; it goes to the restore tool only.
	TargetPassword string
	MountRoot      string
	JobName        string
}

// RestoreEnvFromOS reads the restore pod's contract variables; the error
// names every missing one.
func RestoreEnvFromOS(getenv func(string) string) (RestoreEnv, error) {
	e := RestoreEnv{
		ResourceName:   getenv(dbv1.JobEnvRestoreName),
		Namespace:      getenv(dbv1.JobEnvNamespace),
		Repo:           getenv(dbv1.JobEnvRepo),
		Bucket:         getenv(dbv1.JobEnvBucket),
		TargetPassword: getenv(dbv1.JobEnvTargetPassword),
		MountRoot:      getenv(EnvMountRoot),
		JobName:        getenv(dbv1.JobEnvJobName),
	}
	var missing []string
	if e.ResourceName == "" {
		missing = append(missing, dbv1.JobEnvRestoreName)
	}
	if e.Namespace == "" {
		missing = append(missing, dbv1.JobEnvNamespace)
	}
	if len(missing) > 0 {
		return e, fmt.Errorf("environment %s not set; the operator sets it in the restore pod", strings.Join(missing, " and "))
	}
	return e, nil
}

// RestoreRunner runs the restore one DatabaseRestore asks for, through the
// CLI's path (archiver.Restore into the target's sources.Restorer), and
// records it in the resource's status.
type RestoreRunner struct {
	Store RestoreStore
	Env   RestoreEnv
	Log   *slog.Logger
	Now   func() time.Time
	// ReportTimeout: see Runner.ReportTimeout.
	ReportTimeout time.Duration
}

// targetNotEmpty marks the refusal of a target that holds tables, for the
// TargetNotEmpty reason.
type targetNotEmpty struct{ err error }

func (e *targetNotEmpty) Error() string { return e.err.Error() }
func (e *targetNotEmpty) Unwrap() error { return e.err }

// Run does the whole restore and records its outcome. The returned error
// (non-nil on any failure) makes the process exit non-zero; see ExitCode.
func (r *RestoreRunner) Run(ctx context.Context) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	key := types.NamespacedName{Namespace: r.Env.Namespace, Name: r.Env.ResourceName}
	dr, err := r.Store.GetRestore(ctx, key)
	if err != nil {
		return fmt.Errorf("get DatabaseRestore %s: %w", key, err)
	}
	start := metav1.NewTime(r.Now().Truncate(time.Second))
	runErr := r.restore(ctx, dr, key, start)
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("restore stopped before it finished (the pod was terminated or the Job's deadline passed): %w", runErr)
		}
		r.Log.Error("restore failed", "error", runErr)
	} else {
		r.Log.Info("restore finished")
	}
	timeout := r.ReportTimeout
	if timeout <= 0 {
		timeout = DefaultReportTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	end := metav1.NewTime(r.Now().Truncate(time.Millisecond))
	if err := r.patch(rctx, key, func(st *dbv1.DatabaseRestoreStatus) {
		cond := metav1.Condition{Type: dbv1.ConditionSucceeded, ObservedGeneration: dr.Generation}
		var tne *targetNotEmpty
		switch {
		case runErr == nil:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, dbv1.ReasonRestoreSucceeded, dbv1.MessageRestoreSucceeded
		case errors.As(runErr, &tne):
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, dbv1.ReasonTargetNotEmpty, oneLine(runErr.Error())
		default:
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, dbv1.ReasonRestoreFailed, oneLine(runErr.Error())
		}
		meta.SetStatusCondition(&st.Conditions, cond)
		if st.StartTime == nil {
			st.StartTime = &start
		}
		st.CompletionTime = &end
		st.Duration = &metav1.Duration{Duration: end.Sub(st.StartTime.Time).Round(time.Millisecond)}
		if r.Env.JobName != "" {
			st.Job = r.Env.JobName
		}
	}); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// restoreSource is where the backups are, resolved from the resource.
type restoreSource struct {
	repo   *dbv1.Repo
	bucket string
	prefix string
	filter archiver.SetFilter
}

// locate finds the repo, bucket, prefix and backup set of dr.
func (r *RestoreRunner) locate(ctx context.Context, dr *dbv1.DatabaseRestore) (restoreSource, error) {
	from := dr.Spec.From
	target := string(dr.Spec.Target.Type)
	if from.Repo != nil {
		repo := from.Repo
		if repo.Prefix == "" {
			return restoreSource{}, permanent(errors.New("spec.from.repo.prefix is required"))
		}
		return restoreSource{repo: repo, bucket: repo.Bucket, prefix: strings.Trim(repo.Prefix, "/"),
			filter: archiver.SetFilter{Type: target}}, nil
	}
	if from.DatabaseBackup == "" {
		return restoreSource{}, permanent(errors.New("spec.from needs databaseBackup or repo"))
	}
	key := types.NamespacedName{Namespace: dr.Namespace, Name: from.DatabaseBackup}
	db, err := r.Store.GetBackup(ctx, key)
	if err != nil {
		return restoreSource{}, permanent(fmt.Errorf("spec.from.databaseBackup: get DatabaseBackup %s: %w", key, err))
	}
	var repo *dbv1.Repo
	if r.Env.Repo != "" {
		if repo = db.Spec.RepoByName(r.Env.Repo); repo == nil {
			return restoreSource{}, permanent(fmt.Errorf("repo %q is not in spec.repos of DatabaseBackup %s", r.Env.Repo, db.Name))
		}
	} else {
		var why string
		if repo, why = dr.ResolveRepo(db); repo == nil {
			return restoreSource{}, permanent(errors.New(why))
		}
	}
	bucket := r.Env.Bucket
	if bucket == "" {
		bucket = repo.ResolvedBucket(db.Name)
	}
	// The backup jobs of a DatabaseBackup name their backups after it.
	return restoreSource{repo: repo, bucket: bucket, prefix: repo.KeyPrefix(db.Namespace, db.Name),
		filter: archiver.SetFilter{Type: target, Name: db.Name, HasName: true}}, nil
}

func (r *RestoreRunner) restore(ctx context.Context, dr *dbv1.DatabaseRestore, key types.NamespacedName, start metav1.Time) error {
	sel := dr.Spec.Backup
	if sel == "" {
		sel = dbv1.BackupLatest
	}
	if err := archiver.CheckSelector(sel); err != nil {
		return permanent(fmt.Errorf("spec.backup: %w", err))
	}
	t := dr.Spec.Target
	if t.Type != dbv1.SourceTypePostgres && t.Type != dbv1.SourceTypeMySQL {
		return permanent(fmt.Errorf("spec.target.type %q is not postgres or mysql", t.Type))
	}
	src, err := r.locate(ctx, dr)
	if err != nil {
		return err
	}
	cfg, err := driverConfig(r.Env.MountRoot, src.repo, src.bucket)
	if err != nil {
		return permanent(err)
	}
	bucket, err := drivers.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open repo %q: %w", src.repo.Name, err)
	}
	defer bucket.Close()

	filter := src.filter
	if sel != dbv1.BackupLatest && !strings.HasPrefix(sel, dbv1.BackupBeforePrefix) {
		// An id names one backup: its type is checked below, with a
		// message that says what is wrong.
		filter.Type = ""
	}
	m, err := archiver.Resolve(ctx, bucket, src.prefix, sel, filter)
	if err != nil {
		err = fmt.Errorf("backup %s in repo %q (prefix %q): %w", sel, src.repo.Name, src.prefix, err)
		if errors.Is(err, archiver.ErrNoBackup) || errors.Is(err, archiver.ErrAmbiguousSet) || errors.Is(err, drivers.ErrNotFound) {
			return permanent(err)
		}
		return err
	}
	log := r.Log.With("backup", m.ID, "repo", src.repo.Name)
	log.Info("backup resolved", "selector", sel, "stored", m.StoredSize, "uncompressed", m.UncompressedSize)

	// Recorded before the target is touched: whatever happens next, status
	// says which backup it was.
	if err := r.patch(ctx, key, func(st *dbv1.DatabaseRestoreStatus) {
		st.StartTime = &start
		st.Backup = &dbv1.RestoredBackup{
			ID: m.ID, Repo: src.repo.Name, Prefix: src.prefix, Database: m.Source.Database,
			FinishedTime: &metav1.Time{Time: m.EndTime}, StoredSize: m.StoredSize, UncompressedSize: m.UncompressedSize,
		}
		if r.Env.JobName != "" {
			st.Job = r.Env.JobName
		}
	}); err != nil {
		return fmt.Errorf("backup %s: nothing was restored: %w", m.ID, err)
	}

	if m.Source.Type != string(t.Type) {
		return permanent(fmt.Errorf("backup %s holds a %s dump; spec.target.type is %s", m.ID, m.Source.Type, t.Type))
	}
	target, err := sources.Open(databaseURL(t.Type, t.Host, t.Port, t.Database, t.User, t.TLS), sources.Options{
		Password:       r.Env.TargetPassword,
		Format:         m.Source.Format,
		CreateDatabase: dr.Spec.CreateDatabase,
		Overwrite:      dr.Spec.Overwrite,
	})
	if err != nil {
		return permanent(fmt.Errorf("spec.target: %w", err))
	}
	restorer, ok := target.(sources.Restorer)
	if !ok {
		return permanent(fmt.Errorf("spec.target: %s cannot be restored into", target.Describe()))
	}
	if err := restorer.CheckRestore(ctx); err != nil {
		var tne *sources.TargetNotEmptyError
		if errors.As(err, &tne) {
			return permanent(&targetNotEmpty{fmt.Errorf("backup %s was not restored: %w (spec.overwrite: true allows it)", m.ID, err)})
		}
		return fmt.Errorf("backup %s was not restored: %w", m.ID, err)
	}
	var ids *archiver.Identities
	if m.Encryption != nil {
		if dr.Spec.IdentitySecret == nil {
			return permanent(fmt.Errorf("backup %s is encrypted (to %d recipient(s)); set spec.identitySecret to a Secret key holding one of their identities", m.ID, len(m.Encryption.Recipients)))
		}
		if ids, err = archiver.LoadIdentityFile(filepath.Join(r.Env.MountRoot, dbv1.IdentityMountPath, dbv1.IdentityFile)); err != nil {
			return permanent(fmt.Errorf("spec.identitySecret %s: %w", dr.Spec.IdentitySecret.Name, err))
		}
	}
	err = archiver.Restore(ctx, bucket, m, archiver.RestoreOptions{Prefix: src.prefix, Logger: log, Identities: ids},
		func(in io.Reader) error { return restorer.Restore(ctx, in) })
	if err != nil {
		err = fmt.Errorf("restore of backup %s into %s failed: %w", m.ID, target.Describe(), err)
		if errors.Is(err, archiver.ErrChecksum) {
			// Damage at rest: every attempt reads the same bytes.
			return permanent(err)
		}
		return err
	}
	return nil
}

// patch applies mutate to the resource's fresh status and writes it, with
// the resourceVersion read as an optimistic lock, retrying on conflicts
// with the operator's writes.
func (r *RestoreRunner) patch(ctx context.Context, key types.NamespacedName, mutate func(*dbv1.DatabaseRestoreStatus)) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		dr, err := r.Store.GetRestore(ctx, key)
		if err != nil {
			return err
		}
		before := dr.Status.DeepCopy()
		mutate(&dr.Status)
		if equality.Semantic.DeepEqual(*before, dr.Status) {
			return nil
		}
		return r.Store.PatchRestoreStatus(ctx, dr)
	})
	if err != nil {
		return fmt.Errorf("write status of DatabaseRestore %s: %w", key, err)
	}
	return nil
}

// Package job is what runs inside the backup pod the operator starts: it
// reads its DatabaseBackup, turns the repo and source it names into a driver
// config and a source URL, runs the backup through the archiver, applies the
// retention, and writes the outcome into the resource's status.
//
// Its inputs are the pod contract in api/v1alpha1 (contract.go): a few
// environment variables, the repo's Secret mounted as files, and the source
// password in one variable set by secretKeyRef. It never creates Kubernetes
// objects; the job's Role allows only reading the resource and writing its
// status.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
	execsource "github.com/dbarchive/dbarchive/sources/exec"
)

// EnvMountRoot, when set, is prepended to every path of the pod contract
// (mounted Secrets, the fs repo's volume). It lets the job run outside a
// container: the end-to-end tests' kubelet stand-in lays the mounts out
// under a temporary directory.
const EnvMountRoot = "DBARCHIVE_MOUNT_ROOT"

// Env is the job's environment, read once at start.
type Env struct {
	ResourceName string
	Namespace    string
	Repo         string
	Trigger      string
	Bucket       string
	// SourcePassword is never logged; it goes to the source's tool only.
	SourcePassword string
	MountRoot      string
	// JobName is the Job this pod belongs to; reported as
	// status.reportedJob. Empty when run outside a Job.
	JobName string
	// DrillDir is the restore drill's scratch directory (a volume sized
	// for the restored database); "" is the temporary directory.
	DrillDir string
}

// EnvFromOS reads the pod contract's environment variables and checks that
// the required ones are set; the error names every missing one.
func EnvFromOS(getenv func(string) string) (Env, error) {
	e := Env{
		ResourceName:   getenv(dbv1.JobEnvResourceName),
		Namespace:      getenv(dbv1.JobEnvNamespace),
		Repo:           getenv(dbv1.JobEnvRepo),
		Trigger:        getenv(dbv1.JobEnvTrigger),
		Bucket:         getenv(dbv1.JobEnvBucket),
		SourcePassword: getenv(dbv1.JobEnvSourcePassword),
		MountRoot:      getenv(EnvMountRoot),
		JobName:        getenv(dbv1.JobEnvJobName),
		DrillDir:       getenv(dbv1.JobEnvDrillDir),
	}
	var missing []string
	if e.ResourceName == "" {
		missing = append(missing, dbv1.JobEnvResourceName)
	}
	if e.Namespace == "" {
		missing = append(missing, dbv1.JobEnvNamespace)
	}
	if len(missing) > 0 {
		return e, fmt.Errorf("environment %s not set; the operator sets it in the backup pod", strings.Join(missing, " and "))
	}
	return e, nil
}

func (e Env) path(p string) string { return filepath.Join(e.MountRoot, p) }

// Runner runs one backup for the resource named by Env.
type Runner struct {
	Store       Store
	Env         Env
	Log         *slog.Logger
	ToolVersion string
	Now         func() time.Time
	// ReportTimeout bounds the status write after the backup; it runs on a
	// context detached from Run's, so that a job stopped by SIGTERM (its
	// context cancelled) still records why it failed. Defaults to
	// DefaultReportTimeout; it must fit the pod's termination grace period
	// (30 s by default).
	ReportTimeout time.Duration
}

// DefaultReportTimeout is Runner.ReportTimeout's default.
const DefaultReportTimeout = 20 * time.Second

// Run does the whole job and records its outcome in the resource's status.
// The returned error (non-nil on any failure) makes the process exit
// non-zero, so the Job's backoff applies.
func (r *Runner) Run(ctx context.Context) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	key := types.NamespacedName{Namespace: r.Env.Namespace, Name: r.Env.ResourceName}
	db, err := r.Store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get DatabaseBackup %s: %w", key, err)
	}
	if r.Env.Trigger == dbv1.JobTriggerVerify {
		return r.verifyLatest(ctx, key, db)
	}
	res, runErr := r.backup(ctx, db)
	if runErr != nil {
		if ctx.Err() != nil {
			// Say why in the status too: "context canceled" alone does not
			// tell a person that the pod was stopped.
			runErr = fmt.Errorf("backup stopped before it finished (the pod was terminated or the Job's deadline passed): %w", runErr)
		}
		r.Log.Error("backup failed", "error", runErr)
	}
	timeout := r.ReportTimeout
	if timeout <= 0 {
		timeout = DefaultReportTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	// The generation read at the start is the one this backup ran: a spec
	// changed meanwhile must not be stamped as done.
	if err := r.report(rctx, key, db.Generation, res, runErr); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr == nil && verifyAfterBackup(db) {
		// The backup is committed and reported; a drill that fails says so
		// in Verified and does not fail the Job (a retry would back up
		// again for nothing).
		out := r.runDrill(ctx, db, res.repo, res.manifest.ID)
		vctx, vcancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer vcancel()
		if err := r.reportVerification(vctx, key, db.Generation, out); err != nil {
			r.Log.Error("could not record the drill's outcome", "error", err)
		}
	}
	return runErr
}

// verifyLatest is the scheduled drill: the newest backup of the verification
// repo, restored and checked. Its error fails the Job only when the drill
// could not be reported.
func (r *Runner) verifyLatest(ctx context.Context, key types.NamespacedName, db *dbv1.DatabaseBackup) error {
	if db.Spec.Verification == nil || !db.Spec.Verification.Enabled {
		return permanent(errors.New("spec.verification is not enabled"))
	}
	out := r.runDrill(ctx, db, db.Spec.VerificationRepo(), "latest")
	timeout := r.ReportTimeout
	if timeout <= 0 {
		timeout = DefaultReportTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := r.reportVerification(rctx, key, db.Generation, out); err != nil {
		return errors.Join(out.err, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("drill stopped before it finished (the pod was terminated or the Job's deadline passed): %w", ctx.Err())
	}
	return nil
}

// result is what a successful backup reports.
type result struct {
	repo     string
	prefix   string
	manifest *archiver.Manifest
	pruneErr error
}

func (r *Runner) backup(ctx context.Context, db *dbv1.DatabaseBackup) (*result, error) {
	repoName := r.Env.Repo
	if repoName == "" {
		repoName = defaultRepo(db, r.Env.Trigger)
	}
	repo := db.Spec.RepoByName(repoName)
	if repo == nil {
		return nil, permanent(fmt.Errorf("repo %q is not in spec.repos", repoName))
	}
	if db.Spec.Source == nil {
		return nil, permanent(errors.New("spec.source is not set: there is no database to back up"))
	}
	cfg, err := r.repoConfig(db, repo)
	if err != nil {
		return nil, permanent(err)
	}
	src, err := r.openSource(db.Spec.Source)
	if err != nil {
		return nil, permanent(err)
	}
	recipients, err := r.recipients(db.Spec.Encryption)
	if err != nil {
		return nil, err
	}
	bucket, err := drivers.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer bucket.Close()

	prefix := repo.KeyPrefix(db.Namespace, db.Name)
	opts := archiver.BackupOptions{Prefix: prefix, Name: db.Name, Logger: r.Log, ToolVersion: r.ToolVersion, Now: r.Now, Recipients: recipients}
	if db.Spec.CompressionLevel != nil {
		opts.Level = int(*db.Spec.CompressionLevel)
	}
	if db.Spec.PartSize != nil {
		opts.PartSize = db.Spec.PartSize.Value()
	}
	if db.Spec.Concurrency != nil {
		opts.Concurrency = int(*db.Spec.Concurrency)
	}
	m, err := archiver.Backup(ctx, bucket, src, opts)
	if err != nil {
		return nil, err
	}
	res := &result{repo: repo.Name, prefix: prefix, manifest: m}
	if ret := db.Spec.Retention; ret != nil && (ret.KeepLast != nil || ret.KeepWithin != nil) {
		rt := archiver.Retention{Now: r.Now()}
		if ret.KeepLast != nil {
			rt.KeepLast = int(*ret.KeepLast)
		}
		if ret.KeepWithin != nil {
			rt.KeepWithin = ret.KeepWithin.Duration
		}
		// A failed prune does not undo a good backup: it is logged and
		// reported, and the next run prunes again.
		if _, err := archiver.Prune(ctx, bucket, prefix, rt, r.Log); err != nil {
			res.pruneErr = err
			r.Log.Warn("retention failed; the backup itself succeeded", "error", err)
		}
	}
	return res, nil
}

// recipients parses spec.encryption: the inline public keys and the
// mounted recipients file. The schema only checked a prefix and an
// alphabet; a key that does not parse fails the backup with reason
// InvalidRecipient before the database is touched. Errors name the entry or
// the line, never its text.
func (r *Runner) recipients(e *dbv1.Encryption) ([]archiver.Recipient, error) {
	if e == nil {
		return nil, nil
	}
	var out []archiver.Recipient
	for i, s := range e.Recipients {
		rc, err := archiver.ParseRecipient(string(s))
		if err != nil {
			return nil, &invalidRecipientError{fmt.Errorf("spec.encryption.recipients[%d]: %w", i, err)}
		}
		out = append(out, rc)
	}
	if ref := e.RecipientsSecret; ref != nil {
		name := fmt.Sprintf("spec.encryption.recipientsSecret (Secret %s, key %s)", ref.Name, ref.Key)
		f, err := os.Open(r.Env.path(filepath.Join(dbv1.RecipientsMountPath, dbv1.RecipientsFile)))
		if err != nil {
			return nil, permanent(fmt.Errorf("%s: read the mounted file: %w", name, err))
		}
		defer f.Close()
		rs, err := archiver.ParseRecipients(f, name)
		if err != nil {
			return nil, &invalidRecipientError{err}
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		return nil, &invalidRecipientError{errors.New("spec.encryption names no recipient")}
	}
	return out, nil
}

// invalidRecipientError is a recipient the job cannot encrypt to: a
// permanent failure reported with reason InvalidRecipient.
type invalidRecipientError struct{ err error }

func (e *invalidRecipientError) Error() string { return e.err.Error() }
func (e *invalidRecipientError) Unwrap() error { return e.err }

// permanentError is a failure another attempt of the Job cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// ExitCode is the process exit code for Run's error: 0 for none,
// dbv1.JobExitPermanent for a failure another attempt cannot fix (a spec the
// job refuses, credentials the repo refuses), so that the Job's
// podFailurePolicy fails the Job at once, and 1 otherwise (retried up to
// backoffLimit).
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(*permanentError)), errors.As(err, new(*invalidRecipientError)), errors.Is(err, drivers.ErrPermissionDenied):
		return dbv1.JobExitPermanent
	}
	return 1
}

// defaultRepo picks the trigger's repo when BACKUP_REPO is not set.
func defaultRepo(db *dbv1.DatabaseBackup, trigger string) string {
	switch {
	case trigger == dbv1.JobTriggerScheduled && db.Spec.ScheduledTrigger != nil:
		return db.Spec.ScheduledTrigger.Repo
	case db.Spec.ManualTrigger != nil:
		return db.Spec.ManualTrigger.Repo
	case len(db.Spec.Repos) == 1:
		return db.Spec.Repos[0].Name
	}
	return ""
}

// repoConfig builds the driver config of repo from the resource and the
// mounted Secret files.
func (r *Runner) repoConfig(db *dbv1.DatabaseBackup, repo *dbv1.Repo) (drivers.Config, error) {
	bucket := r.Env.Bucket
	if bucket == "" {
		bucket = repo.ResolvedBucket(db.Name)
	}
	cfg, err := driverConfig(r.Env.MountRoot, repo, bucket)
	// The article's bucketNamePrefix buckets are the operator's to make, and
	// the repo's directory inside an fs volume the job's.
	cfg.CreateBucket = repo.Type == dbv1.RepoTypeFS || (repo.Bucket == "" && repo.BucketNamePrefix != "")
	return cfg, err
}

// driverConfig is the driver config of repo, whose bucket (for an object
// store) is bucket, with the Secret files mounted under mountRoot (see
// EnvMountRoot). It creates nothing: CreateBucket is false.
func driverConfig(mountRoot string, repo *dbv1.Repo, bucket string) (drivers.Config, error) {
	path := func(p string) string { return filepath.Join(mountRoot, p) }
	cfg := drivers.Config{
		Name:         repo.Name,
		Type:         string(repo.Type),
		Endpoint:     repo.ServiceEndpoint,
		Region:       repo.Region,
		AuthEndpoint: repo.AuthEndpoint,
		PathStyle:    repo.PathStyle,
	}
	if repo.Type == dbv1.RepoTypeFS {
		cfg.Path = path(repo.FSRepoDir())
	} else {
		cfg.Bucket = bucket
	}
	if repo.SecretName != "" {
		secrets, err := readSecretDir(path(dbv1.RepoSecretMountPath))
		if err != nil {
			return cfg, fmt.Errorf("repo %q: Secret %s: %w", repo.Name, repo.SecretName, err)
		}
		if cfg.Secrets, err = driverSecrets(string(repo.Type), secrets); err != nil {
			return cfg, fmt.Errorf("repo %q: %w", repo.Name, err)
		}
	}
	if repo.CABundle != nil {
		pem, err := os.ReadFile(path(filepath.Join(dbv1.CABundleMountPath, dbv1.CABundleFile)))
		if err != nil {
			return cfg, fmt.Errorf("repo %q: caBundle: %w", repo.Name, err)
		}
		cfg.CABundle = pem
	}
	return cfg, nil
}

// driverSecrets keeps the keys of a repo's Secret that the driver of
// repoType reads, as the driver table declares them: the driver package owns
// its Secret key names, and anything else in the Secret (keys for other
// tools) never reaches it.
func driverSecrets(repoType string, all drivers.Secrets) (drivers.Secrets, error) {
	reg, ok := drivers.Lookup(repoType)
	if !ok {
		return nil, fmt.Errorf("repo type %q has no driver; known types: %s", repoType, strings.Join(drivers.Types(), ", "))
	}
	out := drivers.Secrets{}
	for _, k := range reg.SecretKeys() {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// readSecretDir reads a mounted Secret volume: one file per key. The
// kubelet's bookkeeping entries (..data and friends) are skipped.
func readSecretDir(dir string) (drivers.Secrets, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read mounted Secret: %w", err)
	}
	out := drivers.Secrets{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read key %s: %w", e.Name(), err)
		}
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.IsDir() {
			continue
		}
		out[e.Name()] = drivers.NewSecret(strings.TrimRight(string(data), "\r\n"))
	}
	return out, nil
}

// openSource builds the source URL from spec.source. The password stays out
// of the URL: it reaches the source through Options.
func (r *Runner) openSource(s *dbv1.Source) (sources.Source, error) {
	opts := sources.Options{Password: r.Env.SourcePassword}
	var raw string
	switch s.Type {
	case dbv1.SourceTypePostgres, dbv1.SourceTypeMySQL:
		raw = databaseURL(s.Type, s.Host, s.Port, s.Database, s.User, s.TLS)
	case dbv1.SourceTypeHTTP:
		raw = s.URL
	case dbv1.SourceTypeExec:
		// The command list runs as it is: no shell, no splitting. An exec
		// source takes no password.
		src, err := execsource.New(s.Command)
		if err != nil {
			return nil, fmt.Errorf("spec.source.command: %w", err)
		}
		return src, nil
	default:
		return nil, fmt.Errorf("spec.source.type %q is not one of postgres, mysql, http, exec", s.Type)
	}
	src, err := sources.Open(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("spec.source: %w", err)
	}
	return src, nil
}

// databaseURL is the source URL of a database, without a password, with
// the TLS mode in each source's own parameters: libpq's sslmode for
// postgres, tls for mysql.
func databaseURL(typ dbv1.SourceType, host string, port int32, database, user string, tls dbv1.TLSMode) string {
	u := url.URL{Scheme: string(typ), Host: host, Path: "/" + database}
	if port != 0 {
		u.Host += ":" + strconv.Itoa(int(port))
	}
	if user != "" {
		u.User = url.User(user)
	}
	if tls != "" {
		q := url.Values{}
		switch typ {
		case dbv1.SourceTypePostgres:
			q.Set("sslmode", string(tls))
			if tls == dbv1.TLSVerifyFull {
				// The system's CAs (libpq 16 and later), not
				// ~/.postgresql/root.crt, which a job never has.
				q.Set("sslrootcert", "system")
			}
		default:
			q.Set("tls", string(tls))
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// report writes the outcome into status.conditions (and lastBackup) with an
// optimistic lock, retrying on conflicts with the operator's own writes.
func (r *Runner) report(ctx context.Context, key types.NamespacedName, generation int64, res *result, runErr error) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		db, err := r.Store.Get(ctx, key)
		if err != nil {
			return err
		}
		before := db.Status.DeepCopy()
		cond := metav1.Condition{Type: dbv1.ConditionSucceeded, ObservedGeneration: generation}
		if runErr != nil {
			reason := dbv1.ReasonBackupFailed
			if errors.As(runErr, new(*invalidRecipientError)) {
				reason = dbv1.ReasonInvalidRecipient
			}
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reason, oneLine(runErr.Error())
			db.Status.RecordRun(dbv1.BackupRun{Job: r.Env.JobName, Outcome: dbv1.RunFailed,
				FinishedTime: metav1.NewTime(r.Now().Truncate(time.Second)), Message: cond.Message}, reason)
		} else {
			cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, dbv1.ReasonBackupSucceeded, dbv1.MessageBackupSucceeded
			m := res.manifest
			db.Status.LastBackup = &dbv1.LastBackup{
				ID:               m.ID,
				Repo:             res.repo,
				ObjectKey:        strings.TrimPrefix(res.prefix+"/"+m.ID+"/"+m.DataObject, "/"),
				StoredSize:       m.StoredSize,
				UncompressedSize: m.UncompressedSize,
				Duration:         &metav1.Duration{Duration: m.Duration().Round(time.Millisecond)},
				FinishedTime:     &metav1.Time{Time: m.EndTime},
			}
			if m.Encryption != nil {
				db.Status.LastBackup.Encrypted = true
				db.Status.LastBackup.Recipients = int32(len(m.Encryption.Recipients))
			}
			db.Status.RecordRun(dbv1.BackupRun{Job: r.Env.JobName, ID: m.ID, Outcome: dbv1.RunSucceeded,
				FinishedTime: metav1.NewTime(m.EndTime), Duration: db.Status.LastBackup.Duration, StoredSize: m.StoredSize}, "")
		}
		meta.SetStatusCondition(&db.Status.Conditions, cond)
		if r.Env.JobName != "" {
			db.Status.ReportedJob = r.Env.JobName
		}
		if equality.Semantic.DeepEqual(*before, db.Status) {
			return nil
		}
		return r.Store.UpdateStatus(ctx, db)
	})
	if err != nil {
		return fmt.Errorf("write status of DatabaseBackup %s: %w", key, err)
	}
	return nil
}

// oneLine makes an error fit a condition message: one line, bounded.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const limit = 1024
	if len(s) > limit {
		s = s[:limit-3] + "..."
	}
	return s
}

package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/dbarchive/dbarchive/drill"
	"github.com/dbarchive/dbarchive/drivers"
)

// drillOutcome is what a restore drill reports.
type drillOutcome struct {
	backupID string
	report   *drill.Report // nil when the drill could not run
	err      error
}

// verifyAfterBackup reports whether the spec asks for a drill of each new
// backup in the backup's Job.
func verifyAfterBackup(db *dbv1.DatabaseBackup) bool {
	v := db.Spec.Verification
	return v != nil && v.Enabled && v.AfterBackup
}

// runDrill restores backup sel (an id, or latest) of repoName into a
// throwaway server and runs the spec's checks.
func (r *Runner) runDrill(ctx context.Context, db *dbv1.DatabaseBackup, repoName, sel string) drillOutcome {
	out := drillOutcome{backupID: sel}
	repo := db.Spec.RepoByName(repoName)
	if repo == nil {
		out.err = fmt.Errorf("verification: repo %q is not in spec.repos", repoName)
		return out
	}
	cfg, err := r.repoConfig(db, repo)
	if err != nil {
		out.err = err
		return out
	}
	bucket, err := drivers.Open(ctx, cfg)
	if err != nil {
		out.err = err
		return out
	}
	defer bucket.Close()
	prefix := repo.KeyPrefix(db.Namespace, db.Name)
	m, err := archiver.Resolve(ctx, bucket, prefix, sel, archiver.SetFilter{Name: db.Name, HasName: true})
	if err != nil {
		out.err = err
		return out
	}
	out.backupID = m.ID
	var checks []drill.Check
	for _, c := range db.Spec.Verification.Checks {
		checks = append(checks, drill.Check{Name: c.Name, SQL: c.SQL})
	}
	var ids *archiver.Identities
	if m.Encryption != nil {
		if ids, err = r.drillIdentities(db); err != nil {
			out.err = err
			return out
		}
	}
	tables, err := drill.RecordedTables(ctx, bucket, prefix, m, ids)
	if err != nil {
		out.err = err
		return out
	}
	r.Log.Info("restore drill started", "backup", m.ID, "repo", repoName)
	out.report, out.err = drill.Run(ctx, bucket, m, drill.Options{
		Tables:  tables,
		Checks:  checks,
		Dir:     r.drillDir(),
		Restore: archiver.RestoreOptions{Prefix: prefix, Logger: r.Log, Identities: ids},
		Now:     r.Now,
	})
	if out.report != nil && ctx.Err() == nil {
		if data, err := jsonReport(out.report); err == nil {
			if key, err := archiver.PutVerifyReport(ctx, bucket, prefix, m.ID, out.report.EndTime, data); err != nil {
				r.Log.Warn("the drill report could not be stored in the repo", "error", err)
			} else {
				r.Log.Info("drill report stored", "key", key)
			}
		}
	}
	if out.err != nil {
		r.Log.Error("restore drill failed", "backup", m.ID, "error", out.err)
	} else {
		r.Log.Info("restore drill passed", "backup", m.ID, "restore", time.Duration(out.report.RestoreSeconds*float64(time.Second)).Round(time.Millisecond))
	}
	return out
}

// verifiedCondition turns a drill's outcome into the Verified condition.
func verifiedCondition(out drillOutcome, generation int64) metav1.Condition {
	c := metav1.Condition{Type: dbv1.ConditionVerified, ObservedGeneration: generation}
	var failed *drill.FailedError
	switch {
	case out.err == nil:
		c.Status, c.Reason = metav1.ConditionTrue, dbv1.ReasonRestoreVerified
		c.Message = fmt.Sprintf("Backup %s restored in %.1fs on %s %s; %d tables, %d rows checked",
			out.backupID, out.report.RestoreSeconds, out.report.Server.Type, out.report.Server.Version, out.report.Tables, out.report.Rows)
	case errors.As(out.err, &failed) && failed.Err == nil:
		// Restored, but a table or a check is not what it should be.
		c.Status, c.Reason = metav1.ConditionFalse, dbv1.ReasonRestoreCheckFailed
		c.Message = oneLine(out.err.Error())
	default:
		c.Status, c.Reason = metav1.ConditionFalse, dbv1.ReasonDrillRestoreFailed
		msg := out.err.Error()
		if !strings.Contains(msg, out.backupID) {
			msg = "backup " + out.backupID + ": " + msg
		}
		c.Message = oneLine(msg)
	}
	return c
}

// reportVerification writes the Verified condition and lastVerification.
func (r *Runner) reportVerification(ctx context.Context, key types.NamespacedName, generation int64, out drillOutcome) error {
	cond := verifiedCondition(out, generation)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		db, err := r.Store.Get(ctx, key)
		if err != nil {
			return err
		}
		before := db.Status.DeepCopy()
		lv := &dbv1.LastVerification{BackupID: out.backupID, FinishedTime: metav1.NewTime(r.Now().Truncate(time.Second)),
			Passed: cond.Status == metav1.ConditionTrue}
		if prev := db.Status.LastVerification; prev != nil {
			lv.LastSuccessTime = prev.LastSuccessTime
		}
		if rep := out.report; rep != nil {
			lv.RestoreDuration = &metav1.Duration{Duration: time.Duration(rep.RestoreSeconds * float64(time.Second)).Round(time.Millisecond)}
			lv.Tables, lv.Rows, lv.ServerVersion = int32(rep.Tables), rep.Rows, rep.Server.Version
		}
		if lv.Passed {
			lv.LastSuccessTime = &lv.FinishedTime
		} else {
			lv.Message = cond.Message
		}
		db.Status.LastVerification = lv
		meta.SetStatusCondition(&db.Status.Conditions, cond)
		if equality.Semantic.DeepEqual(*before, db.Status) {
			return nil
		}
		return r.Store.UpdateStatus(ctx, db)
	})
	if err != nil {
		return fmt.Errorf("write verification status of DatabaseBackup %s: %w", key, err)
	}
	return nil
}

func jsonReport(rep *drill.Report) ([]byte, error) { return json.MarshalIndent(rep, "", "  ") }

// drillDir is the drill's scratch directory inside the pod's mounts.
func (r *Runner) drillDir() string {
	if r.Env.DrillDir == "" {
		return ""
	}
	return r.Env.path(r.Env.DrillDir)
}

// drillIdentities loads the identity the scheduled drill's Job has mounted
// (verification.identitySecret). A backup Job never has one.
func (r *Runner) drillIdentities(db *dbv1.DatabaseBackup) (*archiver.Identities, error) {
	if v := db.Spec.Verification; v == nil || v.IdentitySecret == nil || r.Env.Trigger != dbv1.JobTriggerVerify {
		return nil, errors.New("the backup is encrypted and this Job holds no identity: drill it with verification.schedule and verification.identitySecret")
	}
	ids, err := archiver.LoadIdentityFile(r.Env.path(filepath.Join(dbv1.IdentityMountPath, dbv1.IdentityFile)))
	if err != nil {
		return nil, fmt.Errorf("verification.identitySecret %s: %w", db.Spec.Verification.IdentitySecret.Name, err)
	}
	return ids, nil
}

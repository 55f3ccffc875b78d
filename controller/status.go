package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// setCondition sets one condition and always stamps observedGeneration, so a
// reader can tell a condition about the current spec from a stale one.
// lastTransitionTime changes only when the status does.
func setCondition(st *dbv1.DatabaseBackupStatus, typ, status, reason, message string, gen int64) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               typ,
		Status:             metav1.ConditionStatus(status),
		Reason:             reason,
		Message:            message,
		ObservedGeneration: gen,
	})
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	return meta.FindStatusCondition(conds, typ)
}

// updateStatus applies mutate to b's status and writes it when it changed.
// On a conflict it re-reads b from the API server (the cache may still be
// behind) and applies mutate again to the fresh status, so that a status the
// backup job wrote in between is judged, not overwritten.
func (r *Reconciler) updateStatus(ctx context.Context, b *dbv1.DatabaseBackup, mutate func(*dbv1.DatabaseBackupStatus, int64)) error {
	cur := b
	first := true
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if !first {
			fresh := &dbv1.DatabaseBackup{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(b), fresh); err != nil {
				return err
			}
			cur = fresh
		}
		first = false
		before := cur.Status.DeepCopy()
		mutate(&cur.Status, cur.Generation)
		if equality.Semantic.DeepEqual(*before, cur.Status) {
			return nil
		}
		return r.Client.Status().Update(ctx, cur, client.FieldOwner(fieldManager))
	})
	if err != nil {
		return fmt.Errorf("update status of DatabaseBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	if cur != b {
		cur.DeepCopyInto(b)
	}
	return nil
}

// observeJobs sets the Succeeded condition from the newest Job, where the
// Job knows more than the condition: BackupRunning while it runs, and
// BackupFailed when it failed (or completed) without having reported. The
// job binary writes the real outcome and must not be overwritten: a
// condition whose lastTransitionTime is not before the Job's start, or a
// lastBackup finished after it, is the job's report. Each Job is announced
// as running at most once (the caller marks it with annotationRunning), so
// a report written with an unchanged lastTransitionTime (True after True)
// is not later mistaken for an old one. It returns the Job it announced.
func observeJobs(st *dbv1.DatabaseBackupStatus, gen int64, jobs []batchv1.Job) *batchv1.Job {
	if len(jobs) == 0 {
		return nil
	}
	// The newest Job is the last created: a Job's start time can be later
	// than a younger Job's (pods pending), its creation cannot.
	newest := slices.MaxFunc(jobs, func(a, c batchv1.Job) int {
		if n := a.CreationTimestamp.Compare(c.CreationTimestamp.Time); n != 0 {
			return n
		}
		return strings.Compare(a.Name, c.Name)
	})
	started := startTime(&newest)
	cond := findCondition(st.Conditions, dbv1.ConditionSucceeded)
	reportedSuccess := st.LastBackup != nil && st.LastBackup.FinishedTime != nil && !st.LastBackup.FinishedTime.Time.Before(started)
	olderThanJob := (cond == nil || cond.LastTransitionTime.Time.Before(started)) && !reportedSuccess
	running := cond != nil && cond.Reason == dbv1.ReasonBackupRunning

	switch finished(&newest) {
	case "":
		if olderThanJob && newest.Annotations[annotationRunning] == "" {
			setCondition(st, dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning,
				fmt.Sprintf("Job %s is running", newest.Name), gen)
			return &newest
		}
	case batchv1.JobFailed:
		if olderThanJob || running {
			setCondition(st, dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed,
				fmt.Sprintf("Job %s failed: %s", newest.Name, jobFailure(&newest)), gen)
		}
	case batchv1.JobComplete:
		switch {
		case running && reportedSuccess:
			// The job reported before we announced it running.
			setCondition(st, dbv1.ConditionSucceeded, "True", dbv1.ReasonBackupSucceeded, dbv1.MessageBackupSucceeded, gen)
		case running:
			setCondition(st, dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed,
				fmt.Sprintf("Job %s completed without reporting the backup's outcome", newest.Name), gen)
		}
	}
	return nil
}

// markAnnounced records on the Job that its run was announced in status.
func (r *Reconciler) markAnnounced(ctx context.Context, j *batchv1.Job) error {
	return r.annotateJob(ctx, j, annotationRunning, "true")
}

func (r *Reconciler) annotateJob(ctx context.Context, j *batchv1.Job, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{key: value},
	}})
	if err != nil {
		return fmt.Errorf("annotation patch for Job %s/%s: %w", j.Namespace, j.Name, err)
	}
	if err := r.Client.Patch(ctx, j, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(fieldManager)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("annotate Job %s/%s: %w", j.Namespace, j.Name, err)
	}
	return nil
}

// jobFailure is the Job controller's one-line reason for a failed Job.
func jobFailure(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			switch {
			case c.Message != "":
				return c.Message
			case c.Reason != "":
				return c.Reason
			}
		}
	}
	return "the Job failed"
}

// reportOutcomes emits an Event (and counts a failure) once per finished
// Job, marking the Job with an annotation so that neither repeats after a
// restart of the operator.
func (r *Reconciler) reportOutcomes(ctx context.Context, b *dbv1.DatabaseBackup, jobs []batchv1.Job) error {
	for i := range jobs {
		j := &jobs[i]
		outcome := finished(j)
		if outcome == "" || j.Annotations[annotationOutcome] != "" {
			continue
		}
		if outcome == batchv1.JobFailed {
			r.Metrics.countFailure(b.Namespace, b.Name)
			r.Recorder.Eventf(b, j, corev1.EventTypeWarning, dbv1.ReasonBackupFailed, "Backup", "Job %s failed: %s", j.Name, jobFailure(j))
		} else {
			r.Recorder.Eventf(b, j, corev1.EventTypeNormal, dbv1.ReasonBackupSucceeded, "Backup", "Job %s completed", j.Name)
		}
		if err := r.annotateJob(ctx, j, annotationOutcome, string(outcome)); err != nil {
			return err
		}
	}
	return nil
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// setCondition sets one condition and always stamps observedGeneration, so a
// reader can tell a condition about the current spec from a stale one.
// lastTransitionTime changes only when the status does.
func setCondition(st *dbv1.DatabaseBackupStatus, typ, status, reason, message string, gen int64) {
	setConditionIn(&st.Conditions, typ, status, reason, message, gen)
}

// setConditionIn is setCondition on any list of conditions.
func setConditionIn(conds *[]metav1.Condition, typ, status, reason, message string, gen int64) {
	meta.SetStatusCondition(conds, metav1.Condition{
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

// updateStatus applies mutate to b's status and writes it when it changed
// (see writeStatus).
func (r *Reconciler) updateStatus(ctx context.Context, b *dbv1.DatabaseBackup, mutate func(*dbv1.DatabaseBackupStatus, int64)) error {
	return writeStatus(ctx, r.Client, r.APIReader, b, "DatabaseBackup", func(o *dbv1.DatabaseBackup) { mutate(&o.Status, o.Generation) })
}

// writeStatus applies mutate to obj's status and writes it when it changed.
// On a conflict it re-reads obj from the API server (the cache may still be
// behind) and applies mutate again to the fresh object, so that a status
// the job wrote in between is judged, not overwritten. obj ends up as
// written.
func writeStatus[T any, O interface {
	*T
	client.Object
}](ctx context.Context, c client.Client, reader client.Reader, obj O, kind string, mutate func(O)) error {
	cur := obj
	first := true
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if !first {
			fresh := O(new(T))
			if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
				return err
			}
			cur = fresh
		}
		first = false
		before := cur.DeepCopyObject()
		mutate(cur)
		if equality.Semantic.DeepEqual(before, runtime.Object(cur)) {
			return nil
		}
		return c.Status().Update(ctx, cur, client.FieldOwner(fieldManager))
	})
	if err != nil {
		return fmt.Errorf("update status of %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
	}
	if cur != obj {
		*obj = *cur
	}
	return nil
}

// observeJobs sets the Succeeded condition from the newest Job, where the
// Job knows more than the condition: BackupRunning while it runs, and
// BackupFailed when it failed (or completed) without having reported. The
// backup job writes the real outcome together with its Job's name
// (status.reportedJob): a report of the newest Job is never overwritten. No
// clocks are compared, so a pod whose clock is behind the API server's
// cannot lose its report. Each Job is announced as running at most once (the
// caller marks it with annotationRunning). It returns the Job it announced.
// An older Job that finished without a report and was never marked reported
// (it ended unobserved while the next one started) goes into history only;
// an older Job's report that came after the newest was announced gives the
// condition back to the run in progress.
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
	// An older Job that finished unobserved, without its own report (the
	// operator was down or slow while the next one started), still goes into
	// the history; the condition is the newest Job's.
	for i := range jobs {
		j := &jobs[i]
		if j.Name == newest.Name || j.Name == st.ReportedJob || j.Annotations[annotationOutcome] != "" {
			continue
		}
		if run, reason := unreportedRun(j); run != nil {
			st.RecordEarlierRun(*run, reason)
		}
	}
	if st.ReportedJob == newest.Name {
		return nil
	}
	// A finished Job's outcome is written once, when first seen finished
	// (the caller then marks it with annotationOutcome), or while the
	// condition still says it runs. So an old outcome never overwrites what
	// was learned since, for example that a newer Job was deleted.
	firstSeen := newest.Annotations[annotationOutcome] == ""
	stillRunning := st.ActiveJob == newest.Name && cond(st) == dbv1.ReasonBackupRunning
	if finished(&newest) != "" && !firstSeen && !stillRunning {
		return nil
	}
	if finished(&newest) == "" {
		switch {
		case newest.Annotations[annotationRunning] == "":
			setCondition(st, dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning,
				fmt.Sprintf("Job %s is running", newest.Name), gen)
			st.ActiveJob = newest.Name
			return &newest
		case st.ActiveJob == newest.Name && cond(st) != dbv1.ReasonBackupRunning && reportedByOlderJob(st, newest.Name, jobs):
			// An older Job's report came after this one was announced (a
			// pod stopped at its deadline reports in its grace period, when
			// the next run may have started): it is in history, and the
			// condition goes back to the run in progress. Only when the
			// reporting Job is listed, so known to be older: one missing
			// from the cache may be newer.
			setCondition(st, dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning,
				fmt.Sprintf("Job %s is running", newest.Name), gen)
		}
		return nil
	}
	if run, reason := unreportedRun(&newest); run != nil {
		setCondition(st, dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed, run.Message, gen)
		st.RecordRun(*run, reason)
	}
	return nil
}

// reportedByOlderJob tells whether status.reportedJob names a Job of jobs
// other than the newest, one created before it.
func reportedByOlderJob(st *dbv1.DatabaseBackupStatus, newest string, jobs []batchv1.Job) bool {
	return st.ReportedJob != "" && st.ReportedJob != newest &&
		slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return j.Name == st.ReportedJob })
}

// unreportedRun is the run of a finished Job whose backup job did not
// report: a failure, whether the Job failed or completed (a job that exits
// 0 without reporting did not back up). It is nil while the Job runs.
func unreportedRun(j *batchv1.Job) (*dbv1.BackupRun, string) {
	var msg, reason string
	switch finished(j) {
	case batchv1.JobFailed:
		msg, reason = fmt.Sprintf("Job %s failed: %s", j.Name, jobFailure(j)), jobFailureReason(j)
	case batchv1.JobComplete:
		msg, reason = fmt.Sprintf("Job %s completed without reporting the backup's outcome", j.Name), dbv1.ReasonBackupFailed
	default:
		return nil, ""
	}
	return &dbv1.BackupRun{Job: j.Name, Outcome: dbv1.RunFailed, FinishedTime: metav1.NewTime(finishTime(j)), Message: msg}, reason
}

// cond is the reason of the Succeeded condition, or "".
func cond(st *dbv1.DatabaseBackupStatus) string {
	if c := findCondition(st.Conditions, dbv1.ConditionSucceeded); c != nil {
		return c.Reason
	}
	return ""
}

// activeJobGone returns the Job announced as running when Succeeded still
// says BackupRunning, the job never reported, and the Job is no longer in
// jobs (deleted by hand, by history limits or by garbage collection); the
// caller confirms with the API server before believing the cache.
func activeJobGone(st *dbv1.DatabaseBackupStatus, jobs []batchv1.Job) string {
	cond := findCondition(st.Conditions, dbv1.ConditionSucceeded)
	if cond == nil || cond.Reason != dbv1.ReasonBackupRunning || st.ActiveJob == "" || st.ReportedJob == st.ActiveJob {
		return ""
	}
	if slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return j.Name == st.ActiveJob }) {
		return ""
	}
	return st.ActiveJob
}

// jobGone records that the running Job disappeared without a report.
func jobGone(st *dbv1.DatabaseBackupStatus, gen int64, name string, now time.Time) {
	if st.ActiveJob != name || st.ReportedJob == name {
		return
	}
	cond := findCondition(st.Conditions, dbv1.ConditionSucceeded)
	if cond == nil || cond.Reason != dbv1.ReasonBackupRunning {
		return
	}
	msg := fmt.Sprintf("Job %s was deleted before the backup reported an outcome", name)
	setCondition(st, dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed, msg, gen)
	st.RecordRun(dbv1.BackupRun{Job: name, Outcome: dbv1.RunFailed, FinishedTime: metav1.NewTime(now.Truncate(time.Second)), Message: msg}, "JobDeleted")
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

// jobFailureReason is the Job controller's reason for a failed Job
// (DeadlineExceeded, BackoffLimitExceeded, PodFailurePolicy).
func jobFailureReason(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue && c.Reason != "" {
			return c.Reason
		}
	}
	return dbv1.ReasonBackupFailed
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

package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// ManualJobName is the Job of one manual trigger time (dbv1.ManualJobName).
var ManualJobName = dbv1.ManualJobName

type manualResult struct {
	handled      string        // the trigger time now turned into a Job, for status
	requeueAfter time.Duration // until a future trigger time
	message      string        // a line for the Ready message
	created      *batchv1.Job  // the Job created in this pass, which the cache has not seen
}

// reconcileManualJob creates the Job of the manual trigger's time, once. It
// never re-creates it: status.lastManualTriggerTime remembers the time even
// after the Job is deleted.
func (r *Reconciler) reconcileManualJob(ctx context.Context, b *dbv1.DatabaseBackup, jobs []batchv1.Job) (manualResult, error) {
	t := b.Spec.ManualTrigger
	if t == nil || !t.Enabled {
		return manualResult{}, nil
	}
	at, err := parseTriggerTime(t.Time) // validated before
	if err != nil {
		return manualResult{}, fmt.Errorf("manualTrigger.time %q: %w", t.Time, err)
	}
	if triggerHandled(&b.Status, at) {
		return manualResult{message: fmt.Sprintf("manual backup of %s has run", t.Time)}, nil
	}
	name := ManualJobName(b.Name, at)
	if slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return j.Name == name }) {
		return manualResult{handled: t.Time, message: fmt.Sprintf("manual backup of %s started as Job %s", t.Time, name)}, nil
	}
	if b.Spec.Suspend {
		return manualResult{message: fmt.Sprintf("manual backup of %s waits: suspended", t.Time)}, nil
	}
	if wait := at.Sub(r.now()); wait > 0 {
		return manualResult{requeueAfter: wait, message: fmt.Sprintf("manual backup waits until %s", t.Time)}, nil
	}

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: b.Namespace,
			Labels:    commonLabels(b, dbv1.JobTriggerManual),
		},
		Spec: jobSpec(b, b.Spec.RepoByName(t.Repo), dbv1.JobTriggerManual, r.jobImage(b)),
	}
	r.setPullPolicy(&job.Spec)
	if err := controllerutil.SetControllerReference(b, job, r.Scheme); err != nil {
		return manualResult{}, fmt.Errorf("own Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	if err := r.Client.Create(ctx, job, client.FieldOwner(fieldManager)); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return manualResult{}, rejectedOr(err, fmt.Sprintf("Job %s", job.Name), fmt.Errorf("create Job %s/%s: %w", job.Namespace, job.Name, err))
		}
		// Created by an earlier pass whose status write was lost.
		return manualResult{handled: t.Time, message: fmt.Sprintf("manual backup of %s started as Job %s", t.Time, name)}, nil
	}
	r.Recorder.Eventf(b, job, corev1.EventTypeNormal, "JobCreated", "Create", "created Job %s for the manual trigger of %s into repo %s", job.Name, t.Time, t.Repo)
	return manualResult{handled: t.Time, created: job, message: fmt.Sprintf("manual backup of %s started as Job %s", t.Time, name)}, nil
}

// ImmediateJobName is the Job of scheduledTrigger.immediate.
func ImmediateJobName(backupName string) string { return backupName + "-immediate" }

// reconcileImmediateJob starts the first backup of scheduledTrigger.immediate
// once. It returns the Job's name once it exists (for status.immediateJob)
// and the Job it created in this pass.
func (r *Reconciler) reconcileImmediateJob(ctx context.Context, b *dbv1.DatabaseBackup, jobs []batchv1.Job) (string, *batchv1.Job, error) {
	t := b.Spec.ScheduledTrigger
	if t == nil || !t.Enabled || !t.Immediate || b.Spec.Suspend || b.Status.ImmediateJob != "" {
		return "", nil, nil
	}
	name := ImmediateJobName(b.Name)
	if slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return j.Name == name }) {
		return name, nil, nil
	}
	// Labelled as a manual run: it is one-off, pruned with the manual Jobs,
	// and not mistaken for a run of the CronJob.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.Namespace, Labels: commonLabels(b, dbv1.JobTriggerManual)},
		Spec:       jobSpec(b, b.Spec.RepoByName(t.Repo), dbv1.JobTriggerManual, r.jobImage(b)),
	}
	r.setPullPolicy(&job.Spec)
	if err := controllerutil.SetControllerReference(b, job, r.Scheme); err != nil {
		return "", nil, fmt.Errorf("own Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	if err := r.Client.Create(ctx, job, client.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return name, nil, nil
		}
		return "", nil, rejectedOr(err, "Job "+name, fmt.Errorf("create Job %s/%s: %w", job.Namespace, job.Name, err))
	}
	r.Recorder.Eventf(b, job, corev1.EventTypeNormal, "JobCreated", "Create", "created Job %s for the first backup (scheduledTrigger.immediate) into repo %s", name, t.Repo)
	return name, job, nil
}

// maxHandledTimes bounds status.handledManualTriggerTimes.
const maxHandledTimes = 16

// triggerHandled is whether the manual trigger time at was turned into a Job
// before: it is one of the handled times, or earlier than all of them once
// the list is full (so that a time that fell off the list never re-runs).
func triggerHandled(st *dbv1.DatabaseBackupStatus, at time.Time) bool {
	if last := st.LastManualTriggerTime; last != "" {
		if lt, err := parseTriggerTime(last); err == nil && lt.Equal(at) {
			return true
		}
	}
	var oldest time.Time
	for _, s := range st.HandledManualTriggerTimes {
		ht, err := parseTriggerTime(s)
		if err != nil {
			continue
		}
		if ht.Equal(at) {
			return true
		}
		if oldest.IsZero() || ht.Before(oldest) {
			oldest = ht
		}
	}
	return len(st.HandledManualTriggerTimes) >= maxHandledTimes && at.Before(oldest)
}

// recordHandled adds the trigger time raw to the handled times: sorted by
// time, the oldest dropped beyond maxHandledTimes.
func recordHandled(st *dbv1.DatabaseBackupStatus, raw string) {
	at, err := parseTriggerTime(raw)
	if err != nil {
		return
	}
	st.LastManualTriggerTime = raw
	times := []time.Time{at}
	for _, s := range st.HandledManualTriggerTimes {
		if ht, err := parseTriggerTime(s); err == nil {
			if ht.Equal(at) {
				return
			}
			times = append(times, ht)
		}
	}
	slices.SortFunc(times, func(a, c time.Time) int { return a.Compare(c) })
	if len(times) > maxHandledTimes {
		times = times[len(times)-maxHandledTimes:]
	}
	out := make([]string, len(times))
	for i, t := range times {
		out[i] = t.UTC().Format(time.RFC3339Nano)
	}
	st.HandledManualTriggerTimes = out
}

// pruneManualJobs deletes finished manual Jobs beyond the history limits,
// newest kept, as the CronJob controller does for scheduled ones. It returns
// the Jobs that remain.
func (r *Reconciler) pruneManualJobs(ctx context.Context, b *dbv1.DatabaseBackup, jobs []batchv1.Job) ([]batchv1.Job, error) {
	keepOK, keepFailed := historyLimits(b)
	var ok, failed []batchv1.Job
	for _, j := range jobs {
		if j.Labels[LabelTrigger] != dbv1.JobTriggerManual || !metav1.IsControlledBy(&j, b) {
			continue
		}
		switch finished(&j) {
		case batchv1.JobComplete:
			ok = append(ok, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	doomed := map[string]bool{}
	for _, group := range []struct {
		jobs []batchv1.Job
		keep int32
	}{{ok, keepOK}, {failed, keepFailed}} {
		slices.SortFunc(group.jobs, newestFirst)
		for i := int(group.keep); i < len(group.jobs); i++ {
			j := group.jobs[i]
			if err := r.Client.Delete(ctx, &j, client.PropagationPolicy(metav1.DeletePropagationBackground),
				client.Preconditions{UID: &j.UID}); err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("delete Job %s/%s: %w", j.Namespace, j.Name, err)
			}
			r.Recorder.Eventf(b, &j, corev1.EventTypeNormal, "JobDeleted", "Delete", "deleted finished Job %s (history limit)", j.Name)
			doomed[j.Name] = true
		}
	}
	if len(doomed) == 0 {
		return jobs, nil
	}
	return slices.DeleteFunc(jobs, func(j batchv1.Job) bool { return doomed[j.Name] }), nil
}

// newestFirst orders finished Jobs by finish time, then creation, then
// name (times have one-second resolution), newest first.
func newestFirst(a, c batchv1.Job) int {
	if n := finishTime(&c).Compare(finishTime(&a)); n != 0 {
		return n
	}
	if n := c.CreationTimestamp.Compare(a.CreationTimestamp.Time); n != 0 {
		return n
	}
	return strings.Compare(c.Name, a.Name)
}

// finished is JobComplete or JobFailed when the Job has ended, else "".
func finished(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		if c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed {
			return c.Type
		}
	}
	return ""
}

// finishTime orders finished Jobs: completion time, else the time of the
// finishing condition, else creation.
func finishTime(j *batchv1.Job) time.Time {
	if j.Status.CompletionTime != nil {
		return j.Status.CompletionTime.Time
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return j.CreationTimestamp.Time
}

// startTime is when a Job started, or when it was created if it has not.
func startTime(j *batchv1.Job) time.Time {
	if j.Status.StartTime != nil {
		return j.Status.StartTime.Time
	}
	return j.CreationTimestamp.Time
}

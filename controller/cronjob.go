package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

const (
	defaultStartingDeadlineSeconds    = int64(300)
	defaultSuccessfulJobsHistoryLimit = int32(3)
	defaultFailedJobsHistoryLimit     = int32(1)
)

// CronJobName is the name of the CronJob of a DatabaseBackup's scheduled
// trigger.
func CronJobName(backupName string) string { return backupName + "-scheduled" }

func historyLimits(b *dbv1.DatabaseBackup) (succeeded, failed int32) {
	succeeded, failed = defaultSuccessfulJobsHistoryLimit, defaultFailedJobsHistoryLimit
	if b.Spec.SuccessfulJobsHistoryLimit != nil {
		succeeded = *b.Spec.SuccessfulJobsHistoryLimit
	}
	if b.Spec.FailedJobsHistoryLimit != nil {
		failed = *b.Spec.FailedJobsHistoryLimit
	}
	return succeeded, failed
}

// desiredCronJob is the CronJob of b's scheduled trigger, or nil when there
// should be none. b must have passed validation.
func desiredCronJob(b *dbv1.DatabaseBackup, image string) *batchv1.CronJob {
	t := b.Spec.ScheduledTrigger
	if t == nil || !t.Enabled {
		return nil
	}
	repo := b.Spec.RepoByName(t.Repo)
	deadline := defaultStartingDeadlineSeconds
	if t.StartingDeadlineSeconds != nil {
		deadline = *t.StartingDeadlineSeconds
	}
	succeeded, failed := historyLimits(b)
	jobLabels := commonLabels(b, dbv1.JobTriggerScheduled)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{
			Name:      CronJobName(b.Name),
			Namespace: b.Namespace,
			Labels:    commonLabels(b, dbv1.JobTriggerScheduled),
		},
		Spec: batchv1.CronJobSpec{
			Schedule:                   t.Schedule,
			TimeZone:                   t.TimeZone,
			StartingDeadlineSeconds:    ptr.To(deadline),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			Suspend:                    ptr.To(b.Spec.Suspend),
			SuccessfulJobsHistoryLimit: ptr.To(succeeded),
			FailedJobsHistoryLimit:     ptr.To(failed),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: jobLabels},
				Spec:       jobSpec(b, repo, dbv1.JobTriggerScheduled, image),
			},
		},
	}
}

// specHash fingerprints what the operator asked for, so that a field removed
// from the DatabaseBackup (which a comparison that ignores the API server's
// defaults cannot see) still updates the CronJob.
func specHash(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		// A CronJobSpec always marshals; a failure here is a programming error.
		panic(fmt.Sprintf("marshal spec for hashing: %v", err))
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// reconcileCronJob creates, updates or deletes the CronJob. It returns the
// CronJob's status (nil when there is none) and a line for the Ready message.
func (r *Reconciler) reconcileCronJob(ctx context.Context, b *dbv1.DatabaseBackup) (*batchv1.CronJobStatus, string, error) {
	want, line, err := r.scheduledCronJob(b)
	if err != nil {
		return nil, "", err
	}
	if want == nil {
		return nil, "", r.deleteCronJob(ctx, b, CronJobName(b.Name))
	}
	return r.syncCronJob(ctx, b, want, line)
}

// scheduledCronJob is the CronJob of b's scheduled trigger as the operator
// writes it, and its line for the Ready message; nil when there should be
// none. b must have passed validation.
func (r *Reconciler) scheduledCronJob(b *dbv1.DatabaseBackup) (*batchv1.CronJob, string, error) {
	want := desiredCronJob(b, r.jobImage(b))
	if want == nil {
		return nil, "", nil
	}
	line := fmt.Sprintf("CronJob %s runs %q into repo %s", want.Name, want.Spec.Schedule, b.Spec.ScheduledTrigger.Repo)
	return want, line, r.finishCronJob(b, want)
}

// reconcileVerifyCronJob creates, updates or deletes the CronJob of the
// scheduled restore drill, and returns a line for the Ready message.
func (r *Reconciler) reconcileVerifyCronJob(ctx context.Context, b *dbv1.DatabaseBackup) (string, error) {
	want := desiredVerifyCronJob(b, r.jobImage(b))
	if want == nil {
		return "", r.deleteCronJob(ctx, b, VerifyCronJobName(b.Name))
	}
	if err := r.finishCronJob(b, want); err != nil {
		return "", err
	}
	_, line, err := r.syncCronJob(ctx, b, want, fmt.Sprintf("CronJob %s drills the newest backup %q", want.Name, want.Spec.Schedule))
	return line, err
}

// finishCronJob gives want, one of b's CronJobs, what every CronJob of the
// operator has: the pull policy, the hash of its spec, and b as its
// controller.
func (r *Reconciler) finishCronJob(b *dbv1.DatabaseBackup, want *batchv1.CronJob) error {
	r.setPullPolicy(&want.Spec.JobTemplate.Spec)
	want.Annotations = map[string]string{annotationSpecHash: specHash(want.Spec)}
	if err := controllerutil.SetControllerReference(b, want, r.Scheme); err != nil {
		return fmt.Errorf("own CronJob %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// syncCronJob creates or updates want, owned by b and finished by
// finishCronJob.
func (r *Reconciler) syncCronJob(ctx context.Context, b *dbv1.DatabaseBackup, want *batchv1.CronJob, line string) (*batchv1.CronJobStatus, string, error) {
	hash := want.Annotations[annotationSpecHash]
	if b.Spec.Suspend {
		line += " (suspended)"
	}

	var have batchv1.CronJob
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &have)
	if apierrors.IsNotFound(err) {
		// AlreadyExists means the cache is behind: the retry sees it.
		if err := r.Client.Create(ctx, want, client.FieldOwner(fieldManager)); err != nil {
			return nil, "", rejectedOr(err, fmt.Sprintf("CronJob %s", want.Name), fmt.Errorf("create CronJob %s/%s: %w", want.Namespace, want.Name, err))
		}
		r.Recorder.Eventf(b, want, corev1.EventTypeNormal, reasonCronJobCreated, actionCreate, "%s", cronJobCreatedNote(want))
		return &want.Status, line, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("get CronJob %s/%s: %w", want.Namespace, want.Name, err)
	}
	if !metav1.IsControlledBy(&have, b) {
		return nil, "", fmt.Errorf("CronJob %s/%s exists and is not owned by DatabaseBackup %s; delete or rename it", have.Namespace, have.Name, b.Name)
	}

	inSync := have.Annotations[annotationSpecHash] == hash &&
		equality.Semantic.DeepDerivative(want.Spec, have.Spec) &&
		labelsContain(have.Labels, want.Labels)
	if inSync {
		return &have.Status, line, nil
	}
	have.Spec = want.Spec
	have.Labels = mergeMaps(have.Labels, want.Labels)
	have.Annotations = mergeMaps(have.Annotations, want.Annotations)
	if err := r.Client.Update(ctx, &have, client.FieldOwner(fieldManager)); err != nil {
		return nil, "", rejectedOr(err, fmt.Sprintf("CronJob %s", have.Name), fmt.Errorf("update CronJob %s/%s: %w", have.Namespace, have.Name, err))
	}
	r.Recorder.Eventf(b, &have, corev1.EventTypeNormal, "CronJobUpdated", "Update", "updated CronJob %s (schedule %q)", have.Name, have.Spec.Schedule)
	return &have.Status, line, nil
}

// The Event of a CronJob created: reason, action and note.
const (
	reasonCronJobCreated = "CronJobCreated"
	actionCreate         = "Create"
)

func cronJobCreatedNote(cj *batchv1.CronJob) string {
	return fmt.Sprintf("created CronJob %s with schedule %q", cj.Name, cj.Spec.Schedule)
}

// deleteCronJob removes b's CronJob name if it exists, for a disabled trigger.
// Jobs it started are orphaned, not deleted: a backup that is running
// finishes, and its outcome is still reported (the Jobs keep b's label).
// Background or foreground propagation would have the garbage collector
// kill it.
func (r *Reconciler) deleteCronJob(ctx context.Context, b *dbv1.DatabaseBackup, name string) error {
	have, err := r.ownCronJob(ctx, b, name)
	if have == nil || err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(have)
	if err := r.Client.Delete(ctx, have, client.PropagationPolicy(metav1.DeletePropagationOrphan),
		client.Preconditions{UID: &have.UID}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete CronJob %s: %w", key, err)
	}
	r.Recorder.Eventf(b, have, corev1.EventTypeNormal, "CronJobDeleted", "Delete", "deleted CronJob %s", have.Name)
	return nil
}

// ownCronJob returns b's CronJob name, or nil when there is none or the one
// of that name is not controlled by b (the operator never touches another's).
func (r *Reconciler) ownCronJob(ctx context.Context, b *dbv1.DatabaseBackup, name string) (*batchv1.CronJob, error) {
	var have batchv1.CronJob
	key := types.NamespacedName{Namespace: b.Namespace, Name: name}
	if err := r.Client.Get(ctx, key, &have); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get CronJob %s: %w", key, err)
	}
	if !metav1.IsControlledBy(&have, b) {
		return nil, nil
	}
	return &have, nil
}

// suspendCronJobs suspends b's CronJobs (backup and drill) that exist,
// while the spec cannot be acted on. It is not deleted: the cause may pass (a Secret deleted and
// recreated during a rotation), and deleting it would stop the Job it runs.
// The next reconcile with a valid spec writes the desired CronJob again.
func (r *Reconciler) suspendCronJobs(ctx context.Context, b *dbv1.DatabaseBackup) error {
	for _, name := range []string{CronJobName(b.Name), VerifyCronJobName(b.Name)} {
		if err := r.suspendCronJob(ctx, b, name); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reconciler) suspendCronJob(ctx context.Context, b *dbv1.DatabaseBackup, name string) error {
	have, err := r.ownCronJob(ctx, b, name)
	if have == nil || err != nil || ptr.Deref(have.Spec.Suspend, false) {
		return err
	}
	key := client.ObjectKeyFromObject(have)
	patch := client.MergeFrom(have.DeepCopy())
	have.Spec.Suspend = ptr.To(true)
	// The hash no longer matches, so the next valid pass rewrites the spec.
	have.Annotations = mergeMaps(have.Annotations, map[string]string{annotationSpecHash: "suspended"})
	if err := r.Client.Patch(ctx, have, patch, client.FieldOwner(fieldManager)); err != nil {
		return fmt.Errorf("suspend CronJob %s: %w", key, err)
	}
	r.Recorder.Eventf(b, have, corev1.EventTypeNormal, "CronJobSuspended", "Suspend", "suspended CronJob %s until the spec can be acted on again", have.Name)
	return nil
}

// rejection is an object the API server refused for a reason a retry alone
// does not fix (invalid, forbidden, over quota): it is reported in status as
// Ready=False, reason ServerRejected, with the server's message.
type rejection struct {
	what string // "CronJob x", "Job y"
	err  error
}

func (e *rejection) Error() string { return e.what + ": " + e.err.Error() }
func (e *rejection) Unwrap() error { return e.err }

// rejectedOr returns a *rejection for an error the API server gave because
// of the object itself, else other.
func rejectedOr(err error, what string, other error) error {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err) {
		return &rejection{what: what, err: err}
	}
	return other
}

func labelsContain(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func mergeMaps(dst, src map[string]string) map[string]string {
	out := make(map[string]string, len(dst)+len(src))
	maps.Copy(out, dst)
	maps.Copy(out, src)
	return out
}

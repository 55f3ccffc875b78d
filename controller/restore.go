package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// LabelRestore names the DatabaseRestore an object was made for.
const LabelRestore = "database.sample.third.party/restore"

// defaultRestoreDeadline bounds a restore Job without
// spec.activeDeadlineSeconds.
const defaultRestoreDeadline = int64(24 * 60 * 60)

// restorePendingRecheck is how soon a restore waiting for a
// DatabaseBackup, Secret or ServiceAccount looks again: Secrets are not
// watched.
const restorePendingRecheck = 30 * time.Second

// RestoreRBACName is the name of the ServiceAccount (unless the spec names
// its own), Role and RoleBinding of one DatabaseRestore's job.
func RestoreRBACName(restoreName string) string { return "dbarchive-restore-" + restoreName }

// RestoreRoleRules are the only permissions of a restore job: read its own
// DatabaseRestore and patch its status, and read the DatabaseBackup it
// restores from (when it names one), all by resourceNames. No Secrets (they
// reach the pod through the kubelet), no spec writes, nothing else.
func RestoreRoleRules(restoreName, backupName string) []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{
		{
			APIGroups:     []string{dbv1.GroupVersion.Group},
			Resources:     []string{"databaserestores"},
			ResourceNames: []string{restoreName},
			Verbs:         []string{"get"},
		},
		{
			APIGroups:     []string{dbv1.GroupVersion.Group},
			Resources:     []string{"databaserestores/status"},
			ResourceNames: []string{restoreName},
			Verbs:         []string{"patch"},
		},
	}
	if backupName != "" {
		rules = append(rules, rbacv1.PolicyRule{
			APIGroups:     []string{dbv1.GroupVersion.Group},
			Resources:     []string{"databasebackups"},
			ResourceNames: []string{backupName},
			Verbs:         []string{"get"},
		})
	}
	return rules
}

// +kubebuilder:rbac:groups=database.sample.third.party,resources=databaserestores,verbs=get;list;watch
// +kubebuilder:rbac:groups=database.sample.third.party,resources=databaserestores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=database.sample.third.party,resources=databaserestores/finalizers,verbs=update

// restoreReconciler reconciles DatabaseRestores with the settings (client,
// images, metrics) of the DatabaseBackup Reconciler it is part of.
type restoreReconciler struct{ *Reconciler }

// restoreSpot is where a restore reads from, as far as the operator needs
// to know it to build the Job.
type restoreSpot struct {
	repo   *dbv1.Repo
	bucket string // resolved bucket of an object store repo
	backup string // the DatabaseBackup's name, "" for an inline repo
}

// Reconcile runs one DatabaseRestore: it starts its Job once, reports the
// Job's end when the job could not report it itself, and emits the outcome's
// Event and metrics once. It never touches the target database or the repo.
func (r *restoreReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var dr dbv1.DatabaseRestore
	if err := r.Client.Get(ctx, req.NamespacedName, &dr); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get DatabaseRestore %s: %w", req.NamespacedName, err)
	}
	if !dr.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	job, err := r.restoreJob(ctx, &dr)
	if foreign := (*foreignJobError)(nil); errors.As(err, &foreign) {
		// Never adopted, never reported: the person who made it decides.
		return reconcile.Result{RequeueAfter: restorePendingRecheck}, r.updateRestoreStatus(ctx, &dr, func(st *dbv1.DatabaseRestoreStatus, gen int64) {
			if !restoreFinished(st) {
				setRestoreCondition(st, "Unknown", dbv1.ReasonRestorePending, foreign.Error(), gen)
			}
		})
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if restoreFinished(&dr.Status) {
		if job == nil {
			// Reported when the operator found the Job gone, or never
			// started (a restore that could not start has no Job).
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, r.reportRestoreOutcome(ctx, &dr, job)
	}

	if job == nil {
		cond := findCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
		if cond != nil && cond.Reason == dbv1.ReasonRestoreRunning && dr.Status.Job != "" {
			// The Job was there and is gone (deleted by hand): a restore is
			// never started twice, the target may hold half of it.
			msg := fmt.Sprintf("Job %s was deleted before the restore reported an outcome", dr.Status.Job)
			return reconcile.Result{}, r.finishRestore(ctx, &dr, nil, msg)
		}
		return r.startRestore(ctx, &dr)
	}

	var msg string
	switch finished(job) {
	case "":
		if err := r.updateRestoreStatus(ctx, &dr, func(st *dbv1.DatabaseRestoreStatus, gen int64) {
			if c := findCondition(st.Conditions, dbv1.ConditionSucceeded); !restoreFinished(st) && (c == nil || c.Reason != dbv1.ReasonRestoreRunning) {
				setRestoreCondition(st, "Unknown", dbv1.ReasonRestoreRunning, fmt.Sprintf("Job %s is running", job.Name), gen)
			}
			st.Job = job.Name
		}); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	case batchv1.JobFailed:
		msg = fmt.Sprintf("Job %s failed before the restore reported an outcome: %s", job.Name, jobFailure(job))
	case batchv1.JobComplete:
		msg = fmt.Sprintf("Job %s completed without reporting the restore's outcome", job.Name)
	}
	return reconcile.Result{}, r.finishRestore(ctx, &dr, job, msg)
}

// restoresOfBackup maps a DatabaseBackup to the unfinished
// DatabaseRestores of its namespace that name it.
func (r *Reconciler) restoresOfBackup(ctx context.Context, o ctrl.Object) []reconcile.Request {
	var list dbv1.DatabaseRestoreList
	if err := r.Client.List(ctx, &list, ctrl.InNamespace(o.GetNamespace())); err != nil {
		// The pending restore's own recheck still starts it.
		log.FromContext(ctx).Error(err, "list DatabaseRestores", "namespace", o.GetNamespace())
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		dr := &list.Items[i]
		if dr.Spec.From.DatabaseBackup == o.GetName() && !restoreFinished(&dr.Status) {
			out = append(out, reconcile.Request{NamespacedName: ctrl.ObjectKeyFromObject(dr)})
		}
	}
	return out
}

// restoreFinished is whether the Succeeded condition holds an outcome.
func restoreFinished(st *dbv1.DatabaseRestoreStatus) bool {
	c := findCondition(st.Conditions, dbv1.ConditionSucceeded)
	return c != nil && c.Status != metav1.ConditionUnknown
}

// restoreJob is the DatabaseRestore's Job, or nil. The cache may not have
// seen a Job created a moment ago, so a miss is confirmed by the API server.
func (r *restoreReconciler) restoreJob(ctx context.Context, dr *dbv1.DatabaseRestore) (*batchv1.Job, error) {
	key := types.NamespacedName{Namespace: dr.Namespace, Name: dbv1.RestoreJobName(dr.Name)}
	job := &batchv1.Job{}
	err := r.Client.Get(ctx, key, job)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, job)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get Job %s: %w", key, err)
	case !metav1.IsControlledBy(job, dr):
		return nil, &foreignJobError{job: key.Name, restore: dr.Name}
	}
	return job, nil
}

// foreignJobError is a Job of the restore's Job name that the restore does
// not control (someone else's, or left from a deleted DatabaseRestore of the
// same name).
type foreignJobError struct{ job, restore string }

func (e *foreignJobError) Error() string {
	return fmt.Sprintf("Job %s exists and is not controlled by DatabaseRestore %s: delete it, or create the restore under another name", e.job, e.restore)
}

// finishRestore records a failure the job could not report itself.
func (r *restoreReconciler) finishRestore(ctx context.Context, dr *dbv1.DatabaseRestore, job *batchv1.Job, msg string) error {
	now := metav1.NewTime(r.now().Truncate(time.Second))
	if err := r.updateRestoreStatus(ctx, dr, func(st *dbv1.DatabaseRestoreStatus, gen int64) {
		if restoreFinished(st) {
			return // the job's own report arrived meanwhile: it wins
		}
		setRestoreCondition(st, "False", dbv1.ReasonRestoreFailed, msg, gen)
		st.CompletionTime = &now
		if st.StartTime != nil {
			st.Duration = &metav1.Duration{Duration: now.Sub(st.StartTime.Time)}
		}
	}); err != nil {
		return err
	}
	return r.reportRestoreOutcome(ctx, dr, job)
}

// startRestore checks that the restore can run and creates its RBAC and Job.
// What is missing (a DatabaseBackup, a Secret) may appear: the restore waits
// as RestorePending and looks again.
func (r *restoreReconciler) startRestore(ctx context.Context, dr *dbv1.DatabaseRestore) (reconcile.Result, error) {
	spot, prob, err := r.checkRestore(ctx, dr)
	if err != nil {
		return reconcile.Result{}, err
	}
	var job *batchv1.Job
	if prob == nil {
		job, prob, err = r.createRestoreJob(ctx, dr, spot)
		if err != nil {
			return reconcile.Result{}, err
		}
	}
	if prob != nil {
		cur := findCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
		if cur == nil || cur.Reason != dbv1.ReasonRestorePending || cur.Message != prob.message {
			r.Recorder.Eventf(dr, nil, corev1.EventTypeWarning, dbv1.ReasonRestorePending, "Restore", "%s", prob.message)
		}
		err := r.updateRestoreStatus(ctx, dr, func(st *dbv1.DatabaseRestoreStatus, gen int64) {
			if !restoreFinished(st) {
				setRestoreCondition(st, "Unknown", dbv1.ReasonRestorePending, prob.message, gen)
			}
		})
		return reconcile.Result{RequeueAfter: restorePendingRecheck}, err
	}
	r.Recorder.Eventf(dr, job, corev1.EventTypeNormal, "RestoreStarted", "Restore", "created Job %s to restore %s into %s database %s",
		job.Name, describeSelector(dr.Spec.Backup), dr.Spec.Target.Type, dr.Spec.Target.Database)
	return reconcile.Result{}, r.updateRestoreStatus(ctx, dr, func(st *dbv1.DatabaseRestoreStatus, gen int64) {
		if !restoreFinished(st) {
			setRestoreCondition(st, "Unknown", dbv1.ReasonRestoreRunning, fmt.Sprintf("Job %s is running", job.Name), gen)
		}
		st.Job = job.Name
	})
}

func describeSelector(s string) string {
	if s == "" || s == dbv1.BackupLatest {
		return "the latest backup"
	}
	return "backup " + s
}

// checkRestore finds the repo the restore reads from and checks what the
// schema cannot: the DatabaseBackup, the repo, the image, Secrets, the
// ServiceAccount.
func (r *restoreReconciler) checkRestore(ctx context.Context, dr *dbv1.DatabaseRestore) (restoreSpot, *problem, error) {
	var spot restoreSpot
	from := dr.Spec.From
	switch {
	case from.DatabaseBackup != "" && from.Repo == nil:
		db := &dbv1.DatabaseBackup{}
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: dr.Namespace, Name: from.DatabaseBackup}, db)
		if apierrors.IsNotFound(err) {
			return spot, &problem{message: fmt.Sprintf("spec.from.databaseBackup: DatabaseBackup %q does not exist in namespace %s", from.DatabaseBackup, dr.Namespace)}, nil
		}
		if err != nil {
			return spot, nil, fmt.Errorf("get DatabaseBackup %s/%s: %w", dr.Namespace, from.DatabaseBackup, err)
		}
		repo, why := dr.ResolveRepo(db)
		if repo == nil {
			return spot, &problem{message: why}, nil
		}
		spot = restoreSpot{repo: repo.DeepCopy(), bucket: repo.ResolvedBucket(db.Name), backup: db.Name}
	case from.Repo != nil && from.DatabaseBackup == "":
		if from.Repo.Prefix == "" || from.Repo.BucketNamePrefix != "" {
			return spot, &problem{message: "spec.from.repo needs prefix, and bucket instead of bucketNamePrefix"}, nil
		}
		spot = restoreSpot{repo: from.Repo.DeepCopy(), bucket: from.Repo.ResolvedBucket("")}
	default:
		return spot, &problem{message: "spec.from needs exactly one of databaseBackup and repo"}, nil
	}
	// The checks the DatabaseBackup's spec gets, on this repo.
	if p := checkSpec(&dbv1.DatabaseBackupSpec{Repos: []dbv1.Repo{*spot.repo}, Source: &dbv1.Source{}}); p != nil {
		return spot, p, nil
	}
	if p := r.imageProblem(dr.Spec.Image); p != nil {
		return spot, p, nil
	}
	var refs []secretRef
	if spot.repo.SecretName != "" {
		refs = append(refs, secretRef{field: fmt.Sprintf("repo %q secretName", spot.repo.Name), name: spot.repo.SecretName})
	}
	if ca := spot.repo.CABundle; ca != nil {
		refs = append(refs, secretRef{field: fmt.Sprintf("repo %q caBundle", spot.repo.Name), name: ca.SecretName, key: spot.repo.CABundleKey()})
	}
	if p := dr.Spec.IdentitySecret; p != nil {
		refs = append(refs, secretRef{field: "identitySecret", name: p.Name, key: p.Key})
	}
	if p := dr.Spec.Target.PasswordSecretRef; p != nil {
		refs = append(refs, secretRef{field: "target.passwordSecretRef", name: p.Name, key: p.Key})
	}
	if p, err := r.checkSecretRefs(ctx, dr.Namespace, refs); p != nil || err != nil {
		return spot, p, err
	}
	p, err := r.serviceAccountProblem(ctx, dr.Namespace, dr.Spec.PodTemplate)
	return spot, p, err
}

// restoreServiceAccount is the ServiceAccount dr's pod runs as.
func restoreServiceAccount(dr *dbv1.DatabaseRestore) string {
	if pt := dr.Spec.PodTemplate; pt != nil && pt.ServiceAccountName != "" {
		return pt.ServiceAccountName
	}
	return RestoreRBACName(dr.Name)
}

func restoreLabels(dr *dbv1.DatabaseRestore) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelRestore: dr.Name}
}

// createRestoreJob makes the job's RBAC and the Job. An object the API
// server refuses (a quota) is a problem to wait on, not an error to retry
// at once.
func (r *restoreReconciler) createRestoreJob(ctx context.Context, dr *dbv1.DatabaseRestore, spot restoreSpot) (*batchv1.Job, *problem, error) {
	ownSA := dr.Spec.PodTemplate == nil || dr.Spec.PodTemplate.ServiceAccountName == ""
	err := r.ensureRBAC(ctx, dr, RestoreRBACName(dr.Name), restoreLabels(dr),
		RestoreRoleRules(dr.Name, spot.backup), restoreServiceAccount(dr), ownSA)
	if rej := (*rejection)(nil); errors.As(err, &rej) {
		return nil, &problem{reason: dbv1.ReasonServerRejected, message: rej.Error()}, nil
	} else if err != nil {
		return nil, nil, err
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: dbv1.RestoreJobName(dr.Name), Namespace: dr.Namespace, Labels: restoreLabels(dr)},
		Spec:       restoreJobSpec(dr, spot, r.restoreImage(dr)),
	}
	r.setPullPolicy(&job.Spec)
	if err := controllerutil.SetControllerReference(dr, job, r.Scheme); err != nil {
		return nil, nil, fmt.Errorf("own Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	if err := r.Client.Create(ctx, job, ctrl.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Created by an earlier pass whose status write was lost.
			return job, nil, nil
		}
		if rej := rejectedOr(err, "Job "+job.Name, nil); rej != nil {
			return nil, &problem{reason: dbv1.ReasonServerRejected, message: rej.Error()}, nil
		}
		return nil, nil, fmt.Errorf("create Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	return job, nil, nil
}

func (r *restoreReconciler) restoreImage(dr *dbv1.DatabaseRestore) string {
	if dr.Spec.Image != "" {
		return dr.Spec.Image
	}
	return r.defaultJobImage()
}

// restoreJobSpec is the restore Job: `dbarchive job restore` in the same
// sandbox, with the same repo mounts, as a backup. backoffLimit is 0 unless
// the spec allows retries (only with createDatabase, see the API).
func restoreJobSpec(dr *dbv1.DatabaseRestore, spot restoreSpot, image string) batchv1.JobSpec {
	env := []corev1.EnvVar{
		{Name: dbv1.JobEnvRestoreName, Value: dr.Name},
		{Name: dbv1.JobEnvNamespace, Value: dr.Namespace},
		{Name: dbv1.JobEnvRepo, Value: spot.repo.Name},
		{Name: dbv1.JobEnvJobName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			APIVersion: "v1", FieldPath: "metadata.labels['" + dbv1.JobNameLabel + "']",
		}}},
	}
	if spot.bucket != "" {
		env = append(env, corev1.EnvVar{Name: dbv1.JobEnvBucket, Value: spot.bucket})
	}
	if p := dr.Spec.Target.PasswordSecretRef; p != nil {
		env = append(env, secretEnv(dbv1.JobEnvTargetPassword, p))
	}
	var backoff int32
	if dr.Spec.BackoffLimit != nil {
		backoff = *dr.Spec.BackoffLimit
	}
	deadline := defaultRestoreDeadline
	if dr.Spec.ActiveDeadlineSeconds != nil {
		deadline = *dr.Spec.ActiveDeadlineSeconds
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if ref := dr.Spec.IdentitySecret; ref != nil {
		// The one Job that may decrypt: this restore's, as a read-only file.
		volumes = append(volumes, identityVolume(ref))
		mounts = append(mounts, corev1.VolumeMount{Name: volumeIdentity, MountPath: dbv1.IdentityMountPath, ReadOnly: true})
	}
	return buildJobSpec(podJob{
		extraVolumes:   volumes,
		extraMounts:    mounts,
		container:      dbv1.RestoreContainerName,
		command:        dbv1.RestoreJobCommand,
		env:            env,
		repo:           spot.repo,
		image:          image,
		resources:      dr.Spec.Resources,
		backoffLimit:   backoff,
		deadline:       deadline,
		serviceAccount: restoreServiceAccount(dr),
		labels:         restoreLabels(dr),
		podTemplate:    dr.Spec.PodTemplate,
	})
}

func setRestoreCondition(st *dbv1.DatabaseRestoreStatus, status, reason, message string, gen int64) {
	setConditionIn(&st.Conditions, dbv1.ConditionSucceeded, status, reason, message, gen)
}

// updateRestoreStatus applies mutate to dr's status and writes it when it
// changed (see writeStatus): what the restore job wrote meanwhile is judged,
// not overwritten.
func (r *restoreReconciler) updateRestoreStatus(ctx context.Context, dr *dbv1.DatabaseRestore, mutate func(*dbv1.DatabaseRestoreStatus, int64)) error {
	return writeStatus(ctx, r.Client, r.APIReader, dr, "DatabaseRestore", func(o *dbv1.DatabaseRestore) { mutate(&o.Status, o.Generation) })
}

// Outcome labels of dbarchive_restores_total.
const (
	restoreOutcomeSucceeded      = "succeeded"
	restoreOutcomeFailed         = "failed"
	restoreOutcomeTargetNotEmpty = "target_not_empty"
)

// reportRestoreOutcome emits the outcome's Event and counts it, once: the
// Job is marked with an annotation, so neither repeats after a restart of
// the operator. Without a Job (deleted by hand) the caller calls it once.
func (r *restoreReconciler) reportRestoreOutcome(ctx context.Context, dr *dbv1.DatabaseRestore, job *batchv1.Job) error {
	c := findCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Status == metav1.ConditionUnknown {
		return nil
	}
	// Keyed by the outcome, not just "reported": with backoffLimit above 0
	// a retry can turn a reported failure into a success.
	outcome := string(c.Status) + "/" + c.Reason
	if job != nil {
		// The cache may not show the mark of the pass just before this
		// one (woken by the status write that pass made): ask the API
		// server, so that the outcome is counted once.
		fresh := &batchv1.Job{}
		switch err := r.APIReader.Get(ctx, ctrl.ObjectKeyFromObject(job), fresh); {
		case apierrors.IsNotFound(err):
			job = nil
		case err != nil:
			return fmt.Errorf("get Job %s/%s: %w", job.Namespace, job.Name, err)
		case fresh.Annotations[annotationOutcome] == outcome:
			return nil
		default:
			job = fresh
		}
	}
	var seconds float64
	if d := dr.Status.Duration; d != nil {
		seconds = d.Seconds()
	}
	related := relatedJob(job)
	switch {
	case c.Status == metav1.ConditionTrue:
		r.Metrics.countRestore(dr.Namespace, restoreOutcomeSucceeded, seconds)
		id := ""
		if b := dr.Status.Backup; b != nil {
			id = b.ID
		}
		r.Recorder.Eventf(dr, related, corev1.EventTypeNormal, dbv1.ReasonRestoreSucceeded, "Restore", "restored backup %s into %s database %s",
			id, dr.Spec.Target.Type, dr.Spec.Target.Database)
	case c.Reason == dbv1.ReasonTargetNotEmpty:
		r.Metrics.countRestore(dr.Namespace, restoreOutcomeTargetNotEmpty, seconds)
		r.Recorder.Eventf(dr, related, corev1.EventTypeWarning, dbv1.ReasonTargetNotEmpty, "Restore", "%s", c.Message)
	default:
		r.Metrics.countRestore(dr.Namespace, restoreOutcomeFailed, seconds)
		r.Recorder.Eventf(dr, related, corev1.EventTypeWarning, dbv1.ReasonRestoreFailed, "Restore", "%s", c.Message)
	}
	if job == nil {
		return nil
	}
	return r.annotateJob(ctx, job, annotationOutcome, outcome)
}

// relatedJob is job as an Event's related object, or nil (a typed nil
// pointer would not be nil as an interface).
func relatedJob(job *batchv1.Job) runtime.Object {
	if job == nil {
		return nil
	}
	return job
}

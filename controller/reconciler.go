package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// Labels on everything the operator creates. The managed-by label also
// narrows the operator's caches of Jobs, CronJobs and RBAC objects to its own.
const (
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedByValue       = "dbarchive-operator"
	LabelBackup          = "database.sample.third.party/backup"
	LabelTrigger         = "database.sample.third.party/trigger"
	annotationSpecHash   = "database.sample.third.party/spec-hash"
	annotationOutcome    = "database.sample.third.party/outcome-reported"
	annotationRunning    = "database.sample.third.party/running-reported"
	fieldManager         = "dbarchive-operator"
	secretMissingRecheck = time.Minute
)

// Reconciler reconciles DatabaseBackups, and, with the same settings,
// DatabaseRestores. Build it with its fields set and call SetupWithManager.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server directly: Secrets (never cached,
	// so the operator needs only get on them) and the fresh object when a
	// status update conflicts.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Metrics   *Metrics
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
	// MaxConcurrentReconciles defaults to 1.
	MaxConcurrentReconciles int
	// DefaultJobImage is the backup job's image when spec.image is empty:
	// the job image of the operator's own version. JobImage("dev") when
	// empty.
	DefaultJobImage string
	// AllowedJobImages are path.Match patterns a spec.image must match,
	// e.g. "registry.example.com/dbarchive/*". Empty allows only
	// DefaultJobImage: anyone who may create a DatabaseBackup could
	// otherwise run any image with the namespace's Secrets mounted.
	AllowedJobImages []string
	// JobImagePullPolicy is the imagePullPolicy of every Job container the
	// operator makes; empty leaves the cluster's default (IfNotPresent,
	// Always for :latest).
	JobImagePullPolicy corev1.PullPolicy
	// DefaultRPO is the recovery point objective of a DatabaseBackup
	// without the dbarchive.io/rpo annotation; 0 exports none.
	DefaultRPO time.Duration
}

// rpo is b's recovery point objective: its annotation, else DefaultRPO. An
// annotation that is not a positive duration counts as none (kubectl
// dbarchive status reports it).
func (r *Reconciler) rpo(b *dbv1.DatabaseBackup) time.Duration {
	raw, ok := b.Annotations[dbv1.AnnotationRPO]
	if !ok {
		return r.DefaultRPO
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// jobImage is the image of b's backup container.
func (r *Reconciler) jobImage(b *dbv1.DatabaseBackup) string {
	if b.Spec.Image != "" {
		return b.Spec.Image
	}
	return r.defaultJobImage()
}

// setPullPolicy gives the containers of a Job's pod JobImagePullPolicy.
func (r *Reconciler) setPullPolicy(spec *batchv1.JobSpec) {
	if r.JobImagePullPolicy == "" {
		return
	}
	for i := range spec.Template.Spec.Containers {
		spec.Template.Spec.Containers[i].ImagePullPolicy = r.JobImagePullPolicy
	}
}

func (r *Reconciler) defaultJobImage() string {
	if r.DefaultJobImage != "" {
		return r.DefaultJobImage
	}
	return dbv1.JobImage("dev")
}

// +kubebuilder:rbac:groups=database.sample.third.party,resources=databasebackups,verbs=get;list;watch
// +kubebuilder:rbac:groups=database.sample.third.party,resources=databasebackups/status,verbs=get;update;patch
// Owner references with blockOwnerDeletion (controller references) to a
// DatabaseBackup need update on its finalizers where the API server enforces
// OwnerReferencesPermissionEnforcement (OpenShift does).
// +kubebuilder:rbac:groups=database.sample.third.party,resources=databasebackups/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=cronjobs;jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// Changing the owner references of an existing object needs delete on it
// under OwnerReferencesPermissionEnforcement.
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// CacheOptions narrows the cache of the kinds the operator creates to the
// objects it created, so that a cluster with many Jobs or ServiceAccounts
// does not cost the operator memory. It also drops every cached object's
// managedFields: the operator never reads them, an update that omits them
// leaves them as they are on the server, and with 10,000 DatabaseBackups
// they were 40% of the heap (each of the five objects per DatabaseBackup
// carries them). The manager must be built with them.
func CacheOptions() cache.Options {
	mine := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}:           {Label: mine},
			&batchv1.CronJob{}:       {Label: mine},
			&corev1.ServiceAccount{}: {Label: mine},
			&rbacv1.Role{}:           {Label: mine},
			&rbacv1.RoleBinding{}:    {Label: mine},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// SetupWithManager registers the controller. The manager's cache must be
// built with CacheOptions.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.SetupWithManagerAs(mgr, r)
}

// SetupWithManagerAs registers the controller with rec in front of r (a
// wrapper that times or traces r.Reconcile), with the same watches.
func (r *Reconciler) SetupWithManagerAs(mgr ctrl.Manager, rec reconcile.Reconciler) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder(fieldManager)
	}
	if err := IndexRepoLocations(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("index DatabaseBackups by repo location: %w", err)
	}
	workers := r.MaxConcurrentReconciles
	if workers < 1 {
		workers = 1
	}
	// Status writes (ours and the job's) do not change what to build, and
	// an owned object we just created is already known: neither wakes the
	// reconciler. Startup still reconciles everything through For's initial
	// list, and a Job's progress arrives as an update.
	specChanged := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	notOwnCreate := builder.WithPredicates(predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }})
	if err := ctrl.NewControllerManagedBy(mgr).
		// The job's status reports wake it too: the operator turns them
		// into Events and metrics.
		For(&dbv1.DatabaseRestore{}).
		Owns(&batchv1.Job{}, notOwnCreate).
		// A restore waiting for its DatabaseBackup starts when it appears.
		Watches(&dbv1.DatabaseBackup{}, handler.EnqueueRequestsFromMapFunc(r.restoresOfBackup)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("databaserestore").
		Complete(&restoreReconciler{r}); err != nil {
		return fmt.Errorf("set up the DatabaseRestore controller: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&dbv1.DatabaseBackup{}, specChanged).
		Owns(&batchv1.CronJob{}, notOwnCreate).
		Owns(&batchv1.Job{}, notOwnCreate).
		// Jobs a CronJob starts are owned by the CronJob; their label names
		// the DatabaseBackup whose status they decide.
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(jobToBackup),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return o.GetLabels()[LabelTrigger] == dbv1.JobTriggerScheduled
			}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("databasebackup").
		Complete(rec)
}

func jobToBackup(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[LabelBackup]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile brings the objects of one DatabaseBackup to what its spec asks
// for. It works from the whole desired state, whatever event woke it, so
// running it twice in a row changes nothing the second time.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)

	var b dbv1.DatabaseBackup
	if err := r.Client.Get(ctx, req.NamespacedName, &b); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: garbage collection removes what it owned.
			r.Metrics.forget(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get DatabaseBackup %s: %w", req.NamespacedName, err)
	}
	if !b.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	jobs, err := r.listJobs(ctx, &b)
	if err != nil {
		return ctrl.Result{}, err
	}

	prob, err := r.validate(ctx, &b)
	if err != nil {
		return ctrl.Result{}, err
	}

	var (
		result     ctrl.Result
		ready      = readiness{reason: dbv1.ReasonReconciled}
		handled    string
		immediate  string
		cronStatus *batchv1.CronJobStatus
	)
	if prob != nil {
		ready = readiness{reason: prob.reason, message: prob.message}
		// A spec that cannot run must start nothing new, but the cause may
		// pass (a Secret being rotated): suspend the CronJob rather than
		// delete it, which would stop the backup it runs.
		if err := r.suspendCronJobs(ctx, &b); err != nil {
			return ctrl.Result{}, err
		}
		result.RequeueAfter = prob.recheck
		logger.V(1).Info("spec cannot be acted on", "reason", prob.reason)
	} else {
		var rejections []string
		if needsJobRBAC(&b) {
			err := r.ensureJobRBAC(ctx, &b)
			if rej := (*rejection)(nil); errors.As(err, &rej) {
				rejections = append(rejections, rej.Error())
			} else if err != nil {
				return ctrl.Result{}, err
			}
		}
		cs, msg, err := r.reconcileCronJob(ctx, &b)
		if rej := (*rejection)(nil); errors.As(err, &rej) {
			rejections = append(rejections, rej.Error())
		} else if err != nil {
			return ctrl.Result{}, err
		}
		cronStatus = cs
		verifyMsg, err := r.reconcileVerifyCronJob(ctx, &b)
		if rej := (*rejection)(nil); errors.As(err, &rej) {
			rejections = append(rejections, rej.Error())
		} else if err != nil {
			return ctrl.Result{}, err
		}
		if verifyMsg != "" {
			msg = joinMessages(msg, verifyMsg)
		}
		mr, err := r.reconcileManualJob(ctx, &b, jobs)
		if rej := (*rejection)(nil); errors.As(err, &rej) {
			rejections = append(rejections, rej.Error())
		} else if err != nil {
			return ctrl.Result{}, err
		}
		handled = mr.handled
		if mr.created != nil {
			jobs = append(jobs, *mr.created)
		}
		imm, created, err := r.reconcileImmediateJob(ctx, &b, jobs)
		if rej := (*rejection)(nil); errors.As(err, &rej) {
			rejections = append(rejections, rej.Error())
		} else if err != nil {
			return ctrl.Result{}, err
		}
		immediate = imm
		if created != nil {
			jobs = append(jobs, *created)
		}
		result.RequeueAfter = mr.requeueAfter
		ready.message = joinMessages(msg, mr.message)
		if len(rejections) > 0 {
			// Retrying at once cannot help; a quota or the spec may change.
			ready = readiness{reason: dbv1.ReasonServerRejected, message: strings.Join(rejections, "; ")}
			result.RequeueAfter = soonest(result.RequeueAfter, rejectedRecheck)
		}
	}
	if cur := findCondition(b.Status.Conditions, dbv1.ConditionReady); ready.status() == "False" &&
		(cur == nil || cur.Reason != ready.reason || cur.Message != ready.message) {
		// Once per change of cause, not once per retry.
		r.Recorder.Eventf(&b, nil, corev1.EventTypeWarning, ready.reason, "Reconcile", "%s", ready.message)
	}

	gone := activeJobGone(&b.Status, jobs)
	if gone != "" {
		// The cache may not have seen a Job created a moment ago.
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: b.Namespace, Name: gone}, &batchv1.Job{})
		if !apierrors.IsNotFound(err) {
			if err != nil {
				return ctrl.Result{}, fmt.Errorf("get Job %s/%s: %w", b.Namespace, gone, err)
			}
			gone = ""
		}
	}

	sched := r.scheduleState(&b, ready, jobs)
	result.RequeueAfter = soonest(result.RequeueAfter, sched.recheck)
	skippedBefore := b.Status.LastSkippedTime

	var announced *batchv1.Job
	if err := r.updateStatus(ctx, &b, func(st *dbv1.DatabaseBackupStatus, gen int64) {
		setCondition(st, dbv1.ConditionReady, ready.status(), ready.reason, ready.message, gen)
		if handled != "" {
			recordHandled(st, handled)
		}
		if immediate != "" {
			st.ImmediateJob = immediate
		}
		if cronStatus != nil && cronStatus.LastScheduleTime != nil {
			st.LastScheduleTime = cronStatus.LastScheduleTime.DeepCopy()
		}
		if gone != "" {
			jobGone(st, gen, gone, r.now())
		}
		announced = observeJobs(st, gen, jobs)
		sched.apply(st, gen)
	}); err != nil {
		return ctrl.Result{}, err
	}
	if !sched.skipped.IsZero() && (skippedBefore == nil || skippedBefore.Time.Before(sched.skipped)) {
		r.Recorder.Eventf(&b, nil, corev1.EventTypeWarning, dbv1.ReasonBackupSkipped, "Schedule",
			"the scheduled backup of %s did not start: Job %s was still running", sched.skipped.UTC().Format(time.RFC3339), sched.blocker)
	}
	if announced != nil {
		if err := r.markAnnounced(ctx, announced); err != nil {
			return ctrl.Result{}, err
		}
	}
	// After the status write, so that an outcome is marked as reported only
	// once it is in status.
	if err := r.reportOutcomes(ctx, &b, jobs); err != nil {
		return ctrl.Result{}, err
	}
	if _, err := r.pruneManualJobs(ctx, &b, jobs); err != nil {
		return ctrl.Result{}, err
	}

	if lb := b.Status.LastBackup; lb != nil && lb.FinishedTime != nil {
		r.Metrics.setLastSuccess(b.Namespace, b.Name, float64(lb.FinishedTime.Unix()))
	}
	r.Metrics.setVerification(b.Namespace, b.Name, b.Status.LastVerification)
	r.Metrics.observe(&b, r.rpo(&b))
	r.Metrics.setRunning(b.Namespace, b.Name, slices.ContainsFunc(jobs, func(j batchv1.Job) bool { return finished(&j) == "" }))
	return result, nil
}

// rejectedRecheck is how soon an object the API server refused is tried
// again without a spec change (a ResourceQuota may have been raised).
const rejectedRecheck = time.Minute

// soonest is the earlier of two requeue delays, zero meaning none.
func soonest(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

func joinMessages(parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += p
	}
	if out == "" {
		return "no trigger is enabled"
	}
	return out
}

// listJobs returns the backup Jobs of b, manual and scheduled, from the
// cache. The scheduled drill's Jobs are not backups: they report their own
// outcome in the Verified condition.
func (r *Reconciler) listJobs(ctx context.Context, b *dbv1.DatabaseBackup) ([]batchv1.Job, error) {
	var list batchv1.JobList
	if err := r.Client.List(ctx, &list, client.InNamespace(b.Namespace),
		client.MatchingLabels{LabelBackup: b.Name, LabelManagedBy: ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list Jobs of DatabaseBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	return slices.DeleteFunc(list.Items, func(j batchv1.Job) bool { return j.Labels[LabelTrigger] == dbv1.JobTriggerVerify }), nil
}

// commonLabels are the labels of every object made for b.
func commonLabels(b *dbv1.DatabaseBackup, trigger string) map[string]string {
	l := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelBackup:    b.Name,
	}
	if trigger != "" {
		l[LabelTrigger] = trigger
	}
	return l
}

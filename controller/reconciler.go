package controller

import (
	"context"
	"fmt"
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

// Reconciler reconciles DatabaseBackups. Build it with its fields set and
// call SetupWithManager.
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
}

// +kubebuilder:rbac:groups=database.sample.third.party,resources=databasebackups,verbs=get;list;watch
// +kubebuilder:rbac:groups=database.sample.third.party,resources=databasebackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=batch,resources=cronjobs;jobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// CacheOptions narrows the cache of the kinds the operator creates to the
// objects it created, so that a cluster with many Jobs or ServiceAccounts
// does not cost the operator memory. The manager must be built with them.
func CacheOptions() cache.Options {
	mine := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&batchv1.Job{}:           {Label: mine},
		&batchv1.CronJob{}:       {Label: mine},
		&corev1.ServiceAccount{}: {Label: mine},
		&rbacv1.Role{}:           {Label: mine},
		&rbacv1.RoleBinding{}:    {Label: mine},
	}}
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
		cronStatus *batchv1.CronJobStatus
	)
	if prob != nil {
		ready = readiness{reason: prob.reason, message: prob.message}
		if cur := findCondition(b.Status.Conditions, dbv1.ConditionReady); cur == nil || cur.Reason != prob.reason || cur.Message != prob.message {
			r.Recorder.Eventf(&b, nil, corev1.EventTypeWarning, prob.reason, "Validate", "%s", prob.message)
		}
		// A spec that cannot run must leave nothing that would run it.
		if err := r.deleteCronJob(ctx, &b); err != nil {
			return ctrl.Result{}, err
		}
		if prob.recheck > 0 {
			result.RequeueAfter = prob.recheck
		}
		logger.V(1).Info("spec cannot be acted on", "reason", prob.reason)
	} else {
		if needsJobRBAC(&b) {
			if err := r.ensureJobRBAC(ctx, &b); err != nil {
				return ctrl.Result{}, err
			}
		}
		cs, msg, err := r.reconcileCronJob(ctx, &b)
		if err != nil {
			return ctrl.Result{}, err
		}
		cronStatus = cs
		mr, err := r.reconcileManualJob(ctx, &b, jobs)
		if err != nil {
			return ctrl.Result{}, err
		}
		handled = mr.handled
		if mr.created != nil {
			jobs = append(jobs, *mr.created)
		}
		result.RequeueAfter = mr.requeueAfter
		ready.message = joinMessages(msg, mr.message)
	}

	jobs, err = r.pruneManualJobs(ctx, &b, jobs)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reportOutcomes(ctx, &b, jobs); err != nil {
		return ctrl.Result{}, err
	}

	var announced *batchv1.Job
	if err := r.updateStatus(ctx, &b, func(st *dbv1.DatabaseBackupStatus, gen int64) {
		setCondition(st, dbv1.ConditionReady, ready.status(), ready.reason, ready.message, gen)
		if handled != "" {
			st.LastManualTriggerTime = handled
		}
		if cronStatus != nil && cronStatus.LastScheduleTime != nil {
			st.LastScheduleTime = cronStatus.LastScheduleTime.DeepCopy()
		}
		announced = observeJobs(st, gen, jobs)
	}); err != nil {
		return ctrl.Result{}, err
	}
	if announced != nil {
		if err := r.markAnnounced(ctx, announced); err != nil {
			return ctrl.Result{}, err
		}
	}

	if lb := b.Status.LastBackup; lb != nil && lb.FinishedTime != nil {
		r.Metrics.setLastSuccess(b.Namespace, b.Name, float64(lb.FinishedTime.Unix()))
	}
	return result, nil
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

// listJobs returns the Jobs of b, manual and scheduled, from the cache.
func (r *Reconciler) listJobs(ctx context.Context, b *dbv1.DatabaseBackup) ([]batchv1.Job, error) {
	var list batchv1.JobList
	if err := r.Client.List(ctx, &list, client.InNamespace(b.Namespace),
		client.MatchingLabels{LabelBackup: b.Name, LabelManagedBy: ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list Jobs of DatabaseBackup %s/%s: %w", b.Namespace, b.Name, err)
	}
	return list.Items, nil
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

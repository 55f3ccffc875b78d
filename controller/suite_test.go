package controller_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
)

func TestMain(m *testing.M) {
	if stats := os.Getenv(benchOperatorEnv); stats != "" {
		// The operator process of the operator benchmark.
		os.Exit(runBenchOperator(stats))
	}
	// Reconcile errors are retried by design (conflicts with a cache that is
	// behind); tests judge outcomes, so the operator's log is not shown.
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if err := envtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// harness is one running operator watching one fresh namespace of the
// shared API server.
type harness struct {
	t   testing.TB
	env *envtest.Env
	// c talks to the API server directly, so that what a test reads is what
	// is stored, not what the operator's cache has seen.
	c   client.Client
	r   *controller.Reconciler
	reg *prometheus.Registry
	ns  string
	ctx context.Context
}

type harnessOpt func(*harnessConfig)

type harnessConfig struct {
	namespace string
	workers   int
	wrap      func(reconcile.Reconciler) reconcile.Reconciler
	extraNS   []string
	// onCluster runs the operator on envtest.SharedCluster (real CronJob,
	// Job and garbage-collector controllers, OwnerReferencesPermission-
	// Enforcement) as the ServiceAccount config/rbac binds, with leader
	// election in its namespace.
	onCluster     bool
	allowedImages []string
	pullPolicy    corev1.PullPolicy
	// scoped runs the operator as --watch-namespace would be deployed:
	// with the ClusterRole bound only by a RoleBinding in the namespace.
	scoped bool
}

// testJobImage is the operator's default job image in the tests, as
// --job-image would set it.
const testJobImage = "ghcr.io/dbarchive/dbarchive:v0.0.0-test"

func onCluster() harnessOpt { return func(c *harnessConfig) { c.onCluster = true } }

func withNamespaces(ns ...string) harnessOpt {
	return func(c *harnessConfig) { c.extraNS = append(c.extraNS, ns...) }
}

func inNamespace(ns string) harnessOpt { return func(c *harnessConfig) { c.namespace = ns } }

// The benchmark passes a func(*harnessConfig) directly.
var _ harnessOpt = func(*harnessConfig) {}

func start(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	cfg := harnessConfig{workers: 4}
	for _, o := range opts {
		o(&cfg)
	}
	var env *envtest.Env
	if cfg.onCluster {
		env = envtest.SharedCluster(t)
	} else {
		env = envtest.Shared(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	restCfg := env.Config
	if cfg.onCluster {
		var err error
		if restCfg, err = env.OperatorConfig(ctx); err != nil {
			t.Fatalf("operator RBAC: %v", err)
		}
	}

	ns := cfg.namespace
	if ns == "" {
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dbb-"}}
		if err := env.Client.Create(ctx, nsObj); err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		ns = nsObj.Name
	} else {
		err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}

	if cfg.scoped {
		var err error
		if restCfg, err = env.ScopedOperatorConfig(ctx, "scoped-"+ns, ns); err != nil {
			t.Fatalf("scoped operator RBAC: %v", err)
		}
	}

	// As cmd/operator with --watch-namespace: each test's operator sees
	// only its namespaces, so that tests sharing the API server do not
	// reconcile each other's objects.
	mgrOpts := controller.ManagerOptions(env.Scheme, append([]string{ns}, cfg.extraNS...))
	mgrOpts.Metrics = metricsserver.Options{BindAddress: "0"}
	mgrOpts.HealthProbeBindAddress = "0"
	mgrOpts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	if cfg.onCluster {
		// As the Deployment runs it, so that its Events and Lease are
		// written with the operator's own permissions.
		mgrOpts.LeaderElection = true
		mgrOpts.LeaderElectionNamespace = envtest.OperatorNamespace
		mgrOpts.LeaderElectionID = "dbarchive-test-" + ns
		mgrOpts.LeaderElectionReleaseOnCancel = true
	}
	mgr, err := ctrl.NewManager(controller.ClientConfig(restCfg), mgrOpts)
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	reg := prometheus.NewRegistry()
	m, err := controller.NewMetrics(reg)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	r := &controller.Reconciler{Metrics: m, MaxConcurrentReconciles: cfg.workers, DefaultJobImage: testJobImage, AllowedJobImages: cfg.allowedImages, JobImagePullPolicy: cfg.pullPolicy}
	var rec reconcile.Reconciler = r
	if cfg.wrap != nil {
		rec = cfg.wrap(r)
	}
	if err := r.SetupWithManagerAs(mgr, rec); err != nil {
		t.Fatalf("setup: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	if cfg.onCluster {
		select {
		case <-mgr.Elected():
		case <-time.After(60 * time.Second):
			t.Fatal("the operator was not elected leader within 60s")
		}
	}
	return &harness{t: t, env: env, c: env.Client, r: r, reg: reg, ns: ns, ctx: ctx}
}

// eventually polls cond until it returns "" (success) or the timeout
// passes, then fails with cond's last complaint.
func (h *harness) eventually(what string, cond func() string) {
	h.t.Helper()
	h.eventuallyWithin(30*time.Second, what, cond)
}

// eventuallyWithin is eventually with its own bound, for what the real
// CronJob controller does on its one-minute clock.
func (h *harness) eventuallyWithin(timeout time.Duration, what string, cond func() string) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("%s: timed out: %s", what, last)
}

func (h *harness) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: h.ns, Name: name}
}

func (h *harness) get(name string) *dbv1.DatabaseBackup {
	h.t.Helper()
	var b dbv1.DatabaseBackup
	if err := h.c.Get(h.ctx, h.key(name), &b); err != nil {
		h.t.Fatalf("get DatabaseBackup %s: %v", name, err)
	}
	return &b
}

// update re-reads the DatabaseBackup and applies change, retrying on
// conflict with the operator's status writes.
func (h *harness) update(name string, change func(*dbv1.DatabaseBackup)) {
	h.t.Helper()
	for range 10 {
		b := h.get(name)
		change(b)
		err := h.c.Update(h.ctx, b)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			h.t.Fatalf("update DatabaseBackup %s: %v", name, err)
		}
	}
	h.t.Fatalf("update DatabaseBackup %s: too many conflicts", name)
}

// reconcile runs one pass of the operator's reconciler directly. The
// manager reconciles the same resource concurrently, so a pass may lose an
// optimistic-lock race (Conflict); it is run again then, as the manager's
// requeue would, and any other error fails the test.
func (h *harness) reconcile(name string) {
	h.t.Helper()
	for range 5 {
		_, err := h.r.Reconcile(h.ctx, reconcile.Request{NamespacedName: h.key(name)})
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			h.t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	h.t.Fatalf("reconcile %s: a Conflict on each of 5 passes", name)
}

func (h *harness) create(objs ...client.Object) {
	h.t.Helper()
	for _, o := range objs {
		if o.GetNamespace() == "" {
			o.SetNamespace(h.ns)
		}
		if err := h.c.Create(h.ctx, o); err != nil {
			h.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// condition returns the condition of the stored DatabaseBackup, or nil.
func (h *harness) condition(name, typ string) *metav1.Condition {
	b := h.get(name)
	for i := range b.Status.Conditions {
		if b.Status.Conditions[i].Type == typ {
			return &b.Status.Conditions[i]
		}
	}
	return nil
}

// waitCondition waits until the condition has the status and reason and
// describes the current generation.
func (h *harness) waitCondition(name, typ, status, reason string) *metav1.Condition {
	h.t.Helper()
	var got *metav1.Condition
	h.eventually(fmt.Sprintf("%s %s=%s/%s", name, typ, status, reason), func() string {
		b := h.get(name)
		got = nil
		for i := range b.Status.Conditions {
			if b.Status.Conditions[i].Type == typ {
				got = &b.Status.Conditions[i]
			}
		}
		switch {
		case got == nil:
			return "no condition"
		case string(got.Status) != status || got.Reason != reason:
			return fmt.Sprintf("%s/%s: %s", got.Status, got.Reason, got.Message)
		case got.ObservedGeneration != b.Generation:
			return fmt.Sprintf("observedGeneration %d, generation %d", got.ObservedGeneration, b.Generation)
		}
		return ""
	})
	return got
}

func (h *harness) cronJob(name string) (*batchv1.CronJob, error) {
	var cj batchv1.CronJob
	err := h.c.Get(h.ctx, h.key(controller.CronJobName(name)), &cj)
	return &cj, err
}

func (h *harness) waitCronJob(name string, ok func(*batchv1.CronJob) string) *batchv1.CronJob {
	h.t.Helper()
	var cj *batchv1.CronJob
	h.eventually("CronJob of "+name, func() string {
		var err error
		if cj, err = h.cronJob(name); err != nil {
			return err.Error()
		}
		if ok != nil {
			return ok(cj)
		}
		return ""
	})
	return cj
}

// jobs lists the Jobs in the namespace that the operator made for name.
func (h *harness) jobs(name string) []batchv1.Job {
	h.t.Helper()
	var list batchv1.JobList
	if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{controller.LabelBackup: name}); err != nil {
		h.t.Fatalf("list Jobs: %v", err)
	}
	var live []batchv1.Job
	for _, j := range list.Items {
		if j.DeletionTimestamp.IsZero() {
			live = append(live, j)
		}
	}
	return live
}

// events returns the notes of Events about name with the reason.
func (h *harness) events(name, eventType, reason string) []string {
	h.t.Helper()
	var list eventsv1.EventList
	if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
		h.t.Fatalf("list Events: %v", err)
	}
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Type == eventType && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func (h *harness) waitEvent(name, eventType, reason, contains string) {
	h.t.Helper()
	h.eventually(fmt.Sprintf("%s Event %s about %s", eventType, reason, name), func() string {
		notes := h.events(name, eventType, reason)
		for _, n := range notes {
			if strings.Contains(n, contains) {
				return ""
			}
		}
		return fmt.Sprintf("events: %q", notes)
	})
}

// randomSecret returns a value that cannot occur in a manifest by chance.
func randomSecret(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "s3cr3t-" + hex.EncodeToString(b)
}

// fixture is a DatabaseBackup whose Secrets exist: an s3 repo with
// credentials and a postgres source with a password.
type fixture struct {
	repoKeyID, repoSecretKey, dbPassword string
}

func (h *harness) secrets() fixture {
	h.t.Helper()
	f := fixture{repoKeyID: randomSecret(h.t), repoSecretKey: randomSecret(h.t), dbPassword: randomSecret(h.t)}
	h.create(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds"}, StringData: map[string]string{
			"AccessKeyId": f.repoKeyID, "SecretAccessKey": f.repoSecretKey,
		}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": f.dbPassword}},
	)
	return f
}

func newBackup(name string) *dbv1.DatabaseBackup {
	return &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: dbv1.DatabaseBackupSpec{
			Repos: []dbv1.Repo{{
				Name: "s3", Type: dbv1.RepoTypeS3, SecretName: "repo-creds",
				ServiceEndpoint: "https://s3.example.com", BucketNamePrefix: "backups-",
			}},
			Source: &dbv1.Source{
				Type: dbv1.SourceTypePostgres, Host: "db.example.svc", Database: "orders", User: "backup",
				PasswordSecretRef: &dbv1.SecretKeyRef{Name: "db", Key: "password"},
			},
		},
	}
}

func scheduled(b *dbv1.DatabaseBackup, schedule string) *dbv1.DatabaseBackup {
	b.Spec.ScheduledTrigger = &dbv1.ScheduledTrigger{Enabled: true, Schedule: schedule, Repo: b.Spec.Repos[0].Name}
	return b
}

func manual(b *dbv1.DatabaseBackup, at time.Time) *dbv1.DatabaseBackup {
	b.Spec.ManualTrigger = &dbv1.ManualTrigger{Enabled: true, Time: at.UTC().Format(time.RFC3339Nano), Repo: b.Spec.Repos[0].Name}
	return b
}

// completeJob and failJob play the Job controller, which envtest lacks: they
// write the status a finished Job has.
func (h *harness) completeJob(j *batchv1.Job, at time.Time) {
	h.t.Helper()
	now := metav1.NewTime(at)
	start := metav1.NewTime(now.Add(-time.Minute))
	h.setJobStatus(j, func(st *batchv1.JobStatus) {
		if st.StartTime == nil {
			st.StartTime = &start
		}
		st.Active = 0
		st.CompletionTime = &now
		st.Succeeded = 1
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now, LastProbeTime: now},
		}
	})
}

func (h *harness) failJob(j *batchv1.Job, message string) {
	h.t.Helper()
	now := metav1.Now()
	start := now
	h.setJobStatus(j, func(st *batchv1.JobStatus) {
		if st.StartTime == nil {
			st.StartTime = &start
		}
		st.Active = 0
		st.Failed = 3
		st.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: message, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: message, LastTransitionTime: now, LastProbeTime: now},
		}
	})
}

func (h *harness) startJob(j *batchv1.Job) {
	h.t.Helper()
	now := metav1.Now()
	h.setJobStatus(j, func(st *batchv1.JobStatus) {
		st.StartTime = &now
		st.Active = 1
	})
}

func (h *harness) setJobStatus(j *batchv1.Job, set func(*batchv1.JobStatus)) {
	h.t.Helper()
	for range 10 {
		var cur batchv1.Job
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(j), &cur); err != nil {
			h.t.Fatalf("get Job %s: %v", j.Name, err)
		}
		set(&cur.Status)
		err := h.c.Status().Update(h.ctx, &cur)
		if err == nil {
			*j = cur
			return
		}
		if !apierrors.IsConflict(err) {
			h.t.Fatalf("set status of Job %s: %v", j.Name, err)
		}
	}
	h.t.Fatalf("set status of Job %s: too many conflicts", j.Name)
}

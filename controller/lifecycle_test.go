package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
)

// Jobs get a deadline by default, so that a stuck one (image never pulled,
// pod never scheduled) cannot block every later scheduled run: derived from
// the schedule for the CronJob, a day for a manual trigger.
func TestJobsHaveADefaultDeadline(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(scheduled(manual(newBackup("bounded"), time.Now().Add(-time.Minute)), "*/5 * * * *"))
	cj := h.waitCronJob("bounded", nil)
	// Five minutes less a tenth: the Job ends before the next run is due.
	if got := ptr.Deref(cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, 0); got != 270 {
		t.Errorf("CronJob template activeDeadlineSeconds = %d, want 270", got)
	}
	if got := ptr.Deref(cj.Spec.StartingDeadlineSeconds, 0); got != 300 {
		t.Errorf("CronJob startingDeadlineSeconds = %d, want 300", got)
	}
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("bounded")
		if len(jobs) != 1 {
			return "jobs: " + jobNames(jobs)
		}
		job = jobs[0]
		return ""
	})
	if got := ptr.Deref(job.Spec.ActiveDeadlineSeconds, 0); got != 24*3600 {
		t.Errorf("manual Job activeDeadlineSeconds = %d, want %d", got, 24*3600)
	}
}

// A Secret deleted while the CronJob exists (a rotation that deletes and
// recreates it) suspends the CronJob instead of deleting it, so a Job it
// runs is not garbage-collected; once the Secret is back the CronJob runs
// again.
func TestMissingSecretSuspendsCronJob(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(scheduled(newBackup("rotate"), "@hourly"))
	cj := h.waitCronJob("rotate", nil)
	h.waitCondition("rotate", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)

	db := &corev1.Secret{}
	if err := h.c.Get(h.ctx, h.key("db"), db); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Delete(h.ctx, db); err != nil {
		t.Fatal(err)
	}
	h.reconcile("rotate")
	h.waitCondition("rotate", dbv1.ConditionReady, "False", dbv1.ReasonSecretMissing)
	after := h.waitCronJob("rotate", func(c *batchv1.CronJob) string {
		if !c.DeletionTimestamp.IsZero() {
			return "being deleted"
		}
		if !ptr.Deref(c.Spec.Suspend, false) {
			return "not suspended"
		}
		return ""
	})
	if after.UID != cj.UID {
		t.Fatalf("CronJob was replaced (uid %s -> %s)", cj.UID, after.UID)
	}

	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "x"}})
	h.reconcile("rotate")
	h.waitCondition("rotate", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitCronJob("rotate", func(c *batchv1.CronJob) string {
		if ptr.Deref(c.Spec.Suspend, true) || c.UID != cj.UID {
			return "still suspended or replaced"
		}
		return ""
	})
}

// An object the API server refuses (here: a CPU request above its limit,
// which the CRD cannot see) is reported as Ready=False with the server's
// message and one Warning Event, and is not retried in a hot loop.
func TestServerRejectionIsReported(t *testing.T) {
	var calls countingReconciler
	h := start(t, func(c *harnessConfig) { c.wrap = calls.wrap })
	h.secrets()
	b := scheduled(newBackup("greedy"), "@hourly")
	b.Spec.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
	}
	h.create(b)
	cond := h.waitCondition("greedy", dbv1.ConditionReady, "False", dbv1.ReasonServerRejected)
	if !strings.Contains(cond.Message, "CronJob greedy-scheduled") || !strings.Contains(cond.Message, "must be less than or equal to cpu limit") {
		t.Errorf("Ready message %q does not carry the CronJob and the server's reason", cond.Message)
	}
	h.waitEvent("greedy", corev1.EventTypeWarning, dbv1.ReasonServerRejected, "cpu limit")
	time.Sleep(3 * time.Second)
	if n := calls.get(); n > 5 {
		t.Errorf("%d reconciles within seconds of a refusal: a retry loop", n)
	}
	if n := len(h.events("greedy", corev1.EventTypeWarning, dbv1.ReasonServerRejected)); n != 1 {
		t.Errorf("%d ServerRejected Events, want 1", n)
	}

	h.update("greedy", func(b *dbv1.DatabaseBackup) { b.Spec.Resources.Limits = nil })
	h.waitCondition("greedy", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitCronJob("greedy", nil)
}

// Succeeded does not stay BackupRunning once the Job it names is gone
// without the job having reported.
func TestDeletedRunningJobEndsRunning(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(manual(newBackup("vanish"), time.Now().Add(-time.Minute)))
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("vanish")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	h.startJob(&job)
	h.waitCondition("vanish", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)
	if err := h.c.Delete(h.ctx, &job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	failed := h.waitCondition("vanish", dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed)
	if !strings.Contains(failed.Message, job.Name) || !strings.Contains(failed.Message, "deleted") {
		t.Errorf("Succeeded message %q does not say the Job was deleted", failed.Message)
	}
	// And it is not undone by later passes.
	h.reconcile("vanish")
	h.waitCondition("vanish", dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed)
}

// The job's own report of a Job is never replaced by the operator's reading
// of that Job, whatever the clocks say: here the pod's clock is an hour
// behind, so its condition looks older than the Job's start.
func TestJobReportWinsWhateverTheClock(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(manual(newBackup("skew"), time.Now().Add(-time.Minute)))
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("skew")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	h.startJob(&job)
	h.waitCondition("skew", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)

	const cause = "pg_dump: error: connection to server failed: FATAL: password authentication failed"
	for range 10 {
		b := h.get("skew")
		skewed := metav1.NewTime(time.Now().Add(-time.Hour))
		setCond(b, dbv1.ConditionSucceeded, metav1.ConditionFalse, dbv1.ReasonBackupFailed, cause)
		for i := range b.Status.Conditions {
			if b.Status.Conditions[i].Type == dbv1.ConditionSucceeded {
				b.Status.Conditions[i].LastTransitionTime = skewed
			}
		}
		b.Status.ReportedJob = job.Name
		if err := h.c.Status().Update(h.ctx, b); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	h.failJob(&job, "Job has reached the specified backoff limit")
	h.waitEvent("skew", corev1.EventTypeWarning, dbv1.ReasonBackupFailed, job.Name)
	h.reconcile("skew")
	got := h.condition("skew", dbv1.ConditionSucceeded)
	if got == nil || got.Message != cause {
		t.Fatalf("Succeeded = %+v, want the job's own cause %q", got, cause)
	}
}

// Each distinct manual trigger time runs once, also after a revert to an
// earlier time whose Job was pruned.
func TestRevertedTriggerTimeDoesNotRerun(t *testing.T) {
	h := start(t)
	h.secrets()
	first := time.Date(2025, 3, 1, 4, 0, 0, 0, time.UTC)
	h.create(manual(newBackup("revert"), first))
	waitJobNamed := func(name string) batchv1.Job {
		var found batchv1.Job
		h.eventually("Job "+name, func() string {
			for _, j := range h.jobs("revert") {
				if j.Name == name {
					found = j
					return ""
				}
			}
			return "jobs: " + jobNames(h.jobs("revert"))
		})
		return found
	}
	j1 := waitJobNamed(controller.ManualJobName("revert", first))
	second := first.Add(24 * time.Hour)
	h.update("revert", func(b *dbv1.DatabaseBackup) { b.Spec.ManualTrigger.Time = second.Format(time.RFC3339) })
	waitJobNamed(controller.ManualJobName("revert", second))

	// The first Job is pruned, then GitOps reverts to the first time.
	if err := h.c.Delete(h.ctx, &j1, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	h.eventually("first Job gone", func() string {
		for _, j := range h.jobs("revert") {
			if j.Name == j1.Name {
				return "still there"
			}
		}
		return ""
	})
	h.update("revert", func(b *dbv1.DatabaseBackup) { b.Spec.ManualTrigger.Time = first.Format(time.RFC3339) })
	h.reconcile("revert")
	h.reconcile("revert")
	for _, j := range h.jobs("revert") {
		if j.Name == j1.Name {
			t.Fatalf("the reverted time %s ran again as Job %s", first, j.Name)
		}
	}
	if got := h.get("revert").Status.HandledManualTriggerTimes; len(got) != 2 {
		t.Errorf("handledManualTriggerTimes = %v, want both times", got)
	}
}

// Two DatabaseBackups that name the same bucket and prefix would prune each
// other's backups: the younger is refused with RepoConflict naming the
// older, which keeps running; with its own prefix the younger runs too.
func TestSharedPrefixIsRefused(t *testing.T) {
	other := fmt.Sprintf("dbb-other-%d", time.Now().UnixNano())
	h := start(t, withNamespaces(other))
	h.secrets()
	if err := h.c.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds", Namespace: other}, StringData: map[string]string{"AccessKeyId": "a", "SecretAccessKey": "b"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: other}, StringData: map[string]string{"password": "x"}},
	} {
		h.create(s)
	}
	shared := func(b *dbv1.DatabaseBackup) *dbv1.DatabaseBackup {
		b.Spec.Repos[0].BucketNamePrefix = ""
		b.Spec.Repos[0].Bucket = "team-backups"
		b.Spec.Repos[0].Prefix = "orders"
		return scheduled(b, "@hourly")
	}
	h.create(shared(newBackup("orders")))
	h.waitCondition("orders", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	// Creation times have whole seconds; within the same second the tie
	// goes by namespace/name, which with a generated namespace is either
	// way. The younger is made in a later second so that it is younger.
	older := h.get("orders")
	time.Sleep(time.Until(older.CreationTimestamp.Add(1100 * time.Millisecond)))
	younger := shared(newBackup("orders"))
	younger.Namespace = other
	h.create(younger)

	h.eventually("younger refused", func() string {
		var b dbv1.DatabaseBackup
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: other, Name: "orders"}, &b); err != nil {
			return err.Error()
		}
		for _, c := range b.Status.Conditions {
			if c.Type == dbv1.ConditionReady && c.Reason == dbv1.ReasonRepoConflict {
				if !strings.Contains(c.Message, h.ns+"/orders") || !strings.Contains(c.Message, "team-backups") {
					return "message does not name the other resource and bucket: " + c.Message
				}
				return ""
			}
		}
		return fmt.Sprintf("conditions %+v", b.Status.Conditions)
	})
	var cj batchv1.CronJob
	if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: other, Name: "orders-scheduled"}, &cj); !apierrors.IsNotFound(err) {
		t.Errorf("the refused resource has a CronJob (err %v)", err)
	}
	h.reconcile("orders")
	h.waitCondition("orders", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)

	// Its own prefix resolves the conflict.
	for range 10 {
		var b dbv1.DatabaseBackup
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: other, Name: "orders"}, &b); err != nil {
			t.Fatal(err)
		}
		b.Spec.Repos[0].Prefix = "orders-eu"
		if err := h.c.Update(h.ctx, &b); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	h.eventually("younger runs with its own prefix", func() string {
		if err := h.c.Get(h.ctx, client.ObjectKey{Namespace: other, Name: "orders-scheduled"}, &cj); err != nil {
			return err.Error()
		}
		return ""
	})
}

// A spec.image outside the operator's allowed patterns is refused: anyone
// who may create a DatabaseBackup could otherwise run any image with the
// namespace's Secrets mounted.
func TestImagePolicy(t *testing.T) {
	h := start(t, func(c *harnessConfig) { c.allowedImages = []string{"registry.example.com/dbarchive/*"} })
	h.secrets()
	b := scheduled(newBackup("rogue"), "@hourly")
	b.Spec.Image = "evil.example.com/miner:1"
	h.create(b)
	cond := h.waitCondition("rogue", dbv1.ConditionReady, "False", dbv1.ReasonImageNotAllowed)
	if !strings.Contains(cond.Message, "evil.example.com/miner:1") {
		t.Errorf("Ready message %q does not name the image", cond.Message)
	}
	if _, err := h.cronJob("rogue"); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob exists for a refused image (err %v)", err)
	}
	h.update("rogue", func(b *dbv1.DatabaseBackup) { b.Spec.Image = "registry.example.com/dbarchive/job:v2" })
	h.waitCondition("rogue", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	cj := h.waitCronJob("rogue", nil)
	if got := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image; got != "registry.example.com/dbarchive/job:v2" {
		t.Errorf("image %q", got)
	}
}

// --job-image-pull-policy reaches the container of every Job the operator
// makes: the CronJob's template and a manual Job alike; without it the
// cluster's default applies (no policy in the template).
func TestJobImagePullPolicy(t *testing.T) {
	h := start(t, func(c *harnessConfig) { c.pullPolicy = corev1.PullAlways })
	h.secrets()
	h.create(scheduled(manual(newBackup("pulled"), time.Now().Add(-time.Minute)), "@hourly"))
	cj := h.waitCronJob("pulled", nil)
	if got := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].ImagePullPolicy; got != corev1.PullAlways {
		t.Errorf("CronJob container imagePullPolicy %q, want Always", got)
	}
	h.eventually("the manual Job", func() string {
		jobs := h.jobs("pulled")
		if len(jobs) == 0 {
			return "no Job yet"
		}
		if got := jobs[0].Spec.Template.Spec.Containers[0].ImagePullPolicy; got != corev1.PullAlways {
			t.Fatalf("Job %s container imagePullPolicy %q, want Always", jobs[0].Name, got)
		}
		return ""
	})
}

// countingReconciler counts the reconciles the manager runs.
type countingReconciler struct {
	n    atomic.Int64
	next reconcile.Reconciler
}

func (c *countingReconciler) wrap(r reconcile.Reconciler) reconcile.Reconciler {
	c.next = r
	return c
}

func (c *countingReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.n.Add(1)
	return c.next.Reconcile(ctx, req)
}

func (c *countingReconciler) get() int64 { return c.n.Load() }

// Status carries what people check first: when the next run is, when the
// last success and the last failure were, a short history, and a gauge of
// running backups; kubectl shows Ready, Suspend and Next.
func TestStatusPeopleRelyOn(t *testing.T) {
	h := start(t)
	h.secrets()
	b := scheduled(manual(newBackup("watched"), time.Now().Add(-time.Minute)), "0 3 * * *")
	b.Spec.ScheduledTrigger.TimeZone = ptr.To("UTC")
	h.create(b)
	now := time.Now().UTC()
	wantNext := time.Date(now.Year(), now.Month(), now.Day(), 3, 0, 0, 0, time.UTC)
	if !wantNext.After(now) {
		wantNext = wantNext.Add(24 * time.Hour)
	}
	h.eventually("nextScheduleTime", func() string {
		got := h.get("watched").Status.NextScheduleTime
		if got == nil || !got.Time.Equal(wantNext) {
			return fmt.Sprintf("nextScheduleTime %v, want %v", got, wantNext)
		}
		return ""
	})
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("watched")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	h.startJob(&job)
	h.waitCondition("watched", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)
	h.eventually("running gauge 1", func() string {
		if v := h.metric("dbarchive_backup_running", "watched"); v != 1 {
			return fmt.Sprintf("gauge %v", v)
		}
		return ""
	})
	h.failJob(&job, "Job was active longer than specified deadline")
	h.waitCondition("watched", dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed)
	st := h.get("watched").Status
	if st.LastFailure == nil || st.LastFailure.Job != job.Name || !strings.Contains(st.LastFailure.Message, "deadline") {
		t.Errorf("lastFailure = %+v, want the Job and its cause", st.LastFailure)
	}
	if len(st.History) != 1 || st.History[0].Job != job.Name || st.History[0].Outcome != dbv1.RunFailed {
		t.Errorf("history = %+v, want one failed run of %s", st.History, job.Name)
	}
	h.eventually("running gauge 0", func() string {
		if v := h.metric("dbarchive_backup_running", "watched"); v != 0 {
			return fmt.Sprintf("gauge %v", v)
		}
		return ""
	})
	h.update("watched", func(b *dbv1.DatabaseBackup) { b.Spec.Suspend = true })
	h.eventually("no nextScheduleTime while suspended", func() string {
		if got := h.get("watched").Status.NextScheduleTime; got != nil {
			return fmt.Sprintf("nextScheduleTime %v", got)
		}
		return ""
	})

	var crd apiextensionsv1.CustomResourceDefinition
	if err := h.c.Get(h.ctx, client.ObjectKey{Name: "databasebackups.database.sample.third.party"}, &crd); err != nil {
		t.Fatal(err)
	}
	cols := map[string]int32{}
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		cols[c.Name] = c.Priority
	}
	for _, name := range []string{"Ready", "Suspend", "Next", "Last Backup"} {
		if p, ok := cols[name]; !ok || p != 0 {
			t.Errorf("printer column %q missing or hidden (columns %v)", name, cols)
		}
	}
}

// scheduledTrigger.immediate starts one backup as soon as the resource is
// ready, and never again.
func TestImmediateFirstBackup(t *testing.T) {
	h := start(t)
	h.secrets()
	b := scheduled(newBackup("eager"), "0 3 * * *")
	b.Spec.ScheduledTrigger.Immediate = true
	h.create(b)
	name := controller.ImmediateJobName("eager")
	var job batchv1.Job
	h.eventually("immediate Job", func() string {
		for _, j := range h.jobs("eager") {
			if j.Name == name {
				job = j
				return ""
			}
		}
		return "jobs: " + jobNames(h.jobs("eager"))
	})
	if env := envVar(job.Spec.Template.Spec.Containers[0].Env, dbv1.JobEnvRepo); env == nil || env.Value != "s3" {
		t.Errorf("immediate Job repo env %+v, want the scheduled trigger's repo", env)
	}
	h.eventually("status.immediateJob", func() string {
		if got := h.get("eager").Status.ImmediateJob; got != name {
			return "immediateJob " + got
		}
		return ""
	})
	if err := h.c.Delete(h.ctx, &job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	h.eventually("Job gone", func() string {
		if len(h.jobs("eager")) != 0 {
			return "still there"
		}
		return ""
	})
	h.update("eager", func(b *dbv1.DatabaseBackup) { b.Spec.ScheduledTrigger.Schedule = "0 4 * * *" })
	h.reconcile("eager")
	h.reconcile("eager")
	if jobs := h.jobs("eager"); len(jobs) != 0 {
		t.Fatalf("the immediate backup ran again: %s", jobNames(jobs))
	}
}

// podTemplate's scheduling and metadata reach the pod; the operator's own
// labels and the container stay as they are.
func TestPodTemplateOverrides(t *testing.T) {
	h := start(t)
	h.secrets()
	b := scheduled(newBackup("placed"), "@daily")
	b.Spec.PodTemplate = &dbv1.PodTemplate{
		Labels:            map[string]string{"team": "payments", controller.LabelBackup: "hijack"},
		Annotations:       map[string]string{"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
		NodeSelector:      map[string]string{"pool": "batch"},
		Tolerations:       []corev1.Toleration{{Key: "batch", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		PriorityClassName: "backup-low",
		ImagePullSecrets:  []corev1.LocalObjectReference{{Name: "registry"}},
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}},
		}}},
	}
	h.create(b)
	cj := h.waitCronJob("placed", nil)
	pod := cj.Spec.JobTemplate.Spec.Template
	if pod.Labels["team"] != "payments" || pod.Labels[controller.LabelBackup] != "placed" {
		t.Errorf("pod labels %v: want the user's added and the operator's kept", pod.Labels)
	}
	if pod.Annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] != "false" {
		t.Errorf("pod annotations %v", pod.Annotations)
	}
	s := pod.Spec
	if s.NodeSelector["pool"] != "batch" || len(s.Tolerations) != 1 || s.PriorityClassName != "backup-low" ||
		len(s.ImagePullSecrets) != 1 || s.ImagePullSecrets[0].Name != "registry" || s.Affinity == nil || s.Affinity.NodeAffinity == nil {
		t.Errorf("pod spec overrides missing: %+v", s)
	}
	if c := s.Containers[0]; c.Name != dbv1.JobContainerName || c.Image != testJobImage {
		t.Errorf("container changed: %s %s", c.Name, c.Image)
	}
}

// With --watch-namespace the operator needs no cluster-wide access: bound
// to its ClusterRole only by a RoleBinding in the namespace it watches, it
// does all its work there, and it cannot read a Secret elsewhere.
func TestWatchNamespaceWithRoleBindingOnly(t *testing.T) {
	h := start(t, func(c *harnessConfig) { c.scoped = true })
	h.secrets()
	h.create(scheduled(manual(newBackup("scoped"), time.Now().Add(-time.Minute)), "@daily"))
	h.waitCondition("scoped", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitCronJob("scoped", nil)
	h.eventually("manual Job", func() string {
		if len(h.jobs("scoped")) != 1 {
			return "no Job"
		}
		return ""
	})
	cfg, err := h.env.ScopedOperatorConfig(h.ctx, "scoped-"+h.ns, h.ns)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: h.env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Get(h.ctx, client.ObjectKey{Namespace: "kube-system", Name: "anything"}, &corev1.Secret{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("the scoped operator reading a Secret in kube-system: %v, want Forbidden", err)
	}
}

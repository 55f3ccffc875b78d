package controller_test

// Tests on envtest.SharedCluster: the real CronJob, Job and garbage-collector
// controllers of kube-controller-manager act on what the operator creates,
// the API server enforces OwnerReferencesPermissionEnforcement, and the
// operator runs as the ServiceAccount config/rbac binds, with exactly that
// ClusterRole and leader-election Role. No kubelet runs: pods stay Pending,
// which is what a Job whose image cannot be pulled looks like.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
)

// minuteBound bounds a wait on the CronJob controller, whose clock ticks
// once a minute.
const minuteBound = 150 * time.Second

// logOnFailure prints the controller manager's log when the test failed.
func (h *harness) logOnFailure() {
	h.t.Cleanup(func() {
		if h.t.Failed() {
			if log, err := h.env.ControllerManagerLog(); err == nil {
				h.t.Logf("kube-controller-manager log (end):\n%s", log)
			}
		}
	})
}

// With exactly config/rbac's ClusterRole, on an API server that enforces
// OwnerReferencesPermissionEnforcement (OpenShift), the operator creates
// its CronJobs, Jobs and the shared job RBAC (owned by two resources), and
// leader election records its Events.
func TestOperatorRBACOnEnforcingCluster(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	h.create(scheduled(manual(newBackup("first"), time.Now().Add(-time.Minute)), "0 0 1 1 *"),
		scheduled(newBackup("second"), "0 0 1 1 *"))
	for _, name := range []string{"first", "second"} {
		h.waitCondition(name, dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
		h.waitCronJob(name, nil)
	}
	h.eventually("manual Job", func() string {
		if len(h.jobs("first")) != 1 {
			return "jobs: " + jobNames(h.jobs("first"))
		}
		return ""
	})
	for _, name := range []string{"first", "second"} {
		h.eventually("job RBAC of "+name, func() string {
			for _, o := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
				if err := h.c.Get(h.ctx, h.key(controller.JobRBACName(name)), o); err != nil {
					return err.Error()
				}
			}
			return ""
		})
	}

	// Leader election's own Events (core v1) are allowed by its Role.
	h.eventually("leader election Event", func() string {
		var list corev1.EventList
		if err := h.c.List(h.ctx, &list, client.InNamespace(envtest.OperatorNamespace)); err != nil {
			return err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == "LeaderElection" && e.InvolvedObject.Name == "dbarchive-test-"+h.ns {
				return ""
			}
		}
		return fmt.Sprintf("no LeaderElection Event among %d", len(list.Items))
	})
}

// Disabling the scheduled trigger deletes the CronJob but not the Job it
// is running: the garbage collector orphans it, and its outcome is still
// followed.
func TestDisablingScheduleKeepsRunningJob(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	h.create(scheduled(newBackup("calm"), "0 0 1 1 *"))
	cj := h.waitCronJob("calm", nil)
	h.waitCondition("calm", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	// The run the CronJob controller would start on its schedule.
	run := jobOfCronJob(cj, "calm-scheduled-29000000")
	h.create(run)
	h.waitCondition("calm", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)

	h.update("calm", func(b *dbv1.DatabaseBackup) { b.Spec.ScheduledTrigger.Enabled = false })
	h.eventuallyWithin(60*time.Second, "CronJob deleted", func() string {
		if _, err := h.cronJob("calm"); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("CronJob still there (err %v)", err)
		}
		return ""
	})
	// The garbage collector has handled the CronJob's dependents by now;
	// give a background deletion time to show before judging.
	time.Sleep(3 * time.Second)
	var got batchv1.Job
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(run), &got); err != nil {
		t.Fatalf("the running Job is gone after the trigger was disabled: %v", err)
	}
	if !got.DeletionTimestamp.IsZero() {
		t.Fatalf("the running Job is being deleted after the trigger was disabled")
	}
	if metav1.GetControllerOf(&got) != nil {
		t.Errorf("the Job still has a controller: %+v", got.OwnerReferences)
	}
	if c := h.condition("calm", dbv1.ConditionSucceeded); c == nil || c.Reason != dbv1.ReasonBackupRunning {
		t.Errorf("Succeeded after disabling = %+v, want still BackupRunning", c)
	}
}

// A scheduled Job that never runs (its pod never starts) fails at its
// default deadline instead of blocking every later run; a Job that runs past
// the next scheduled time makes the skip visible in status, an Event and
// the BackupOverdue condition.
func TestStuckScheduledJobs(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	h.create(scheduled(newBackup("stuck"), "* * * * *"))
	blocked := scheduled(newBackup("blocked"), "* * * * *")
	blocked.Spec.ActiveDeadlineSeconds = ptr.To[int64](100)
	blocked.Spec.ScheduledTrigger.StartingDeadlineSeconds = ptr.To[int64](5)
	h.create(blocked)

	// stuck: the Job the CronJob controller starts has the derived deadline
	// and is failed by the Job controller when it passes.
	var first batchv1.Job
	h.eventuallyWithin(minuteBound, "first Job of stuck", func() string {
		jobs := h.jobs("stuck")
		if len(jobs) == 0 {
			return "no Job yet"
		}
		first = jobs[0]
		return ""
	})
	if got := ptr.Deref(first.Spec.ActiveDeadlineSeconds, 0); got != 54 {
		t.Errorf("Job %s activeDeadlineSeconds = %d, want 54", first.Name, got)
	}
	// In history rather than the Succeeded condition: when the next run
	// starts before the operator sees the failure, the condition is about
	// that run, and the failure is recorded all the same.
	h.eventuallyWithin(minuteBound, "stuck's Job failed at its deadline", func() string {
		b := h.get("stuck")
		for _, run := range b.Status.History {
			if run.Job != first.Name {
				continue
			}
			if run.Outcome != dbv1.RunFailed || !strings.Contains(strings.ToLower(run.Message), "deadline") {
				return fmt.Sprintf("history entry %+v is not a failure naming the deadline", run)
			}
			return ""
		}
		return fmt.Sprintf("history %+v has no entry for %s", b.Status.History, first.Name)
	})
	h.eventuallyWithin(minuteBound, "next run of stuck started", func() string {
		for _, j := range h.jobs("stuck") {
			if j.Name != first.Name {
				return ""
			}
		}
		return "jobs: " + jobNames(h.jobs("stuck"))
	})

	// blocked: its first Job is still running at the next minute, so the
	// CronJob controller skips that run.
	h.eventuallyWithin(minuteBound, "skip recorded", func() string {
		b := h.get("blocked")
		if b.Status.LastSkippedTime == nil {
			return "no lastSkippedTime"
		}
		return ""
	})
	h.waitEvent("blocked", corev1.EventTypeWarning, dbv1.ReasonBackupSkipped, "still running")
	h.eventuallyWithin(minuteBound, "the CronJob controller's own JobAlreadyActive", func() string {
		var list corev1.EventList
		if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil {
			return err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == "JobAlreadyActive" && e.InvolvedObject.Name == controller.CronJobName("blocked") {
				return ""
			}
		}
		return "none"
	})
	h.eventuallyWithin(minuteBound, "BackupOverdue", func() string {
		c := h.condition("blocked", dbv1.ConditionBackupOverdue)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Sprintf("BackupOverdue %+v", c)
		}
		return ""
	})
}

// pods lists the pods the Job controller made for a Job.
func (h *harness) pods(job string) []corev1.Pod {
	h.t.Helper()
	var list corev1.PodList
	if err := h.c.List(h.ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{dbv1.JobNameLabel: job}); err != nil {
		h.t.Fatalf("list pods: %v", err)
	}
	return list.Items
}

// failPod plays the kubelet: the pod ends Failed, its backup container
// with exitCode, optionally with the DisruptionTarget condition a drain or
// preemption sets.
func (h *harness) failPod(p *corev1.Pod, exitCode int32, disrupted bool) {
	h.t.Helper()
	now := metav1.Now()
	p.Status.Phase = corev1.PodFailed
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: dbv1.JobContainerName, Image: p.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: "Error", StartedAt: now, FinishedAt: now}},
	}}
	if disrupted {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI", LastTransitionTime: now,
		})
	}
	if err := h.c.Status().Update(h.ctx, p); err != nil {
		h.t.Fatalf("fail pod %s: %v", p.Name, err)
	}
}

// A pod stopped by the cluster does not count against backoffLimit; a
// permanent failure (exit code 3) fails the Job at once instead of
// dumping the database again.
func TestPodFailurePolicy(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	b := manual(newBackup("policy"), time.Now().Add(-time.Minute))
	b.Spec.BackoffLimit = ptr.To[int32](0)
	h.create(b)
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("policy")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	var first corev1.Pod
	h.eventuallyWithin(60*time.Second, "first pod", func() string {
		pods := h.pods(job.Name)
		if len(pods) != 1 {
			return fmt.Sprintf("%d pods", len(pods))
		}
		first = pods[0]
		return ""
	})
	h.failPod(&first, 137, true)
	var second corev1.Pod
	h.eventuallyWithin(60*time.Second, "a new pod after the disruption", func() string {
		for _, p := range h.pods(job.Name) {
			if p.Name != first.Name {
				second = p
				return ""
			}
		}
		return "no new pod"
	})
	var cur batchv1.Job
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(&job), &cur); err != nil {
		t.Fatal(err)
	}
	for _, c := range cur.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			t.Fatalf("a disrupted pod failed the Job (backoffLimit 0): %s", c.Message)
		}
	}

	h.failPod(&second, dbv1.JobExitPermanent, false)
	h.eventuallyWithin(60*time.Second, "Job failed by the policy", func() string {
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(&job), &cur); err != nil {
			return err.Error()
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				if c.Reason != batchv1.JobReasonPodFailurePolicy {
					return "failed with reason " + c.Reason
				}
				return ""
			}
		}
		return "not failed"
	})
	failed := h.waitCondition("policy", dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed)
	if !strings.Contains(failed.Message, "exit code 3") {
		t.Errorf("Succeeded message %q does not carry the exit code", failed.Message)
	}
	if st := h.get("policy").Status; st.LastFailure == nil || st.LastFailure.Reason != batchv1.JobReasonPodFailurePolicy {
		t.Errorf("lastFailure = %+v, want reason PodFailurePolicy", st.LastFailure)
	}
}

// Deleting a DatabaseBackup deletes, through the garbage collector, its
// CronJob, its Jobs (stopping a running backup) and its job RBAC. (Nothing
// in a repo: the operator never touches object storage.)
func TestDeletingResourceRemovesItsObjects(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	h.create(scheduled(manual(newBackup("doomed"), time.Now().Add(-time.Minute)), "0 0 1 1 *"))
	h.waitCronJob("doomed", nil)
	h.eventually("manual Job", func() string {
		if len(h.jobs("doomed")) != 1 {
			return "no Job"
		}
		return ""
	})
	h.waitCondition("doomed", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	if err := h.c.Delete(h.ctx, h.get("doomed")); err != nil {
		t.Fatal(err)
	}
	h.eventuallyWithin(60*time.Second, "everything of doomed gone", func() string {
		if _, err := h.cronJob("doomed"); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("CronJob: %v", err)
		}
		if jobs := h.jobs("doomed"); len(jobs) != 0 {
			return "Jobs: " + jobNames(jobs)
		}
		for _, o := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
			if err := h.c.Get(h.ctx, h.key(controller.JobRBACName("doomed")), o); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("%T still there (%v)", o, err)
			}
		}
		return ""
	})
}

// A DatabaseRestore on the enforcing cluster, with the operator running with
// exactly config/rbac: it may create the restore job's Role (which grants
// what the operator itself holds) and the Job; a pod that exits 3 fails the
// Job at once through its podFailurePolicy, and the restore ends
// RestoreFailed with a Warning Event and a count in the metrics. Deleting
// the DatabaseRestore removes the Job and the job's RBAC through the garbage
// collector.
func TestRestoreOnEnforcingCluster(t *testing.T) {
	h := start(t, onCluster())
	h.logOnFailure()
	h.secrets()
	h.create(newBackup("src"))
	dr := &dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "back"},
		Spec: dbv1.DatabaseRestoreSpec{
			From: dbv1.RestoreFrom{DatabaseBackup: "src"},
			Target: dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "db.example.svc", Database: "orders_copy", User: "restore",
				PasswordSecretRef: &dbv1.SecretKeyRef{Name: "db", Key: "password"}},
			CreateDatabase: true,
		},
	}
	h.create(dr)
	restore := func() *dbv1.DatabaseRestore {
		got := &dbv1.DatabaseRestore{}
		if err := h.c.Get(h.ctx, h.key("back"), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	succeeded := func() string {
		c := findCond(restore().Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil {
			return "no Succeeded condition"
		}
		return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	}
	jobName := dbv1.RestoreJobName("back")
	h.eventually("restore Job running", func() string {
		if err := h.c.Get(h.ctx, h.key(jobName), &batchv1.Job{}); err != nil {
			return err.Error()
		}
		if s := succeeded(); !strings.HasPrefix(s, "Unknown/RestoreRunning") {
			return s
		}
		return ""
	})
	role := &rbacv1.Role{}
	if err := h.c.Get(h.ctx, h.key(controller.RestoreRBACName("back")), role); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(role.Rules) != fmt.Sprint(controller.RestoreRoleRules("back", "src")) {
		t.Errorf("restore Role rules %v", role.Rules)
	}
	h.waitEvent("back", corev1.EventTypeNormal, "RestoreStarted", jobName)

	var pod *corev1.Pod
	h.eventually("restore pod", func() string {
		if pods := h.pods(jobName); len(pods) > 0 {
			pod = &pods[0]
			return ""
		}
		return "no pod yet"
	})
	now := metav1.Now()
	pod.Status.Phase = corev1.PodFailed
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: dbv1.RestoreContainerName, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: dbv1.JobExitPermanent, Reason: "Error", StartedAt: now, FinishedAt: now}},
	}}
	if err := h.c.Status().Update(h.ctx, pod); err != nil {
		t.Fatal(err)
	}
	h.eventuallyWithin(60*time.Second, "RestoreFailed", func() string {
		if s := succeeded(); !strings.HasPrefix(s, "False/RestoreFailed") || !strings.Contains(s, jobName) || !strings.Contains(s, "exit code 3") {
			return s
		}
		return ""
	})
	h.waitEvent("back", corev1.EventTypeWarning, dbv1.ReasonRestoreFailed, jobName)
	if n := h.restoreMetric("failed"); n != 1 {
		t.Errorf("dbarchive_restores_total{outcome=failed} = %v, want 1", n)
	}
	if restore().Status.CompletionTime == nil {
		t.Error("completionTime not set")
	}

	if err := h.c.Delete(h.ctx, restore()); err != nil {
		t.Fatal(err)
	}
	h.eventuallyWithin(60*time.Second, "the restore's Job and RBAC gone", func() string {
		for _, o := range []client.Object{&batchv1.Job{}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
			name := controller.RestoreRBACName("back")
			if _, ok := o.(*batchv1.Job); ok {
				name = jobName
			}
			if err := h.c.Get(h.ctx, h.key(name), o); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("%T still there (%v)", o, err)
			}
		}
		return ""
	})
}

func findCond(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// restoreMetric reads dbarchive_restores_total of the harness's namespace.
func (h *harness) restoreMetric(outcome string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "dbarchive_restores_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == h.ns && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

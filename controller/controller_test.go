package controller_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
)

// The article's YAML applies unchanged, is stored as written, and, having no
// source, is reported Ready=False/SourceMissing with nothing created.
func TestArticleYAMLAppliesUnchanged(t *testing.T) {
	h := start(t, inNamespace("database"))
	raw, err := os.ReadFile(filepath.Join(h.env.Root, "config", "samples", "article_databasebackup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
		t.Fatal(err)
	}
	wantSpec := obj.Object["spec"]
	if err := h.c.Create(h.ctx, obj.DeepCopy()); err != nil {
		t.Fatalf("the article's YAML was rejected: %v", err)
	}
	// The name and namespace are the article's, fixed: removed, so that
	// the test can run again on the same API server (go test -count=2).
	t.Cleanup(func() {
		if err := h.c.Delete(h.ctx, obj.DeepCopy()); err != nil {
			t.Errorf("delete the article's DatabaseBackup: %v", err)
			return
		}
		h.eventually("the article's DatabaseBackup gone", func() string {
			if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(&obj), obj.DeepCopy()); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("get: %v", err)
			}
			return ""
		})
	})

	var stored unstructured.Unstructured
	stored.SetGroupVersionKind(obj.GroupVersionKind())
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(&obj), &stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored.Object["spec"], wantSpec) {
		t.Errorf("stored spec differs from the article's:\n got %v\nwant %v", stored.Object["spec"], wantSpec)
	}

	name := obj.GetName()
	cond := h.waitCondition(name, dbv1.ConditionReady, "False", dbv1.ReasonSourceMissing)
	if !strings.Contains(cond.Message, "spec.source") {
		t.Errorf("Ready message %q does not name spec.source", cond.Message)
	}
	h.waitEvent(name, corev1.EventTypeWarning, dbv1.ReasonSourceMissing, "spec.source")
	h.reconcile(name)
	if _, err := h.cronJob(name); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob exists for a resource without source (err %v)", err)
	}
	if jobs := h.jobs(name); len(jobs) != 0 {
		t.Errorf("Jobs exist for a resource without source: %d", len(jobs))
	}
}

// The scheduled trigger's CronJob follows the spec: created, updated,
// suspended, and deleted when the trigger is disabled.
func TestCronJobFollowsSpec(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(scheduled(newBackup("nightly"), "0 * * * *"))

	cj := h.waitCronJob("nightly", nil)
	b := h.get("nightly")
	if cj.Name != "nightly-scheduled" {
		t.Errorf("CronJob name %q", cj.Name)
	}
	if !metav1.IsControlledBy(cj, b) {
		t.Errorf("CronJob is not controlled by the DatabaseBackup: %v", cj.OwnerReferences)
	}
	spec := cj.Spec
	if spec.Schedule != "0 * * * *" || spec.ConcurrencyPolicy != batchv1.ForbidConcurrent ||
		ptr.Deref(spec.StartingDeadlineSeconds, 0) != 300 || ptr.Deref(spec.Suspend, true) ||
		ptr.Deref(spec.SuccessfulJobsHistoryLimit, -1) != 3 || ptr.Deref(spec.FailedJobsHistoryLimit, -1) != 1 {
		t.Errorf("CronJob spec: schedule %q, policy %s, deadline %v, suspend %v, history %v/%v",
			spec.Schedule, spec.ConcurrencyPolicy, spec.StartingDeadlineSeconds, spec.Suspend,
			spec.SuccessfulJobsHistoryLimit, spec.FailedJobsHistoryLimit)
	}
	if got := cj.Spec.JobTemplate.Labels[controller.LabelBackup]; got != "nightly" {
		t.Errorf("job template label %s=%q", controller.LabelBackup, got)
	}
	ready := h.waitCondition("nightly", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	if !strings.Contains(ready.Message, "nightly-scheduled") {
		t.Errorf("Ready message %q does not name the CronJob", ready.Message)
	}
	h.waitEvent("nightly", corev1.EventTypeNormal, "CronJobCreated", "nightly-scheduled")

	h.update("nightly", func(b *dbv1.DatabaseBackup) {
		b.Spec.ScheduledTrigger.Schedule = "@daily"
		b.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
		b.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](5)
	})
	h.waitCronJob("nightly", func(cj *batchv1.CronJob) string {
		if cj.Spec.Schedule != "@daily" || ptr.Deref(cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, 0) != 600 ||
			ptr.Deref(cj.Spec.SuccessfulJobsHistoryLimit, 0) != 5 {
			return "not updated: " + cj.Spec.Schedule
		}
		return ""
	})
	h.waitEvent("nightly", corev1.EventTypeNormal, "CronJobUpdated", "@daily")
	h.waitCondition("nightly", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)

	// A field removed from the DatabaseBackup disappears from the CronJob:
	// the deadline goes back to the one derived from the schedule (a day
	// less five minutes for @daily).
	h.update("nightly", func(b *dbv1.DatabaseBackup) { b.Spec.ActiveDeadlineSeconds = nil })
	h.waitCronJob("nightly", func(cj *batchv1.CronJob) string {
		if got := ptr.Deref(cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, 0); got != 24*3600-300 {
			return fmt.Sprintf("activeDeadlineSeconds %d, want %d", got, 24*3600-300)
		}
		return ""
	})

	// A Job the CronJob starts (owned by the CronJob, labelled from its
	// template) is seen: Succeeded says BackupRunning.
	cj = h.waitCronJob("nightly", nil)
	cronRun := jobOfCronJob(cj, "nightly-scheduled-29000000")
	h.create(cronRun)
	running := h.waitCondition("nightly", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)
	if !strings.Contains(running.Message, cronRun.Name) {
		t.Errorf("BackupRunning message %q does not name the CronJob's Job", running.Message)
	}

	h.update("nightly", func(b *dbv1.DatabaseBackup) { b.Spec.Suspend = true })
	h.waitCronJob("nightly", func(cj *batchv1.CronJob) string {
		if !ptr.Deref(cj.Spec.Suspend, false) {
			return "not suspended"
		}
		return ""
	})

	h.update("nightly", func(b *dbv1.DatabaseBackup) { b.Spec.ScheduledTrigger.Enabled = false })
	h.eventually("CronJob deleted", func() string {
		cj, err := h.cronJob("nightly")
		if apierrors.IsNotFound(err) || (err == nil && !cj.DeletionTimestamp.IsZero()) {
			return ""
		}
		return "still there"
	})
	h.waitEvent("nightly", corev1.EventTypeNormal, "CronJobDeleted", "nightly-scheduled")
}

// One Job per distinct manual trigger time: created once, never again after
// it is gone, a future time waits, enabled=false does nothing, and finished
// Jobs beyond the history limit are deleted.
func TestManualTriggerJobs(t *testing.T) {
	h := start(t)
	h.secrets()
	past := time.Date(2022, 12, 15, 2, 59, 43, 100_000_000, time.UTC)
	b := manual(newBackup("adhoc"), past)
	b.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](1)
	h.create(b)

	wantName := controller.ManualJobName("adhoc", past)
	var first batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("adhoc")
		if len(jobs) != 1 {
			return "jobs: " + jobNames(jobs)
		}
		first = jobs[0]
		return ""
	})
	if first.Name != wantName || !strings.HasPrefix(first.Name, "adhoc-manual-") {
		t.Errorf("Job name %q, want %q", first.Name, wantName)
	}
	if !metav1.IsControlledBy(&first, h.get("adhoc")) {
		t.Errorf("Job not controlled by the DatabaseBackup")
	}
	h.eventually("lastManualTriggerTime", func() string {
		if got := h.get("adhoc").Status.LastManualTriggerTime; got != b.Spec.ManualTrigger.Time {
			return "status.lastManualTriggerTime = " + got
		}
		return ""
	})
	h.waitEvent("adhoc", corev1.EventTypeNormal, "JobCreated", wantName)

	// Gone (deleted by a person, or by history limits) is not "not run".
	if err := h.c.Delete(h.ctx, &first, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	h.eventually("Job deleted", func() string {
		if n := len(h.jobs("adhoc")); n != 0 {
			return "jobs left"
		}
		return ""
	})
	h.reconcile("adhoc")
	h.reconcile("adhoc")
	if jobs := h.jobs("adhoc"); len(jobs) != 0 {
		t.Fatalf("the Job of a handled trigger time was re-created: %s", jobNames(jobs))
	}

	// A time in the future waits until then.
	future := time.Now().Add(3 * time.Second).Truncate(time.Millisecond)
	h.update("adhoc", func(b *dbv1.DatabaseBackup) { b.Spec.ManualTrigger.Time = future.UTC().Format(time.RFC3339Nano) })
	h.reconcile("adhoc")
	// The clock is read after the list: a list that ended before the time
	// saw the Jobs of before the time.
	if jobs := h.jobs("adhoc"); len(jobs) != 0 && time.Now().Before(future) {
		t.Fatalf("Job for a future time created early: %s", jobNames(jobs))
	}
	var second batchv1.Job
	h.eventually("Job at the future time", func() string {
		jobs := h.jobs("adhoc")
		if len(jobs) != 1 {
			return "jobs: " + jobNames(jobs)
		}
		second = jobs[0]
		return ""
	})
	if second.CreationTimestamp.Time.Before(future.Truncate(time.Second)) {
		t.Errorf("Job created at %v, before its time %v", second.CreationTimestamp, future)
	}
	if second.Name != controller.ManualJobName("adhoc", future) {
		t.Errorf("second Job %q", second.Name)
	}

	// enabled=false does nothing, whatever the time.
	h.update("adhoc", func(b *dbv1.DatabaseBackup) {
		b.Spec.ManualTrigger.Enabled = false
		b.Spec.ManualTrigger.Time = "2023-01-01T00:00:00Z"
	})
	h.reconcile("adhoc")
	if jobs := h.jobs("adhoc"); len(jobs) != 1 {
		t.Fatalf("disabled trigger changed Jobs: %s", jobNames(jobs))
	}

	// History: with successfulJobsHistoryLimit 1, the older of two
	// finished Jobs is deleted.
	h.completeJob(&second, time.Now().Add(-time.Minute))
	h.update("adhoc", func(b *dbv1.DatabaseBackup) { b.Spec.ManualTrigger.Enabled = true })
	third := controller.ManualJobName("adhoc", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))
	var thirdJob batchv1.Job
	h.eventually("third Job", func() string {
		for _, j := range h.jobs("adhoc") {
			if j.Name == third {
				thirdJob = j
				return ""
			}
		}
		return "jobs: " + jobNames(h.jobs("adhoc"))
	})
	h.completeJob(&thirdJob, time.Now())
	h.eventually("older finished Job pruned", func() string {
		jobs := h.jobs("adhoc")
		if len(jobs) != 1 || jobs[0].Name != third {
			return "jobs: " + jobNames(jobs)
		}
		return ""
	})
	h.waitEvent("adhoc", corev1.EventTypeNormal, "JobDeleted", second.Name)
}

func jobNames(jobs []batchv1.Job) string {
	var n []string
	for _, j := range jobs {
		n = append(n, j.Name)
	}
	return "[" + strings.Join(n, " ") + "]"
}

// After the operator has settled, another reconcile writes nothing: every
// object keeps its resourceVersion.
func TestSecondReconcileChangesNothing(t *testing.T) {
	h := start(t)
	h.secrets()
	b := scheduled(manual(newBackup("steady"), time.Now().Add(-time.Hour)), "0 3 * * *")
	b.Spec.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	b.Spec.PartSize = ptr.To(resource.MustParse("64Mi"))
	h.create(b)
	h.waitCronJob("steady", nil)
	h.eventually("manual Job", func() string {
		if len(h.jobs("steady")) != 1 {
			return "no Job"
		}
		return ""
	})
	h.waitCondition("steady", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitCondition("steady", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)

	h.reconcile("steady") // settle whatever the cache had not seen
	before := h.versions("steady")
	h.reconcile("steady")
	h.reconcile("steady")
	after := h.versions("steady")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("a second reconcile changed objects:\nbefore %v\nafter  %v", before, after)
	}
}

// versions maps every object the operator made for name to its
// resourceVersion.
func (h *harness) versions(name string) map[string]string {
	h.t.Helper()
	out := map[string]string{"DatabaseBackup": h.get(name).ResourceVersion}
	if cj, err := h.cronJob(name); err == nil {
		out["CronJob"] = cj.ResourceVersion
	}
	for _, j := range h.jobs(name) {
		out["Job/"+j.Name] = j.ResourceVersion
	}
	for kind, o := range map[string]client.Object{"ServiceAccount": &corev1.ServiceAccount{}, "Role": &rbacv1.Role{}, "RoleBinding": &rbacv1.RoleBinding{}} {
		if err := h.c.Get(h.ctx, h.key(controller.JobRBACName(name)), o); err != nil {
			h.t.Fatalf("get %s: %v", kind, err)
		}
		out[kind] = o.GetResourceVersion()
	}
	return out
}

// Each DatabaseBackup's job runs as its own ServiceAccount whose Role allows
// get on that DatabaseBackup and update/patch on its status, by
// resourceNames, nothing else; the objects are controlled by the resource;
// the operator creates no cluster-wide RBAC. A user's own ServiceAccount
// (workload identity) gets the same Role bound instead.
func TestJobRBACIsExactlyThis(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "irsa",
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backup"}}})
	two := scheduled(newBackup("two"), "@daily")
	two.Spec.PodTemplate = &dbv1.PodTemplate{ServiceAccountName: "irsa"}
	h.create(scheduled(newBackup("one"), "@hourly"), two)
	for _, c := range []struct{ backup, sa string }{{"one", controller.JobRBACName("one")}, {"two", "irsa"}} {
		h.waitCronJob(c.backup, nil)
		b := h.get(c.backup)
		name := controller.JobRBACName(c.backup)
		var role rbacv1.Role
		var rb rbacv1.RoleBinding
		h.eventually("Role and RoleBinding of "+c.backup, func() string {
			if err := h.c.Get(h.ctx, h.key(name), &role); err != nil {
				return err.Error()
			}
			if err := h.c.Get(h.ctx, h.key(name), &rb); err != nil {
				return err.Error()
			}
			return ""
		})
		wantRules := []rbacv1.PolicyRule{
			{APIGroups: []string{"database.sample.third.party"}, Resources: []string{"databasebackups"}, ResourceNames: []string{c.backup}, Verbs: []string{"get"}},
			{APIGroups: []string{"database.sample.third.party"}, Resources: []string{"databasebackups/status"}, ResourceNames: []string{c.backup}, Verbs: []string{"update", "patch"}},
		}
		if !reflect.DeepEqual(role.Rules, wantRules) {
			t.Errorf("%s: Role rules:\n got %+v\nwant %+v", c.backup, role.Rules, wantRules)
		}
		wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: c.sa, Namespace: h.ns}}
		if !reflect.DeepEqual(rb.Subjects, wantSubjects) ||
			rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}) {
			t.Errorf("%s: RoleBinding subjects %+v roleRef %+v", c.backup, rb.Subjects, rb.RoleRef)
		}
		for _, o := range []metav1.Object{&role, &rb} {
			if !metav1.IsControlledBy(o, b) {
				t.Errorf("%s: %s is not controlled by it: %s", c.backup, o.GetName(), ownerNames(o.GetOwnerReferences()))
			}
		}
		cj := h.waitCronJob(c.backup, nil)
		if got := cj.Spec.JobTemplate.Spec.Template.Spec.ServiceAccountName; got != c.sa {
			t.Errorf("%s: pod serviceAccountName %q, want %q", c.backup, got, c.sa)
		}
	}
	var sa corev1.ServiceAccount
	if err := h.c.Get(h.ctx, h.key(controller.JobRBACName("one")), &sa); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&sa, h.get("one")) {
		t.Errorf("ServiceAccount not controlled by its DatabaseBackup")
	}
	var irsa corev1.ServiceAccount
	if err := h.c.Get(h.ctx, h.key("irsa"), &irsa); err != nil {
		t.Fatal(err)
	}
	if len(irsa.OwnerReferences) != 0 || irsa.Labels[controller.LabelManagedBy] != "" {
		t.Errorf("the user's ServiceAccount was taken over: owners %s labels %v", ownerNames(irsa.OwnerReferences), irsa.Labels)
	}

	// One ServiceAccount (the user brought the other), two Roles and
	// RoleBindings in the namespace, none cluster-wide.
	var roles rbacv1.RoleList
	var bindings rbacv1.RoleBindingList
	var sas corev1.ServiceAccountList
	mine := client.MatchingLabels{controller.LabelManagedBy: controller.ManagedByValue}
	for _, l := range []client.ObjectList{&roles, &bindings, &sas} {
		if err := h.c.List(h.ctx, l, client.InNamespace(h.ns), mine); err != nil {
			t.Fatal(err)
		}
	}
	if len(roles.Items) != 2 || len(bindings.Items) != 2 || len(sas.Items) != 1 {
		t.Errorf("per-resource RBAC: %d Roles, %d RoleBindings, %d ServiceAccounts", len(roles.Items), len(bindings.Items), len(sas.Items))
	}
	var croles rbacv1.ClusterRoleList
	var cbindings rbacv1.ClusterRoleBindingList
	for _, l := range []client.ObjectList{&croles, &cbindings} {
		if err := h.c.List(h.ctx, l, mine); err != nil {
			t.Fatal(err)
		}
	}
	if len(croles.Items)+len(cbindings.Items) != 0 {
		t.Errorf("operator created cluster-wide RBAC: %d ClusterRoles, %d ClusterRoleBindings", len(croles.Items), len(cbindings.Items))
	}

	// A ServiceAccount that does not exist is reported, and nothing runs.
	h.update("two", func(b *dbv1.DatabaseBackup) { b.Spec.PodTemplate.ServiceAccountName = "nope" })
	cond := h.waitCondition("two", dbv1.ConditionReady, "False", dbv1.ReasonServiceAccountMissing)
	if !strings.Contains(cond.Message, `"nope"`) {
		t.Errorf("Ready message %q does not name the ServiceAccount", cond.Message)
	}
}

func ownerNames(refs []metav1.OwnerReference) string {
	var n []string
	for _, r := range refs {
		n = append(n, r.Name)
	}
	return "[" + strings.Join(n, " ") + "]"
}

// A Secret or key the spec names that does not exist: Ready=False naming it,
// a Warning Event, and no CronJob or Job; fixing it makes the resource Ready.
func TestMissingSecretOrKeyBlocksJobs(t *testing.T) {
	h := start(t)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds"}, StringData: map[string]string{"AccessKeyId": "a", "SecretAccessKey": "b"}})
	b := scheduled(manual(newBackup("locked"), time.Now().Add(-time.Minute)), "@hourly")
	h.create(b)

	cond := h.waitCondition("locked", dbv1.ConditionReady, "False", dbv1.ReasonSecretMissing)
	if !strings.Contains(cond.Message, `"db"`) || !strings.Contains(cond.Message, "passwordSecretRef") {
		t.Errorf("Ready message %q does not name the Secret and field", cond.Message)
	}
	h.waitEvent("locked", corev1.EventTypeWarning, dbv1.ReasonSecretMissing, `"db"`)
	h.reconcile("locked")
	if _, err := h.cronJob("locked"); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob exists while a Secret is missing (err %v)", err)
	}
	if jobs := h.jobs("locked"); len(jobs) != 0 {
		t.Errorf("Jobs exist while a Secret is missing: %s", jobNames(jobs))
	}

	// The Secret exists but lacks the key.
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"pass": "x"}})
	h.reconcile("locked")
	cond = h.waitCondition("locked", dbv1.ConditionReady, "False", dbv1.ReasonSecretKeyMissing)
	if !strings.Contains(cond.Message, `"password"`) {
		t.Errorf("Ready message %q does not name the key", cond.Message)
	}
	h.waitEvent("locked", corev1.EventTypeWarning, dbv1.ReasonSecretKeyMissing, `"password"`)
	if _, err := h.cronJob("locked"); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob exists while a key is missing (err %v)", err)
	}
	if jobs := h.jobs("locked"); len(jobs) != 0 {
		t.Errorf("Jobs exist while a key is missing: %s", jobNames(jobs))
	}

	// The repo's Secret disappears too: its name is reported.
	if err := h.c.Delete(h.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds", Namespace: h.ns}}); err != nil {
		t.Fatal(err)
	}
	h.reconcile("locked")
	cond = h.waitCondition("locked", dbv1.ConditionReady, "False", dbv1.ReasonSecretMissing)
	if !strings.Contains(cond.Message, `"repo-creds"`) {
		t.Errorf("Ready message %q does not name the repo Secret", cond.Message)
	}

	// Fixed: Ready, and the jobs appear.
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds"}, StringData: map[string]string{"AccessKeyId": "a"}})
	var db corev1.Secret
	if err := h.c.Get(h.ctx, h.key("db"), &db); err != nil {
		t.Fatal(err)
	}
	db.Data["password"] = []byte("x")
	if err := h.c.Update(h.ctx, &db); err != nil {
		t.Fatal(err)
	}
	h.reconcile("locked")
	h.waitCondition("locked", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitCronJob("locked", nil)
}

// Credentials reach the pod only by secretKeyRef or a Secret volume: no
// secret value appears anywhere in the Job or CronJob.
func TestSecretsOnlyByReference(t *testing.T) {
	h := start(t)
	f := h.secrets()
	ca := randomSecret(t)
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ca"}, StringData: map[string]string{"bundle.pem": ca}})
	b := scheduled(manual(newBackup("refs"), time.Now().Add(-time.Minute)), "@hourly")
	b.Spec.Repos[0].CABundle = &dbv1.CABundleRef{SecretName: "ca", Key: "bundle.pem"}
	h.create(b)
	cj := h.waitCronJob("refs", nil)
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("refs")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})

	values := []string{f.repoKeyID, f.repoSecretKey, f.dbPassword, ca}
	for what, obj := range map[string]any{"Job": job, "CronJob": cj} {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if strings.Contains(string(raw), v) {
				t.Errorf("%s carries a secret value literally", what)
			}
		}
	}
	for what, spec := range map[string]corev1.PodSpec{"Job": job.Spec.Template.Spec, "CronJob": cj.Spec.JobTemplate.Spec.Template.Spec} {
		c := spec.Containers[0]
		pw := envVar(c.Env, dbv1.JobEnvSourcePassword)
		if pw == nil || pw.Value != "" || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil ||
			pw.ValueFrom.SecretKeyRef.Name != "db" || pw.ValueFrom.SecretKeyRef.Key != "password" {
			t.Errorf("%s: %s is not a secretKeyRef to db/password: %+v", what, dbv1.JobEnvSourcePassword, pw)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.Value != "" {
				t.Errorf("%s: env %s has both a value and a secretKeyRef", what, e.Name)
			}
		}
		if v := volume(spec.Volumes, dbv1.RepoSecretMountPath, c.VolumeMounts); v == nil || v.Secret == nil || v.Secret.SecretName != "repo-creds" {
			t.Errorf("%s: repo Secret is not a volume at %s: %+v", what, dbv1.RepoSecretMountPath, v)
		}
		v := volume(spec.Volumes, dbv1.CABundleMountPath, c.VolumeMounts)
		if v == nil || v.Secret == nil || v.Secret.SecretName != "ca" ||
			!reflect.DeepEqual(v.Secret.Items, []corev1.KeyToPath{{Key: "bundle.pem", Path: dbv1.CABundleFile}}) {
			t.Errorf("%s: CA bundle is not the key bundle.pem as %s/%s: %+v", what, dbv1.CABundleMountPath, dbv1.CABundleFile, v)
		}
	}
}

func envVar(env []corev1.EnvVar, name string) *corev1.EnvVar {
	for i := range env {
		if env[i].Name == name {
			return &env[i]
		}
	}
	return nil
}

// volume returns the volume mounted at path.
func volume(vols []corev1.Volume, path string, mounts []corev1.VolumeMount) *corev1.Volume {
	for _, m := range mounts {
		if m.MountPath != path {
			continue
		}
		for i := range vols {
			if vols[i].Name == m.Name {
				return &vols[i]
			}
		}
	}
	return nil
}

// The pod template is the contract with `dbarchive job`: names, env,
// mounts, and the sandbox.
func TestPodTemplateContract(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(&corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "backups"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	})
	b := newBackup("contract")
	b.Spec.Repos = append(b.Spec.Repos, dbv1.Repo{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "orders"}})
	b.Spec.ScheduledTrigger = &dbv1.ScheduledTrigger{Enabled: true, Schedule: "@daily", Repo: "s3"}
	b.Spec.ManualTrigger = &dbv1.ManualTrigger{Enabled: true, Time: "2022-12-15T02:59:43.1Z", Repo: "local"}
	b.Spec.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}}
	b.Spec.ActiveDeadlineSeconds = ptr.To[int64](3600)
	h.create(b)
	cj := h.waitCronJob("contract", nil)
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("contract")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})

	check := func(what string, js batchv1.JobSpec, trigger, repo string, wantBucket bool) {
		t.Helper()
		spec := js.Template.Spec
		if ptr.Deref(js.BackoffLimit, -1) != 2 || ptr.Deref(js.ActiveDeadlineSeconds, 0) != 3600 {
			t.Errorf("%s: backoffLimit %v activeDeadlineSeconds %v", what, js.BackoffLimit, js.ActiveDeadlineSeconds)
		}
		if spec.RestartPolicy != corev1.RestartPolicyNever || spec.ServiceAccountName != controller.JobRBACName("contract") {
			t.Errorf("%s: restartPolicy %s serviceAccountName %s", what, spec.RestartPolicy, spec.ServiceAccountName)
		}
		psc := spec.SecurityContext
		if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != 65532 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v", what, psc)
		}
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", what, len(spec.Containers))
		}
		c := spec.Containers[0]
		if c.Name != "backup" || c.Image != testJobImage || !reflect.DeepEqual(c.Command, []string{"dbarchive", "job"}) {
			t.Errorf("%s: container %s image %s command %v", what, c.Name, c.Image, c.Command)
		}
		sc := c.SecurityContext
		if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
			sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: container securityContext %+v", what, sc)
		}
		if got := c.Resources.Limits[corev1.ResourceMemory]; got.String() != "512Mi" {
			t.Errorf("%s: memory limit %s", what, got.String())
		}
		wantEnv := map[string]string{
			dbv1.JobEnvResourceName: "contract", dbv1.JobEnvNamespace: h.ns,
			dbv1.JobEnvRepo: repo, dbv1.JobEnvTrigger: trigger,
		}
		if wantBucket {
			wantEnv[dbv1.JobEnvBucket] = "backups-contract"
		}
		for k, v := range wantEnv {
			if e := envVar(c.Env, k); e == nil || e.Value != v {
				t.Errorf("%s: env %s = %+v, want %q", what, k, e, v)
			}
		}
		if !wantBucket && envVar(c.Env, dbv1.JobEnvBucket) != nil {
			t.Errorf("%s: env %s set for an fs repo", what, dbv1.JobEnvBucket)
		}
		if v := volume(spec.Volumes, "/tmp", c.VolumeMounts); v == nil || v.EmptyDir == nil {
			t.Errorf("%s: no emptyDir at /tmp", what)
		}
	}
	check("CronJob", cj.Spec.JobTemplate.Spec, "scheduled", "s3", true)
	check("Job", job.Spec, "manual", "local", false)

	spec := job.Spec.Template.Spec
	if v := volume(spec.Volumes, dbv1.FSRepoMountPath, spec.Containers[0].VolumeMounts); v == nil ||
		v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "backups" {
		t.Errorf("fs repo claim not mounted at %s: %+v", dbv1.FSRepoMountPath, v)
	}
	if v := volume(spec.Volumes, dbv1.RepoSecretMountPath, spec.Containers[0].VolumeMounts); v != nil {
		t.Errorf("fs repo without secretName mounts a Secret: %+v", v)
	}
}

// Succeeded follows the Jobs: BackupRunning while one runs, the job's own
// outcome kept, BackupFailed (with a Warning Event and a counted failure)
// when a Job fails without reporting, and the last-success gauge set.
func TestSucceededFollowsJobs(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(manual(newBackup("outcome"), time.Now().Add(-time.Minute)))
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("outcome")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	h.startJob(&job)
	running := h.waitCondition("outcome", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)
	if !strings.Contains(running.Message, job.Name) {
		t.Errorf("BackupRunning message %q does not name the Job", running.Message)
	}

	// The job reports success, then its Job completes: the job's word stands.
	time.Sleep(1100 * time.Millisecond) // conditions have one-second resolution
	finished := metav1.NewTime(time.Now().Truncate(time.Second))
	for range 10 {
		b := h.get("outcome")
		b.Status.LastBackup = &dbv1.LastBackup{ID: "20221215T025943Z", Repo: "s3", ObjectKey: "20221215T025943Z/data.zst", StoredSize: 1234, FinishedTime: &finished}
		b.Status.ReportedJob = job.Name
		setCond(b, dbv1.ConditionSucceeded, metav1.ConditionTrue, dbv1.ReasonBackupSucceeded, dbv1.MessageBackupSucceeded)
		if err := h.c.Status().Update(h.ctx, b); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	h.completeJob(&job, time.Now())
	h.waitEvent("outcome", corev1.EventTypeNormal, dbv1.ReasonBackupSucceeded, job.Name)
	h.reconcile("outcome")
	cond := h.waitCondition("outcome", dbv1.ConditionSucceeded, "True", dbv1.ReasonBackupSucceeded)
	if cond.Message != "Database has been archived" {
		t.Errorf("Succeeded message %q", cond.Message)
	}
	if got := h.metric("dbarchive_backup_last_success_timestamp_seconds", "outcome"); got != float64(finished.Unix()) {
		t.Errorf("last success gauge = %v, want %d", got, finished.Unix())
	}

	// A new trigger whose Job fails without the job having reported. (A
	// condition newer than a Job's start is the job's report; both have
	// one-second resolution, so let the clock move past the report.)
	time.Sleep(1100 * time.Millisecond)
	h.update("outcome", func(b *dbv1.DatabaseBackup) {
		b.Spec.ManualTrigger.Time = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	})
	var second batchv1.Job
	h.eventually("second Job", func() string {
		for _, j := range h.jobs("outcome") {
			if j.Name != job.Name {
				second = j
				return ""
			}
		}
		return "none"
	})
	h.waitCondition("outcome", dbv1.ConditionSucceeded, "Unknown", dbv1.ReasonBackupRunning)
	h.failJob(&second, "Job has reached the specified backoff limit")
	failed := h.waitCondition("outcome", dbv1.ConditionSucceeded, "False", dbv1.ReasonBackupFailed)
	if !strings.Contains(failed.Message, second.Name) || !strings.Contains(failed.Message, "backoff limit") {
		t.Errorf("BackupFailed message %q", failed.Message)
	}
	h.waitEvent("outcome", corev1.EventTypeWarning, dbv1.ReasonBackupFailed, second.Name)
	h.reconcile("outcome")
	if got := h.metric("dbarchive_backup_failures_total", "outcome"); got != 1 {
		t.Errorf("failures counter = %v, want 1", got)
	}
	if h.get("outcome").Status.LastBackup == nil {
		t.Errorf("lastBackup lost after a failure")
	}
}

func setCond(b *dbv1.DatabaseBackup, typ string, status metav1.ConditionStatus, reason, msg string) {
	for i := range b.Status.Conditions {
		if b.Status.Conditions[i].Type == typ {
			b.Status.Conditions[i] = metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg,
				ObservedGeneration: b.Generation, LastTransitionTime: metav1.Now()}
			return
		}
	}
	b.Status.Conditions = append(b.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: b.Generation, LastTransitionTime: metav1.Now()})
}

// hasMetric reports whether the operator exports series name for backup.
func (h *harness) hasMetric(name, backup string) bool {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			ns, n := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace":
					ns = l.GetValue()
				case "name":
					n = l.GetValue()
				}
			}
			if f.GetName() == name && ns == h.ns && n == backup {
				return true
			}
		}
	}
	return false
}

// metric reads one series of the operator's own metrics for a DatabaseBackup.
func (h *harness) metric(name, backup string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != h.ns || labels["name"] != backup {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	h.t.Fatalf("no series %s{namespace=%q,name=%q}", name, h.ns, backup)
	return 0
}

// jobOfCronJob is the Job the CronJob controller would start from cj's
// template: owned by cj, labelled and specified as its template says.
func jobOfCronJob(cj *batchv1.CronJob, name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Labels:          cj.Spec.JobTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
}

// A restore whose DatabaseBackup or Secret does not exist yet waits as
// RestorePending, naming what is missing, with no Job; it starts once they
// exist.
func TestRestorePendingUntilItCanStart(t *testing.T) {
	h := start(t)
	h.create(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "later"},
		Spec: dbv1.DatabaseRestoreSpec{
			From: dbv1.RestoreFrom{DatabaseBackup: "src"},
			Target: dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "db.example.svc", Database: "copy",
				PasswordSecretRef: &dbv1.SecretKeyRef{Name: "db", Key: "password"}},
		},
	})
	pending := func(contains string) {
		t.Helper()
		h.eventually("RestorePending naming "+contains, func() string {
			dr := &dbv1.DatabaseRestore{}
			if err := h.c.Get(h.ctx, h.key("later"), dr); err != nil {
				return err.Error()
			}
			c := findCond(dr.Status.Conditions, dbv1.ConditionSucceeded)
			if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != dbv1.ReasonRestorePending || !strings.Contains(c.Message, contains) {
				return fmt.Sprintf("Succeeded = %+v", c)
			}
			return ""
		})
		if err := h.c.Get(h.ctx, h.key(dbv1.RestoreJobName("later")), &batchv1.Job{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a Job exists while the restore cannot start: %v", err)
		}
	}
	pending(`DatabaseBackup "src" does not exist`)
	h.waitEvent("later", corev1.EventTypeWarning, dbv1.ReasonRestorePending, `"src"`)
	h.create(newBackup("src"))
	pending(`Secret "repo-creds" does not exist`)
	h.secrets()
	h.eventuallyWithin(90*time.Second, "the restore Job", func() string {
		if err := h.c.Get(h.ctx, h.key(dbv1.RestoreJobName("later")), &batchv1.Job{}); err != nil {
			return err.Error()
		}
		return ""
	})
}

// A Job of the restore's Job name that the restore does not control is never
// adopted or run as the restore: the restore waits, saying so.
func TestRestoreDoesNotAdoptAForeignJob(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(newBackup("src"))
	foreign := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: dbv1.RestoreJobName("taken"), Labels: map[string]string{controller.LabelManagedBy: controller.ManagedByValue}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "x", Image: "busybox"}},
		}}},
	}
	h.create(foreign)
	h.create(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "taken"},
		Spec: dbv1.DatabaseRestoreSpec{
			From:   dbv1.RestoreFrom{DatabaseBackup: "src"},
			Target: dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "db.example.svc", Database: "copy"},
		},
	})
	h.eventually("RestorePending about the foreign Job", func() string {
		dr := &dbv1.DatabaseRestore{}
		if err := h.c.Get(h.ctx, h.key("taken"), dr); err != nil {
			return err.Error()
		}
		c := findCond(dr.Status.Conditions, dbv1.ConditionSucceeded)
		if c == nil || c.Reason != dbv1.ReasonRestorePending || !strings.Contains(c.Message, "not controlled by DatabaseRestore taken") {
			return fmt.Sprintf("Succeeded = %+v", c)
		}
		return ""
	})
	j := &batchv1.Job{}
	if err := h.c.Get(h.ctx, h.key(foreign.Name), j); err != nil {
		t.Fatal(err)
	}
	if len(j.OwnerReferences) != 0 {
		t.Fatalf("the foreign Job was adopted: %+v", j.OwnerReferences)
	}
}

// TestMetricsPerResource: the series the alerts and the dashboard read come
// from the resource's status and annotations: the newest backup's outcome,
// duration and sizes (labelled with its repo, moving with it), the RPO
// annotation, the creation time and the last drill; a deleted resource's
// series go.
func TestMetricsPerResource(t *testing.T) {
	h := start(t)
	h.secrets()
	b := newBackup("watched")
	b.Annotations = map[string]string{dbv1.AnnotationRPO: "26h"}
	h.create(b)
	// The cache sees a new object a moment later; until then a reconcile
	// finds nothing to export.
	h.eventually("rpo series", func() string {
		h.reconcile("watched")
		if !h.hasMetric("dbarchive_backup_rpo_seconds", "watched") {
			return "not exported"
		}
		return ""
	})
	if got := h.metric("dbarchive_backup_rpo_seconds", "watched"); got != 26*3600 {
		t.Errorf("rpo = %v, want %v", got, 26*3600)
	}
	if got := h.metric("dbarchive_backup_created_timestamp_seconds", "watched"); got != float64(h.get("watched").CreationTimestamp.Unix()) {
		t.Errorf("created = %v", got)
	}
	finished := metav1.NewTime(time.Now().Truncate(time.Second))
	for range 10 {
		cur := h.get("watched")
		cur.Status.LastBackup = &dbv1.LastBackup{ID: "20261129T030000.000Z-0123abcd", Repo: "s3", StoredSize: 1234, UncompressedSize: 5678,
			Duration: &metav1.Duration{Duration: 90 * time.Second}, FinishedTime: &finished}
		cur.Status.History = []dbv1.BackupRun{{Job: "watched-x", Outcome: dbv1.RunFailed, FinishedTime: finished, Message: "boom"}}
		cur.Status.LastVerification = &dbv1.LastVerification{BackupID: "20261129T030000.000Z-0123abcd", FinishedTime: finished, Passed: true,
			RestoreDuration: &metav1.Duration{Duration: 42 * time.Second}, LastSuccessTime: &finished}
		if err := h.c.Status().Update(h.ctx, cur); err == nil {
			break
		} else if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	h.eventually("newest backup series", func() string {
		h.reconcile("watched")
		if !h.hasMetric("dbarchive_backup_last_stored_bytes", "watched") {
			return "not exported"
		}
		return ""
	})
	for name, want := range map[string]float64{
		"dbarchive_backup_last_run_succeeded":                   0,
		"dbarchive_backup_last_duration_seconds":                90,
		"dbarchive_backup_last_stored_bytes":                    1234,
		"dbarchive_backup_last_uncompressed_bytes":              5678,
		"dbarchive_verification_last_passed":                    1,
		"dbarchive_restore_duration_seconds":                    42,
		"dbarchive_verification_last_success_timestamp_seconds": float64(finished.Unix()),
		"dbarchive_backup_last_success_timestamp_seconds":       float64(finished.Unix()),
	} {
		if got := h.metric(name, "watched"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if err := h.c.Delete(h.ctx, h.get("watched")); err != nil {
		t.Fatal(err)
	}
	h.eventually("series of the deleted resource gone", func() string {
		h.reconcile("watched")
		families, err := h.reg.Gather()
		if err != nil {
			return err.Error()
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "name" && l.GetValue() == "watched" {
						return f.GetName() + " still exported"
					}
				}
			}
		}
		return ""
	})
}

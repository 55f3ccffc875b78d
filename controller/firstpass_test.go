package controller_test

import (
	"fmt"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
)

// The API floor benchmark writes FirstPass's objects in the operator's
// place, so they must be what the operator writes: the same labels, owners,
// rules, subjects, CronJob spec (its hash annotation included) and status
// conditions, and the same Event.
func TestFirstPassIsWhatReconcileWrites(t *testing.T) {
	h := start(t)
	h.secrets()
	h.create(scheduled(newBackup("nightly"), "0 * * * *"))
	h.waitCronJob("nightly", nil)
	h.waitCondition("nightly", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	h.waitEvent("nightly", corev1.EventTypeNormal, "CronJobCreated", "nightly-scheduled")

	b := h.get("nightly")
	before := b.DeepCopy()
	before.Status = dbv1.DatabaseBackupStatus{}
	want, err := (&controller.Reconciler{Scheme: h.env.Scheme, DefaultJobImage: testJobImage}).FirstPass(before)
	if err != nil {
		t.Fatal(err)
	}
	if want.ServiceAccount == nil {
		t.Fatal("FirstPass has no ServiceAccount for a spec that names none")
	}

	get := func(o client.Object) {
		t.Helper()
		if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatalf("get %T %s: %v", o, o.GetName(), err)
		}
	}
	sameMeta := func(want, got client.Object) {
		t.Helper()
		if !equality.Semantic.DeepEqual(want.GetLabels(), got.GetLabels()) {
			t.Errorf("%T %s labels: FirstPass %v, operator %v", got, got.GetName(), want.GetLabels(), got.GetLabels())
		}
		if !equality.Semantic.DeepEqual(want.GetOwnerReferences(), got.GetOwnerReferences()) {
			t.Errorf("%T %s owners: FirstPass %v, operator %v", got, got.GetName(), want.GetOwnerReferences(), got.GetOwnerReferences())
		}
	}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: want.ServiceAccount.Name}}
	get(sa)
	sameMeta(want.ServiceAccount, sa)

	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: want.Role.Name}}
	get(role)
	sameMeta(want.Role, role)
	if !equality.Semantic.DeepEqual(want.Role.Rules, role.Rules) {
		t.Errorf("Role rules: FirstPass %v, operator %v", want.Role.Rules, role.Rules)
	}

	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: want.RoleBinding.Name}}
	get(binding)
	sameMeta(want.RoleBinding, binding)
	if !equality.Semantic.DeepEqual(want.RoleBinding.Subjects, binding.Subjects) || want.RoleBinding.RoleRef != binding.RoleRef {
		t.Errorf("RoleBinding: FirstPass %v %v, operator %v %v", want.RoleBinding.Subjects, want.RoleBinding.RoleRef, binding.Subjects, binding.RoleRef)
	}

	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: want.CronJob.Name}}
	get(cj)
	sameMeta(want.CronJob, cj)
	// The hash is of the spec as the operator built it, before the API
	// server's defaults: equal hashes are equal specs.
	if !equality.Semantic.DeepEqual(want.CronJob.Annotations, cj.Annotations) {
		t.Errorf("CronJob annotations: FirstPass %v, operator %v", want.CronJob.Annotations, cj.Annotations)
	}
	if !equality.Semantic.DeepDerivative(want.CronJob.Spec, cj.Spec) {
		t.Errorf("CronJob spec: FirstPass's is not the operator's (defaults aside)")
	}

	for _, typ := range []string{dbv1.ConditionReady, dbv1.ConditionBackupOverdue} {
		w, g := findCond(want.Status.Conditions, typ), findCond(b.Status.Conditions, typ)
		if w == nil || g == nil || w.Status != g.Status || w.Reason != g.Reason || w.Message != g.Message || w.ObservedGeneration != g.ObservedGeneration {
			t.Errorf("condition %s: FirstPass %s, operator %s", typ, condString(w), condString(g))
		}
	}
	if len(want.Status.Conditions) != len(b.Status.Conditions) {
		t.Errorf("conditions: FirstPass %d, operator %d", len(want.Status.Conditions), len(b.Status.Conditions))
	}
	if (want.Status.NextScheduleTime == nil) != (b.Status.NextScheduleTime == nil) {
		t.Errorf("nextScheduleTime: FirstPass %v, operator %v", want.Status.NextScheduleTime, b.Status.NextScheduleTime)
	}

	ev := want.CronJobCreated
	notes := h.events("nightly", ev.Type, ev.Reason)
	if len(notes) != 1 || notes[0] != ev.Note {
		t.Errorf("Event %s: FirstPass %q, operator %q", ev.Reason, ev.Note, notes)
	}
}

func condString(c *metav1.Condition) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprintf("%s/%s %q (generation %d)", c.Status, c.Reason, c.Message, c.ObservedGeneration)
}

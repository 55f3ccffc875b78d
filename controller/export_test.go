package controller

import (
	"fmt"
	"os"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/reference"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// FirstPass is what Reconcile writes on its first pass over a new, valid
// DatabaseBackup whose only trigger is the scheduled one and that has no
// Jobs yet: the objects it creates, in the order it creates them, the
// Event of the CronJob, and the status. The API floor benchmark writes
// exactly these, without the operator.
type FirstPass struct {
	ServiceAccount *corev1.ServiceAccount // nil when the spec names its own
	Role           *rbacv1.Role
	RoleBinding    *rbacv1.RoleBinding
	CronJob        *batchv1.CronJob
	// CronJobCreated is the Event as the operator's recorder (client-go's
	// events.k8s.io/v1 one) would create it.
	CronJobCreated *eventsv1.Event
	// Status is b's status after the pass.
	Status dbv1.DatabaseBackupStatus
}

// FirstPass builds the FirstPass of b; r needs Scheme set.
func (r *Reconciler) FirstPass(b *dbv1.DatabaseBackup) (FirstPass, error) {
	var out FirstPass
	if !needsJobRBAC(b) || b.Spec.ManualTrigger != nil || drills(b, dbv1.JobTriggerVerify) {
		return out, fmt.Errorf("DatabaseBackup %s/%s: FirstPass covers a scheduled trigger alone", b.Namespace, b.Name)
	}
	ownSA := b.Spec.PodTemplate == nil || b.Spec.PodTemplate.ServiceAccountName == ""
	rbac, err := r.desiredRBAC(b, JobRBACName(b.Name), map[string]string{LabelManagedBy: ManagedByValue, LabelBackup: b.Name},
		JobRoleRules(b.Name), jobServiceAccount(b), ownSA)
	if err != nil {
		return out, err
	}
	out.ServiceAccount, out.Role, out.RoleBinding = rbac.serviceAccount, rbac.role, rbac.binding
	cj, line, err := r.scheduledCronJob(b)
	if err != nil {
		return out, err
	}
	if b.Spec.Suspend {
		line += " (suspended)"
	}
	out.CronJob = cj

	regarding, err := reference.GetReference(r.Scheme, b)
	if err != nil {
		return out, err
	}
	related, err := reference.GetReference(r.Scheme, cj)
	if err != nil {
		return out, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	out.CronJobCreated = &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", b.Name, now.UnixNano()), Namespace: b.Namespace},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: fieldManager,
		ReportingInstance:   fieldManager + "-" + host,
		Action:              actionCreate,
		Reason:              reasonCronJobCreated,
		Regarding:           *regarding,
		Related:             related,
		Note:                cronJobCreatedNote(cj),
		Type:                corev1.EventTypeNormal,
	}

	ready := readiness{reason: dbv1.ReasonReconciled, message: joinMessages(line)}
	st := b.Status.DeepCopy()
	setCondition(st, dbv1.ConditionReady, ready.status(), ready.reason, ready.message, b.Generation)
	r.scheduleState(b, ready, nil).apply(st, b.Generation)
	out.Status = *st
	return out, nil
}

// FieldManager is the field manager of the operator's own writes.
const FieldManager = fieldManager

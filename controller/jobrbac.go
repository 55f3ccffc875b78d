package controller

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// JobRBACName is the name of the ServiceAccount (unless the spec names its
// own), Role and RoleBinding of one DatabaseBackup's backup jobs.
func JobRBACName(backupName string) string { return "dbarchive-job-" + backupName }

// jobServiceAccount is the ServiceAccount b's backup pods run as.
func jobServiceAccount(b *dbv1.DatabaseBackup) string {
	if pt := b.Spec.PodTemplate; pt != nil && pt.ServiceAccountName != "" {
		return pt.ServiceAccountName
	}
	return JobRBACName(b.Name)
}

// JobRoleRules are the only permissions of a backup job: read its own
// DatabaseBackup and write its status, by resourceNames. Nothing else of the
// namespace, nothing cluster-wide, no Secrets (they reach the pod through
// the kubelet), no spec writes.
func JobRoleRules(backupName string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{
			APIGroups:     []string{dbv1.GroupVersion.Group},
			Resources:     []string{"databasebackups"},
			ResourceNames: []string{backupName},
			Verbs:         []string{"get"},
		},
		{
			APIGroups:     []string{dbv1.GroupVersion.Group},
			Resources:     []string{"databasebackups/status"},
			ResourceNames: []string{backupName},
			Verbs:         []string{"update", "patch"},
		},
	}
}

// needsJobRBAC is whether b has a trigger that can start a Job.
func needsJobRBAC(b *dbv1.DatabaseBackup) bool {
	return (b.Spec.ScheduledTrigger != nil && b.Spec.ScheduledTrigger.Enabled) ||
		(b.Spec.ManualTrigger != nil && b.Spec.ManualTrigger.Enabled) ||
		drills(b, dbv1.JobTriggerVerify)
}

// ensureJobRBAC makes b's job ServiceAccount (unless the spec names its
// own), Role and RoleBinding exist as they should, each controlled by b so
// that they go with it. One set per resource, so that a job's token can
// touch only its own resource.
func (r *Reconciler) ensureJobRBAC(ctx context.Context, b *dbv1.DatabaseBackup) error {
	ownSA := b.Spec.PodTemplate == nil || b.Spec.PodTemplate.ServiceAccountName == ""
	return r.ensureRBAC(ctx, b, JobRBACName(b.Name), map[string]string{LabelManagedBy: ManagedByValue, LabelBackup: b.Name},
		JobRoleRules(b.Name), jobServiceAccount(b), ownSA)
}

// rbacObjects are a job's ServiceAccount (nil when the user names their
// own), Role and RoleBinding as the operator creates them.
type rbacObjects struct {
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.Role
	binding        *rbacv1.RoleBinding
}

// desiredRBAC builds the ServiceAccount sa (when ownSA), and the Role
// (rules) and RoleBinding name that bind them, each labelled and
// controlled by owner.
func (r *Reconciler) desiredRBAC(owner client.Object, name string, labels map[string]string,
	rules []rbacv1.PolicyRule, sa string, ownSA bool) (rbacObjects, error) {
	ns := owner.GetNamespace()
	var out rbacObjects
	if ownSA {
		out.serviceAccount = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	}
	out.role = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rules}
	out.binding = &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
		// roleRef is immutable; ours never changes.
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
	}
	objs := []client.Object{out.role, out.binding}
	if ownSA {
		objs = append(objs, out.serviceAccount)
	}
	for _, o := range objs {
		o.SetLabels(maps.Clone(labels))
		if err := controllerutil.SetControllerReference(owner, o, r.Scheme); err != nil {
			return rbacObjects{}, fmt.Errorf("own %s/%s: %w", ns, name, err)
		}
	}
	return out, nil
}

// ensureRBAC makes a job's ServiceAccount sa (when ownSA; else sa is the
// user's and is left alone), and the Role (rules) and RoleBinding name that
// bind them, as desiredRBAC builds them. Existing ones keep labels and
// owners of their own.
func (r *Reconciler) ensureRBAC(ctx context.Context, owner client.Object, name string, labels map[string]string,
	rules []rbacv1.PolicyRule, sa string, ownSA bool) error {
	want, err := r.desiredRBAC(owner, name, labels, rules, sa, ownSA)
	if err != nil {
		return err
	}
	ns := owner.GetNamespace()
	meta := func() metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	own := func(o client.Object) error {
		o.SetLabels(mergeMaps(o.GetLabels(), labels))
		return controllerutil.SetControllerReference(owner, o, r.Scheme)
	}

	if want.serviceAccount != nil {
		sa := &corev1.ServiceAccount{ObjectMeta: meta()}
		if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, sa, func() error { return own(sa) }); err != nil {
			return rejectedOr(err, "ServiceAccount "+name, fmt.Errorf("ServiceAccount %s/%s: %w", ns, name, err))
		}
	}
	role := &rbacv1.Role{ObjectMeta: meta()}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, role, func() error {
		if !equality.Semantic.DeepEqual(role.Rules, want.role.Rules) {
			role.Rules = want.role.Rules
		}
		return own(role)
	}); err != nil {
		return rejectedOr(err, "Role "+name, fmt.Errorf("Role %s/%s: %w", ns, name, err))
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: meta()}
	if _, err := controllerutil.CreateOrUpdate(ctx, r.Client, binding, func() error {
		if !equality.Semantic.DeepEqual(binding.Subjects, want.binding.Subjects) {
			binding.Subjects = want.binding.Subjects
		}
		binding.RoleRef = want.binding.RoleRef
		return own(binding)
	}); err != nil {
		return rejectedOr(err, "RoleBinding "+name, fmt.Errorf("RoleBinding %s/%s: %w", ns, name, err))
	}
	return nil
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// JobRoleRules are the only permissions of the backup job: read the
// DatabaseBackups of its namespace and write their status. Nothing
// cluster-wide, no Secrets (they reach the pod through the kubelet), no
// spec writes.
func JobRoleRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{
			APIGroups: []string{dbv1.GroupVersion.Group},
			Resources: []string{"databasebackups"},
			Verbs:     []string{"get"},
		},
		{
			APIGroups: []string{dbv1.GroupVersion.Group},
			Resources: []string{"databasebackups/status"},
			Verbs:     []string{"update", "patch"},
		},
	}
}

// needsJobRBAC is whether b has a trigger that can start a Job.
func needsJobRBAC(b *dbv1.DatabaseBackup) bool {
	return (b.Spec.ScheduledTrigger != nil && b.Spec.ScheduledTrigger.Enabled) ||
		(b.Spec.ManualTrigger != nil && b.Spec.ManualTrigger.Enabled)
}

// ensureJobRBAC makes the namespace's ServiceAccount, Role and RoleBinding
// for backup jobs exist and lists b among their owners. They are shared by
// every DatabaseBackup of the namespace, so each is owned (without
// controller) by all of them and the garbage collector removes it with the
// last one. Owners are added with a strategic merge patch keyed by uid,
// which needs no resourceVersion: concurrent reconciles of different
// DatabaseBackups in one namespace do not conflict.
func (r *Reconciler) ensureJobRBAC(ctx context.Context, b *dbv1.DatabaseBackup) error {
	owner := metav1.OwnerReference{
		APIVersion: dbv1.GroupVersion.String(),
		Kind:       "DatabaseBackup",
		Name:       b.Name,
		UID:        b.UID,
		// Deleting a DatabaseBackup must not wait for the shared objects.
		BlockOwnerDeletion: ptr.To(false),
	}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name:            JobServiceAccountName,
			Namespace:       b.Namespace,
			Labels:          map[string]string{LabelManagedBy: ManagedByValue},
			OwnerReferences: []metav1.OwnerReference{owner},
		}
	}

	sa := &corev1.ServiceAccount{ObjectMeta: meta()}
	if err := r.ensureShared(ctx, owner, sa, &corev1.ServiceAccount{}, nil); err != nil {
		return err
	}

	role := &rbacv1.Role{ObjectMeta: meta(), Rules: JobRoleRules()}
	if err := r.ensureShared(ctx, owner, role, &rbacv1.Role{}, func(have client.Object) bool {
		h := have.(*rbacv1.Role)
		if equality.Semantic.DeepEqual(h.Rules, role.Rules) {
			return false
		}
		h.Rules = role.Rules
		return true
	}); err != nil {
		return err
	}

	binding := &rbacv1.RoleBinding{
		ObjectMeta: meta(),
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: JobServiceAccountName, Namespace: b.Namespace}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: JobServiceAccountName},
	}
	return r.ensureShared(ctx, owner, binding, &rbacv1.RoleBinding{}, func(have client.Object) bool {
		h := have.(*rbacv1.RoleBinding)
		if equality.Semantic.DeepEqual(h.Subjects, binding.Subjects) && h.RoleRef == binding.RoleRef {
			return false
		}
		h.Subjects = binding.Subjects
		// roleRef is immutable: a wrong one is caught by the update failing,
		// and the binding must then be deleted by hand; ours never changes.
		h.RoleRef = binding.RoleRef
		return true
	})
}

// ensureShared creates want, or adds owner to the owners of the existing object and
// applies fix (which reports whether it changed anything) to its content.
func (r *Reconciler) ensureShared(ctx context.Context, owner metav1.OwnerReference, want, have client.Object, fix func(client.Object) bool) error {
	kind := fmt.Sprintf("%T", want)
	key := client.ObjectKeyFromObject(want)
	err := r.Client.Get(ctx, key, have)
	if apierrors.IsNotFound(err) {
		err = r.Client.Create(ctx, want, client.FieldOwner(fieldManager))
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", kind, key, err)
		}
		// Another DatabaseBackup of the namespace created it first.
		if err := r.APIReader.Get(ctx, key, have); err != nil {
			return fmt.Errorf("get %s %s: %w", kind, key, err)
		}
	} else if err != nil {
		return fmt.Errorf("get %s %s: %w", kind, key, err)
	}

	if !hasOwner(have, owner.UID) || have.GetLabels()[LabelManagedBy] != ManagedByValue {
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"labels":          map[string]string{LabelManagedBy: ManagedByValue},
			"ownerReferences": []metav1.OwnerReference{owner},
		}})
		if err != nil {
			return fmt.Errorf("owner patch for %s %s: %w", kind, key, err)
		}
		if err := r.Client.Patch(ctx, have, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner(fieldManager)); err != nil {
			return fmt.Errorf("add owner %s to %s %s: %w", owner.Name, kind, key, err)
		}
	}
	if fix != nil && fix(have) {
		if err := r.Client.Update(ctx, have, client.FieldOwner(fieldManager)); err != nil {
			return fmt.Errorf("update %s %s: %w", kind, key, err)
		}
	}
	return nil
}

func hasOwner(o client.Object, uid types.UID) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

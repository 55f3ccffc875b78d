package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// The operator's identity in config/: the ServiceAccount its ClusterRole and
// leader-election Role are bound to.
const (
	OperatorNamespace      = "dbarchive-system"
	OperatorServiceAccount = "dbarchive-operator"
)

// operatorRBACFiles are the files of config/rbac that grant the operator its
// permissions, applied as they are.
var operatorRBACFiles = []string{
	"service_account.yaml", "role.yaml", "role_binding.yaml",
	"leader_election_role.yaml", "leader_election_role_binding.yaml",
}

// OperatorConfig applies config/rbac unchanged and returns a config that
// acts as the operator's ServiceAccount (impersonated by the admin), so that
// an operator started with it has exactly the permissions the manifests
// give it: a verb the ClusterRole lacks fails as it would in a cluster.
func (e *Env) OperatorConfig(ctx context.Context) (*rest.Config, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", OperatorNamespace, err)
	}
	for _, name := range operatorRBACFiles {
		path := filepath.Join(e.Root, "config", "rbac", name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		for i, doc := range strings.Split(string(raw), "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				return nil, fmt.Errorf("%s document %d: %w", path, i, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			if err := e.apply(ctx, obj); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", OperatorNamespace, OperatorServiceAccount),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + OperatorNamespace, "system:authenticated"},
	}
	return cfg, nil
}

// apply creates obj, or replaces the stored one's content with it.
func (e *Env) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	err := e.Client.Create(ctx, obj.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(obj.GroupVersionKind())
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	return e.Client.Update(ctx, obj)
}

// ScopedOperatorConfig is OperatorConfig for an operator run with
// --watch-namespace: a ServiceAccount of its own whose only permissions are
// RoleBindings, in each of namespaces, to config/rbac's ClusterRole. It
// can read no Secret of any other namespace.
func (e *Env) ScopedOperatorConfig(ctx context.Context, name string, namespaces ...string) (*rest.Config, error) {
	if _, err := e.OperatorConfig(ctx); err != nil {
		return nil, err
	}
	for _, ns := range namespaces {
		rb := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1",
			"kind":       "RoleBinding",
			"metadata":   map[string]any{"name": name, "namespace": ns},
			"roleRef":    map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OperatorServiceAccount},
			"subjects":   []any{map[string]any{"kind": "ServiceAccount", "name": name, "namespace": OperatorNamespace}},
		}}
		if err := e.apply(ctx, rb); err != nil {
			return nil, fmt.Errorf("RoleBinding %s/%s: %w", ns, name, err)
		}
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", OperatorNamespace, name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + OperatorNamespace, "system:authenticated"},
	}
	return cfg, nil
}

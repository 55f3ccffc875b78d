package helmchart

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// TestChartCopiesMatchConfig: the chart's crds/ are exactly controller-gen's
// CRDs in config/crd/bases, and its files/ exactly config/'s RBAC rules and
// alert rules (helm can read no file outside the chart; `make chart-sync`,
// which `make manifests` runs, refreshes the copies).
func TestChartCopiesMatchConfig(t *testing.T) {
	r, chart := root(t), chartDir(t)
	bases, err := filepath.Glob(filepath.Join(r, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	copies, err := filepath.Glob(filepath.Join(chart, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(names(bases), names(copies)) {
		t.Errorf("the chart's crds/ hold %v, config/crd/bases %v: run make chart-sync", names(copies), names(bases))
	}
	pairs := map[string]string{
		"files/role.yaml":                 "config/rbac/role.yaml",
		"files/leader_election_role.yaml": "config/rbac/leader_election_role.yaml",
		"files/prometheus-rules.yaml":     "config/prometheus/rules.yaml",
	}
	for _, b := range bases {
		pairs["crds/"+filepath.Base(b)] = "config/crd/bases/" + filepath.Base(b)
	}
	for copyPath, orig := range pairs {
		want, err := os.ReadFile(filepath.Join(r, orig))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chart, copyPath))
		if err != nil {
			t.Errorf("%v: run make chart-sync", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/dbarchive-operator/%s differs from %s: run make chart-sync", copyPath, orig)
		}
	}
}

// rulesOf reads the rules of the Role or ClusterRole in a YAML file.
func rulesOf(t testing.TB, path string) []rbacv1.PolicyRule {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r rbacv1.ClusterRole
	if err := yaml.Unmarshal(bytes.TrimPrefix(raw, []byte("---\n")), &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(r.Rules) == 0 {
		t.Fatalf("%s: no rules", path)
	}
	return r.Rules
}

// grants expands rules into one line per (group, resource, verb,
// resourceName, URL) they allow, sorted, so that two sets of rules compare
// by what they allow, whatever their order and grouping.
func grants(rules []rbacv1.PolicyRule) []string {
	orEmpty := func(s []string) []string {
		if len(s) == 0 {
			return []string{""}
		}
		return s
	}
	set := map[string]bool{}
	for _, r := range rules {
		for _, g := range orEmpty(r.APIGroups) {
			for _, res := range orEmpty(r.Resources) {
				for _, v := range r.Verbs {
					for _, n := range orEmpty(r.ResourceNames) {
						for _, u := range orEmpty(r.NonResourceURLs) {
							set[fmt.Sprintf("group=%q resource=%q verb=%q name=%q url=%q", g, res, v, n, u)] = true
						}
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func convert(t testing.TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// TestChartRBACMatchesConfig: the rendered ClusterRole and leader-election
// Role allow what config/rbac allows, no more and no less, and are bound to
// the ServiceAccount the Deployment runs as: cluster-wide by default, and by
// a RoleBinding in each watched namespace only when watchNamespaces is set.
func TestChartRBACMatchesConfig(t *testing.T) {
	r := root(t)
	wantCluster := grants(rulesOf(t, filepath.Join(r, "config", "rbac", "role.yaml")))
	wantLeader := grants(rulesOf(t, filepath.Join(r, "config", "rbac", "leader_election_role.yaml")))

	check := func(t *testing.T, objs []*unstructured.Unstructured) (sa string) {
		crs := find(objs, "ClusterRole")
		if len(crs) != 1 {
			t.Fatalf("%d ClusterRoles rendered, want 1", len(crs))
		}
		var cr rbacv1.ClusterRole
		for _, u := range crs {
			convert(t, u, &cr)
		}
		if got := grants(cr.Rules); !slices.Equal(got, wantCluster) {
			t.Errorf("the chart's ClusterRole allows\n%s\nconfig/rbac/role.yaml\n%s", strings.Join(got, "\n"), strings.Join(wantCluster, "\n"))
		}
		leader, ok := find(objs, "Role")[releaseName+"-leader-election"]
		if !ok {
			t.Fatal("no leader-election Role rendered")
		}
		var lr rbacv1.Role
		convert(t, leader, &lr)
		if lr.Namespace != releaseNamespace {
			t.Errorf("leader-election Role in namespace %q, want the release's", lr.Namespace)
		}
		if got := grants(lr.Rules); !slices.Equal(got, wantLeader) {
			t.Errorf("the chart's leader-election Role allows\n%s\nconfig/rbac/leader_election_role.yaml\n%s", strings.Join(got, "\n"), strings.Join(wantLeader, "\n"))
		}
		var d appsv1.Deployment
		convert(t, find(objs, "Deployment")[releaseName], &d)
		sa = d.Spec.Template.Spec.ServiceAccountName
		if _, ok := find(objs, "ServiceAccount")[sa]; !ok {
			t.Errorf("the Deployment runs as ServiceAccount %q, which the chart does not create", sa)
		}
		var lb rbacv1.RoleBinding
		convert(t, find(objs, "RoleBinding")[releaseName+"-leader-election"], &lb)
		if lb.RoleRef.Name != lr.Name || len(lb.Subjects) != 1 || lb.Subjects[0].Name != sa || lb.Subjects[0].Namespace != releaseNamespace {
			t.Errorf("leader-election RoleBinding %+v does not bind Role %s to %s/%s", lb, lr.Name, releaseNamespace, sa)
		}
		return sa
	}

	t.Run("all namespaces", func(t *testing.T) {
		objs := render(t)
		sa := check(t, objs)
		crbs := find(objs, "ClusterRoleBinding")
		if len(crbs) != 1 {
			t.Fatalf("%d ClusterRoleBindings, want 1", len(crbs))
		}
		var crb rbacv1.ClusterRoleBinding
		for _, u := range crbs {
			convert(t, u, &crb)
		}
		if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != releaseName ||
			len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != sa || crb.Subjects[0].Namespace != releaseNamespace {
			t.Errorf("ClusterRoleBinding %+v does not bind the ClusterRole to %s/%s", crb, releaseNamespace, sa)
		}
	})
	t.Run("watched namespaces", func(t *testing.T) {
		objs := render(t, "--set", "watchNamespaces={team-a,team-b}")
		sa := check(t, objs)
		if n := len(find(objs, "ClusterRoleBinding")); n != 0 {
			t.Errorf("%d ClusterRoleBindings with watchNamespaces set: the operator could read every namespace's Secrets", n)
		}
		var got []string
		for _, u := range objs {
			if u.GetKind() != "RoleBinding" || u.GetName() != releaseName {
				continue
			}
			var rb rbacv1.RoleBinding
			convert(t, u, &rb)
			if rb.RoleRef.Kind != "ClusterRole" || rb.RoleRef.Name != releaseName || len(rb.Subjects) != 1 || rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != releaseNamespace {
				t.Errorf("RoleBinding %s/%s: %+v", rb.Namespace, rb.Name, rb)
			}
			got = append(got, rb.Namespace)
		}
		sort.Strings(got)
		if !slices.Equal(got, []string{"team-a", "team-b"}) {
			t.Errorf("RoleBindings of the ClusterRole in %v, want team-a and team-b", got)
		}
		if args := operatorArgs(t, objs); !slices.Contains(args, "--watch-namespace=team-a,team-b") {
			t.Errorf("args %v lack --watch-namespace=team-a,team-b", args)
		}
	})
}

func operatorArgs(t testing.TB, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var d appsv1.Deployment
	u, ok := find(objs, "Deployment")[releaseName]
	if !ok {
		t.Fatal("no Deployment rendered")
	}
	convert(t, u, &d)
	return d.Spec.Template.Spec.Containers[0].Args
}

// TestChartDeploymentMatchesConfig: with the default values the operator
// runs as config/manager/manager.yaml runs it: the same flags (and more),
// ports, probes, resources, security contexts and grace period.
func TestChartDeploymentMatchesConfig(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root(t), "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want appsv1.Deployment
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var got appsv1.Deployment
	convert(t, find(render(t), "Deployment")[releaseName], &got)
	if got.Namespace != releaseNamespace {
		t.Errorf("Deployment in namespace %q", got.Namespace)
	}
	wp, gp := want.Spec.Template.Spec, got.Spec.Template.Spec
	if !equality.Semantic.DeepEqual(gp.SecurityContext, wp.SecurityContext) {
		t.Errorf("pod securityContext %+v, config/manager %+v", gp.SecurityContext, wp.SecurityContext)
	}
	if !equality.Semantic.DeepEqual(gp.TerminationGracePeriodSeconds, wp.TerminationGracePeriodSeconds) {
		t.Errorf("terminationGracePeriodSeconds %v, config/manager %v", gp.TerminationGracePeriodSeconds, wp.TerminationGracePeriodSeconds)
	}
	if got, want := got.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"], want.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]; got != want {
		t.Errorf("default-container %q, config/manager %q", got, want)
	}
	if len(gp.Containers) != 1 || len(wp.Containers) != 1 {
		t.Fatalf("%d containers rendered, config/manager has %d", len(gp.Containers), len(wp.Containers))
	}
	gc, wc := gp.Containers[0], wp.Containers[0]
	if gc.Name != wc.Name {
		t.Errorf("container %q, config/manager %q", gc.Name, wc.Name)
	}
	for _, a := range wc.Args {
		if !slices.Contains(gc.Args, a) {
			t.Errorf("the chart's operator lacks config/manager's flag %s (it has %v)", a, gc.Args)
		}
	}
	for what, pair := range map[string][2]any{
		"ports":           {gc.Ports, wc.Ports},
		"livenessProbe":   {gc.LivenessProbe, wc.LivenessProbe},
		"readinessProbe":  {gc.ReadinessProbe, wc.ReadinessProbe},
		"resources":       {gc.Resources, wc.Resources},
		"securityContext": {gc.SecurityContext, wc.SecurityContext},
	} {
		if !equality.Semantic.DeepEqual(pair[0], pair[1]) {
			t.Errorf("container %s: chart %+v, config/manager %+v", what, pair[0], pair[1])
		}
	}
	// The selector must select the pod, or the Deployment is refused.
	for k, v := range got.Spec.Selector.MatchLabels {
		if got.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod's labels %v", k, v, got.Spec.Template.Labels)
		}
	}
}

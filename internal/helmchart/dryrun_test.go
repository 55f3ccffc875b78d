package helmchart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

// promOperatorModule holds the prometheus-operator's CRDs
// (example/prometheus-operator-crd), read from the module cache at test
// time rather than copied into the repository.
const promOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

func TestMain(m *testing.M) {
	code := m.Run()
	if err := envtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// promOperatorCRDs downloads the pinned prometheus-operator module (from
// the Go module proxy, once, then the module cache) and returns the paths
// of its ServiceMonitor and PrometheusRule CRDs.
func promOperatorCRDs(t testing.TB) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", promOperatorModule)
	// Outside this module, so that go.mod is neither read nor changed.
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go mod download %s: %v\n%s%s", promOperatorModule, err, out, stderr)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s\n%s", promOperatorModule, err, mod.Error, out)
	}
	var paths []string
	for _, name := range []string{"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"} {
		p := filepath.Join(mod.Dir, "example", "prometheus-operator-crd", name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", promOperatorModule, err)
		}
		paths = append(paths, p)
	}
	return paths
}

// installPromOperatorCRDs installs the prometheus-operator's ServiceMonitor
// and PrometheusRule CRDs (for real) and waits until they are served.
func installPromOperatorCRDs(t testing.TB, e *envtest.Env) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	paths := promOperatorCRDs(t)
	crds, err := crenvtest.InstallCRDs(e.Config, crenvtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatalf("install CRDs %v: %v", paths, err)
	}
	return crds
}

// TestChartDryRun: what the chart renders, with the defaults, with every
// toggle on and with watched namespaces, is accepted by a real
// kube-apiserver in a server-side dry run (schema, CRD validation,
// admission), after the chart's own CRDs and the prometheus-operator's are
// installed for real.
func TestChartDryRun(t *testing.T) {
	e := envtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	installed, err := crenvtest.InstallCRDs(e.Config, crenvtest.CRDInstallOptions{Paths: []string{filepath.Join(chartDir(t), "crds")}, ErrorIfPathMissing: true})
	if err != nil {
		t.Fatalf("install the chart's CRDs: %v", err)
	}
	installed = append(installed, installPromOperatorCRDs(t, e)...)
	var names []string
	for _, c := range installed {
		names = append(names, c.Name)
	}
	for _, want := range []string{"databasebackups.database.sample.third.party", "databaserestores.database.sample.third.party",
		"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} {
		if !slices.Contains(names, want) {
			t.Fatalf("installed CRDs %v lack %s", names, want)
		}
	}
	// A client made after the CRDs exist, so that its REST mapping knows them.
	c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{releaseNamespace, "team-a", "team-b", "monitoring"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name  string
		args  []string
		kinds []string
	}{
		{"defaults", nil, []string{"ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"}},
		{"every toggle", append(slices.Clone(allToggles), "--set", "grafanaDashboard.namespace=monitoring,serviceMonitor.interval=30s,serviceMonitor.labels.release=kube-prometheus-stack,commonLabels.team=platform,commonAnnotations.owner=platform,podAnnotations.a=b,imagePullSecrets[0].name=registry,nodeSelector.kubernetes\\.io/os=linux,tolerations[0].operator=Exists,priorityClassName=system-cluster-critical,allowedJobImages={registry.example.com/dbarchive/*}"),
			[]string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "PrometheusRule", "Role", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}},
		{"watched namespaces", []string{"--set", "watchNamespaces={team-a,team-b},leaderElection.enabled=false,replicaCount=1"},
			[]string{"ClusterRole", "Deployment", "RoleBinding", "Service", "ServiceAccount"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			var kinds []string
			for _, o := range objs {
				if !slices.Contains(kinds, o.GetKind()) {
					kinds = append(kinds, o.GetKind())
				}
			}
			sort.Strings(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("rendered kinds %v, want %v", kinds, tc.kinds)
			}
			for _, o := range objs {
				// commonLabels and commonAnnotations reach every object.
				if tc.name == "every toggle" && (o.GetLabels()["team"] != "platform" || o.GetAnnotations()["owner"] != "platform") {
					t.Errorf("%s %s: labels %v, annotations %v lack commonLabels team=platform, commonAnnotations owner=platform", o.GetKind(), o.GetName(), o.GetLabels(), o.GetAnnotations())
				}
				if o.GetNamespace() == "" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
					t.Errorf("%s %s has no namespace: `helm template | kubectl apply` would put it in the current one", o.GetKind(), o.GetName())
				}
				err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("helmchart-test"), client.ForceOwnership, client.DryRunAll)
				if err != nil {
					t.Errorf("server-side dry run of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}

	// A dry run is not a formality: an object the server would refuse fails.
	bad := render(t)
	dep := find(bad, "Deployment")[releaseName]
	if err := unstructuredSet(dep.Object, "sometimes", "spec", "template", "spec", "containers", 0, "imagePullPolicy"); err != nil {
		t.Fatal(err)
	}
	err = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(dep), client.FieldOwner("helmchart-test"), client.ForceOwnership, client.DryRunAll)
	if !apierrors.IsInvalid(err) {
		t.Errorf("a Deployment with imagePullPolicy \"sometimes\" passed the dry run: %v", err)
	}
	// And nothing was created.
	var sas corev1.ServiceAccountList
	if err := c.List(ctx, &sas, client.InNamespace(releaseNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas.Items {
		if strings.HasPrefix(sa.Name, releaseName) {
			t.Errorf("ServiceAccount %s exists after a dry run", sa.Name)
		}
	}
}

// unstructuredSet sets the field at path (strings are keys, ints list
// indexes) in obj.
func unstructuredSet(obj map[string]any, value any, path ...any) error {
	var cur any = obj
	for i, p := range path {
		last := i == len(path)-1
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return fmt.Errorf("%v: not a map at %d", path, i)
			}
			if last {
				m[k] = value
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return fmt.Errorf("%v: not a list at %d", path, i)
			}
			if last {
				l[k] = value
				return nil
			}
			cur = l[k]
		}
	}
	return errors.New("empty path")
}

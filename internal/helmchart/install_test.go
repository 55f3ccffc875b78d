package helmchart

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"mvdan.cc/sh/v3/shell"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

// kubeconfig writes a kubeconfig for the envtest API server (as its
// admin) and returns its path.
func kubeconfig(t *testing.T, e *envtest.Env) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// readmeHelmCommands returns the bin/helm commands of the README's
// "Install with Helm" block, each as its words (continuation lines joined,
// a comment or a redirection cut off).
func readmeHelmCommands(t *testing.T) [][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n## Install with Helm\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Install with Helm" section`)
	}
	block := text[start:]
	if i := strings.Index(block, "```sh\n"); i >= 0 {
		block = block[i+len("```sh\n"):]
	}
	block = block[:strings.Index(block, "```")]
	block = strings.ReplaceAll(block, "\\\n", " ")
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if i := strings.IndexAny(line, ">|"); i >= 0 {
			line = line[:i]
		}
		words, err := shell.Fields(line, func(string) string { return "" })
		if err != nil {
			t.Fatalf("README command %q: %v", line, err)
		}
		if len(words) > 1 && words[0] == "bin/helm" {
			cmds = append(cmds, words[1:])
		}
	}
	return cmds
}

// TestReadmeHelmCommands: every bin/helm command of the README's "Install
// with Helm" block, run as written (with --kubeconfig for the envtest API
// server), does what the README says: lint passes, install creates the
// objects (with the alerts, the ServiceMonitor and the dashboard), upgrade
// changes the operator's flags, uninstall removes what install made (the
// CRDs stay, as with every chart's crds/), template renders objects the
// server accepts in a dry run. There is no kubelet, so the operator's pod
// never runs; TestChartArgsAreOperatorFlags checks that its flags parse.
func TestReadmeHelmCommands(t *testing.T) {
	e := envtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kc := kubeconfig(t, e)
	// The PrometheusRule and ServiceMonitor need the prometheus-operator's CRDs.
	installPromOperatorCRDs(t, e)
	c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	const ns = releaseNamespace
	key := client.ObjectKey{Namespace: ns, Name: releaseName}

	cmds := readmeHelmCommands(t)
	var ran []string
	for _, args := range cmds {
		sub := args[0]
		ran = append(ran, sub)
		if sub != "lint" && sub != "template" {
			args = append(slices.Clone(args), "--kubeconfig", kc)
		}
		out, errOut, err := runHelm(t, args...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		switch sub {
		case "install":
			checkInstalled(ctx, t, c, ns)
		case "upgrade":
			var d appsv1.Deployment
			if err := c.Get(ctx, key, &d); err != nil {
				t.Fatal(err)
			}
			if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--default-rpo=12h") || !slices.Contains(args, "--zap-log-level=debug") {
				t.Errorf("args after helm upgrade: %v", args)
			}
			var cm corev1.ConfigMap
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: releaseName + "-dashboard"}, &cm); err != nil {
				t.Errorf("--reuse-values lost the dashboard: %v", err)
			}
		case "uninstall":
			for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ServiceAccount{}, &corev1.Service{}} {
				k := key
				if _, ok := obj.(*corev1.Service); ok {
					k.Name += "-metrics"
				}
				if err := c.Get(ctx, k, obj); !apierrors.IsNotFound(err) {
					t.Errorf("%T %s after helm uninstall: %v", obj, k, err)
				}
			}
			if err := c.Get(ctx, client.ObjectKey{Name: releaseName}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
				t.Errorf("ClusterRole after helm uninstall: %v", err)
			}
			var crds apiextensionsv1.CustomResourceDefinitionList
			if err := c.List(ctx, &crds); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, crd := range crds.Items {
				names = append(names, crd.Name)
			}
			if !slices.Contains(names, "databasebackups.database.sample.third.party") {
				t.Errorf("helm uninstall removed the DatabaseBackup CRD (and every DatabaseBackup): %v", names)
			}
		case "template":
			objs, err := decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(find(objs, "RoleBinding")) < 2 {
				t.Errorf("helm template with watchNamespaces rendered RoleBindings %v", find(objs, "RoleBinding"))
			}
			for _, o := range objs {
				if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("helmchart-test"), client.ForceOwnership, client.DryRunAll); err != nil {
					t.Errorf("server-side dry run of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
			}
		}
	}
	for _, want := range []string{"lint", "install", "upgrade", "uninstall", "template"} {
		if !slices.Contains(ran, want) {
			t.Errorf("the README's Install with Helm block has no helm %s (it has %v)", want, ran)
		}
	}
}

// checkInstalled: what helm install with every toggle on made.
func checkInstalled(ctx context.Context, t *testing.T, c client.Client, ns string) {
	t.Helper()
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: releaseName}, &d); err != nil {
		t.Fatalf("the Deployment after helm install: %v", err)
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--default-rpo=26h") {
		t.Errorf("installed args %v lack the default --default-rpo=26h", args)
	}
	var crb rbacv1.ClusterRoleBinding
	if err := c.Get(ctx, client.ObjectKey{Name: releaseName}, &crb); err != nil {
		t.Errorf("ClusterRoleBinding: %v", err)
	} else if len(crb.Subjects) != 1 || crb.Subjects[0].Namespace != ns || crb.Subjects[0].Name != d.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("ClusterRoleBinding binds %+v, not the Deployment's ServiceAccount in %s", crb.Subjects, ns)
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: releaseName + "-dashboard"}, &cm); err != nil {
		t.Errorf("dashboard ConfigMap: %v", err)
	} else {
		want, err := os.ReadFile(filepath.Join(chartDir(t), "dashboards", "dbarchive.json"))
		if err != nil {
			t.Fatal(err)
		}
		if cm.Labels["grafana_dashboard"] != "1" || strings.TrimSpace(cm.Data["dbarchive.json"]) != strings.TrimSpace(string(want)) {
			t.Errorf("dashboard ConfigMap: labels %v, %d bytes of JSON (dashboards/dbarchive.json has %d)", cm.Labels, len(cm.Data["dbarchive.json"]), len(want))
		}
	}
	for _, kind := range []string{"PrometheusRule", "ServiceMonitor"} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: kind})
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: releaseName}, u); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

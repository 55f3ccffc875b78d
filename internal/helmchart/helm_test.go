package helmchart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

// helmVersion must be hack/operator.mk's HELM_VERSION (TestHelmPinAgrees).
const helmVersion = "v3.22.0"

// The release the tests render: the names config/ uses.
const (
	releaseName      = "dbarchive-operator"
	releaseNamespace = "dbarchive-system"
)

// root is the module root.
func root(t testing.TB) string {
	t.Helper()
	r, err := envtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chartDir(t testing.TB) string { return filepath.Join(root(t), "charts", "dbarchive-operator") }

// helmLDFlags stamp the version and the default Kubernetes version (that
// of helm v3.22.0's client-go, 1.37) as helm's release builds do;
// hack/operator.mk's HELM_LDFLAGS are the same (TestHelmPinAgrees).
var helmLDFlags = "-X helm.sh/helm/v3/internal/version.version=" + helmVersion +
	" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + helmKubeMinor +
	" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=" + helmKubeMinor

const helmKubeMinor = "37"

// helm returns bin/helm, building the pinned version from the Go module
// proxy when it is missing or another version (what `make helm` does). A
// helm that cannot be built fails the test: the chart is never left
// untested.
func helm(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(root(t), "bin", "helm")
	if out, err := exec.Command(bin, "version", "--template", "{{.Version}}").Output(); err == nil && string(out) == helmVersion {
		return bin
	}
	cmd := exec.Command("go", "install", "-ldflags", helmLDFlags, "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build helm %s (make helm): %v\n%s", helmVersion, err, out)
	}
	return bin
}

// runHelm runs helm with args in the module root, with a HOME of its own so
// that no user's repositories or plugins change what it does.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := helm(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// allToggles are the values that turn on every optional object.
var allToggles = []string{"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true"}

// render runs helm template on the chart with extra args and returns its
// objects.
func render(t testing.TB, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, errOut, err := runHelm(t, append([]string{"template", releaseName, "charts/dbarchive-operator", "--namespace", releaseNamespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(args, " "), err)
	}
	return objs
}

// decode reads every object of a multi-document YAML stream.
func decode(stream string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the objects of kind, by name.
func find(objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == kind {
			out[o.GetName()] = o
		}
	}
	return out
}

// TestHelmPinAgrees: `make helm` and the tests build the same helm, stamped
// the same way.
func TestHelmPinAgrees(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(root(t), "hack", "operator.mk"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"HELM_VERSION": helmVersion, "HELM_KUBE_MINOR": helmKubeMinor} {
		m := regexp.MustCompile(`(?m)^` + name + ` \?= (\S+)$`).FindSubmatch(mk)
		if m == nil || string(m[1]) != want {
			t.Errorf("hack/operator.mk sets %s to %q, the tests to %s", name, m, want)
		}
	}
	flags := regexp.MustCompile(`(?s)HELM_LDFLAGS := (.*?)\n\n`).FindSubmatch(mk)
	if flags == nil {
		t.Fatal("no HELM_LDFLAGS in hack/operator.mk")
	}
	mkFlags := strings.NewReplacer("\\\n", " ", "$(HELM_VERSION)", helmVersion, "$(HELM_KUBE_MINOR)", helmKubeMinor).Replace(string(flags[1]))
	if strings.Join(strings.Fields(mkFlags), " ") != helmLDFlags {
		t.Errorf("hack/operator.mk's HELM_LDFLAGS\n%s\nthe tests'\n%s", strings.Join(strings.Fields(mkFlags), " "), helmLDFlags)
	}
	if out, err := exec.Command(helm(t), "version", "--template", "{{.Version}}").Output(); err != nil || string(out) != helmVersion {
		t.Errorf("helm version: %q, %v", out, err)
	}
}

// TestChartLint: helm lint --strict (warnings fail) passes with the default
// values and with every toggle on.
func TestChartLint(t *testing.T) {
	for _, args := range [][]string{nil, allToggles, {"--set", "watchNamespaces={team-a,team-b},logFormat=console,logLevel=debug,defaultRPO="}} {
		out, errOut, err := runHelm(t, append([]string{"lint", "--strict", "charts/dbarchive-operator"}, args...)...)
		if err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s%s", args, err, out, errOut)
		}
		if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm lint %v:\n%s", args, out)
		}
	}
}

// TestChartSchemaRejectsBadValues: values.schema.json refuses a misspelt
// key and a value of the wrong type or form, naming it.
func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		// The README quotes these two.
		{"imagee.tag=x", "at '': additional properties 'imagee' not allowed"},
		{"image.tag=5", "at '/image/tag': got number, want string"},
		{"image.pulPolicy=Always", "pulPolicy"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
		{"jobImage.pullPolicy=Sometimes", "/jobImage/pullPolicy"},
		{"logFormat=xml", "/logFormat"},
		{"logLevel=verbose", "/logLevel"},
		{"defaultRPO=1day", "/defaultRPO"},
		{"metrics.port=0", "/metrics/port"},
		{"watchNamespaces={Team_A}", "/watchNamespaces/0"},
		{"serviceMonitor.enable=true", "enable"},
		{"grafanaDashboard.labels.grafana_dashboard=1", "/grafanaDashboard/labels/grafana_dashboard"},
	} {
		_, errOut, err := runHelm(t, "template", releaseName, "charts/dbarchive-operator", "--set", c.set)
		if err == nil {
			t.Errorf("helm template --set %s: accepted", c.set)
			continue
		}
		if !strings.Contains(errOut, "schema") || !strings.Contains(errOut, c.want) {
			t.Errorf("helm template --set %s: the error does not name %q:\n%s", c.set, c.want, errOut)
		}
	}
	// The same kinds of values, well formed, pass.
	render(t, "--set", `image.tag=v1.2.3,image.pullPolicy=Always,logFormat=console,logLevel=2,defaultRPO=1h30m,metrics.port=9090,watchNamespaces={team-a}`)
}

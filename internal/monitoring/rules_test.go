package monitoring

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
)

// promtoolVersion pins the promtool the rules are tested with (the
// prometheus/prometheus module version of Prometheus 3.x).
const promtoolVersion = "v0.316.0"

// promtool returns bin/promtool, building the pinned version from the Go
// module proxy when it is not there yet.
func promtool(t *testing.T) string {
	t.Helper()
	root, err := envtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "promtool")
	// go install stamps no version into promtool; the module version
	// the binary was built from is in its build info.
	if out, err := exec.Command("go", "version", "-m", bin).CombinedOutput(); err == nil && strings.Contains(string(out), "github.com/prometheus/prometheus\t"+promtoolVersion) {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/prometheus/prometheus/cmd/promtool@"+promtoolVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build promtool %s: %v\n%s", promtoolVersion, err, out)
	}
	return bin
}

func rulesDir(t *testing.T) string {
	t.Helper()
	root, err := envtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "config", "prometheus")
}

// TestAlertRules: the rules file is valid, and each alert fires on the
// series that must fire it and stays quiet on those that must not
// (rules_test.yaml).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	dir := rulesDir(t)
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRulesNameExportedSeries: every dbarchive_ series the rules read is
// one the operator exports, so a renamed metric cannot leave an alert that
// never fires.
func TestRulesNameExportedSeries(t *testing.T) {
	exported := exportedNames(t)
	rules, err := os.ReadFile(filepath.Join(rulesDir(t), "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`dbarchive_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("the rules read no dbarchive_ series")
	}
	for _, name := range used {
		if !slices.Contains(exported, name) {
			t.Errorf("rules.yaml reads %s, which the operator does not export (it exports %v)", name, exported)
		}
	}
}

// exportedNames are the names of the series the operator's Metrics
// register, from their descriptions (a Gather would miss series that have
// no value yet).
func exportedNames(t *testing.T) []string {
	t.Helper()
	reg := &capture{}
	if _, err := controller.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range reg.collectors {
		c.Describe(ch)
	}
	close(ch)
	nameRE := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var names []string
	for d := range ch {
		if m := nameRE.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) < 10 {
		t.Fatalf("the operator exports %v: too few to check against", names)
	}
	return names
}

// capture is a Registerer that keeps what is registered.
type capture struct{ collectors []prometheus.Collector }

func (c *capture) Register(col prometheus.Collector) error {
	c.collectors = append(c.collectors, col)
	return nil
}

func (c *capture) MustRegister(cols ...prometheus.Collector) {
	c.collectors = append(c.collectors, cols...)
}

func (c *capture) Unregister(prometheus.Collector) bool { return false }

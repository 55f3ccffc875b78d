package helmchart

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestChartArgsAreOperatorFlags: the flags the chart passes, with every
// value that adds one set, are flags the operator defines, with values it
// parses: the operator built from cmd/operator, run with them and -h, exits
// 0 (the flag package stops at the first unknown flag or bad value with
// exit code 2).
func TestChartArgsAreOperatorFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd/operator")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the operator: %v\n%s", err, out)
	}
	args := operatorArgs(t, render(t, "--set",
		"watchNamespaces={team-a,team-b},defaultRPO=26h30m,logLevel=debug,logFormat=console,allowedJobImages={registry.example.com/dbarchive/*,ghcr.io/dbarchive/*},maxConcurrentReconciles=8,metrics.port=9090,probes.port=9091,jobImage.pullPolicy=Always,extraArgs={--leader-election-namespace=kube-system}"))
	for _, want := range []string{"--leader-elect", "--watch-namespace=team-a,team-b", "--default-rpo=26h30m", "--zap-log-level=debug", "--zap-encoder=console",
		"--allowed-job-images=registry.example.com/dbarchive/*,ghcr.io/dbarchive/*", "--max-concurrent-reconciles=8", "--metrics-bind-address=:9090",
		"--health-probe-bind-address=:9091", "--job-image=ghcr.io/dbarchive/dbarchive:v0.1.0", "--job-image-pull-policy=Always", "--leader-election-namespace=kube-system"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	run := func(args ...string) (int, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run(append(slices.Clone(args), "-h")...); code != 0 {
		t.Errorf("operator %v -h: exit %d\n%s", args, code, out)
	}
	// The check can fail: a flag the operator does not define exits 2.
	if code, _ := run(append(slices.Clone(args), "--no-such-flag", "-h")...); code != 2 {
		t.Errorf("operator with an unknown flag: exit %d, want 2", code)
	}
	// The default values too.
	if code, out := run(append(operatorArgs(t, render(t)), "-h")...); code != 0 {
		t.Errorf("operator with the default values' args -h: exit %d\n%s", code, out)
	}
}

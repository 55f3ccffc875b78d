package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

// controllerGenVersion must match CONTROLLER_TOOLS_VERSION in the Makefile.
const controllerGenVersion = "v0.23.0"

// The committed deepcopy code, CRD and operator RBAC are what controller-gen
// makes from the current markers: a change to api/ or the rbac markers
// without `make generate manifests` fails here.
func TestGeneratedFilesAreFresh(t *testing.T) {
	root, err := envtest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	gen := filepath.Join(root, "bin", "controller-gen")
	if _, err := os.Stat(gen); err != nil {
		// Not built yet (make builds it into bin/): install the pinned
		// version into the temp dir from the module cache or proxy.
		cmd := exec.Command("go", "install", "sigs.k8s.io/controller-tools/cmd/controller-gen@"+controllerGenVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("install controller-gen %s: %v\n%s", controllerGenVersion, err, out)
		}
		gen = filepath.Join(tmp, "controller-gen")
	}
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(gen, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %v: %v\n%s", args, err, out)
		}
	}
	run(root, "rbac:roleName=dbarchive-operator", "crd:crdVersions=v1", "paths=./api/...;./controller/...",
		"output:crd:artifacts:config="+filepath.Join(tmp, "crd"), "output:rbac:artifacts:config="+filepath.Join(tmp, "rbac"))

	// The deepcopy generator writes next to the types; generate into a copy
	// of the package instead of touching the tree.
	pkg := filepath.Join(tmp, "api", "v1alpha1")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "api", "v1alpha1", "*.go"))
	for _, src := range srcs {
		if filepath.Base(src) == "zz_generated.deepcopy.go" || filepath.Ext(src) != ".go" || isTest(src) {
			continue
		}
		copyFile(t, src, filepath.Join(pkg, filepath.Base(src)))
	}
	copyFile(t, filepath.Join(root, "go.mod"), filepath.Join(tmp, "go.mod"))
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(tmp, "go.sum"))
	run(tmp, "object", "paths=./api/...")

	for gotPath, committed := range map[string]string{
		filepath.Join(tmp, "crd", "database.sample.third.party_databasebackups.yaml"):  filepath.Join(root, "config", "crd", "bases", "database.sample.third.party_databasebackups.yaml"),
		filepath.Join(tmp, "crd", "database.sample.third.party_databaserestores.yaml"): filepath.Join(root, "config", "crd", "bases", "database.sample.third.party_databaserestores.yaml"),
		filepath.Join(tmp, "rbac", "role.yaml"):                                        filepath.Join(root, "config", "rbac", "role.yaml"),
		filepath.Join(pkg, "zz_generated.deepcopy.go"):                                 filepath.Join(root, "api", "v1alpha1", "zz_generated.deepcopy.go"),
	} {
		want, err := os.ReadFile(gotPath)
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(committed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, have) {
			rel, _ := filepath.Rel(root, committed)
			t.Errorf("%s is stale: run `make generate manifests` and commit the result", rel)
		}
	}
}

func isTest(path string) bool {
	return len(path) > len("_test.go") && path[len(path)-len("_test.go"):] == "_test.go"
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

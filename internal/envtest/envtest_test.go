package envtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleRootHasGoMod(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("ModuleRoot %s has no go.mod: %v", root, err)
	}
}

// AssetsDir names the binary that is missing, and accepts a directory that
// has both.
func TestAssetsDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	if err := os.WriteFile(filepath.Join(dir, "etcd"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := AssetsDir(); err == nil || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("AssetsDir with etcd only: %v, want an error naming kube-apiserver", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := AssetsDir()
	if err != nil || got != dir {
		t.Fatalf("AssetsDir = %q, %v; want %q", got, err, dir)
	}
}

// Without KUBEBUILDER_ASSETS the binaries are looked for in bin/k8s of the
// module root, whatever package directory the test runs in.
func TestAssetsDirDefault(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", "")
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	_, err = AssetsDir()
	if err != nil && !strings.Contains(err.Error(), filepath.Join(root, "bin", "k8s")) {
		t.Fatalf("AssetsDir error %q does not name %s", err, filepath.Join(root, "bin", "k8s"))
	}
}

// Asking for kube-controller-manager where it was not built fails naming
// it, before anything is started.
func TestControllerManagerMissing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if err := os.WriteFile(filepath.Join(dir, bin), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := StartWith(Options{ControllerManager: true})
	if err == nil || !strings.Contains(err.Error(), "kube-controller-manager not found") {
		t.Fatalf("StartWith(ControllerManager) = %v, want an error naming kube-controller-manager", err)
	}
}

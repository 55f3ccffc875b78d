// Package envtest starts a real kube-apiserver and etcd for tests, with the
// project's CRDs installed, from the binaries `make envtest-assets` builds
// into bin/k8s (see hack/envtest/build.sh).
//
// It is test support: production code must never import it. Tests use a real
// API server, not controller-runtime's fake client, so that CRD validation,
// defaulting, optimistic concurrency and garbage-collection metadata behave
// as in a cluster.
package envtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// Env is a running API server.
type Env struct {
	// Config connects as a cluster admin.
	Config *rest.Config
	// Client talks to the API server directly (no cache).
	Client client.Client
	// Scheme knows the built-in kinds and DatabaseBackup.
	Scheme *runtime.Scheme
	// Root is the module root, for paths like config/samples.
	Root string

	env   *crenvtest.Environment
	kcm   *controllerManager
	sched *controllerManager
}

// ModuleRoot is the directory holding go.mod, found upwards from the working
// directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// AssetsDir is where kube-apiserver and etcd are: KUBEBUILDER_ASSETS when
// set, else bin/k8s under the module root. It returns an error naming the
// missing binary.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "k8s")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s not found in %s", bin, dir)
		}
	}
	return dir, nil
}

// Missing reports absent envtest binaries. Under CI=true the test fails,
// because a CI run that skips the API server tests proves nothing; on a
// developer's machine it skips with the command that builds them.
func Missing(tb testing.TB, err error) {
	tb.Helper()
	msg := fmt.Sprintf("envtest binaries are not available (%v); build them with: make envtest-assets", err)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg + " (CI=true: envtest tests must run, not skip)")
	}
	tb.Skip(msg)
}

// Options change what Start starts.
type Options struct {
	// APIServerArgs are extra kube-apiserver flags, for example
	// {"enable-admission-plugins": {"OwnerReferencesPermissionEnforcement"}}.
	APIServerArgs map[string][]string
	// ControllerManager starts kube-controller-manager (from the same assets
	// directory) against the API server, with only the CronJob, Job and
	// garbage-collector controllers, as its own user. There is no scheduler
	// and no kubelet: the pods the Job controller creates stay Pending.
	ControllerManager bool
	// Controllers replaces the controller manager's controllers (a
	// --controllers value) when ControllerManager is set.
	Controllers string
	// ServiceAccounts makes the API server and controller manager do what
	// they do in a cluster for ServiceAccounts: the ServiceAccount admission
	// plugin (envtest disables it) gives every pod a projected token volume,
	// and the controller manager gets the token signing key and the root CA
	// for its ServiceAccount, token and root-CA publisher controllers.
	ServiceAccounts bool
	// Scheduler starts kube-scheduler (from the same assets directory) as
	// its own user.
	Scheduler bool
}

// Start starts etcd and kube-apiserver and installs the CRDs of
// config/crd/bases. Stop it with Stop.
func Start() (*Env, error) { return StartWith(Options{}) }

// StartWith is Start with options.
func StartWith(opts Options) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	for bin, want := range map[string]bool{"kube-controller-manager": opts.ControllerManager, "kube-scheduler": opts.Scheduler} {
		if _, err := os.Stat(filepath.Join(assets, bin)); want && err != nil {
			return nil, fmt.Errorf("%s not found in %s", bin, assets)
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	// envtest reads it too (for example in its own helpers); keep them agreed.
	if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
		return nil, fmt.Errorf("set KUBEBUILDER_ASSETS: %w", err)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(dbv1.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))

	env := &crenvtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if len(opts.APIServerArgs) > 0 || opts.ServiceAccounts {
		args := env.ControlPlane.GetAPIServer().Configure()
		for k, v := range opts.APIServerArgs {
			args.Set(k, v...)
		}
		if opts.ServiceAccounts {
			// envtest disables only ServiceAccount; something must stay in
			// the list, so a plugin no test depends on.
			args.Set("disable-admission-plugins", "DefaultStorageClass")
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (kube-apiserver and etcd from %s): %w", assets, err)
	}
	// The default 5 QPS would make the benchmark measure client throttling.
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("client for envtest: %w", err)
	}
	e := &Env{Config: cfg, Client: c, Scheme: scheme, Root: root, env: env}
	if opts.ControllerManager {
		if err := e.startControllerManager(assets, opts); err != nil {
			_ = env.Stop()
			return nil, err
		}
	}
	if opts.Scheduler {
		if err := e.startScheduler(assets); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	return e, nil
}

// Stop stops kube-controller-manager, the API server and etcd.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	e.stopControllerManager()
	if e.sched != nil {
		e.sched.stop()
		e.sched = nil
	}
	return e.env.Stop()
}

var (
	clusterOnce sync.Once
	clusterEnv  *Env
	clusterErr  error
)

// SharedCluster returns a second API server for the whole test binary that
// behaves like a real cluster where Shared's does not: the CronJob, Job and
// garbage-collector controllers of kube-controller-manager run against it,
// and OwnerReferencesPermissionEnforcement is on (as on OpenShift), so an
// operator must run there with exactly its RBAC (see OperatorConfig). Tests
// on it must not play the Job controller themselves. TestMain must call
// StopShared after m.Run.
func SharedCluster(tb testing.TB) *Env {
	tb.Helper()
	if _, err := AssetsDir(); err != nil {
		Missing(tb, err)
	}
	clusterOnce.Do(func() {
		clusterEnv, clusterErr = StartWith(Options{
			APIServerArgs:     map[string][]string{"enable-admission-plugins": {"OwnerReferencesPermissionEnforcement"}},
			ControllerManager: true,
		})
	})
	if clusterErr != nil {
		if strings.Contains(clusterErr.Error(), "not found in") {
			Missing(tb, clusterErr)
		}
		tb.Fatal(clusterErr)
	}
	return clusterEnv
}

var (
	sharedOnce sync.Once
	sharedEnv  *Env
	sharedErr  error
)

// Shared returns one API server for the whole test binary, starting it on
// first use; a test calls it first thing. When the binaries are missing it
// reports through Missing. TestMain must call StopShared after m.Run.
func Shared(tb testing.TB) *Env {
	tb.Helper()
	if _, err := AssetsDir(); err != nil {
		Missing(tb, err)
	}
	sharedOnce.Do(func() { sharedEnv, sharedErr = Start() })
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return sharedEnv
}

// StopShared stops the API servers Shared and SharedCluster started, if any.
func StopShared() error {
	var errs []error
	if sharedEnv != nil {
		errs = append(errs, sharedEnv.Stop())
	}
	if clusterEnv != nil {
		errs = append(errs, clusterEnv.Stop())
	}
	return errors.Join(errs...)
}

package envtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
)

// kcmControllers are the kube-controller-manager controllers the tests need:
// what the operator's CronJobs and Jobs do once created, and what deleting an
// owner does to its dependents. Nothing else runs: no scheduler, no kubelet,
// no ServiceAccount token controller.
const kcmControllers = "cronjob-controller,job-controller,garbage-collector-controller"

// kcmReadyTimeout bounds the wait for the garbage collector to act the first
// time (it builds its graph of every resource first).
const kcmReadyTimeout = 90 * time.Second

type controllerManager struct {
	cmd  *exec.Cmd
	dir  string
	log  *os.File
	done chan error
}

// startControllerManager runs kube-controller-manager as its own user
// (a client certificate of the envtest API server, in its own kubeconfig)
// and waits until its garbage collector deletes a dependent of a deleted
// owner, which shows it is connected and has synced.
func (e *Env) startControllerManager(assets string, opts Options) error {
	controllers := kcmControllers
	if opts.Controllers != "" {
		controllers = opts.Controllers
	}
	args := []string{
		"--controllers=" + controllers,
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-gc-syncs=5",
		"--v=2",
	}
	if opts.ServiceAccounts {
		// The key the API server verifies tokens with (envtest made it),
		// and the CA that ServiceAccount tokens and kube-root-ca.crt carry.
		api := e.env.ControlPlane.GetAPIServer()
		caFile := filepath.Join(api.CertDir, "envtest-root-ca.crt")
		if err := os.WriteFile(caFile, e.Config.CAData, 0o644); err != nil {
			return err
		}
		args = append(args,
			"--service-account-private-key-file="+filepath.Join(api.CertDir, "sa-signer.key"),
			"--root-ca-file="+caFile,
			"--use-service-account-credentials=false",
		)
	}
	// system:masters: the controllers act on every kind the operator's
	// objects touch, as the controller manager's own credentials do in a
	// cluster that does not split them per controller.
	kcm, err := e.startProcess(assets, "kube-controller-manager", args)
	if err != nil {
		return err
	}
	e.kcm = kcm
	if err := e.waitGarbageCollector(); err != nil {
		e.stopControllerManager()
		return err
	}
	return nil
}

// startScheduler runs kube-scheduler as its own user; it needs no wait: a
// pod created before it is ready is scheduled once it is.
func (e *Env) startScheduler(assets string) error {
	s, err := e.startProcess(assets, "kube-scheduler", []string{"--leader-elect=false", "--secure-port=0", "--v=2"})
	if err != nil {
		return err
	}
	e.sched = s
	return nil
}

// startProcess starts a control-plane binary from assets with a kubeconfig
// of a user of its own name in system:masters, logging to a file.
func (e *Env) startProcess(assets, name string, args []string) (*controllerManager, error) {
	user, err := e.env.ControlPlane.AddUser(crenvtest.User{Name: "system:" + name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s user: %w", name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("%s kubeconfig: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "envtest-"+name+"-")
	if err != nil {
		return nil, err
	}
	kcPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(filepath.Join(assets, name), append([]string{"--kubeconfig=" + kcPath}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &controllerManager{cmd: cmd, dir: dir, log: logFile, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// waitGarbageCollector deletes an owner ConfigMap and waits for its
// dependent to go.
func (e *Env) waitGarbageCollector() error {
	ctx, cancel := context.WithTimeout(context.Background(), kcmReadyTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kcm-probe-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return fmt.Errorf("kube-controller-manager probe namespace: %w", err)
	}
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns.Name}}
	if err := e.Client.Create(ctx, owner); err != nil {
		return fmt.Errorf("kube-controller-manager probe: %w", err)
	}
	dep := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dependent", Namespace: ns.Name, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID,
	}}}}
	if err := e.Client.Create(ctx, dep); err != nil {
		return fmt.Errorf("kube-controller-manager probe: %w", err)
	}
	if err := e.Client.Delete(ctx, owner); err != nil {
		return fmt.Errorf("kube-controller-manager probe: %w", err)
	}
	for {
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(dep), &corev1.ConfigMap{})
		if apierrors.IsNotFound(err) {
			_ = e.Client.Delete(context.Background(), ns)
			return nil
		}
		select {
		case err := <-e.kcm.done:
			e.kcm.done <- err
			return fmt.Errorf("kube-controller-manager exited: %v\n%s", err, e.kcm.tail())
		case <-ctx.Done():
			return fmt.Errorf("kube-controller-manager's garbage collector did not act within %s\n%s", kcmReadyTimeout, e.kcm.tail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail is the end of the controller manager's log, for error messages.
func (k *controllerManager) tail() string {
	raw, err := os.ReadFile(k.log.Name())
	if err != nil {
		return ""
	}
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	return string(raw)
}

func (e *Env) stopControllerManager() {
	k := e.kcm
	if k == nil {
		return
	}
	e.kcm = nil
	k.stop()
}

// stop interrupts the process, kills it after 10 s, and removes its files.
func (k *controllerManager) stop() {
	if k.cmd.Process != nil {
		_ = k.cmd.Process.Signal(os.Interrupt)
		select {
		case <-k.done:
		case <-time.After(10 * time.Second):
			_ = k.cmd.Process.Kill()
			<-k.done
		}
	}
	k.log.Close()
	os.RemoveAll(k.dir)
}

// SchedulerLog returns the end of kube-scheduler's log, or an error when it
// is not running.
func (e *Env) SchedulerLog() (string, error) {
	if e.sched == nil {
		return "", errors.New("kube-scheduler is not running in this environment")
	}
	return e.sched.tail(), nil
}

// ControllerManagerLog returns the end of kube-controller-manager's log, or
// an error when it is not running; tests print it when they fail.
func (e *Env) ControllerManagerLog() (string, error) {
	if e.kcm == nil {
		return "", errors.New("kube-controller-manager is not running in this environment")
	}
	return e.kcm.tail(), nil
}

//go:build cluster

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

// The cluster every test uses, started by TestMain.
var (
	env   *envtest.Env
	cs    kubernetes.Interface
	agent *nodeAgent
	// version is what make images stamped into both images.
	version string
)

// kcmControllers: what the operator's objects need in a cluster. The
// ServiceAccount controllers make the default ServiceAccount, the tokens'
// signing works, and kube-root-ca.crt is published for the pods' projected
// token volumes; the namespace controller empties a deleted test namespace.
const kcmControllers = "job-controller,cronjob-controller,garbage-collector-controller,replicaset-controller," +
	"deployment-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller," +
	"namespace-controller"

// deployTimeout bounds make deploy and the operator's rollout (the image
// is local; most of it is controller-gen and kustomize).
const deployTimeout = 5 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// fail reports a setup problem: under CI=true it fails the run, elsewhere
// it skips every test with the reason.
func fail(format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		fmt.Fprintln(os.Stderr, "FAIL: "+msg+" (CI=true: the cluster tests must run, not skip)")
		return 1
	}
	fmt.Fprintln(os.Stderr, "SKIP: "+msg)
	return 0
}

func runMain(m *testing.M) int {
	podman := strings.Fields(os.Getenv("DBARCHIVE_PODMAN"))
	if len(podman) == 0 {
		podman = []string{"podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"}
	}
	if _, err := exec.LookPath(podman[0]); err != nil {
		return fail("podman is not installed (%v): the cluster tests run every pod with it; apt-get install -y podman runc, then make test-cluster", err)
	}
	version = os.Getenv("VERSION")
	imgJob, imgOperator, kubectl := os.Getenv("IMG_JOB"), os.Getenv("IMG_OPERATOR"), os.Getenv("KUBECTL")
	if version == "" || imgJob == "" || imgOperator == "" || kubectl == "" {
		return fail("VERSION, IMG_JOB, IMG_OPERATOR and KUBECTL are not set: run the cluster tests with make test-cluster, which builds the images first")
	}
	for _, img := range []string{imgJob, imgOperator} {
		if err := exec.Command(podman[0], append(podman[1:], "image", "exists", img)...).Run(); err != nil {
			return fail("image %s is not in podman's storage (make images builds it): %v", img, err)
		}
	}
	if _, err := envtest.AssetsDir(); err != nil {
		return fail("envtest binaries: %v (make cluster-assets)", err)
	}

	var err error
	env, err = envtest.StartWith(envtest.Options{
		// As on OpenShift: the operator must own what it owns by its RBAC.
		APIServerArgs:     map[string][]string{"enable-admission-plugins": {"OwnerReferencesPermissionEnforcement"}},
		ControllerManager: true,
		Controllers:       kcmControllers,
		ServiceAccounts:   true,
		Scheduler:         true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the cluster:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the cluster:", err)
		}
	}()
	cs, err = kubernetes.NewForConfig(env.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "dbarchive-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	if err := registerNode(ctx, cs); err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	agent = &nodeAgent{cs: cs, cfg: env.Config, node: nodeName, podman: podman, dir: dir,
		ulimits: strings.Fields(os.Getenv("DBARCHIVE_PODMAN_ULIMITS")),
		logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
		},
		claims: map[string]string{}, pods: map[types.UID]*podRunner{}}
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		agent.run(ctx)
	}()
	defer func() {
		cancel()
		<-agentDone
	}()

	if err := deploy(dir, imgOperator, kubectl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		dumpLogs()
		return 1
	}
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	return code
}

// deploy runs make deploy against the cluster, as a user would with the
// image just built, and waits for the operator's Deployment to be
// available.
func deploy(dir, image, kubectl string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData, Token: env.Config.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), deployTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "make", "deploy", "IMG_OPERATOR="+image, "KUBECTL="+kubectl)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make deploy: %v\n%s", err, out.String())
	}
	fmt.Fprintf(os.Stderr, "make deploy (%s):\n%s", time.Since(start).Round(time.Second), out.String())
	for {
		d, err := cs.AppsV1().Deployments(envtest.OperatorNamespace).Get(ctx, "dbarchive-operator", metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 1 && d.Status.UpdatedReplicas == 1 {
			img := d.Spec.Template.Spec.Containers[0].Image
			if img != image {
				return fmt.Errorf("the operator Deployment runs %s, want %s", img, image)
			}
			fmt.Fprintf(os.Stderr, "operator available %s after make deploy started\n", time.Since(start).Round(time.Second))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator Deployment was not available within %s: %v %+v", deployTimeout, err, deploymentStatus(d))
		case <-time.After(time.Second):
		}
	}
}

func deploymentStatus(d *appsv1.Deployment) any {
	if d == nil {
		return nil
	}
	return d.Status
}

// dumpLogs prints the operator's log and the ends of the controller
// manager's and scheduler's, for a failed run.
func dumpLogs() {
	pods, err := cs.CoreV1().Pods(envtest.OperatorNamespace).List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(os.Stderr, "--- pod %s/%s (%s) log:\n%s\n", p.Namespace, p.Name, p.Status.Phase, agent.Logs(p.Namespace, p.Name))
		}
	}
	if l, err := env.ControllerManagerLog(); err == nil {
		fmt.Fprintf(os.Stderr, "--- kube-controller-manager (end):\n%s\n", l)
	}
	if l, err := env.SchedulerLog(); err == nil {
		fmt.Fprintf(os.Stderr, "--- kube-scheduler (end):\n%s\n", l)
	}
}

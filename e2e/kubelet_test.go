package e2e

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

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/job"
)

// kubelet plays the node for the Jobs the operator creates: it runs the pod
// template's container as a local process, with the container's environment
// (secretKeyRefs resolved from the API server), its Secret volumes written
// out as files, and each PersistentVolumeClaim mapped to a directory. It then
// marks the Job complete or failed through the API, as the Job controller
// would after the pod ended.
type kubelet struct {
	t      *testing.T
	c      client.Client
	cfg    *rest.Config
	binary string
	// claims maps a PersistentVolumeClaim name to the directory standing in
	// for its volume.
	claims map[string]string
}

// podRun is what one container run produced.
type podRun struct {
	exitErr error
	output  string
	env     []string
}

// runJob runs job's pod and records the outcome in the Job's status.
func (k *kubelet) runJob(ctx context.Context, j *batchv1.Job) podRun {
	k.t.Helper()
	start := metav1.Now()
	// The labels the Job controller gives the Job's pods.
	labels := map[string]string{dbv1.JobNameLabel: j.Name, "job-name": j.Name}
	for k, v := range j.Spec.Template.Labels {
		labels[k] = v
	}
	run := k.runPod(ctx, j.Namespace, j.Spec.Template.Spec, labels)
	k.t.Logf("job %s/%s: exit %v\n%s", j.Namespace, j.Name, run.exitErr, run.output)
	k.finishJob(ctx, j, start, run.exitErr == nil)
	return run
}

func (k *kubelet) runPod(ctx context.Context, ns string, spec corev1.PodSpec, labels map[string]string) podRun {
	k.t.Helper()
	if len(spec.Containers) != 1 {
		k.t.Fatalf("pod has %d containers, want 1", len(spec.Containers))
	}
	ctr := spec.Containers[0]
	if len(ctr.Command) == 0 || ctr.Command[0] != "dbarchive" {
		k.t.Fatalf("container command %q is not the dbarchive binary", ctr.Command)
	}
	root := k.t.TempDir()
	for _, m := range ctr.VolumeMounts {
		k.mount(ctx, ns, root, spec.Volumes, m)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(root, "tmp"),
		"TMPDIR=" + filepath.Join(root, "tmp"),
		"KUBECONFIG=" + k.kubeconfig(ns, spec.ServiceAccountName),
		job.EnvMountRoot + "=" + root,
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			sec := &corev1.Secret{}
			if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, sec); err != nil {
				k.t.Fatalf("env %s: secret %s: %v", e.Name, ref.Name, err)
			}
			env = append(env, e.Name+"="+string(sec.Data[ref.Key]))
		case e.ValueFrom.FieldRef != nil:
			// The downward API, for the fields the operator uses.
			path := e.ValueFrom.FieldRef.FieldPath
			if !strings.HasPrefix(path, "metadata.labels['") || !strings.HasSuffix(path, "']") {
				k.t.Fatalf("env %s: unsupported fieldRef %s", e.Name, path)
			}
			env = append(env, e.Name+"="+labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")])
		default:
			k.t.Fatalf("env %s: unsupported valueFrom %+v", e.Name, e.ValueFrom)
		}
	}
	args := append(append([]string{}, ctr.Command[1:]...), ctr.Args...)
	cmd := exec.CommandContext(ctx, k.binary, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return podRun{exitErr: err, output: out.String(), env: env}
}

// mount lays out one volume mount under root.
func (k *kubelet) mount(ctx context.Context, ns, root string, volumes []corev1.Volume, m corev1.VolumeMount) {
	k.t.Helper()
	var vol *corev1.Volume
	for i := range volumes {
		if volumes[i].Name == m.Name {
			vol = &volumes[i]
		}
	}
	if vol == nil {
		k.t.Fatalf("volume mount %s names no volume", m.Name)
	}
	dir := filepath.Join(root, m.MountPath)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		k.t.Fatal(err)
	}
	switch {
	case vol.EmptyDir != nil:
		must(k.t, os.MkdirAll(dir, 0o755))
	case vol.Secret != nil:
		sec := &corev1.Secret{}
		if err := k.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: vol.Secret.SecretName}, sec); err != nil {
			k.t.Fatalf("volume %s: secret %s: %v", vol.Name, vol.Secret.SecretName, err)
		}
		must(k.t, os.MkdirAll(dir, 0o755))
		files := map[string][]byte{}
		if len(vol.Secret.Items) == 0 {
			files = sec.Data
		}
		for _, it := range vol.Secret.Items {
			files[it.Path] = sec.Data[it.Key]
		}
		for name, data := range files {
			must(k.t, os.WriteFile(filepath.Join(dir, name), data, 0o400))
		}
	case vol.PersistentVolumeClaim != nil:
		claim, ok := k.claims[vol.PersistentVolumeClaim.ClaimName]
		if !ok {
			k.t.Fatalf("volume %s: no directory stands in for claim %s", vol.Name, vol.PersistentVolumeClaim.ClaimName)
		}
		must(k.t, os.Symlink(claim, dir))
	default:
		k.t.Fatalf("volume %s: unsupported source", vol.Name)
	}
}

// kubeconfig writes a kubeconfig that acts as the pod's ServiceAccount, so
// the job runs with exactly the RBAC the operator gave it.
func (k *kubelet) kubeconfig(ns, sa string) string {
	k.t.Helper()
	if sa == "" {
		sa = "default"
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: k.cfg.Host, CertificateAuthorityData: k.cfg.CAData}
	kc.AuthInfos["pod"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: k.cfg.CertData,
		ClientKeyData:         k.cfg.KeyData,
		Token:                 k.cfg.BearerToken,
		Impersonate:           fmt.Sprintf("system:serviceaccount:%s:%s", ns, sa),
		ImpersonateGroups:     []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	kc.Contexts["pod"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "pod", Namespace: ns}
	kc.CurrentContext = "pod"
	path := filepath.Join(k.t.TempDir(), "kubeconfig")
	must(k.t, clientcmd.WriteToFile(*kc, path))
	return path
}

// finishJob writes the terminal status the Job controller would.
func (k *kubelet) finishJob(ctx context.Context, j *batchv1.Job, start metav1.Time, ok bool) {
	k.t.Helper()
	now := metav1.Now()
	// The operator may annotate the Job meanwhile (an outcome the job
	// reported before its pod ended): read and write again on a conflict,
	// as the Job controller does.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &batchv1.Job{}
		if err := k.c.Get(ctx, client.ObjectKeyFromObject(j), fresh); err != nil {
			return err
		}
		fresh.Status.StartTime = &start
		cond := func(t batchv1.JobConditionType, reason string) batchv1.JobCondition {
			return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, LastProbeTime: now, LastTransitionTime: now}
		}
		if ok {
			fresh.Status.Succeeded = 1
			fresh.Status.CompletionTime = &now
			fresh.Status.Conditions = append(fresh.Status.Conditions,
				cond(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached),
				cond(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
		} else {
			fresh.Status.Failed = 1
			fresh.Status.Conditions = append(fresh.Status.Conditions,
				cond(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded),
				cond(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded))
		}
		return k.c.Status().Update(ctx, fresh)
	})
	if err != nil {
		k.t.Fatalf("mark job %s finished: %v", j.Name, err)
	}
}

// waitForJob waits until a Job whose name starts with prefix exists in ns.
func waitForJob(t *testing.T, c client.Client, ns, prefix string) *batchv1.Job {
	t.Helper()
	var found *batchv1.Job
	eventually(t, 60*time.Second, func() error {
		list := &batchv1.JobList{}
		if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, prefix) {
				found = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("no Job %s* in %s yet", prefix, ns)
	})
	return found
}

func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

//go:build cluster

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// nodeAgent plays the kubelet of one Node, and nothing else: it runs the
// containers of the Pods the scheduler binds to its Node with podman, from
// the image the Pod names, applying the security context (user, group,
// non-root check, read-only root filesystem, dropped capabilities, no
// privilege escalation), the environment (values, Secret and ConfigMap
// keys, the downward API's namespace and name), the volumes (Secret,
// ConfigMap, emptyDir, projected ServiceAccount token, PVCs mapped to
// directories), and reports the Pod's phase and container states back, so
// that the real Job, ReplicaSet and garbage-collector controllers decide.
// A Pod being deleted gets SIGTERM (podman stop with its grace period), and
// is removed once its container has ended, as the kubelet does.
//
// Containers share the host's network, so that they reach the API server,
// the databases and the emulators on 127.0.0.1. Secrets never reach
// podman's command line: the environment goes through a 0600 --env-file
// and Secret volumes are files.
type nodeAgent struct {
	cs      kubernetes.Interface
	cfg     *rest.Config
	node    string
	podman  []string
	ulimits []string
	dir     string
	logf    func(format string, args ...any)

	mu     sync.Mutex
	claims map[string]string // "namespace/claim" -> host directory
	pods   map[types.UID]*podRunner
}

// podRunner is one Pod the agent has taken on.
type podRunner struct {
	pod      *corev1.Pod
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	logPath  string
}

func (r *podRunner) requestStop() { r.stopOnce.Do(func() { close(r.stop) }) }

const nodeName = "node-1"

// registerNode registers the agent's Node: Ready, with room for the tests'
// pods, as a kubelet registers it. No node-lifecycle controller runs, so no
// heartbeat is needed to keep it Ready.
func registerNode(ctx context.Context, cs kubernetes.Interface) error {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		"kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}}}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "node agent (podman) is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: nodeName}},
		NodeInfo:  corev1.NodeSystemInfo{Architecture: "amd64", OperatingSystem: "linux", ContainerRuntimeVersion: "podman://", KubeletVersion: "v1.37.2"},
	}
	updated, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	// The API server's TaintNodesByCondition admission taints a new Node
	// not-ready; the node-lifecycle controller lifts the taint once the
	// Node reports Ready. That controller is not run (it would want
	// heartbeats), so the agent lifts it as it would.
	var keep []corev1.Taint
	for _, t := range updated.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			keep = append(keep, t)
		}
	}
	updated.Spec.Taints = keep
	if _, err := cs.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("lift the not-ready taint: %w", err)
	}
	return nil
}

// mapClaim makes dir stand in for the volume bound to claim in ns.
func (a *nodeAgent) mapClaim(ns, claim, dir string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.claims[ns+"/"+claim] = dir
}

// run polls the Pods bound to the Node until ctx ends, then stops every
// container it started.
func (a *nodeAgent) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		a.sync(ctx)
		select {
		case <-ctx.Done():
			a.mu.Lock()
			runners := make([]*podRunner, 0, len(a.pods))
			for _, r := range a.pods {
				runners = append(runners, r)
			}
			a.mu.Unlock()
			for _, r := range runners {
				r.requestStop()
			}
			for _, r := range runners {
				select {
				case <-r.done:
				case <-time.After(60 * time.Second):
					a.logf("node: pod %s/%s did not stop within 60 s", r.pod.Namespace, r.pod.Name)
				}
			}
			return
		case <-tick.C:
		}
	}
}

func (a *nodeAgent) sync(ctx context.Context) {
	list, err := a.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + a.node})
	if err != nil {
		if ctx.Err() == nil {
			a.logf("node: list pods: %v", err)
		}
		return
	}
	for i := range list.Items {
		pod := &list.Items[i]
		a.mu.Lock()
		r, known := a.pods[pod.UID]
		a.mu.Unlock()
		switch {
		case known && pod.DeletionTimestamp != nil:
			r.requestStop()
		case known:
		case pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			// Nothing of ours runs: a deleted pod can go now.
			if pod.DeletionTimestamp != nil {
				a.finalize(ctx, pod)
			}
		default:
			r := &podRunner{pod: pod, stop: make(chan struct{}), done: make(chan struct{}),
				logPath: filepath.Join(a.dir, "logs", pod.Namespace+"_"+pod.Name+".log")}
			a.mu.Lock()
			a.pods[pod.UID] = r
			a.mu.Unlock()
			go func() {
				defer close(r.done)
				a.runPod(ctx, r)
			}()
		}
	}
}

// finalize removes a deleted pod whose containers have ended, as the
// kubelet does with a zero grace period once it has stopped them.
func (a *nodeAgent) finalize(ctx context.Context, pod *corev1.Pod) {
	err := a.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		a.logf("node: delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// Logs returns what the pod's containers wrote, for test failure messages.
// A running container's log is read from podman.
func (a *nodeAgent) Logs(ns, pod string) string {
	raw, err := os.ReadFile(filepath.Join(a.dir, "logs", ns+"_"+pod+".log"))
	if err == nil {
		return string(raw)
	}
	a.mu.Lock()
	var running *corev1.Pod
	for _, r := range a.pods {
		if r.pod.Namespace == ns && r.pod.Name == pod {
			running = r.pod
		}
	}
	a.mu.Unlock()
	if running != nil {
		out, lerr := exec.Command(a.podman[0], append(append([]string{}, a.podman[1:]...), "logs", containerName(running))...).CombinedOutput()
		if lerr == nil {
			return string(out)
		}
	}
	return fmt.Sprintf("(no log: %v)", err)
}

// runPod runs the pod's one container until it ends (restarting it per the
// restart policy) or the pod is deleted, and reports each step.
func (a *nodeAgent) runPod(ctx context.Context, r *podRunner) {
	pod := r.pod
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) > 0 {
		a.setWaiting(ctx, pod, "CreateContainerConfigError", "the node agent runs pods of exactly one container", 0)
		<-r.stop
		a.finalize(ctx, pod)
		return
	}
	ctr := pod.Spec.Containers[0]
	restarts := int32(0)
	lastWaiting := ""
	for {
		// Like the kubelet, retry what may resolve itself (a Secret created
		// later) until the pod is deleted.
		args, cleanup, reason, err := a.prepare(ctx, pod, &ctr)
		if err != nil {
			if w := reason + ": " + err.Error(); w != lastWaiting {
				lastWaiting = w
				a.setWaiting(ctx, pod, reason, err.Error(), restarts)
			}
			select {
			case <-r.stop:
				cleanup()
				a.finalize(ctx, pod)
				return
			case <-time.After(2 * time.Second):
				cleanup()
				continue
			}
		}
		exit, stopped := a.runContainer(ctx, r, pod, &ctr, args, restarts)
		cleanup()
		again := !stopped && (pod.Spec.RestartPolicy == corev1.RestartPolicyAlways ||
			(pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && exit.ExitCode != 0))
		if !again {
			a.setTerminated(ctx, pod, exit, restarts)
			if stopped {
				a.finalize(ctx, pod)
			} else {
				// The pod stays until someone deletes it (the Job's TTL,
				// the garbage collector); then it is removed at once.
				<-r.stop
				a.finalize(ctx, pod)
			}
			return
		}
		restarts++
		select {
		case <-r.stop:
			a.setTerminated(ctx, pod, exit, restarts)
			a.finalize(ctx, pod)
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// prepare lays out the volumes and the environment of ctr and returns the
// podman run arguments after "run". The reason is the container's waiting
// reason when it cannot start.
func (a *nodeAgent) prepare(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container) (args []string, cleanup func(), reason string, err error) {
	podDir, err := os.MkdirTemp(a.dir, "pod-"+pod.Name+"-")
	if err != nil {
		return nil, func() {}, "CreateContainerConfigError", err
	}
	cleanup = func() { os.RemoveAll(podDir) }
	// Other users (the container's) must reach the volumes inside.
	if err := os.Chmod(podDir, 0o755); err != nil {
		return nil, cleanup, "CreateContainerConfigError", err
	}
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := ctr.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}

	// The user, and the kubelet's non-root check against the image's user.
	if out, err := a.podmanOut(ctx, "image", "exists", ctr.Image); err != nil {
		return nil, cleanup, "ErrImageNeverPull", fmt.Errorf("container image %q is not present on the node: %v %s", ctr.Image, err, out)
	}
	imageUser, err := a.podmanOut(ctx, "image", "inspect", "--format", "{{.Config.User}}", ctr.Image)
	if err != nil {
		return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("inspect image %s: %v", ctr.Image, err)
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	gid := sc.RunAsGroup
	if gid == nil {
		gid = psc.RunAsGroup
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	user := ""
	if uid != nil {
		user = strconv.FormatInt(*uid, 10)
		if gid != nil {
			user += ":" + strconv.FormatInt(*gid, 10)
		}
	}
	if ptr.Deref(nonRoot, false) {
		// The kubelet's checks and messages (verifyRunAsNonRoot).
		if uid != nil && *uid == 0 {
			return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod.Name, ctr.Name)
		}
		if uid == nil {
			name, _, _ := strings.Cut(strings.TrimSpace(imageUser), ":")
			n, convErr := strconv.ParseInt(name, 10, 64)
			switch {
			case name == "" || name == "root" || (convErr == nil && n == 0):
				return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Name, ctr.Name)
			case convErr != nil:
				return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", name, pod.Name, ctr.Name)
			}
		}
	}

	name := containerName(pod)
	args = []string{"run", "--detach", "--name", name, "--pull", "never", "--network", "host",
		"--label", "io.kubernetes.pod.uid=" + string(pod.UID)}
	args = append(args, a.ulimits...)
	if user != "" {
		args = append(args, "--user", user)
	}
	fsGroup := psc.FSGroup
	if fsGroup != nil {
		args = append(args, "--group-add", strconv.FormatInt(*fsGroup, 10))
	}
	for _, g := range psc.SupplementalGroups {
		args = append(args, "--group-add", strconv.FormatInt(g, 10))
	}
	if ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		// podman's --read-only mounts tmpfs on /tmp, /run and /var/tmp by
		// default; a read-only root in Kubernetes has none of them.
		args = append(args, "--read-only", "--read-only-tmpfs=false")
	}
	if caps := sc.Capabilities; caps != nil {
		for _, c := range caps.Drop {
			args = append(args, "--cap-drop", string(c))
		}
		for _, c := range caps.Add {
			args = append(args, "--cap-add", string(c))
		}
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if ptr.Deref(sc.Privileged, false) {
		return nil, cleanup, "CreateContainerConfigError", errors.New("privileged containers are not run by this node")
	}
	if lim, ok := ctr.Resources.Limits[corev1.ResourceMemory]; ok {
		args = append(args, "--memory", strconv.FormatInt(lim.Value(), 10))
	}
	if ctr.WorkingDir != "" {
		args = append(args, "--workdir", ctr.WorkingDir)
	}

	// Volumes.
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir, err := a.volume(ctx, pod, v, podDir, fsGroup)
		if err != nil {
			return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("volume %s: %w", v.Name, err)
		}
		vols[v.Name] = dir
	}
	for _, m := range ctr.VolumeMounts {
		dir, ok := vols[m.Name]
		if !ok {
			return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("volume mount %s names no volume", m.Name)
		}
		if m.SubPath != "" {
			dir = filepath.Join(dir, m.SubPath)
		}
		opt := dir + ":" + m.MountPath
		if m.ReadOnly {
			opt += ":ro"
		}
		args = append(args, "--volume", opt)
	}

	// The environment, in a file only root can read.
	env, err := a.env(ctx, pod, ctr)
	if err != nil {
		return nil, cleanup, "CreateContainerConfigError", err
	}
	var buf bytes.Buffer
	for _, kv := range env {
		if strings.ContainsAny(kv, "\n\r") {
			return nil, cleanup, "CreateContainerConfigError", fmt.Errorf("environment variable %s holds a newline, which an env file cannot carry", strings.SplitN(kv, "=", 2)[0])
		}
		buf.WriteString(kv)
		buf.WriteByte('\n')
	}
	envFile := filepath.Join(podDir, "env")
	if err := os.WriteFile(envFile, buf.Bytes(), 0o600); err != nil {
		return nil, cleanup, "CreateContainerConfigError", err
	}
	args = append(args, "--env-file", envFile)

	// command replaces the image's entrypoint, args its cmd.
	if len(ctr.Command) > 0 {
		args = append(args, "--entrypoint", jsonArray(ctr.Command))
	}
	args = append(args, ctr.Image)
	args = append(args, ctr.Args...)
	return args, cleanup, "", nil
}

func containerName(pod *corev1.Pod) string {
	return "k8s_" + pod.Namespace + "_" + pod.Name + "_" + string(pod.UID)[:8]
}

// jsonArray is podman's --entrypoint form for an argv.
func jsonArray(argv []string) string {
	parts := make([]string, len(argv))
	for i, s := range argv {
		parts[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// volume lays out one volume under podDir and returns its host directory.
func (a *nodeAgent) volume(ctx context.Context, pod *corev1.Pod, v corev1.Volume, podDir string, fsGroup *int64) (string, error) {
	dir := filepath.Join(podDir, "volumes", v.Name)
	switch {
	case v.EmptyDir != nil:
		// The kubelet makes emptyDirs world-writable.
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return "", err
		}
		return dir, os.Chmod(dir, 0o777)
	case v.PersistentVolumeClaim != nil:
		a.mu.Lock()
		claimDir, ok := a.claims[pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName]
		a.mu.Unlock()
		if !ok {
			return "", fmt.Errorf("no directory stands in for claim %s", v.PersistentVolumeClaim.ClaimName)
		}
		if fsGroup != nil {
			// fsGroup ownership, as for volumes that support it.
			if err := os.Chown(claimDir, 0, int(*fsGroup)); err != nil {
				return "", err
			}
			if err := os.Chmod(claimDir, 0o2775); err != nil {
				return "", err
			}
		}
		return claimDir, nil
	case v.Secret != nil:
		sec, err := a.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		files, err := keyFiles(sec.Data, v.Secret.Items, v.Secret.DefaultMode)
		if err != nil {
			return "", fmt.Errorf("secret %s: %w", sec.Name, err)
		}
		return dir, writeFiles(dir, files, fsGroup)
	case v.ConfigMap != nil:
		cm, err := a.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		files, err := keyFiles(stringData(cm.Data), v.ConfigMap.Items, v.ConfigMap.DefaultMode)
		if err != nil {
			return "", fmt.Errorf("configmap %s: %w", cm.Name, err)
		}
		return dir, writeFiles(dir, files, fsGroup)
	case v.Projected != nil:
		files := map[string]file{}
		for _, src := range v.Projected.Sources {
			var part map[string]file
			var err error
			switch {
			case src.ServiceAccountToken != nil:
				part, err = a.token(ctx, pod, src.ServiceAccountToken, v.Projected.DefaultMode)
			case src.ConfigMap != nil:
				var cm *corev1.ConfigMap
				cm, err = a.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
				if err == nil {
					part, err = keyFiles(stringData(cm.Data), src.ConfigMap.Items, v.Projected.DefaultMode)
				}
			case src.Secret != nil:
				var sec *corev1.Secret
				sec, err = a.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, src.Secret.Name, metav1.GetOptions{})
				if err == nil {
					part, err = keyFiles(sec.Data, src.Secret.Items, v.Projected.DefaultMode)
				}
			case src.DownwardAPI != nil:
				part = map[string]file{}
				for _, it := range src.DownwardAPI.Items {
					if it.FieldRef == nil {
						return "", fmt.Errorf("downward API item %s: only fieldRef is supported", it.Path)
					}
					val, ferr := fieldValue(pod, it.FieldRef.FieldPath)
					if ferr != nil {
						return "", ferr
					}
					part[it.Path] = file{data: []byte(val), mode: mode(it.Mode, v.Projected.DefaultMode)}
				}
			default:
				return "", errors.New("unsupported projected source")
			}
			if err != nil {
				return "", err
			}
			for k, f := range part {
				files[k] = f
			}
		}
		return dir, writeFiles(dir, files, fsGroup)
	}
	return "", errors.New("unsupported volume source")
}

type file struct {
	data []byte
	mode os.FileMode
}

func mode(item, def *int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item)
	}
	if def != nil {
		return os.FileMode(*def)
	}
	return 0o644
}

func stringData(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}

// keyFiles is the files of a Secret or ConfigMap volume: every key, or the
// items asked for (a missing key is an error, as for the kubelet).
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defMode *int32) (map[string]file, error) {
	files := map[string]file{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = file{data: v, mode: mode(nil, defMode)}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("key %s not found", it.Key)
		}
		files[it.Path] = file{data: v, mode: mode(it.Mode, defMode)}
	}
	return files, nil
}

// writeFiles writes a volume's files, group-owned by fsGroup when set.
func writeFiles(dir string, files map[string]file, fsGroup *int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			return err
		}
		if fsGroup != nil {
			if err := os.Chown(p, 0, int(*fsGroup)); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// token asks the API server for a token of the pod's ServiceAccount, bound
// to the pod, as the kubelet does for a projected token volume.
func (a *nodeAgent) token(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, defMode *int32) (map[string]file, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := a.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token of service account %s: %w", sa, err)
	}
	return map[string]file{src.Path: {data: []byte(tr.Status.Token), mode: mode(nil, defMode)}}, nil
}

// fieldValue is the downward API for the fields the tests' pods use.
func fieldValue(pod *corev1.Pod, path string) (string, error) {
	switch {
	case path == "metadata.namespace":
		return pod.Namespace, nil
	case path == "metadata.name":
		return pod.Name, nil
	case path == "metadata.uid":
		return string(pod.UID), nil
	case path == "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case path == "spec.nodeName":
		return pod.Spec.NodeName, nil
	case strings.HasPrefix(path, "metadata.labels['") && strings.HasSuffix(path, "']"):
		return pod.Labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")], nil
	case strings.HasPrefix(path, "metadata.annotations['") && strings.HasSuffix(path, "']"):
		return pod.Annotations[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.annotations['"), "']")], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %s", path)
}

// env is the container's environment as the kubelet builds it: the
// Kubernetes service variables (pointing at the API server itself, which the
// host network reaches), then the container's variables with their
// references resolved.
func (a *nodeAgent) env(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container) ([]string, error) {
	u, err := url.Parse(a.cfg.Host)
	if err != nil {
		return nil, err
	}
	env := []string{
		"KUBERNETES_SERVICE_HOST=" + u.Hostname(),
		"KUBERNETES_SERVICE_PORT=" + u.Port(),
		"KUBERNETES_SERVICE_PORT_HTTPS=" + u.Port(),
	}
	for _, from := range ctr.EnvFrom {
		return nil, fmt.Errorf("envFrom %+v is not supported by this node", from)
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+e.Value)
			continue
		}
		switch src := e.ValueFrom; {
		case src.SecretKeyRef != nil:
			sec, err := a.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && ptr.Deref(src.SecretKeyRef.Optional, false) {
					continue
				}
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v, ok := sec.Data[src.SecretKeyRef.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: couldn't find key %s in Secret %s/%s", e.Name, src.SecretKeyRef.Key, pod.Namespace, sec.Name)
			}
			env = append(env, e.Name+"="+string(v))
		case src.ConfigMapKeyRef != nil:
			cm, err := a.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v, ok := cm.Data[src.ConfigMapKeyRef.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: couldn't find key %s in ConfigMap %s/%s", e.Name, src.ConfigMapKeyRef.Key, pod.Namespace, cm.Name)
			}
			env = append(env, e.Name+"="+v)
		case src.FieldRef != nil:
			v, err := fieldValue(pod, src.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env = append(env, e.Name+"="+v)
		default:
			return nil, fmt.Errorf("env %s: unsupported valueFrom", e.Name)
		}
	}
	return env, nil
}

// runContainer starts the container, reports it running, waits for it to
// end or for the pod's deletion (then stops it with the grace period), and
// returns its terminated state.
func (a *nodeAgent) runContainer(ctx context.Context, r *podRunner, pod *corev1.Pod, ctr *corev1.Container, args []string, restarts int32) (corev1.ContainerStateTerminated, bool) {
	name := containerName(pod)
	// A previous run's container of the same name (a restart).
	_, _ = a.podmanOut(context.Background(), "rm", "--force", "--ignore", name)
	out, err := a.podmanOut(ctx, args...)
	if err != nil {
		msg := fmt.Sprintf("podman run: %v: %s", err, out)
		a.appendLog(r, msg+"\n")
		return corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: msg, FinishedAt: metav1.Now()}, false
	}
	id := strings.TrimSpace(out)
	started := metav1.Now()
	a.setRunning(ctx, pod, id, started, restarts)

	waited := make(chan string, 1)
	go func() {
		o, _ := a.podmanOut(context.Background(), "wait", name)
		waited <- strings.TrimSpace(o)
	}()
	probeStop := make(chan struct{})
	go a.probeReadiness(ctx, pod, ctr, probeStop)
	stopped := false
	var code string
	select {
	case code = <-waited:
	case <-r.stop:
		stopped = true
	case <-ctx.Done():
		stopped = true
	}
	close(probeStop)
	if stopped {
		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		if dt := pod.DeletionGracePeriodSeconds; dt != nil {
			grace = *dt
		}
		if fresh, err := a.cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{}); err == nil && fresh.DeletionGracePeriodSeconds != nil {
			grace = *fresh.DeletionGracePeriodSeconds
		}
		a.logf("node: stopping %s/%s (SIGTERM, grace %d s)", pod.Namespace, pod.Name, grace)
		_, _ = a.podmanOut(context.Background(), "stop", "--time", strconv.FormatInt(grace, 10), name)
		code = <-waited
	}
	// Both streams, as kubectl logs shows them.
	logCmd := exec.Command(a.podman[0], append(append([]string{}, a.podman[1:]...), "logs", name)...)
	rawLogs, _ := logCmd.CombinedOutput()
	logs := string(rawLogs)
	a.appendLog(r, logs)
	state := corev1.ContainerStateTerminated{StartedAt: started, FinishedAt: metav1.Now(), ContainerID: "podman://" + id}
	n, err := strconv.Atoi(code)
	if err != nil {
		n = 137
	}
	state.ExitCode = int32(n)
	oom, _ := a.podmanOut(context.Background(), "inspect", "--format", "{{.State.OOMKilled}}", name)
	switch {
	case strings.TrimSpace(oom) == "true":
		state.Reason = "OOMKilled"
	case n == 0:
		state.Reason = "Completed"
	default:
		state.Reason = "Error"
	}
	if n != 0 && ctr.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		state.Message = tail(logs, 2048)
	}
	_, _ = a.podmanOut(context.Background(), "rm", "--force", "--ignore", name)
	return state, stopped
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func (a *nodeAgent) appendLog(r *podRunner, s string) {
	if err := os.MkdirAll(filepath.Dir(r.logPath), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(r.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(s)
}

// probeReadiness runs the container's HTTP readiness probe (on the host
// network) and reports Ready; without a probe the container is ready once
// running.
func (a *nodeAgent) probeReadiness(ctx context.Context, pod *corev1.Pod, ctr *corev1.Container, stop <-chan struct{}) {
	p := ctr.ReadinessProbe
	if p == nil || p.HTTPGet == nil {
		a.setReady(ctx, pod, true)
		return
	}
	port := p.HTTPGet.Port.IntValue()
	if port == 0 {
		for _, cp := range ctr.Ports {
			if cp.Name == p.HTTPGet.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	if period > 2*time.Second {
		// Faster than the manifest asks, to keep the tests short; the
		// answer is the same.
		period = 2 * time.Second
	}
	client := &http.Client{Timeout: 2 * time.Second}
	ready := false
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p.HTTPGet.Path))
		ok := err == nil && resp.StatusCode >= 200 && resp.StatusCode < 400
		if resp != nil {
			resp.Body.Close()
		}
		if ok != ready {
			ready = ok
			a.setReady(ctx, pod, ok)
		}
	}
}

// updateStatus applies change to a fresh copy of the pod's status.
func (a *nodeAgent) updateStatus(ctx context.Context, pod *corev1.Pod, change func(*corev1.Pod)) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh, err := a.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if fresh.UID != pod.UID {
			return nil
		}
		change(fresh)
		_, err = a.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, fresh, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		a.logf("node: status of pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func setCondition(p *corev1.Pod, t corev1.PodConditionType, ok bool, reason string) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != status {
				p.Status.Conditions[i].Status = status
				p.Status.Conditions[i].Reason = reason
				p.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: metav1.Now()})
}

func (a *nodeAgent) baseStatus(p *corev1.Pod, state corev1.ContainerState, restarts int32, ready bool) {
	ctr := p.Spec.Containers[0]
	if p.Status.StartTime == nil {
		p.Status.StartTime = ptr.To(metav1.Now())
	}
	p.Status.HostIP = "127.0.0.1"
	p.Status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	p.Status.PodIP = "127.0.0.1"
	p.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	cs := corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, ImageID: ctr.Image, State: state, RestartCount: restarts, Ready: ready,
		Started: ptr.To(state.Running != nil)}
	if state.Running != nil {
		cs.ContainerID = "podman://" + p.Annotations["node.dbarchive.io/container-id"]
	}
	if state.Terminated != nil {
		cs.ContainerID = state.Terminated.ContainerID
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	setCondition(p, corev1.PodInitialized, true, "")
}

func (a *nodeAgent) setWaiting(ctx context.Context, pod *corev1.Pod, reason, msg string, restarts int32) {
	a.logf("node: pod %s/%s waiting: %s: %s", pod.Namespace, pod.Name, reason, msg)
	a.updateStatus(ctx, pod, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodPending
		a.baseStatus(p, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}, restarts, false)
		setCondition(p, corev1.ContainersReady, false, "ContainersNotReady")
		setCondition(p, corev1.PodReady, false, "ContainersNotReady")
	})
}

func (a *nodeAgent) setRunning(ctx context.Context, pod *corev1.Pod, id string, started metav1.Time, restarts int32) {
	a.updateStatus(ctx, pod, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		a.baseStatus(p, corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}, restarts, false)
		p.Status.ContainerStatuses[0].ContainerID = "podman://" + id
	})
}

func (a *nodeAgent) setReady(ctx context.Context, pod *corev1.Pod, ready bool) {
	a.updateStatus(ctx, pod, func(p *corev1.Pod) {
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
			return
		}
		p.Status.ContainerStatuses[0].Ready = ready
		setCondition(p, corev1.ContainersReady, ready, "")
		setCondition(p, corev1.PodReady, ready, "")
	})
}

func (a *nodeAgent) setTerminated(ctx context.Context, pod *corev1.Pod, state corev1.ContainerStateTerminated, restarts int32) {
	a.logf("node: pod %s/%s: container ended with exit code %d (%s)", pod.Namespace, pod.Name, state.ExitCode, state.Reason)
	a.updateStatus(ctx, pod, func(p *corev1.Pod) {
		if state.ExitCode == 0 {
			p.Status.Phase = corev1.PodSucceeded
		} else {
			p.Status.Phase = corev1.PodFailed
		}
		a.baseStatus(p, corev1.ContainerState{Terminated: &state}, restarts, false)
		setCondition(p, corev1.ContainersReady, false, "PodCompleted")
		setCondition(p, corev1.PodReady, false, "PodCompleted")
	})
}

// podmanOut runs podman with args and returns its standard output; on an
// error the output is its standard error.
func (a *nodeAgent) podmanOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, a.podman[0], append(append([]string{}, a.podman[1:]...), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), err
	}
	return stdout.String(), nil
}

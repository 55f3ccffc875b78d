//go:build cluster

package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// The node agent enforces the pod's sandbox as a kubelet does, so that the
// tests above would see a job that needs root or writes outside its
// volumes fail: a container that would run as root against runAsNonRoot
// never starts, and a read-only root filesystem refuses writes while the
// emptyDir at /tmp takes them, as user 65532.
func TestNodeEnforcesSandbox(t *testing.T) {
	f := newFixture(t, "sandbox")
	jobImage := dbv1.JobImage(version)
	sandbox := func(name, image string, uid *int64, script string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
			Spec: corev1.PodSpec{
				RestartPolicy:   corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: uid},
				Volumes:         []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				Containers: []corev1.Container{{
					Name: "c", Image: image, Command: []string{"sh", "-c", script},
					VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					SecurityContext: &corev1.SecurityContext{
						ReadOnlyRootFilesystem:   ptr.To(true),
						AllowPrivilegeEscalation: ptr.To(false),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
				}},
			},
		}
	}
	create := func(p *corev1.Pod) {
		// The ServiceAccount admission plugin refuses pods until the
		// namespace's default ServiceAccount exists.
		eventually(t, 30*time.Second, func() error {
			_, err := cs.CoreV1().Pods(f.ns).Create(f.ctx, p, metav1.CreateOptions{})
			return err
		})
	}
	waitPod := func(name string, done func(*corev1.Pod) bool) *corev1.Pod {
		var p *corev1.Pod
		eventually(t, 2*time.Minute, func() error {
			var err error
			if p, err = cs.CoreV1().Pods(f.ns).Get(f.ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
			if !done(p) {
				return fmt.Errorf("pod %s: %s %+v", name, p.Status.Phase, p.Status.ContainerStatuses)
			}
			return nil
		})
		return p
	}
	waiting := func(p *corev1.Pod) *corev1.ContainerStateWaiting {
		if len(p.Status.ContainerStatuses) == 1 {
			return p.Status.ContainerStatuses[0].State.Waiting
		}
		return nil
	}

	create(sandbox("as-root-uid", jobImage, ptr.To[int64](0), "id -u"))
	create(sandbox("root-image", "docker.io/library/debian:trixie-slim", nil, "id -u"))
	create(sandbox("write-root", jobImage, nil, "touch /usr/local/bin/planted"))
	create(sandbox("write-tmp", jobImage, nil, "touch /tmp/ok && id -u && id -G"))

	for _, name := range []string{"as-root-uid", "root-image"} {
		p := waitPod(name, func(p *corev1.Pod) bool {
			return waiting(p) != nil && waiting(p).Reason == "CreateContainerConfigError"
		})
		if w := waiting(p); !strings.Contains(w.Message, "non-root") && !strings.Contains(w.Message, "run as root") {
			t.Errorf("pod %s waits with %q, want the non-root refusal", name, w.Message)
		}
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("pod %s is %s, want Pending", name, p.Status.Phase)
		}
	}
	terminal := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	if p := waitPod("write-root", terminal); p.Status.Phase != corev1.PodFailed {
		t.Errorf("writing to the read-only root: pod %s, want Failed\n%s", p.Status.Phase, agent.Logs(f.ns, p.Name))
	} else if !strings.Contains(agent.Logs(f.ns, "write-root"), "Read-only file system") {
		t.Errorf("write-root log %q does not show the read-only refusal", agent.Logs(f.ns, "write-root"))
	}
	p := waitPod("write-tmp", terminal)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("writing to the emptyDir: pod %s\n%s", p.Status.Phase, agent.Logs(f.ns, p.Name))
	}
	if out := agent.Logs(f.ns, "write-tmp"); !strings.HasPrefix(out, "65532\n") {
		t.Errorf("the job image ran as %q, want its user 65532", out)
	}
	if ec := p.Status.ContainerStatuses[0].State.Terminated; ec == nil || ec.ExitCode != 0 || ec.Reason != "Completed" {
		t.Errorf("terminated state %+v, want exit 0 Completed", ec)
	}
}

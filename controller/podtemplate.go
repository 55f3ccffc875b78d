package controller

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// The job's identity and sandbox. 65532 is the conventional "nonroot" user of
// distroless and of the job image.
const (
	jobUID              = int64(65532)
	defaultBackoffLimit = int32(2)

	volumeRepoSecret = "repo-secret"
	volumeCABundle   = "ca-bundle"
	volumeRepo       = "repo"
	volumeTmp        = "tmp"
	volumeRecipients = "recipients"
)

// jobSpec is the Job the manual trigger creates and the CronJob's template:
// one container running `dbarchive job` against the repo the trigger names.
// This is the contract with the job binary; the names come from the api
// package so that both sides use the same strings.
func jobSpec(b *dbv1.DatabaseBackup, repo *dbv1.Repo, trigger, image string) batchv1.JobSpec {
	backoff := defaultBackoffLimit
	if b.Spec.BackoffLimit != nil {
		backoff = *b.Spec.BackoffLimit
	}

	env := []corev1.EnvVar{
		{Name: dbv1.JobEnvResourceName, Value: b.Name},
		{Name: dbv1.JobEnvNamespace, Value: b.Namespace},
		{Name: dbv1.JobEnvRepo, Value: repo.Name},
		{Name: dbv1.JobEnvTrigger, Value: trigger},
		// The Job's name, which the job reports with its outcome: the pod
		// cannot know it otherwise (a CronJob names its Jobs).
		{Name: dbv1.JobEnvJobName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			APIVersion: "v1", FieldPath: "metadata.labels['" + dbv1.JobNameLabel + "']",
		}}},
	}
	if bucket := repo.ResolvedBucket(b.Name); bucket != "" {
		env = append(env, corev1.EnvVar{Name: dbv1.JobEnvBucket, Value: bucket})
	}
	if src := b.Spec.Source; src != nil && src.PasswordSecretRef != nil {
		// By reference only: the kubelet resolves it; the Job never holds it.
		env = append(env, secretEnv(dbv1.JobEnvSourcePassword, src.PasswordSecretRef))
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	if e := b.Spec.Encryption; e != nil && e.RecipientsSecret != nil {
		// Only the one key, and it holds public keys: the backup pod never
		// receives anything that decrypts.
		volumes = append(volumes, corev1.Volume{Name: volumeRecipients, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  e.RecipientsSecret.Name,
				Items:       []corev1.KeyToPath{{Key: e.RecipientsSecret.Key, Path: dbv1.RecipientsFile}},
				DefaultMode: ptr.To[int32](0o444),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeRecipients, MountPath: dbv1.RecipientsMountPath, ReadOnly: true})
	}
	spec := buildJobSpec(podJob{
		extraVolumes:   volumes,
		extraMounts:    mounts,
		container:      dbv1.JobContainerName,
		command:        dbv1.JobCommand,
		env:            env,
		repo:           repo,
		image:          image,
		resources:      b.Spec.Resources,
		backoffLimit:   backoff,
		deadline:       jobDeadline(b, trigger),
		serviceAccount: jobServiceAccount(b),
		labels:         commonLabels(b, trigger),
		podTemplate:    b.Spec.PodTemplate,
	})
	if drills(b, trigger) {
		addDrillVolume(&spec.Template.Spec, b.Spec.Verification)
	}
	return spec
}

// secretEnv is an environment variable set from a Secret key by reference:
// the kubelet resolves it, the Job never holds the value.
func secretEnv(name string, ref *dbv1.SecretKeyRef) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name},
			Key:                  ref.Key,
		},
	}}
}

// podJob is what differs between the Jobs the operator makes (backups and
// restores); buildJobSpec adds what they share: the repo's mounts, the
// sandbox, the failure policy.
type podJob struct {
	container      string
	command        []string
	env            []corev1.EnvVar
	repo           *dbv1.Repo
	image          string
	resources      corev1.ResourceRequirements
	backoffLimit   int32
	deadline       int64
	serviceAccount string
	labels         map[string]string
	podTemplate    *dbv1.PodTemplate
	// extraVolumes and extraMounts come after the repo's Secret and CA
	// bundle (the backup's encryption recipients).
	extraVolumes []corev1.Volume
	extraMounts  []corev1.VolumeMount
}

// buildJobSpec is the Job of one run of `dbarchive job`: one container in
// the job sandbox (non-root, read-only root filesystem, no capabilities),
// the repo's Secret, CA bundle and volume mounted, Secrets only by
// reference.
func buildJobSpec(p podJob) batchv1.JobSpec {
	repo := p.repo
	env := p.env
	volumes := []corev1.Volume{{
		Name:         volumeTmp,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
	}}
	mounts := []corev1.VolumeMount{{Name: volumeTmp, MountPath: dbv1.TmpMountPath}}
	if repo.SecretName != "" {
		volumes = append(volumes, corev1.Volume{Name: volumeRepoSecret, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: repo.SecretName, DefaultMode: ptr.To[int32](0o440)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeRepoSecret, MountPath: dbv1.RepoSecretMountPath, ReadOnly: true})
	}
	if repo.CABundle != nil {
		volumes = append(volumes, corev1.Volume{Name: volumeCABundle, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  repo.CABundle.SecretName,
				Items:       []corev1.KeyToPath{{Key: repo.CABundleKey(), Path: dbv1.CABundleFile}},
				DefaultMode: ptr.To[int32](0o444),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeCABundle, MountPath: dbv1.CABundleMountPath, ReadOnly: true})
	}
	volumes = append(volumes, p.extraVolumes...)
	mounts = append(mounts, p.extraMounts...)
	if repo.Type == dbv1.RepoTypeFS && repo.FS != nil {
		volumes = append(volumes, corev1.Volume{Name: volumeRepo, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: repo.FS.ClaimName},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeRepo, MountPath: dbv1.FSRepoMountPath})
	}

	spec := batchv1.JobSpec{
		BackoffLimit: ptr.To(p.backoffLimit),
		PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
			// A permanent failure fails the Job now: retrying would dump the
			// database again for nothing.
			{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(p.container),
				Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
				Values:        []int32{dbv1.JobExitPermanent},
			}},
			// A pod stopped by the cluster (node drain, preemption, eviction)
			// did not fail: it does not count against backoffLimit.
			{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{
				Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			}}},
		}},
		ActiveDeadlineSeconds: ptr.To(p.deadline),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: p.labels},
			Spec: corev1.PodSpec{
				ServiceAccountName: p.serviceAccount,
				RestartPolicy:      corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{
					RunAsNonRoot:   ptr.To(true),
					RunAsUser:      ptr.To(jobUID),
					RunAsGroup:     ptr.To(jobUID),
					FSGroup:        ptr.To(jobUID),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				Containers: []corev1.Container{{
					Name:         p.container,
					Image:        p.image,
					Command:      append([]string(nil), p.command...),
					Env:          env,
					Resources:    *p.resources.DeepCopy(),
					VolumeMounts: mounts,
					SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot:             ptr.To(true),
						RunAsUser:                ptr.To(jobUID),
						ReadOnlyRootFilesystem:   ptr.To(true),
						AllowPrivilegeEscalation: ptr.To(false),
						Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				}},
				Volumes: volumes,
			},
		},
	}
	applyPodTemplate(&spec.Template, p.podTemplate, p.labels)
	return spec
}

// applyPodTemplate adds the spec's pod overrides. The operator's labels win
// over the user's, so that its selectors keep working.
func applyPodTemplate(t *corev1.PodTemplateSpec, pt *dbv1.PodTemplate, labels map[string]string) {
	if pt == nil {
		return
	}
	if len(pt.Labels) > 0 {
		t.Labels = mergeMaps(pt.Labels, labels)
	}
	if len(pt.Annotations) > 0 {
		t.Annotations = mergeMaps(nil, pt.Annotations)
	}
	s := &t.Spec
	s.NodeSelector = pt.NodeSelector
	s.Tolerations = pt.Tolerations
	s.Affinity = pt.Affinity.DeepCopy()
	s.PriorityClassName = pt.PriorityClassName
	s.ImagePullSecrets = pt.ImagePullSecrets
}

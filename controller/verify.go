package controller

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// VerifyCronJobName is the name of the CronJob of a DatabaseBackup's
// scheduled restore drill.
func VerifyCronJobName(backupName string) string { return backupName + "-verify" }

const (
	volumeDrill    = "drill"
	volumeIdentity = "identity"
	// defaultDrillSize bounds the throwaway server's data when the spec
	// says nothing: enough for most databases people drill in a pod, and a
	// runaway restore is evicted instead of filling the node.
	defaultDrillSize = "10Gi"
)

// drills reports whether Jobs of trigger run a restore drill.
func drills(b *dbv1.DatabaseBackup, trigger string) bool {
	v := b.Spec.Verification
	if v == nil || !v.Enabled {
		return false
	}
	return trigger == dbv1.JobTriggerVerify || v.AfterBackup
}

// addDrillVolume gives a Job that drills its scratch space: an emptyDir of
// the size limit, or a generic ephemeral volume of the storage class, at
// DrillMountPath, named to the job by JobEnvDrillDir.
func addDrillVolume(spec *corev1.PodSpec, v *dbv1.Verification) {
	size := resource.MustParse(defaultDrillSize)
	var class *string
	if dv := v.DataVolume; dv != nil {
		if dv.SizeLimit != nil {
			size = *dv.SizeLimit
		}
		class = dv.StorageClassName
	}
	vol := corev1.Volume{Name: volumeDrill}
	if class != nil {
		vol.Ephemeral = &corev1.EphemeralVolumeSource{VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: class,
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			},
		}}
	} else {
		vol.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: &size}
	}
	spec.Volumes = append(spec.Volumes, vol)
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volumeDrill, MountPath: dbv1.DrillMountPath})
	c.Env = append(c.Env, corev1.EnvVar{Name: dbv1.JobEnvDrillDir, Value: dbv1.DrillMountPath})
}

// desiredVerifyCronJob is the CronJob of b's scheduled drill, or nil when
// there should be none. It runs the job image with the verify trigger: no
// dump, only a restore of the newest backup into a throwaway server, with
// the same least-privilege ServiceAccount as the backups.
func desiredVerifyCronJob(b *dbv1.DatabaseBackup, image string) *batchv1.CronJob {
	v := b.Spec.Verification
	if v == nil || !v.Enabled || v.Schedule == "" {
		return nil
	}
	repo := b.Spec.RepoByName(b.Spec.VerificationRepo())
	if repo == nil {
		return nil
	}
	succeeded, failed := historyLimits(b)
	spec := jobSpec(b, repo, dbv1.JobTriggerVerify, image)
	// A drill that failed is reported as Verified=False; running it again
	// at once would only repeat it.
	spec.BackoffLimit = ptr.To[int32](0)
	spec.Template.Spec.Containers[0].Resources = *v.Resources.DeepCopy()
	if v.IdentitySecret != nil {
		// The only Job that gets the identity: it restores, it never
		// writes a backup.
		spec.Template.Spec.Volumes = append(spec.Template.Spec.Volumes, identityVolume(v.IdentitySecret))
		c := &spec.Template.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volumeIdentity, MountPath: dbv1.IdentityMountPath, ReadOnly: true})
	}
	var tz *string
	if t := b.Spec.ScheduledTrigger; t != nil {
		tz = t.TimeZone
	}
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{
			Name:      VerifyCronJobName(b.Name),
			Namespace: b.Namespace,
			Labels:    commonLabels(b, dbv1.JobTriggerVerify),
		},
		Spec: batchv1.CronJobSpec{
			Schedule:                   v.Schedule,
			TimeZone:                   tz,
			StartingDeadlineSeconds:    ptr.To(defaultStartingDeadlineSeconds),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			Suspend:                    ptr.To(b.Spec.Suspend),
			SuccessfulJobsHistoryLimit: ptr.To(succeeded),
			FailedJobsHistoryLimit:     ptr.To(failed),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: commonLabels(b, dbv1.JobTriggerVerify)},
				Spec:       spec,
			},
		},
	}
}

// identityVolume mounts one Secret key holding an identity as
// IdentityFile, readable by the job's user only.
func identityVolume(ref *dbv1.SecretKeyRef) corev1.Volume {
	return corev1.Volume{Name: volumeIdentity, VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{
			SecretName:  ref.Name,
			Items:       []corev1.KeyToPath{{Key: ref.Key, Path: dbv1.IdentityFile}},
			DefaultMode: ptr.To[int32](0o400),
		},
	}}
}

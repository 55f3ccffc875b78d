package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Verification proves backups by restoring them: a drill restores a backup
// into a throwaway database server inside the Job's pod (initdb or
// mariadb-install-db into a scratch volume, a Unix socket only), checks
// that every table the backup recorded is there with as many rows, runs
// the checks below, and reports the outcome in the Verified condition and
// status.lastVerification. The drill's report is also stored in the repo
// beside the backup. The job image carries the database servers.
//
// +kubebuilder:validation:XValidation:rule="!self.enabled || (has(self.afterBackup) && self.afterBackup) || (has(self.schedule) && size(self.schedule) > 0)",message="verification.enabled needs afterBackup: true or a schedule"
type Verification struct {
	// enabled turns drills on.
	Enabled bool `json:"enabled"`

	// afterBackup runs the drill in the backup's own Job, right after each
	// successful backup, on the backup just written. A failed drill does
	// not fail the backup (Succeeded stays True); Verified says what failed.
	// +optional
	AfterBackup bool `json:"afterBackup,omitempty"`

	// schedule (cron) runs a drill of the newest backup in repo through a
	// CronJob named <metadata.name>-verify.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Schedule string `json:"schedule,omitempty"`

	// repo is the repo whose newest backup the scheduled drill restores.
	// Defaults to scheduledTrigger.repo, else the only repo.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Repo string `json:"repo,omitempty"`

	// checks run on the restored database after the table checks. Each is
	// SQL that must return exactly one row whose first column is true or a
	// non-zero number.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Checks []VerificationCheck `json:"checks,omitempty"`

	// resources are the compute resources of the scheduled drill's
	// container; a drill after a backup runs with the backup's. The
	// throwaway server runs inside them.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// identitySecret is a Secret key holding an age identity file (what
	// age-keygen wrote) or an ssh private key that decrypts this resource's
	// encrypted backups. It is mounted only into the scheduled drill's Jobs
	// (never into a backup Job), so an encrypted backup can be drilled
	// only on a schedule, not afterBackup.
	// +optional
	IdentitySecret *SecretKeyRef `json:"identitySecret,omitempty"`

	// dataVolume is where the throwaway server keeps its data: an emptyDir
	// with sizeLimit (default 10Gi), or, with storageClassName, a generic
	// ephemeral volume of that size and class (for databases larger than a
	// node's scratch space).
	// +optional
	DataVolume *VerificationVolume `json:"dataVolume,omitempty"`
}

// VerificationCheck is one named SQL check of a restored database.
type VerificationCheck struct {
	// name identifies the check in status and events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// sql must return one row whose first column is true or non-zero.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	SQL string `json:"sql"`
}

// VerificationVolume sizes the drill's scratch space.
type VerificationVolume struct {
	// sizeLimit bounds the throwaway server's data (default 10Gi).
	// +optional
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
	// storageClassName makes the scratch space a generic ephemeral volume
	// of this class and of sizeLimit, instead of an emptyDir.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// LastVerification is the outcome of the newest drill.
type LastVerification struct {
	// backupID is the backup the drill restored.
	BackupID string `json:"backupID"`
	// finishedTime is when the drill ended.
	FinishedTime metav1.Time `json:"finishedTime"`
	// passed is true when the restore and every check succeeded.
	Passed bool `json:"passed"`
	// restoreDuration is the recovery time: reading, checking and loading
	// the backup into the throwaway server.
	// +optional
	RestoreDuration *metav1.Duration `json:"restoreDuration,omitempty"`
	// tables and rows are what the table checks counted.
	// +optional
	Tables int32 `json:"tables,omitempty"`
	// +optional
	Rows int64 `json:"rows,omitempty"`
	// serverVersion is the throwaway server's version.
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`
	// message names what failed, when something did.
	// +optional
	Message string `json:"message,omitempty"`
	// lastSuccessTime is when a drill last passed (kept across failures).
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`
}

// Condition type and reasons of restore drills.
const (
	// ConditionVerified tells how the newest drill ended: True with
	// ReasonRestoreVerified, False with ReasonRestoreCheckFailed (a table
	// or check, named in the message) or ReasonDrillRestoreFailed (the backup
	// did not read back or restore). Written by the job.
	ConditionVerified = "Verified"

	ReasonRestoreVerified    = "RestoreVerified"
	ReasonRestoreCheckFailed = "RestoreCheckFailed"
	ReasonDrillRestoreFailed = "RestoreFailed"

	// JobTriggerVerify is the trigger of the scheduled drill's Jobs.
	JobTriggerVerify = "verify"

	// IdentityMountPath is where verification.identitySecret's key is
	// mounted, as the file IdentityFile, in the scheduled drill's Jobs only.
	IdentityMountPath = "/var/run/dbarchive/identity"
	IdentityFile      = "identity.txt"

	// DrillMountPath is where the drill's scratch volume is mounted; the
	// job finds it through JobEnvDrillDir.
	DrillMountPath = "/var/lib/dbarchive-drill"
	// JobEnvDrillDir names the drill's scratch directory.
	JobEnvDrillDir = "DBARCHIVE_DRILL_DIR"
)

// VerificationRepo is the repo the scheduled drill restores from: the one
// verification names, else the scheduled trigger's, else the only one.
func (s *DatabaseBackupSpec) VerificationRepo() string {
	if v := s.Verification; v != nil && v.Repo != "" {
		return v.Repo
	}
	if t := s.ScheduledTrigger; t != nil {
		return t.Repo
	}
	if len(s.Repos) == 1 {
		return s.Repos[0].Name
	}
	return ""
}

package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// The contract between the operator, which builds the backup pod, and the
// job binary (`dbarchive job`), which runs in it. Both import these names so
// that neither repeats a string the other must match.

// JobImageRepository is the repository of the backup job's image. The
// operator's default job image is this repository at the operator's own
// version (see JobImage), so an operator and its jobs move together.
const JobImageRepository = "ghcr.io/dbarchive/dbarchive"

// JobImage is the job image of one dbarchive version, e.g. "v1.2.3".
func JobImage(version string) string { return JobImageRepository + ":" + version }

// JobContainerName is the name of the backup container in the pod.
const JobContainerName = "backup"

// JobCommand is the backup container's command.
var JobCommand = []string{"dbarchive", "job"}

// Environment variables of the backup container. None carries a secret
// value: JobEnvSourcePassword is a secretKeyRef resolved by the kubelet.
const (
	// JobEnvResourceName is the DatabaseBackup's name (the article's name).
	JobEnvResourceName = "BACKUP_RESOURCE_NAME"
	// JobEnvNamespace is the DatabaseBackup's namespace (the article's name).
	JobEnvNamespace = "NAMESPACE"
	// JobEnvRepo is the name of the repo in spec.repos the trigger names.
	JobEnvRepo = "BACKUP_REPO"
	// JobEnvTrigger is JobTriggerManual or JobTriggerScheduled.
	JobEnvTrigger = "BACKUP_TRIGGER"
	// JobEnvBucket is the resolved bucket of an object store repo: bucket,
	// or bucketNamePrefix followed by the resource's name (see
	// Repo.ResolvedBucket). Absent for fs repos.
	JobEnvBucket = "BACKUP_BUCKET"
	// JobEnvSourcePassword is the source's password, from
	// spec.source.passwordSecretRef by secretKeyRef. Absent when unset.
	JobEnvSourcePassword = "DBARCHIVE_SOURCE_PASSWORD"
	// JobEnvJobName is the name of the Job the pod belongs to, from the
	// pod's label JobNameLabel by the downward API. The job writes it into
	// status.reportedJob with its outcome, so the operator can tell the
	// job's report from its own guess without comparing clocks.
	JobEnvJobName = "BACKUP_JOB_NAME"
)

// JobNameLabel is the label the Job controller puts on a Job's pods, naming
// the Job.
const JobNameLabel = "batch.kubernetes.io/job-name"

// JobExitPermanent is the job's exit code for a failure that another
// attempt cannot fix (a refused spec, wrong credentials, a missing
// database). The Job's podFailurePolicy fails the Job at once on it instead
// of dumping the database backoffLimit more times.
const JobExitPermanent = 3

// Values of JobEnvTrigger.
const (
	JobTriggerManual    = "manual"
	JobTriggerScheduled = "scheduled"
)

// Paths inside the backup container.
const (
	// RepoSecretMountPath is where the repo's Secret (spec.repos[].secretName)
	// is mounted read-only, one file per key.
	RepoSecretMountPath = "/var/run/dbarchive/repo-secret"
	// CABundleMountPath is where the repo's CA bundle Secret key is mounted,
	// as the file CABundleFile.
	CABundleMountPath = "/var/run/dbarchive/ca"
	// CABundleFile is the CA bundle's file name under CABundleMountPath,
	// whatever the key in the Secret is called.
	CABundleFile = "ca.crt"
	// FSRepoMountPath is where an fs repo's PersistentVolumeClaim is
	// mounted; the repo is the directory FSRepoMountPath/<fs.path>.
	FSRepoMountPath = "/var/lib/dbarchive/repo"
	// TmpMountPath is a writable emptyDir: the root filesystem is read-only.
	TmpMountPath = "/tmp"
	// RecipientsMountPath is where spec.encryption.recipientsSecret's key is
	// mounted, as the file RecipientsFile: public keys only. No identity is
	// ever mounted into a backup pod.
	RecipientsMountPath = "/var/run/dbarchive/recipients"
	// RecipientsFile is the recipients file's name under
	// RecipientsMountPath, whatever the key in the Secret is called.
	RecipientsFile = "recipients.txt"
)

// DefaultCABundleKey is the Secret key of a CA bundle when caBundle.key is
// empty.
const DefaultCABundleKey = "ca.crt"

// RepoByName returns the repo of spec.repos with that name, or nil.
func (s *DatabaseBackupSpec) RepoByName(name string) *Repo {
	for i := range s.Repos {
		if s.Repos[i].Name == name {
			return &s.Repos[i]
		}
	}
	return nil
}

// ResolvedBucket is the bucket (azure: container) of an object store repo of
// the DatabaseBackup named resourceName: bucket when set, else
// bucketNamePrefix followed by resourceName. It is "" for an fs repo.
func (r *Repo) ResolvedBucket(resourceName string) string {
	switch {
	case r.Type == RepoTypeFS:
		return ""
	case r.Bucket != "":
		return r.Bucket
	case r.BucketNamePrefix != "":
		return r.BucketNamePrefix + resourceName
	}
	return ""
}

// KeyPrefix is where the backups of the DatabaseBackup namespace/name live
// in repo: the repo's prefix when set, else <namespace>/<name>, so that
// resources sharing a bucket or volume (or having the same name in two
// namespaces and the same bucketNamePrefix) never see or prune each other's
// backups. Two resources that set the same prefix for the same bucket are
// refused by the operator (Ready=False, RepoConflict).
func (r *Repo) KeyPrefix(namespace, name string) string {
	if r.Prefix != "" {
		return strings.Trim(r.Prefix, "/")
	}
	return namespace + "/" + name
}

// FSRepoDir is the directory of an fs repo inside the backup container.
func (r *Repo) FSRepoDir() string {
	if r.FS == nil {
		return FSRepoMountPath
	}
	p := strings.Trim(r.FS.Path, "/")
	if p == "" {
		return FSRepoMountPath
	}
	return FSRepoMountPath + "/" + p
}

// CABundleKey is the Secret key of the repo's CA bundle, defaulted.
func (r *Repo) CABundleKey() string {
	if r.CABundle == nil || r.CABundle.Key == "" {
		return DefaultCABundleKey
	}
	return r.CABundle.Key
}

// The restore job's side of the contract: the same image and binary as the
// backup job, in restore mode.

// RestoreContainerName is the name of the restore container in the pod.
const RestoreContainerName = "restore"

// RestoreJobCommand is the restore container's command.
var RestoreJobCommand = []string{"dbarchive", "job", "restore"}

// Environment variables of the restore container, besides JobEnvNamespace,
// JobEnvJobName, JobEnvRepo and JobEnvBucket, which mean what they mean for
// a backup. None carries a secret value.
const (
	// JobEnvRestoreName is the DatabaseRestore's name.
	JobEnvRestoreName = "RESTORE_RESOURCE_NAME"
	// JobEnvTargetPassword is the target's password, from
	// spec.target.passwordSecretRef by secretKeyRef. Absent when unset.
	JobEnvTargetPassword = "DBARCHIVE_TARGET_PASSWORD"
)

// RestoreJobName is the one Job of a DatabaseRestore.
func RestoreJobName(restoreName string) string { return restoreName + "-restore" }

// ResolveRepo is the repo a DatabaseRestore reads from when it names the
// DatabaseBackup db: spec.from.repoName, else the repo of db's last backup,
// else db's only repo. It returns nil and why when there is none.
func (r *DatabaseRestore) ResolveRepo(db *DatabaseBackup) (*Repo, string) {
	name := r.Spec.From.RepoName
	switch {
	case name != "":
	case db.Status.LastBackup != nil && db.Status.LastBackup.Repo != "":
		name = db.Status.LastBackup.Repo
	case len(db.Spec.Repos) == 1:
		name = db.Spec.Repos[0].Name
	default:
		return nil, "spec.from.repoName is needed: DatabaseBackup " + db.Name + " has several repos and no backup yet"
	}
	if repo := db.Spec.RepoByName(name); repo != nil {
		return repo, ""
	}
	return nil, "repo " + name + " is not in spec.repos of DatabaseBackup " + db.Name
}

// ManualJobName is the Job of one manual trigger time: the same instant
// always gives the same name, however it is written, so a Job is never
// created twice for one time, and a client that set the time knows which
// Job (and which status.history entry) is its backup.
func ManualJobName(backupName string, t time.Time) string {
	sum := sha256.Sum256([]byte(t.UTC().Format(time.RFC3339Nano)))
	return backupName + "-manual-" + hex.EncodeToString(sum[:4])
}

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupLatest is the backup selector of the newest backup.
const BackupLatest = "latest"

// BackupBeforePrefix starts a selector of the newest backup that finished at
// or before a time: "before:2026-11-29T03:00:00Z".
const BackupBeforePrefix = "before:"

// DatabaseRestoreSpec says which backup to restore into which database. It
// cannot be changed once created: a restore is one run, and a changed spec
// would no longer describe what ran.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a DatabaseRestore is one restore; create a new DatabaseRestore to restore again or elsewhere"
// +kubebuilder:validation:XValidation:rule="!has(self.backoffLimit) || self.backoffLimit == 0 || self.createDatabase",message="backoffLimit above 0 needs createDatabase: true; only a target the job creates (and drops on failure) can be retried from a clean start"
type DatabaseRestoreSpec struct {
	// from is where the backup is: a DatabaseBackup of this namespace (its
	// repos and their Secrets are reused), or a repo given in full, for a
	// restore where no DatabaseBackup exists (disaster recovery into a new
	// namespace or cluster).
	From RestoreFrom `json:"from"`

	// backup selects the backup: "latest" (the default; the newest backup
	// of the set), a backup id (e.g. 20261126T101530.123Z-1a2b3c4d), or
	// "before:<RFC 3339 time>" (e.g. before:2026-11-29T03:00:00Z: the
	// newest complete backup that finished at or before that time). The
	// resolved id is written into status.backup before anything is written
	// to the target.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self == 'latest' || self.matches('^[0-9]{8}T[0-9]{6}[.][0-9]{3}Z-[0-9a-f]{8}$') || self.matches('^before:[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$')",message="backup must be latest, a backup id like 20261126T101530.123Z-1a2b3c4d, or before:<RFC 3339 time> like before:2026-11-29T03:00:00Z"
	// +kubebuilder:default=latest
	// +optional
	Backup string `json:"backup,omitempty"`

	// target is the database to restore into.
	Target RestoreTarget `json:"target"`

	// createDatabase creates target.database (which must not exist) and
	// drops it again when the restore fails, so a failed restore leaves
	// nothing behind. PostgreSQL loads into a temporary database that is
	// renamed to target.database only after the commit.
	// +optional
	CreateDatabase bool `json:"createDatabase,omitempty"`

	// overwrite allows a restore into a database that already holds
	// tables (PostgreSQL: any relation in a non-system schema; MariaDB: any
	// table). Without it such a target is refused (Succeeded=False, reason
	// TargetNotEmpty) and nothing is changed. What it does depends on the
	// backup's format:
	//
	// - PostgreSQL custom or tar (the default of DatabaseBackup):
	//   pg_restore --clean --if-exists, inside the one transaction of the
	//   restore: the objects the backup contains are dropped and created
	//   again from it; objects the backup does not contain are kept. A
	//   failure rolls everything back and leaves the target as it was.
	// - PostgreSQL plain: the SQL is run on top of what is there, in one
	//   transaction; the first conflict (an object that already exists, a
	//   duplicate key) fails the transaction and leaves the target unchanged.
	// - MariaDB: the dump's DROP TABLE IF EXISTS replaces each table it
	//   contains; other tables are kept. Not transactional (DDL commits), so
	//   a failure half-way leaves the target partly restored.
	// +optional
	Overwrite bool `json:"overwrite,omitempty"`

	// identitySecret is a Secret key holding an age identity file (what
	// age-keygen wrote) or an unencrypted ssh private key, needed to restore
	// an encrypted backup. It is mounted as a file into this restore's Job
	// only; it never appears in the Job's environment, in status or in
	// Events.
	// +optional
	IdentitySecret *SecretKeyRef `json:"identitySecret,omitempty"`

	// image is the container image of the restore job; see
	// DatabaseBackup's spec.image. Defaults to the operator's job image and
	// must match its --allowed-job-images.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// resources are the compute resources of the restore container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// activeDeadlineSeconds bounds the run time of the restore Job; when it
	// is reached the pod is stopped (the transaction, where there is one,
	// rolls back) and the restore fails. Defaults to 24 hours.
	// +kubebuilder:validation:Minimum=1
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// backoffLimit is the number of retries of a failed restore Job.
	// Defaults to 0: a half-done restore is not retried blindly. A value
	// above 0 needs createDatabase, whose failed attempt drops the database
	// it made, so the next attempt starts clean.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// podTemplate adds to the restore pod what a platform needs:
	// scheduling, metadata, pull secrets and the pod's ServiceAccount (for
	// a repo reached through workload identity). The operator binds the
	// restore job's Role to that ServiceAccount.
	// +optional
	PodTemplate *PodTemplate `json:"podTemplate,omitempty"`
}

// RestoreFrom names where the backup to restore is: exactly one of
// databaseBackup and repo.
//
// +kubebuilder:validation:XValidation:rule="has(self.databaseBackup) != has(self.repo)",message="from needs exactly one of from.databaseBackup (a DatabaseBackup of this namespace) and from.repo (a repo given in full)"
// +kubebuilder:validation:XValidation:rule="!has(self.repoName) || has(self.databaseBackup)",message="from.repoName names a repo of from.databaseBackup; with from.repo, leave it out"
type RestoreFrom struct {
	// databaseBackup is a DatabaseBackup in this namespace. Its repos, the
	// repos' Secrets and its backup set are used: the backups it wrote.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	DatabaseBackup string `json:"databaseBackup,omitempty"`

	// repoName is the repo of databaseBackup's spec.repos to read from.
	// Defaults to the repo of its last backup (status.lastBackup.repo), or
	// to its only repo.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	RepoName string `json:"repoName,omitempty"`

	// repo is a repo given in full, as in DatabaseBackup's spec.repos, for
	// a restore without a DatabaseBackup. prefix is required: the backups'
	// prefix in the bucket (a DatabaseBackup without prefix wrote under
	// <namespace>/<name>). Its Secrets must exist in this namespace.
	// +kubebuilder:validation:XValidation:rule="has(self.prefix) && size(self.prefix) > 0",message="from.repo.prefix is required: the prefix the backups are under (a DatabaseBackup without prefix writes under <namespace>/<name>)"
	// +kubebuilder:validation:XValidation:rule="!has(self.bucketNamePrefix)",message="from.repo.bucketNamePrefix is not allowed: give the bucket's full name in from.repo.bucket"
	// +optional
	Repo *Repo `json:"repo,omitempty"`
}

// RestoreTarget is the database to restore into: the shape of a
// DatabaseBackup's source, for the source types that can be restored into.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'postgres' || self.type == 'mysql'",message="target.type must be postgres or mysql: the source types a backup can be restored into"
// +kubebuilder:validation:XValidation:rule="has(self.host) && size(self.host) > 0",message="target.host is required: the database server to restore into"
// +kubebuilder:validation:XValidation:rule="has(self.database) && size(self.database) > 0",message="target.database is required: the database to restore into"
type RestoreTarget struct {
	// type is postgres or mysql, and must be the backup's source type.
	Type SourceType `json:"type"`

	// host is the database server's host name or address.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Host string `json:"host,omitempty"`

	// port is the database server's port; the type's default when unset
	// (postgres 5432, mysql 3306).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// database is the database to restore into.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Database string `json:"database,omitempty"`

	// user is the user to connect as.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	User string `json:"user,omitempty"`

	// passwordSecretRef is the Secret key holding the password. It reaches
	// the job as an environment variable by reference, never as a value in
	// the Job.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// tls is how the connection to the target uses TLS. Unset, the client decides:
	// libpq prefers TLS and falls back to plain text; MariaDB 11.4 and later
	// clients (the job image's) require TLS and verify the server, which a
	// server without TLS refuses with "SSL is required": set disable for
	// such a server, verify-full to insist on a verified certificate.
	// +optional
	TLS TLSMode `json:"tls,omitempty"`
}

// DatabaseRestoreStatus is what the operator and the restore job report.
type DatabaseRestoreStatus struct {
	// conditions: Succeeded says how the restore went (reason
	// RestoreRunning, RestoreSucceeded, RestoreFailed or TargetNotEmpty).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// backup is the backup being restored, resolved from spec.backup; the
	// job writes it before anything is written to the target.
	// +optional
	Backup *RestoredBackup `json:"backup,omitempty"`

	// job is the Job that runs the restore.
	// +optional
	Job string `json:"job,omitempty"`

	// startTime is when the restore job started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the restore ended, successfully or not.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// duration is completionTime less startTime.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// RestoredBackup identifies the backup a restore reads.
type RestoredBackup struct {
	// id is the backup id.
	ID string `json:"id"`
	// repo is the name of the repo it is read from.
	Repo string `json:"repo"`
	// prefix is the backups' prefix in the repo.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// database is the database the backup was made of.
	// +optional
	Database string `json:"database,omitempty"`
	// finishedTime is when the backup was committed.
	// +optional
	FinishedTime *metav1.Time `json:"finishedTime,omitempty"`
	// storedSize is the size in bytes of the stored (compressed) data.
	// +optional
	StoredSize int64 `json:"storedSize,omitempty"`
	// uncompressedSize is the size in bytes of the dump.
	// +optional
	UncompressedSize int64 `json:"uncompressedSize,omitempty"`
}

// DatabaseRestore restores one backup into one database, once, as a Job.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dbr;dbrestore,categories=dbarchive
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.status.backup.id`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target.database`
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].status`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.status.duration`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 55",message="metadata.name must be at most 55 characters: the Job <name>-restore must fit Kubernetes' 63-character limit"
type DatabaseRestore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which backup to restore into which database; immutable.
	// +required
	Spec DatabaseRestoreSpec `json:"spec"`

	// status is written by the operator and the restore job.
	// +optional
	Status DatabaseRestoreStatus `json:"status,omitempty"`
}

// DatabaseRestoreList is a list of DatabaseRestores.
//
// +kubebuilder:object:root=true
type DatabaseRestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatabaseRestore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DatabaseRestore{}, &DatabaseRestoreList{})
}

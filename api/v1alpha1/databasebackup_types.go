package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RepoType names a kind of backup storage. Each type is implemented by one
// driver of the job binary.
// +kubebuilder:validation:Enum=fs;s3;ibmcos;gcs;azure
type RepoType string

// The repo types the job binary has drivers for.
const (
	RepoTypeFS     RepoType = "fs"
	RepoTypeS3     RepoType = "s3"
	RepoTypeIBMCOS RepoType = "ibmcos"
	RepoTypeGCS    RepoType = "gcs"
	RepoTypeAzure  RepoType = "azure"
)

// RepoTypes lists every repo type, in the order the CRD enum lists them. The
// controller checks against it too, so that an object stored under an older
// schema is reported instead of handed to a job that cannot use it.
var RepoTypes = []RepoType{RepoTypeFS, RepoTypeS3, RepoTypeIBMCOS, RepoTypeGCS, RepoTypeAzure}

// SourceType names a kind of database (or stream) the job reads.
// +kubebuilder:validation:Enum=postgres;mysql;http;exec
type SourceType string

// The source types the job binary can dump.
const (
	SourceTypePostgres SourceType = "postgres"
	SourceTypeMySQL    SourceType = "mysql"
	SourceTypeHTTP     SourceType = "http"
	SourceTypeExec     SourceType = "exec"
)

// TLSMode is how a postgres or mysql connection uses TLS.
// +kubebuilder:validation:Enum=disable;verify-full
type TLSMode string

const (
	// TLSDisable connects without TLS (postgres sslmode=disable, mysql
	// skip-ssl): for servers that have no TLS, such as MariaDB 10.x by
	// default, which the job image's MariaDB 11 client otherwise refuses.
	TLSDisable TLSMode = "disable"
	// TLSVerifyFull requires TLS and checks the server's certificate and
	// host name against the system's CAs (postgres sslmode=verify-full with
	// sslrootcert=system, mysql ssl-verify-server-cert).
	TLSVerifyFull TLSMode = "verify-full"
)

// DatabaseBackupSpec says what to back up, where to, and when.
//
// +kubebuilder:validation:XValidation:rule="!has(self.manualTrigger) || self.repos.exists(r, r.name == self.manualTrigger.repo)",message="manualTrigger.repo must be the name of a repo in spec.repos"
// +kubebuilder:validation:XValidation:rule="!has(self.scheduledTrigger) || self.repos.exists(r, r.name == self.scheduledTrigger.repo)",message="scheduledTrigger.repo must be the name of a repo in spec.repos"
// +kubebuilder:validation:XValidation:rule="!has(self.verification) || !has(self.verification.repo) || self.repos.exists(r, r.name == self.verification.repo)",message="verification.repo must be the name of a repo in spec.repos"
// +kubebuilder:validation:XValidation:rule="!has(self.encryption) || !has(self.verification) || !has(self.verification.afterBackup) || !self.verification.afterBackup",message="verification.afterBackup cannot drill an encrypted backup: the backup Job never holds an identity; use verification.schedule with verification.identitySecret"
type DatabaseBackupSpec struct {
	// repos are the places backups can be written to. A trigger names one of
	// them. Names must be unique within the list.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, self.exists_one(o, o.name == r.name))",message="repo names must be unique within spec.repos"
	// +listType=atomic
	Repos []Repo `json:"repos"`

	// manualTrigger requests a one-off backup. Each distinct time runs once:
	// the operator creates one Job for it (at that time, or at once when the
	// time has passed) and never again, even after the Job is deleted.
	// Change time to request another backup.
	// +optional
	ManualTrigger *ManualTrigger `json:"manualTrigger,omitempty"`

	// scheduledTrigger runs backups on a cron schedule through a CronJob
	// named <metadata.name>-scheduled.
	// +optional
	ScheduledTrigger *ScheduledTrigger `json:"scheduledTrigger,omitempty"`

	// source is the database to back up. Without it the resource is accepted
	// but nothing runs: status reports Ready=False with reason SourceMissing.
	// +optional
	Source *Source `json:"source,omitempty"`

	// retention says which backups to keep in the repo after each backup.
	// Without it nothing is deleted.
	// +optional
	Retention *Retention `json:"retention,omitempty"`

	// image is the container image of the backup job. It must contain the
	// dbarchive binary and the dump tools of the source type. Defaults to the
	// job image of the operator's own version (the operator's --job-image).
	// The operator refuses an image its --allowed-job-images does not match.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// compressionLevel is the zstd level, 1 (fastest) to 22 (smallest).
	// Defaults to the job's default level.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=22
	// +optional
	CompressionLevel *int32 `json:"compressionLevel,omitempty"`

	// partSize is the size of each uploaded part, e.g. 64Mi. Memory use of
	// the job is about partSize x (concurrency + 1). The job grows it when the
	// repo's part count limit would otherwise be reached. Defaults to the
	// job's default.
	// +optional
	PartSize *resource.Quantity `json:"partSize,omitempty"`

	// concurrency is the number of parts uploaded in parallel.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Concurrency *int32 `json:"concurrency,omitempty"`

	// verification proves backups by restoring them into a throwaway
	// server (a restore drill), after each backup or on a schedule.
	// +optional
	Verification *Verification `json:"verification,omitempty"`

	// suspend pauses this resource: the CronJob is suspended and a manual
	// trigger that has not run yet waits until suspend is false again.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// resources are the compute resources of the backup container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// backoffLimit is the number of retries of a failed backup Job before it
	// is marked failed. Defaults to 2.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds bounds the run time of one backup Job; when it
	// is reached the Job's pods are stopped and the Job fails. Defaults, for
	// the scheduled trigger, to the shortest interval of the schedule less a
	// tenth (at most 5 minutes less), so that a stuck Job (image not pulled,
	// pod not schedulable) fails before the next run is due instead of
	// blocking every later one; for a manual trigger to 24 hours.
	// +kubebuilder:validation:Minimum=1
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// successfulJobsHistoryLimit is the number of finished successful Jobs
	// kept, for the CronJob and for manual triggers each. Defaults to 3.
	// +kubebuilder:validation:Minimum=0
	// +optional
	SuccessfulJobsHistoryLimit *int32 `json:"successfulJobsHistoryLimit,omitempty"`

	// failedJobsHistoryLimit is the number of failed Jobs kept, for the
	// CronJob and for manual triggers each. Defaults to 1.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailedJobsHistoryLimit *int32 `json:"failedJobsHistoryLimit,omitempty"`

	// podTemplate adds to the backup pod what a platform needs: scheduling,
	// metadata, pull secrets and the pod's ServiceAccount.
	// +optional
	PodTemplate *PodTemplate `json:"podTemplate,omitempty"`

	// encryption encrypts every backup on the client with age, to public
	// keys only: the repo then holds data.zst.age, which the storage
	// provider cannot read and the backup Job cannot decrypt (it never
	// receives an identity). Restoring needs one of the recipients'
	// identities; lose them all and nothing can restore these backups.
	// +optional
	Encryption *Encryption `json:"encryption,omitempty"`
}

// Encryption names the public keys backups are encrypted to. Either list,
// or both, may be given; a backup is decryptable by any one recipient.
//
// +kubebuilder:validation:XValidation:rule="(has(self.recipients) && size(self.recipients) > 0) || has(self.recipientsSecret)",message="encryption needs recipients or recipientsSecret"
type Encryption struct {
	// recipients are public keys, inline (they are not secret): age X25519
	// keys (age1…, from age-keygen -y), post-quantum age keys (age1pq1…),
	// or ssh-ed25519 / ssh-rsa public keys (one id_*.pub line). Never put
	// an identity (AGE-SECRET-KEY-…) here: the schema refuses it.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Recipients []AgeRecipient `json:"recipients,omitempty"`

	// recipientsSecret is a Secret key holding a recipients file in age's
	// format (one public key a line, # comments). It is mounted into the
	// backup Job; it must hold public keys only, never an identity.
	// +optional
	RecipientsSecret *SecretKeyRef `json:"recipientsSecret,omitempty"`
}

// AgeRecipient is one public key in a recipient's text form. The schema
// checks its prefix and alphabet; the job parses it fully and fails with
// reason InvalidRecipient when it does not. The rule's reason is
// FieldValueForbidden because the API server repeats the value of an
// Invalid field in its error, and a refused value may be a secret key.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=4096
// +kubebuilder:validation:XValidation:rule="self.matches('^(age1(pq1)?[qpzry9x8gf2tvdw0s3jn54khce6mua7l]+|ssh-(ed25519|rsa) AAAA[A-Za-z0-9+/]+=*( .*)?)$')",message="a recipient must be an age public key (age1…) or an ssh-ed25519/ssh-rsa public key; never an identity (AGE-SECRET-KEY-…)",reason=FieldValueForbidden
type AgeRecipient string

// PodTemplate customises the backup pod. The container, its command,
// environment, mounts and security context stay the operator's.
type PodTemplate struct {
	// labels are added to the pod's labels (the operator's own win).
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations are added to the pod's annotations.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// nodeSelector constrains the nodes the pod runs on.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// tolerations let the pod run on tainted nodes.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// affinity of the pod.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// priorityClassName of the pod.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// imagePullSecrets for a job image in a private registry.
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// serviceAccountName is a ServiceAccount of this namespace, owned by
	// you, for the pod to run as: the one carrying workload identity
	// annotations (IRSA, GKE, Azure). The operator binds the job's Role
	// (read this resource, write its status) to it. Without it the operator
	// makes a ServiceAccount dbarchive-job-<metadata.name>.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// Repo is one place backups are written to: a bucket (or container) of an
// object store, or a directory on a PersistentVolumeClaim.
//
// The bucket is bucket when set. When only bucketNamePrefix is set, the bucket
// is bucketNamePrefix followed by the DatabaseBackup's metadata.name (the
// article's "database-backup-" gives database-backup-<name>), and the job
// creates it on first use. Within the bucket, backups live under prefix, or
// <namespace>/<name> without one, so two resources of the same name in two
// namespaces share the bucket without touching each other's backups.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'fs' || has(self.fs)",message="a repo of type fs needs fs.claimName: the PersistentVolumeClaim that holds the repo"
// +kubebuilder:validation:XValidation:rule="self.type == 'fs' || !has(self.fs)",message="fs is only allowed on a repo of type fs"
// +kubebuilder:validation:XValidation:rule="self.type == 'fs' || has(self.bucket) || has(self.bucketNamePrefix)",message="a repo of type s3, ibmcos, gcs or azure needs bucket or bucketNamePrefix"
// +kubebuilder:validation:XValidation:rule="!(has(self.bucket) && has(self.bucketNamePrefix))",message="set either bucket or bucketNamePrefix, not both"
type Repo struct {
	// name identifies the repo within this resource; triggers refer to it.
	// A DNS label: lowercase letters, digits and '-'.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="repo name must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
	Name string `json:"name"`

	// type is the kind of storage: fs (a PersistentVolumeClaim), s3 (AWS S3
	// or any S3-compatible store), ibmcos (IBM Cloud Object Storage), gcs
	// (Google Cloud Storage) or azure (Azure Blob Storage).
	Type RepoType `json:"type"`

	// secretName is the Secret in this namespace holding the repo's
	// credentials. It is mounted read-only into the backup pod; its keys
	// depend on the type: ibmcos HmacAccessKeyId and HmacSecretAccessKey, or
	// ApiKey and ServiceInstanceId; s3 AccessKeyId and SecretAccessKey
	// (optionally SessionToken); gcs ServiceAccountJson (and ProjectId to
	// create buckets); azure AccountName and AccountKey, or SasToken, or
	// ConnectionString. Without it the job uses the platform's ambient
	// credentials (workload identity, instance roles).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// serviceEndpoint is the object store's endpoint URL, e.g.
	// https://s3.fra.eu.cloud-object-storage.appdomain.cloud. Defaults to the
	// provider's public endpoint for the region.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	ServiceEndpoint string `json:"serviceEndpoint,omitempty"`

	// authEndpoint is the token endpoint for API-key authentication (ibmcos),
	// default https://iam.cloud.ibm.com/identity/token.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	AuthEndpoint string `json:"authEndpoint,omitempty"`

	// bucketNamePrefix makes the bucket name: the prefix followed by this
	// resource's metadata.name. The bucket is created on first use. Exclusive
	// with bucket.
	// +kubebuilder:validation:MaxLength=62
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9][-a-z0-9.]*$')",message="bucketNamePrefix must start with a lowercase letter or digit and contain only lowercase letters, digits, '-' and '.'"
	// +optional
	BucketNamePrefix string `json:"bucketNamePrefix,omitempty"`

	// bucket is the bucket (azure: container) backups go to. Exclusive with
	// bucketNamePrefix.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Bucket string `json:"bucket,omitempty"`

	// prefix is prepended to every object key, e.g. "prod/orders". Without
	// it the prefix is <namespace>/<name>. Two DatabaseBackups may not use
	// the same prefix in the same bucket: the younger one is refused with
	// Ready=False, reason RepoConflict.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// region is the object store's region, e.g. eu-de. Needed by s3 when the
	// endpoint does not imply it.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// pathStyle addresses buckets as <endpoint>/<bucket> instead of
	// <bucket>.<endpoint>; most self-hosted S3-compatible stores need it.
	// +optional
	PathStyle bool `json:"pathStyle,omitempty"`

	// caBundle is a Secret key holding PEM certificates to trust for the
	// endpoints, for stores behind a private certificate authority.
	// +optional
	CABundle *CABundleRef `json:"caBundle,omitempty"`

	// fs is the PersistentVolumeClaim of a repo of type fs.
	// +optional
	FS *FSRepo `json:"fs,omitempty"`
}

// CABundleRef selects a key of a Secret in the resource's namespace.
type CABundleRef struct {
	// secretName is the Secret holding the CA bundle.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`

	// key is the Secret key holding the PEM bundle. Defaults to ca.crt.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// FSRepo is a directory on a PersistentVolumeClaim.
type FSRepo struct {
	// claimName is the PersistentVolumeClaim, in this namespace, mounted
	// into the backup pod.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`

	// path is the directory within the volume that holds the repo; the
	// volume's root when empty.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(e, e == '..')",message="fs.path must stay inside the volume: '..' is not allowed"
	// +optional
	Path string `json:"path,omitempty"`
}

// ManualTrigger requests a one-off backup.
type ManualTrigger struct {
	// enabled must be true for the trigger to run. With false nothing
	// happens, and a Job that already exists is left alone.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// time is when the backup should start (RFC 3339, e.g.
	// 2022-12-15T02:59:43.1Z). A time in the past starts at once; a time in
	// the future waits until then. Each distinct time runs once.
	// +kubebuilder:validation:Format=date-time
	// +kubebuilder:validation:MaxLength=64
	Time string `json:"time"`

	// repo is the name of the repo in spec.repos to write to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Repo string `json:"repo"`
}

// ScheduledTrigger runs backups periodically.
type ScheduledTrigger struct {
	// enabled must be true for the CronJob to exist. With false the CronJob
	// is deleted and a Job it started keeps running to its end (it is
	// orphaned, not deleted); its outcome is still reported here.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// schedule is a cron expression of five fields (minute hour
	// day-of-month month day-of-week, e.g. "0 * * * *") or one of @hourly,
	// @daily, @midnight, @weekly, @monthly, @yearly, @annually. Times are in
	// the kube-controller-manager's time zone unless timeZone is set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*?/,-]+( +[0-9A-Za-z*?/,-]+){4})$')",message="schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week), e.g. \"0 * * * *\", or one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually"
	Schedule string `json:"schedule"`

	// timeZone is the IANA time zone of the schedule, e.g. Europe/Berlin.
	// "Local" and "" are refused, as the CronJob API refuses them.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self != 'Local'",message="timeZone must be an IANA time zone name such as Europe/Berlin or UTC; \"Local\" is not allowed by CronJobs"
	// +optional
	TimeZone *string `json:"timeZone,omitempty"`

	// repo is the name of the repo in spec.repos to write to.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Repo string `json:"repo"`

	// startingDeadlineSeconds is how late a scheduled run may start before
	// it is skipped (for example after the controller was down). Defaults
	// to 300.
	// +kubebuilder:validation:Minimum=1
	// +optional
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// immediate starts a first backup as soon as the resource is ready,
	// without waiting for the schedule: once, as the Job
	// <metadata.name>-immediate (status.immediateJob records it).
	// +optional
	Immediate bool `json:"immediate,omitempty"`
}

// Source is the database the job reads.
//
// +kubebuilder:validation:XValidation:rule="(self.type != 'postgres' && self.type != 'mysql') || (has(self.host) && has(self.database))",message="a postgres or mysql source needs host and database"
// +kubebuilder:validation:XValidation:rule="self.type != 'http' || has(self.url)",message="an http source needs url"
// +kubebuilder:validation:XValidation:rule="self.type != 'exec' || (has(self.command) && size(self.command) > 0)",message="an exec source needs command"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || self.type == 'postgres' || self.type == 'mysql'",message="tls applies to postgres and mysql sources only"
type Source struct {
	// type is the kind of source: postgres (pg_dump), mysql (mariadb-dump),
	// http (the body of a GET) or exec (the standard output of a command).
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

	// database is the database to dump.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Database string `json:"database,omitempty"`

	// user is the user to connect as.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	User string `json:"user,omitempty"`

	// passwordSecretRef is the Secret key holding the password (for http:
	// the basic-auth password of the URL's user). It reaches the job as an
	// environment variable by reference, never as a value in the Job.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// url is the URL an http source reads with GET.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	URL string `json:"url,omitempty"`

	// command is the program and arguments of an exec source; its standard
	// output is the backup. It runs in the job container without a shell.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Command []string `json:"command,omitempty"`

	// tls is how the connection uses TLS. Unset, the client decides:
	// libpq prefers TLS and falls back to plain text; MariaDB 11.4 and later
	// clients (the job image's) require TLS and verify the server, which a
	// server without TLS refuses with "SSL is required": set disable for
	// such a server, verify-full to insist on a verified certificate.
	// +optional
	TLS TLSMode `json:"tls,omitempty"`
}

// SecretKeyRef selects a key of a Secret in the resource's namespace.
type SecretKeyRef struct {
	// name is the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// Retention says which backups the job keeps after each backup; a backup is
// kept when either rule keeps it.
type Retention struct {
	// keepLast keeps the newest N backups.
	// +kubebuilder:validation:Minimum=1
	// +optional
	KeepLast *int32 `json:"keepLast,omitempty"`

	// keepWithin keeps backups younger than this duration, e.g. 720h.
	// +optional
	KeepWithin *metav1.Duration `json:"keepWithin,omitempty"`
}

// DatabaseBackupStatus is what the operator and the backup job report.
type DatabaseBackupStatus struct {
	// conditions: Ready says whether the spec is valid and its Secrets
	// exist; Succeeded says how the last backup ended (reason
	// BackupSucceeded, BackupFailed or BackupRunning).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastBackup describes the last successful backup.
	// +optional
	LastBackup *LastBackup `json:"lastBackup,omitempty"`

	// lastVerification is the outcome of the newest restore drill.
	// +optional
	LastVerification *LastVerification `json:"lastVerification,omitempty"`

	// lastScheduleTime is when the CronJob last started a Job.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// lastManualTriggerTime is the manualTrigger.time that was last turned
	// into a Job; that time never runs again.
	// +optional
	LastManualTriggerTime string `json:"lastManualTriggerTime,omitempty"`

	// handledManualTriggerTimes are the manualTrigger.times already turned
	// into Jobs, newest last, at most 16 (RFC 3339, UTC). None of them runs
	// again, and once the list is full no time before its oldest entry runs
	// either, so a revert to an earlier time never re-runs it.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	HandledManualTriggerTimes []string `json:"handledManualTriggerTimes,omitempty"`

	// immediateJob is the Job scheduledTrigger.immediate started; it is
	// never started again.
	// +optional
	ImmediateJob string `json:"immediateJob,omitempty"`

	// activeJob is the Job the operator last announced as running
	// (Succeeded=Unknown/BackupRunning).
	// +optional
	ActiveJob string `json:"activeJob,omitempty"`

	// reportedJob is the Job whose outcome the Succeeded condition reports,
	// written by the backup job together with it. The operator never
	// replaces the report of the Job named here with its own guess.
	// +optional
	ReportedJob string `json:"reportedJob,omitempty"`

	// lastSkippedTime is the last scheduled time at which no backup started
	// because the previous one was still running.
	// +optional
	LastSkippedTime *metav1.Time `json:"lastSkippedTime,omitempty"`

	// lastSuccessfulTime is when the newest successful backup was committed.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// lastFailure describes the newest failed backup.
	// +optional
	LastFailure *BackupFailure `json:"lastFailure,omitempty"`

	// nextScheduleTime is when the scheduled trigger runs next; unset when
	// it is disabled or suspended.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`

	// history holds the last runs, newest first, at most MaxHistory.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	History []BackupRun `json:"history,omitempty"`
}

// BackupFailure is one failed backup.
type BackupFailure struct {
	// time is when the failure was recorded.
	Time metav1.Time `json:"time"`
	// reason is a CamelCase word: BackupFailed, or the Job controller's
	// (DeadlineExceeded, BackoffLimitExceeded).
	Reason string `json:"reason"`
	// message says why, in one line.
	// +optional
	Message string `json:"message,omitempty"`
	// job is the Job that failed.
	// +optional
	Job string `json:"job,omitempty"`
}

// Outcomes of a BackupRun.
const (
	RunSucceeded = "Succeeded"
	RunFailed    = "Failed"
)

// BackupRun is one finished backup Job.
type BackupRun struct {
	// job is the Job that ran it.
	// +optional
	Job string `json:"job,omitempty"`
	// id is the backup id, when it succeeded.
	// +optional
	ID string `json:"id,omitempty"`
	// outcome is Succeeded or Failed.
	// +kubebuilder:validation:Enum=Succeeded;Failed
	Outcome string `json:"outcome"`
	// finishedTime is when it ended.
	FinishedTime metav1.Time `json:"finishedTime"`
	// duration is how long the backup took, when it succeeded.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
	// storedSize is the size in bytes of the stored data, when it
	// succeeded.
	// +optional
	StoredSize int64 `json:"storedSize,omitempty"`
	// message is the failure's cause, in one line.
	// +optional
	Message string `json:"message,omitempty"`
}

// LastBackup describes one finished backup in a repo.
type LastBackup struct {
	// id is the backup id; ids sort by time.
	ID string `json:"id"`

	// repo is the name of the repo the backup was written to.
	Repo string `json:"repo"`

	// objectKey is the key of the backup's data object in the repo.
	// +optional
	ObjectKey string `json:"objectKey,omitempty"`

	// storedSize is the size in bytes of the stored (compressed) data.
	// +optional
	StoredSize int64 `json:"storedSize,omitempty"`

	// uncompressedSize is the size in bytes of the dump before compression.
	// +optional
	UncompressedSize int64 `json:"uncompressedSize,omitempty"`

	// duration is how long the backup took.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// finishedTime is when the backup was committed.
	// +optional
	FinishedTime *metav1.Time `json:"finishedTime,omitempty"`

	// encrypted is true when the backup is encrypted with age (to
	// spec.encryption's recipients at the time): restoring it needs an
	// identity.
	// +optional
	Encrypted bool `json:"encrypted,omitempty"`

	// recipients is the number of public keys an encrypted backup is
	// encrypted to (the keys themselves are in the backup's manifest).
	// +optional
	Recipients int32 `json:"recipients,omitempty"`
}

// DatabaseBackup backs a database up to object storage, once on request or
// on a schedule.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dbb;dbbackup,categories=dbarchive
// +kubebuilder:printcolumn:name="Repo",type=string,JSONPath=`.spec.scheduledTrigger.repo`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.scheduledTrigger.schedule`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.lastBackup.finishedTime`
// +kubebuilder:printcolumn:name="Succeeded",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].status`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Verified",type=string,JSONPath=`.status.conditions[?(@.type=="Verified")].status`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Next",type=date,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Succeeded")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 42",message="metadata.name must be at most 42 characters: the CronJob <name>-scheduled must fit Kubernetes' 52-character limit"
// +kubebuilder:validation:XValidation:rule="!has(self.spec) || self.spec.repos.all(r, !has(r.bucketNamePrefix) || size(r.bucketNamePrefix) + size(self.metadata.name) <= 63)",message="bucketNamePrefix followed by metadata.name is the bucket name and must be at most 63 characters"
type DatabaseBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to back up, where to, and when.
	// +required
	Spec DatabaseBackupSpec `json:"spec"`

	// status is written by the operator and the backup job.
	// +optional
	Status DatabaseBackupStatus `json:"status,omitempty"`
}

// DatabaseBackupList is a list of DatabaseBackups.
//
// +kubebuilder:object:root=true
type DatabaseBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DatabaseBackup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DatabaseBackup{}, &DatabaseBackupList{})
}

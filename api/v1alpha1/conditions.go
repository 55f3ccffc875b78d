package v1alpha1

// Condition types of DatabaseBackup.status.conditions.
const (
	// ConditionReady is True when the spec can be acted on: it is valid, it
	// has a source, and every Secret (and key) it names exists. Written by
	// the operator.
	ConditionReady = "Ready"

	// ConditionSucceeded tells how the last backup ended: True with
	// ReasonBackupSucceeded, False with ReasonBackupFailed, Unknown with
	// ReasonBackupRunning while a Job runs. The job writes the outcome; the
	// operator writes BackupRunning, and BackupFailed when a Job fails
	// without having reported (killed, image not pulled, deadline).
	ConditionSucceeded = "Succeeded"
)

// Reasons of the Ready condition.
const (
	// ReasonReconciled: the spec is valid and the CronJob and Jobs it asks
	// for exist.
	ReasonReconciled = "Reconciled"
	// ReasonSourceMissing: spec.source is not set, so no backup can run.
	ReasonSourceMissing = "SourceMissing"
	// ReasonRepoTypeUnknown: a repo's type has no driver.
	ReasonRepoTypeUnknown = "RepoTypeUnknown"
	// ReasonRepoNotFound: a trigger names a repo that is not in spec.repos.
	ReasonRepoNotFound = "RepoNotFound"
	// ReasonSecretMissing: a Secret the spec names does not exist.
	ReasonSecretMissing = "SecretMissing"
	// ReasonSecretKeyMissing: a Secret exists but lacks the key the spec
	// names.
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonScheduleInvalid: scheduledTrigger.schedule does not parse as a
	// cron expression.
	ReasonScheduleInvalid = "ScheduleInvalid"
	// ReasonSpecInvalid: another field the CRD schema could not check is
	// invalid (for example a repo without the fields its type needs).
	ReasonSpecInvalid = "SpecInvalid"
)

// Reasons of the Succeeded condition.
const (
	// ReasonBackupSucceeded: the last backup was committed to its repo.
	ReasonBackupSucceeded = "BackupSucceeded"
	// ReasonBackupFailed: the last backup failed; the message says why.
	ReasonBackupFailed = "BackupFailed"
	// ReasonBackupRunning: a backup Job is running.
	ReasonBackupRunning = "BackupRunning"
)

// MessageBackupSucceeded is the message of Succeeded=True, the article's.
const MessageBackupSucceeded = "Database has been archived"

package v1alpha1

import "slices"

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

	// ConditionBackupOverdue is True when the scheduled trigger is enabled
	// and the newest successful backup (or, without one, the resource's
	// creation) is older than two intervals of the schedule plus the
	// starting deadline: backups are not happening as the schedule says.
	// Written by the operator.
	ConditionBackupOverdue = "BackupOverdue"
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
	// ReasonServerRejected: the API server refused an object the operator
	// made for the spec (for example a CronJob the CronJob API finds
	// invalid, or a ResourceQuota denial); the message is the server's.
	ReasonServerRejected = "ServerRejected"
	// ReasonRepoConflict: another DatabaseBackup writes to the same place in
	// the same repo (bucket and prefix), where each one's retention would
	// delete the other's backups.
	ReasonRepoConflict = "RepoConflict"
	// ReasonImageNotAllowed: spec.image does not match the operator's
	// allowed job images.
	ReasonImageNotAllowed = "ImageNotAllowed"
	// ReasonServiceAccountMissing: podTemplate.serviceAccountName names a
	// ServiceAccount that does not exist.
	ReasonServiceAccountMissing = "ServiceAccountMissing"
)

// Reasons of the Succeeded condition.
const (
	// ReasonBackupSucceeded: the last backup was committed to its repo.
	ReasonBackupSucceeded = "BackupSucceeded"
	// ReasonBackupFailed: the last backup failed; the message says why.
	ReasonBackupFailed = "BackupFailed"
	// ReasonInvalidRecipient: spec.encryption names a recipient (inline or
	// in recipientsSecret) that is not a public key age can encrypt to; the
	// message names the entry or line, never its text. Nothing was backed
	// up.
	ReasonInvalidRecipient = "InvalidRecipient"
	// ReasonBackupRunning: a backup Job is running.
	ReasonBackupRunning = "BackupRunning"
	// ReasonBackupSkipped: a scheduled run did not start because the
	// previous Job was still running (a Warning Event of this reason too).
	ReasonBackupSkipped = "BackupSkipped"
)

// Reasons of the BackupOverdue condition.
const (
	// ReasonBackupsCurrent: the newest successful backup is recent enough.
	ReasonBackupsCurrent = "BackupsCurrent"
	// ReasonBackupsOverdue: the newest successful backup is too old.
	ReasonBackupsOverdue = "BackupsOverdue"
)

// MessageBackupSucceeded is the message of Succeeded=True, the article's.
const MessageBackupSucceeded = "Database has been archived"

// MaxHistory bounds status.history.
const MaxHistory = 10

// RecordRun puts run first in status.history (replacing an entry of the
// same Job, so that the job's report and the operator's reading of one Job
// give one entry), keeps at most MaxHistory, and updates lastSuccessfulTime
// or lastFailure. Both the operator and the backup job call it.
func (st *DatabaseBackupStatus) RecordRun(run BackupRun, reason string) {
	out := []BackupRun{run}
	for _, h := range st.History {
		if run.Job != "" && h.Job == run.Job {
			continue
		}
		out = append(out, h)
	}
	if len(out) > MaxHistory {
		out = out[:MaxHistory]
	}
	st.History = out
	switch run.Outcome {
	case RunSucceeded:
		t := run.FinishedTime
		st.LastSuccessfulTime = &t
	case RunFailed:
		st.LastFailure = &BackupFailure{Time: run.FinishedTime, Reason: reason, Message: run.Message, Job: run.Job}
	}
}

// RecordEarlierRun records a run the operator learned of late: a Job that
// finished unobserved while a newer one had already started (the operator
// was down or slow). Unlike RecordRun it puts the run among status.history
// by its finish time, not first, and moves lastSuccessfulTime and
// lastFailure only forward. A Job already in history (the job's own report)
// is left as it is, and a run older than every entry of a full history is
// dropped, as RecordRun would have dropped it by now.
func (st *DatabaseBackupStatus) RecordEarlierRun(run BackupRun, reason string) {
	if run.Job != "" && slices.ContainsFunc(st.History, func(h BackupRun) bool { return h.Job == run.Job }) {
		return
	}
	at := len(st.History)
	for i, h := range st.History {
		if h.FinishedTime.Before(&run.FinishedTime) {
			at = i
			break
		}
	}
	if at >= MaxHistory {
		return
	}
	st.History = slices.Insert(st.History, at, run)
	if len(st.History) > MaxHistory {
		st.History = st.History[:MaxHistory]
	}
	switch run.Outcome {
	case RunSucceeded:
		if st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(&run.FinishedTime) {
			t := run.FinishedTime
			st.LastSuccessfulTime = &t
		}
	case RunFailed:
		if st.LastFailure == nil || st.LastFailure.Time.Before(&run.FinishedTime) {
			st.LastFailure = &BackupFailure{Time: run.FinishedTime, Reason: reason, Message: run.Message, Job: run.Job}
		}
	}
}

// Reasons of a DatabaseRestore's Succeeded condition.
const (
	// ReasonRestorePending: the restore cannot start yet (the
	// DatabaseBackup, a Secret or a key it needs does not exist); the
	// operator retries, and the message says what is missing.
	ReasonRestorePending = "RestorePending"
	// ReasonRestoreRunning: the restore Job is running.
	ReasonRestoreRunning = "RestoreRunning"
	// ReasonRestoreSucceeded: the backup was restored into the target.
	ReasonRestoreSucceeded = "RestoreSucceeded"
	// ReasonRestoreFailed: the restore failed; the message says why, naming
	// the backup when one was resolved. The target was left as it was
	// (or dropped, when the job created it) except for a MariaDB restore
	// with overwrite, which is not transactional.
	ReasonRestoreFailed = "RestoreFailed"
	// ReasonTargetNotEmpty: the target database holds tables and
	// spec.overwrite is false; nothing was written.
	ReasonTargetNotEmpty = "TargetNotEmpty"
)

// MessageRestoreSucceeded is the message of a DatabaseRestore's
// Succeeded=True.
const MessageRestoreSucceeded = "Database has been restored"

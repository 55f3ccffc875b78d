package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
)

// waitVerified waits for the Verified condition and returns the resource.
func (cl *cluster) waitVerified(name string) *dbv1.DatabaseBackup {
	cl.t.Helper()
	db := &dbv1.DatabaseBackup{}
	eventually(cl.t, 60*time.Second, func() error {
		if err := cl.c.Get(context.Background(), types.NamespacedName{Namespace: cl.ns, Name: name}, db); err != nil {
			return err
		}
		if meta.FindStatusCondition(db.Status.Conditions, dbv1.ConditionVerified) == nil {
			return fmt.Errorf("no Verified condition yet")
		}
		return nil
	})
	return db
}

// TestVerificationAfterBackup: with verification.afterBackup the backup Job
// restores what it just wrote into a throwaway server in its pod, checks
// it, and reports Verified with the restore's duration; a check that does
// not hold ends Verified=False/RestoreCheckFailed naming it, while the
// backup itself stays Succeeded=True.
func TestVerificationAfterBackup(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	cl.k.claims["backups"] = t.TempDir()
	ctx := context.Background()
	for _, c := range []struct {
		name, check string
		passes      bool
	}{
		{"drilled", "SELECT count(*) = 20003 FROM persons", true},
		{"drill-fails", "SELECT count(*) > 1000000 FROM persons", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := &dbv1.DatabaseBackup{
				ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: cl.ns},
				Spec: dbv1.DatabaseBackupSpec{
					Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: c.name}}},
					ManualTrigger: manual("local"),
					Source:        pgSource(dbName),
					Verification: &dbv1.Verification{Enabled: true, AfterBackup: true,
						Checks: []dbv1.VerificationCheck{{Name: "all persons", SQL: c.check}}},
				},
			}
			must(t, cl.c.Create(ctx, res))
			j := waitForJob(t, cl.c, cl.ns, c.name+"-manual-")
			pod := j.Spec.Template.Spec
			var sized bool
			for _, v := range pod.Volumes {
				sized = sized || (v.Name == "drill" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.String() == "10Gi")
			}
			if !sized {
				t.Errorf("the backup Job has no 10Gi drill volume: %+v", pod.Volumes)
			}
			run := cl.k.runJob(ctx, j)
			if run.exitErr != nil {
				t.Fatalf("job failed: %v\n%s", run.exitErr, run.output)
			}
			got := cl.waitVerified(c.name)
			requireSucceeded(t, got)
			v := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionVerified)
			lv := got.Status.LastVerification
			if lv == nil || lv.BackupID != got.Status.LastBackup.ID || lv.RestoreDuration == nil || lv.RestoreDuration.Duration <= 0 || lv.ServerVersion == "" {
				t.Fatalf("lastVerification = %+v; want the backup's id, a restore duration and the server version", lv)
			}
			if v.ObservedGeneration != got.Generation {
				t.Errorf("Verified.observedGeneration = %d, generation %d", v.ObservedGeneration, got.Generation)
			}
			if c.passes {
				if v.Status != metav1.ConditionTrue || v.Reason != dbv1.ReasonRestoreVerified || !lv.Passed || lv.LastSuccessTime == nil {
					t.Fatalf("Verified = %s/%s/%q, lastVerification %+v; want True/RestoreVerified", v.Status, v.Reason, v.Message, lv)
				}
				return
			}
			if v.Status != metav1.ConditionFalse || v.Reason != dbv1.ReasonRestoreCheckFailed || !strings.Contains(v.Message, "all persons") || lv.Passed {
				t.Fatalf("Verified = %s/%s/%q; want False/RestoreCheckFailed naming the check", v.Status, v.Reason, v.Message)
			}
		})
	}
}

// TestScheduledVerification: verification.schedule makes a CronJob
// <name>-verify whose Jobs (trigger verify, the backups' least-privilege
// ServiceAccount, backoffLimit 0) drill the newest backup and report it,
// without counting as backups; removing the schedule removes the CronJob.
func TestScheduledVerification(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	cl.k.claims["backups"] = t.TempDir()
	ctx := context.Background()
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "pg"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
			Verification: &dbv1.Verification{Enabled: true, Schedule: "0 4 * * *",
				Checks: []dbv1.VerificationCheck{{Name: "has persons", SQL: "SELECT count(*) > 0 FROM persons"}}},
		},
	}
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "nightly-manual-")
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Name == "drill" {
			t.Errorf("the backup Job has a drill volume though afterBackup is off")
		}
	}
	if run := cl.k.runJob(ctx, j); run.exitErr != nil {
		t.Fatalf("backup job failed: %v\n%s", run.exitErr, run.output)
	}
	backedUp := cl.waitOutcome("nightly")
	requireSucceeded(t, backedUp)

	cj := waitForCronJob(t, cl, "nightly-verify")
	if cj.Spec.Schedule != "0 4 * * *" || cj.Spec.JobTemplate.Labels[controller.LabelTrigger] != dbv1.JobTriggerVerify || *cj.Spec.JobTemplate.Spec.BackoffLimit != 0 {
		t.Fatalf("CronJob nightly-verify: schedule %q, labels %v, backoffLimit %d", cj.Spec.Schedule, cj.Spec.JobTemplate.Labels, *cj.Spec.JobTemplate.Spec.BackoffLimit)
	}
	vj := jobFromCronJob(t, cl, cj, 1)
	if run := cl.k.runJob(ctx, vj); run.exitErr != nil {
		t.Fatalf("drill job failed: %v\n%s", run.exitErr, run.output)
	}
	got := cl.waitVerified("nightly")
	v := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionVerified)
	if v.Status != metav1.ConditionTrue || got.Status.LastVerification.BackupID != backedUp.Status.LastBackup.ID {
		t.Fatalf("Verified = %s/%s/%q, lastVerification %+v; want True for backup %s", v.Status, v.Reason, v.Message, got.Status.LastVerification, backedUp.Status.LastBackup.ID)
	}
	// The drill Job is not a backup: history still holds the one backup.
	if len(got.Status.History) != 1 || got.Status.History[0].ID != backedUp.Status.LastBackup.ID {
		t.Errorf("status.history = %+v; want only the backup", got.Status.History)
	}

	latest := &dbv1.DatabaseBackup{}
	must(t, cl.c.Get(ctx, types.NamespacedName{Namespace: cl.ns, Name: "nightly"}, latest))
	latest.Spec.Verification.Schedule = ""
	latest.Spec.Verification.AfterBackup = true
	must(t, cl.c.Update(ctx, latest))
	eventually(t, 60*time.Second, func() error {
		// Deleted with orphan propagation (a drill that runs finishes): the
		// garbage collector removes the object, so deletion started is the
		// operator's part.
		err := cl.c.Get(ctx, types.NamespacedName{Namespace: cl.ns, Name: "nightly-verify"}, cj)
		if err == nil && cj.DeletionTimestamp == nil {
			return fmt.Errorf("CronJob nightly-verify is not being deleted")
		}
		return nil
	})
}

// TestScheduledVerificationOfEncryptedBackup: an encrypted backup is drilled
// by the scheduled drill's Job, the only Job that mounts
// verification.identitySecret; the backup Job holds no identity, and the
// API server refuses afterBackup on an encrypted resource.
func TestScheduledVerificationOfEncryptedBackup(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	cl.k.claims["backups"] = t.TempDir()
	keys := newEncryptionKeys(t)
	ctx := context.Background()
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "drill-identity", Namespace: cl.ns},
		StringData: map[string]string{"key.txt": keys.ageIdentity},
	}))
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "sealed", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "pg"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
			Encryption:    &dbv1.Encryption{Recipients: []dbv1.AgeRecipient{dbv1.AgeRecipient(keys.ageRecipient)}},
			Verification: &dbv1.Verification{Enabled: true, AfterBackup: true, Schedule: "0 4 * * *",
				IdentitySecret: &dbv1.SecretKeyRef{Name: "drill-identity", Key: "key.txt"}},
		},
	}
	err := cl.c.Create(ctx, res.DeepCopy())
	if err == nil || !strings.Contains(err.Error(), "verification.afterBackup cannot drill an encrypted backup") {
		t.Fatalf("create with afterBackup and encryption = %v; want the API server's refusal", err)
	}
	res.Spec.Verification.AfterBackup = false
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "sealed-manual-")
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "drill-identity" {
			t.Fatalf("the backup Job mounts the identity Secret")
		}
	}
	if run := cl.k.runJob(ctx, j); run.exitErr != nil {
		t.Fatalf("backup job failed: %v\n%s", run.exitErr, run.output)
	}
	backedUp := cl.waitOutcome("sealed")
	requireSucceeded(t, backedUp)

	cj := waitForCronJob(t, cl, "sealed-verify")
	vj := jobFromCronJob(t, cl, cj, 1)
	run := cl.k.runJob(ctx, vj)
	if run.exitErr != nil {
		t.Fatalf("drill job failed: %v\n%s", run.exitErr, run.output)
	}
	got := cl.waitVerified("sealed")
	v := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionVerified)
	if v.Status != metav1.ConditionTrue || got.Status.LastVerification.Tables == 0 {
		t.Fatalf("Verified = %s/%s/%q, lastVerification %+v; want True with the recorded tables checked", v.Status, v.Reason, v.Message, got.Status.LastVerification)
	}
	for _, secret := range keys.secrets() {
		if strings.Contains(run.output, secret) || strings.Contains(v.Message, secret) {
			t.Errorf("the drill's log or status shows identity text %q", secret)
		}
	}
}

package controller

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// The restore Job is a backup Job's sandbox running `dbarchive job restore`:
// same pod and container security, same repo mounts, the target password
// by reference only, no retries by default.
func TestRestoreJobSpec(t *testing.T) {
	repo := dbv1.Repo{Name: "s3", Type: dbv1.RepoTypeS3, Bucket: "b", SecretName: "s3-keys",
		CABundle: &dbv1.CABundleRef{SecretName: "ca"}}
	dr := &dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "r1", Namespace: "ns"},
		Spec: dbv1.DatabaseRestoreSpec{
			From: dbv1.RestoreFrom{DatabaseBackup: "orders"},
			Target: dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "h", Database: "d",
				PasswordSecretRef: &dbv1.SecretKeyRef{Name: "pw", Key: "password"}},
		},
	}
	got := restoreJobSpec(dr, restoreSpot{repo: &repo, bucket: "b", backup: "orders"}, "img")
	db := &dbv1.DatabaseBackup{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "ns"},
		Spec: dbv1.DatabaseBackupSpec{Repos: []dbv1.Repo{repo}, Source: &dbv1.Source{Type: dbv1.SourceTypePostgres}}}
	backup := jobSpec(db, &repo, dbv1.JobTriggerManual, "img")

	if *got.BackoffLimit != 0 || *got.ActiveDeadlineSeconds != defaultRestoreDeadline {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %d; want 0 and %d", *got.BackoffLimit, *got.ActiveDeadlineSeconds, defaultRestoreDeadline)
	}
	pod, bpod := got.Template.Spec, backup.Template.Spec
	if !equality.Semantic.DeepEqual(pod.SecurityContext, bpod.SecurityContext) {
		t.Errorf("pod security %+v, backup's %+v", pod.SecurityContext, bpod.SecurityContext)
	}
	c, bc := pod.Containers[0], bpod.Containers[0]
	if !equality.Semantic.DeepEqual(c.SecurityContext, bc.SecurityContext) || !equality.Semantic.DeepEqual(c.VolumeMounts, bc.VolumeMounts) ||
		!equality.Semantic.DeepEqual(pod.Volumes, bpod.Volumes) {
		t.Errorf("container security or mounts differ from the backup's")
	}
	if c.Name != dbv1.RestoreContainerName || !slices.Equal(c.Command, dbv1.RestoreJobCommand) {
		t.Errorf("container %s runs %v", c.Name, c.Command)
	}
	if rule := got.PodFailurePolicy.Rules[0]; *rule.OnExitCodes.ContainerName != dbv1.RestoreContainerName || rule.OnExitCodes.Values[0] != dbv1.JobExitPermanent {
		t.Errorf("podFailurePolicy does not fail the Job on the restore container's exit %d: %+v", dbv1.JobExitPermanent, rule)
	}
	if pod.ServiceAccountName != RestoreRBACName("r1") {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	pw := env[dbv1.JobEnvTargetPassword]
	if pw.Value != "" || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Name != "pw" || pw.ValueFrom.SecretKeyRef.Key != "password" {
		t.Errorf("target password env = %+v, want a secretKeyRef to pw/password", pw)
	}
	for name, want := range map[string]string{dbv1.JobEnvRestoreName: "r1", dbv1.JobEnvNamespace: "ns", dbv1.JobEnvRepo: "s3", dbv1.JobEnvBucket: "b"} {
		if env[name].Value != want {
			t.Errorf("env %s = %q, want %q", name, env[name].Value, want)
		}
	}
	if _, ok := env[dbv1.JobEnvSourcePassword]; ok {
		t.Error("the restore pod gets the backup source's password")
	}

	// Retries only when the spec asks (the API allows it with createDatabase).
	dr.Spec.BackoffLimit = new(int32)
	*dr.Spec.BackoffLimit = 2
	if got := restoreJobSpec(dr, restoreSpot{repo: &repo}, "img"); *got.BackoffLimit != 2 {
		t.Errorf("backoffLimit %d, want 2", *got.BackoffLimit)
	}
}

// The restore job may read its DatabaseRestore and the DatabaseBackup it
// names and patch its status, by name; nothing else.
func TestRestoreRoleRules(t *testing.T) {
	rules := RestoreRoleRules("r1", "orders")
	raw, _ := json.Marshal(rules)
	want := `[{"verbs":["get"],"apiGroups":["database.sample.third.party"],"resources":["databaserestores"],"resourceNames":["r1"]},` +
		`{"verbs":["patch"],"apiGroups":["database.sample.third.party"],"resources":["databaserestores/status"],"resourceNames":["r1"]},` +
		`{"verbs":["get"],"apiGroups":["database.sample.third.party"],"resources":["databasebackups"],"resourceNames":["orders"]}]`
	if string(raw) != want {
		t.Errorf("rules\n%s\nwant\n%s", raw, want)
	}
	if raw, _ := json.Marshal(RestoreRoleRules("r1", "")); strings.Contains(string(raw), "databasebackups") {
		t.Errorf("an inline-repo restore may read DatabaseBackups: %s", raw)
	}
}

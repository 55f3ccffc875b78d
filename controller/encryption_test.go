package controller_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// spec.encryption reaches the backup pod as public keys only: the inline
// recipients stay in the resource (the job reads them from there), and the
// recipients Secret is mounted as exactly one file. No identity, and no
// other key of that Secret, reaches the Job or CronJob; a missing
// recipients Secret blocks the jobs like any other Secret.
func TestEncryptionMountsRecipientsOnly(t *testing.T) {
	h := start(t)
	h.secrets()
	const recipient = "age1wjkw9cx4nnk54wazkhhjk774vtsyfve53fqf89luw9skgh0rqausjnj233"
	identity := "AGE-SECRET-KEY-1AVWEPUJDNKG0MAU5WT93RQ7E63C4H2TNF6K7KFK9FS4C0FESLVGQTXR9CA"
	b := scheduled(manual(newBackup("sealed"), time.Now().Add(-time.Minute)), "@hourly")
	b.Spec.Encryption = &dbv1.Encryption{
		Recipients:       []dbv1.AgeRecipient{recipient},
		RecipientsSecret: &dbv1.SecretKeyRef{Name: "keys", Key: "team.txt"},
	}
	h.create(b)
	cond := h.waitCondition("sealed", dbv1.ConditionReady, "False", dbv1.ReasonSecretMissing)
	if !strings.Contains(cond.Message, "encryption.recipientsSecret") || !strings.Contains(cond.Message, `"keys"`) {
		t.Errorf("Ready message %q does not name the field and the Secret", cond.Message)
	}
	if _, err := h.cronJob("sealed"); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob exists while the recipients Secret is missing (err %v)", err)
	}

	// The Secret also holds an identity under another key, as a careless
	// one might: only team.txt may be mounted.
	h.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keys"}, StringData: map[string]string{
		"team.txt": "# ops\n" + recipient + "\n", "key.txt": identity,
	}})
	h.reconcile("sealed")
	h.waitCondition("sealed", dbv1.ConditionReady, "True", dbv1.ReasonReconciled)
	cj := h.waitCronJob("sealed", nil)
	var job batchv1.Job
	h.eventually("manual Job", func() string {
		jobs := h.jobs("sealed")
		if len(jobs) != 1 {
			return "no Job"
		}
		job = jobs[0]
		return ""
	})
	for what, spec := range map[string]corev1.PodSpec{"Job": job.Spec.Template.Spec, "CronJob": cj.Spec.JobTemplate.Spec.Template.Spec} {
		raw, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), identity[16:]) || strings.Contains(string(raw), "key.txt") {
			t.Errorf("%s pod spec holds the identity or its key name:\n%s", what, raw)
		}
		c := spec.Containers[0]
		v := volume(spec.Volumes, dbv1.RecipientsMountPath, c.VolumeMounts)
		if v == nil || v.Secret == nil || v.Secret.SecretName != "keys" ||
			!reflect.DeepEqual(v.Secret.Items, []corev1.KeyToPath{{Key: "team.txt", Path: dbv1.RecipientsFile}}) {
			t.Errorf("%s: recipients are not the key team.txt as %s/%s: %+v", what, dbv1.RecipientsMountPath, dbv1.RecipientsFile, v)
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == dbv1.RecipientsMountPath && !m.ReadOnly {
				t.Errorf("%s: recipients mount is writable", what)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "keys" {
				t.Errorf("%s: env %s reads the recipients Secret", what, e.Name)
			}
		}
	}
}

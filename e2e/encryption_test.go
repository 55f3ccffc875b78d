package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/archiver"
)

// encryptionKeys are two key pairs: an age key whose public half goes
// inline into the spec, and an ssh key whose public half goes into a
// recipients Secret.
type encryptionKeys struct {
	ageIdentity, ageRecipient string
	sshIdentity, sshRecipient string
}

func newEncryptionKeys(t *testing.T) encryptionKeys {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	must(t, err)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(t, err)
	spk, err := ssh.NewPublicKey(pub)
	must(t, err)
	return encryptionKeys{
		ageIdentity: id.String(), ageRecipient: id.Recipient().String(),
		sshIdentity: string(pem.EncodeToMemory(block)), sshRecipient: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(spk))) + " ops@example.com",
	}
}

// secrets are pieces of the identities that appear nowhere else.
func (k encryptionKeys) secrets() []string {
	lines := strings.Split(k.sshIdentity, "\n")
	return []string{k.ageIdentity[len("AGE-SECRET-KEY-1"):], lines[len(lines)/2], "AGE-SECRET-KEY-1", "PRIVATE KEY"}
}

// TestEncryptedBackup: a DatabaseBackup with spec.encryption (an inline age
// key and a recipients Secret holding an ssh key) runs a Job whose pod spec
// carries no identity, not even by reference, and mounts only the recipients
// key; the backup in the repo is an age file; lastBackup says it is
// encrypted; each identity alone restores the database with the CLI; and no
// status, Event or Job shows key material.
func TestEncryptedBackup(t *testing.T) {
	cl := startCluster(t)
	srv, dbName, db := sourceDB(t)
	want := fingerprint(t, db)
	keys := newEncryptionKeys(t)
	claim := t.TempDir()
	cl.k.claims["backups"] = claim
	ctx := context.Background()
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "backup-recipients", Namespace: cl.ns},
		StringData: map[string]string{"recipients.txt": "# ops\n" + keys.sshRecipient + "\n"},
	}))
	// The identities exist in the namespace, as they might for a restore:
	// the backup Job must not reference them.
	must(t, cl.c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "restore-identity", Namespace: cl.ns},
		StringData: map[string]string{"key.txt": keys.ageIdentity, "id_ed25519": keys.sshIdentity},
	}))
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "vault", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups", Path: "pg"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
			Encryption: &dbv1.Encryption{
				Recipients:       []dbv1.AgeRecipient{dbv1.AgeRecipient(keys.ageRecipient)},
				RecipientsSecret: &dbv1.SecretKeyRef{Name: "backup-recipients", Key: "recipients.txt"},
			},
		},
	}
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "vault-manual-")
	spec, err := json.Marshal(j)
	must(t, err)
	for _, s := range append(keys.secrets(), "restore-identity") {
		if strings.Contains(string(spec), s) {
			t.Fatalf("the backup Job holds %q (an identity or a reference to one):\n%s", s, spec)
		}
	}
	var recipientVolumes int
	for _, v := range j.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "backup-recipients" {
			recipientVolumes++
			if len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "recipients.txt" {
				t.Errorf("recipients volume mounts %+v, want only the recipients key", v.Secret.Items)
			}
		}
	}
	if recipientVolumes != 1 {
		t.Fatalf("the Job mounts the recipients Secret %d times, want once", recipientVolumes)
	}

	run := cl.k.runJob(ctx, j)
	if run.exitErr != nil {
		t.Fatalf("job failed: %v", run.exitErr)
	}
	got := cl.waitOutcome("vault")
	requireSucceeded(t, got)
	lb := got.Status.LastBackup
	if !lb.Encrypted || lb.Recipients != 2 || !strings.HasSuffix(lb.ObjectKey, "/"+archiver.DataObjectEncrypted) {
		t.Fatalf("lastBackup = %+v, want encrypted to 2 recipients, object data.zst.age", lb)
	}
	repoDir := filepath.Join(claim, "pg", cl.ns, "vault")
	raw, err := os.ReadFile(filepath.Join(repoDir, lb.ID, archiver.ManifestObject))
	must(t, err)
	m, err := archiver.DecodeManifest(raw)
	must(t, err)
	sshNoComment := strings.TrimSuffix(keys.sshRecipient, " ops@example.com")
	if m.Encryption == nil || strings.Join(m.Encryption.Recipients, "|") != keys.ageRecipient+"|"+sshNoComment {
		t.Fatalf("manifest encryption %+v, want the inline key then the Secret's", m.Encryption)
	}

	// Each identity alone restores; without one the CLI says what it needs.
	repoURL := "file://" + repoDir
	if fp := restoreWithCLI(t, srv, repoURL, "DBARCHIVE_IDENTITY="+keys.ageIdentity); fp != want {
		t.Fatalf("restored with the age identity: %s, want %s", fp, want)
	}
	if fp := restoreWithCLI(t, srv, repoURL, "DBARCHIVE_IDENTITY="+keys.sshIdentity); fp != want {
		t.Fatalf("restored with the ssh identity: %s, want %s", fp, want)
	}
	cmd := exec.Command(binary, "restore", "--repo", repoURL, "--output", filepath.Join(t.TempDir(), "dump"))
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), "is encrypted") {
		t.Fatalf("restore without identity: %v\n%s", err, out)
	}

	// A DatabaseRestore needs spec.identitySecret for an encrypted backup,
	// and with it restores; only its Job mounts the identity.
	noKey := cl.runRestore(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "sealed-nokey"},
		Spec:       dbv1.DatabaseRestoreSpec{From: fromBackup("vault"), Target: pgTarget(srv.Name(t, "e2e_enc_nokey")), CreateDatabase: true},
	})
	requireFailed(t, noKey, dbv1.ReasonRestoreFailed, 3, "is encrypted", "spec.identitySecret")
	target := srv.Name(t, "e2e_enc_restore")
	withKey := cl.runRestore(&dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "sealed-key"},
		Spec: dbv1.DatabaseRestoreSpec{From: fromBackup("vault"), Target: pgTarget(target), CreateDatabase: true,
			IdentitySecret: &dbv1.SecretKeyRef{Name: "restore-identity", Key: "id_ed25519"}},
	})
	requireRestored(t, withKey, got.Status.LastBackup.ID)
	if fp := fingerprint(t, srv.Connect(t, target)); fp != want {
		t.Fatalf("restored through a DatabaseRestore: %s, want %s", fp, want)
	}

	// Nothing the cluster shows holds key material.
	events := &corev1.EventList{}
	must(t, cl.c.List(ctx, events, client.InNamespace(cl.ns)))
	shown, err := json.Marshal(struct {
		Status any
		Events any
		Jobs   any
		Log    string
	}{[]any{got.Status, withKey.dr.Status, noKey.dr.Status}, events.Items, j, run.output + withKey.run.output + noKey.run.output})
	must(t, err)
	for _, s := range keys.secrets() {
		if strings.Contains(string(shown), s) {
			t.Fatalf("status, Events, the Job or the job's log show %q", s)
		}
	}
}

// TestInvalidRecipientFailsJob: a recipient that passes the schema's
// prefix-and-alphabet check but is not a key fails the Job at once (exit 3)
// with reason InvalidRecipient naming the entry, and nothing is stored.
func TestInvalidRecipientFailsJob(t *testing.T) {
	cl := startCluster(t)
	_, dbName, _ := sourceDB(t)
	claim := t.TempDir()
	cl.k.claims["backups"] = claim
	keys := newEncryptionKeys(t)
	res := &dbv1.DatabaseBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "badkey", Namespace: cl.ns},
		Spec: dbv1.DatabaseBackupSpec{
			Repos:         []dbv1.Repo{{Name: "local", Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "backups"}}},
			ManualTrigger: manual("local"),
			Source:        pgSource(dbName),
			// The second key's checksum is wrong: its last character changed.
			Encryption: &dbv1.Encryption{Recipients: []dbv1.AgeRecipient{
				dbv1.AgeRecipient(keys.ageRecipient),
				dbv1.AgeRecipient(keys.ageRecipient[:len(keys.ageRecipient)-1] + map[bool]string{true: "p", false: "q"}[strings.HasSuffix(keys.ageRecipient, "q")]),
			}},
		},
	}
	ctx := context.Background()
	must(t, cl.c.Create(ctx, res))
	j := waitForJob(t, cl.c, cl.ns, "badkey-manual-")
	run := cl.k.runJob(ctx, j)
	var exitErr *exec.ExitError
	if !errors.As(run.exitErr, &exitErr) || exitErr.ExitCode() != dbv1.JobExitPermanent {
		t.Fatalf("job ended with %v, want exit code %d\n%s", run.exitErr, dbv1.JobExitPermanent, run.output)
	}
	got := cl.waitOutcome("badkey")
	c := meta.FindStatusCondition(got.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != dbv1.ReasonInvalidRecipient || !strings.Contains(c.Message, "spec.encryption.recipients[1]") {
		t.Fatalf("Succeeded = %+v, want False/InvalidRecipient naming recipients[1]", c)
	}
	if got.Status.LastBackup != nil {
		t.Errorf("lastBackup = %+v after a refused backup", got.Status.LastBackup)
	}
	entries, _ := os.ReadDir(filepath.Join(claim, cl.ns, "badkey"))
	for _, e := range entries {
		if e.Name() != ".dbarchive-uploads" {
			t.Errorf("a refused backup left %s in the repo", e.Name())
		}
	}
}

package job

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/drivers"
)

func TestEnvFromOSNamesMissingVariables(t *testing.T) {
	_, err := EnvFromOS(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "BACKUP_RESOURCE_NAME and NAMESPACE") {
		t.Fatalf("EnvFromOS with nothing set = %v, want both variables named", err)
	}
	env := map[string]string{"BACKUP_RESOURCE_NAME": "orders", "NAMESPACE": "db", "DBARCHIVE_SOURCE_PASSWORD": "pw"}
	e, err := EnvFromOS(func(k string) string { return env[k] })
	if err != nil || e.ResourceName != "orders" || e.Namespace != "db" || e.SourcePassword != "pw" {
		t.Fatalf("EnvFromOS = %+v, %v", e, err)
	}
}

// The exec source gets spec.source.command as its argv, word for word: no
// shell string is built and split again.
func TestExecSourceTakesCommandList(t *testing.T) {
	for _, args := range [][]string{
		{"mongodump", "--archive"},
		{"sh", "-c", "echo 'a b' \"c\" $HOME # not a comment"},
		{"x", "", "it's", `back\slash`, "tab\there", "new\nline"},
	} {
		src, err := (&Runner{}).openSource(&dbv1.Source{Type: dbv1.SourceTypeExec, Command: args})
		if err != nil {
			t.Fatalf("openSource(%q): %v", args, err)
		}
		got := src.(interface{ Argv() []string }).Argv()
		if strings.Join(got, "\x00") != strings.Join(args, "\x00") {
			t.Fatalf("argv %q, want %q", got, args)
		}
	}
	if _, err := (&Runner{}).openSource(&dbv1.Source{Type: dbv1.SourceTypeExec}); err == nil || !strings.Contains(err.Error(), "spec.source.command") {
		t.Fatalf("an empty command = %v, want an error naming spec.source.command", err)
	}
}

func TestReadSecretDirSkipsKubeletEntries(t *testing.T) {
	dir := t.TempDir()
	// The layout the kubelet makes: a timestamped dir, ..data pointing at
	// it, and one symlink per key.
	data := filepath.Join(dir, "..2026_11_26")
	must(t, os.Mkdir(data, 0o755))
	must(t, os.WriteFile(filepath.Join(data, "HmacAccessKeyId"), []byte("id\n"), 0o400))
	must(t, os.Symlink(data, filepath.Join(dir, "..data")))
	must(t, os.Symlink(filepath.Join("..data", "HmacAccessKeyId"), filepath.Join(dir, "HmacAccessKeyId")))
	got, err := readSecretDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got.Get("HmacAccessKeyId").Reveal() != "id" {
		t.Fatalf("readSecretDir = %v keys, want only HmacAccessKeyId=id", got.Values())
	}
}

func TestRepoPrefix(t *testing.T) {
	db := &dbv1.DatabaseBackup{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}}
	cases := []struct {
		repo dbv1.Repo
		want string
	}{
		{dbv1.Repo{Type: dbv1.RepoTypeS3, Bucket: "shared"}, "shop/orders"},
		{dbv1.Repo{Type: dbv1.RepoTypeS3, Bucket: "shared", Prefix: "/prod/orders/"}, "prod/orders"},
		// A bucket made from bucketNamePrefix is shared by the resources of
		// that name in every namespace: the namespace keeps them apart.
		{dbv1.Repo{Type: dbv1.RepoTypeIBMCOS, BucketNamePrefix: "database-backup-"}, "shop/orders"},
		{dbv1.Repo{Type: dbv1.RepoTypeFS, FS: &dbv1.FSRepo{ClaimName: "c"}}, "shop/orders"},
	}
	for _, c := range cases {
		if got := c.repo.KeyPrefix(db.Namespace, db.Name); got != c.want {
			t.Errorf("KeyPrefix(%+v) = %q, want %q", c.repo, got, c.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	got := oneLine("backup failed:\n  pg_dump: error\n" + strings.Repeat("x", 2000))
	if strings.Contains(got, "\n") || len(got) > 1024 || !strings.HasPrefix(got, "backup failed: pg_dump: error") {
		t.Fatalf("oneLine = %q", got[:80])
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Failures another attempt cannot fix exit with the code the Job's
// podFailurePolicy fails the Job on; others exit 1 and are retried.
func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("connection reset"), 1},
		{fmt.Errorf("backup: %w", permanent(errors.New("spec.source is not set"))), dbv1.JobExitPermanent},
		{fmt.Errorf("put part 1: %w", drivers.Errorf(drivers.PermissionDenied, "put", "k", errors.New("403"))), dbv1.JobExitPermanent},
		{drivers.Errorf(drivers.Transient, "put", "k", errors.New("503")), 1},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// spec.encryption becomes the backup's recipients: the inline keys, then
// the mounted recipients file. A key that does not parse is an
// InvalidRecipient failure (exit 3) naming the entry or line, never its
// text; a missing file is permanent too.
func TestRecipientsFromSpec(t *testing.T) {
	const (
		ageKey = "age1wjkw9cx4nnk54wazkhhjk774vtsyfve53fqf89luw9skgh0rqausjnj233"
		sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVjJyge56y8QHBSw8h1kbB4GW79CpRjJMReqQaA62wC ops@example.com"
		secret = "AGE-SECRET-KEY-1AVWEPUJDNKG0MAU5WT93RQ7E63C4H2TNF6K7KFK9FS4C0FESLVGQTXR9CA"
	)
	root := t.TempDir()
	dir := filepath.Join(root, dbv1.RecipientsMountPath)
	must(t, os.MkdirAll(dir, 0o755))
	file := filepath.Join(dir, dbv1.RecipientsFile)
	r := &Runner{Env: Env{MountRoot: root}}
	ref := &dbv1.SecretKeyRef{Name: "keys", Key: "recipients"}

	if rs, err := r.recipients(nil); rs != nil || err != nil {
		t.Fatalf("no encryption: %v, %v", rs, err)
	}
	must(t, os.WriteFile(file, []byte("# ops\n\n"+sshKey+"\n"), 0o400))
	rs, err := r.recipients(&dbv1.Encryption{Recipients: []dbv1.AgeRecipient{ageKey}, RecipientsSecret: ref})
	if err != nil || len(rs) != 2 || rs[0].String() != ageKey || rs[1].String() != strings.TrimSuffix(sshKey, " ops@example.com") {
		t.Fatalf("recipients = %v, %v; want the inline key, then the file's", rs, err)
	}

	for _, tc := range []struct {
		name string
		enc  *dbv1.Encryption
		file string
		want string
	}{
		{"bad inline checksum", &dbv1.Encryption{Recipients: []dbv1.AgeRecipient{ageKey, dbv1.AgeRecipient(ageKey[:len(ageKey)-1] + "q")}}, "", "spec.encryption.recipients[1]: malformed age recipient"},
		{"identity in the file", &dbv1.Encryption{RecipientsSecret: ref}, "# ops\n" + sshKey + "\n" + secret + "\n", "spec.encryption.recipientsSecret (Secret keys, key recipients), line 3: this is a secret key"},
		{"empty file", &dbv1.Encryption{RecipientsSecret: ref}, "# nobody\n", "holds no recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file != "" {
				must(t, os.WriteFile(file, []byte(tc.file), 0o400))
			}
			_, err := r.recipients(tc.enc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != dbv1.JobExitPermanent || !errors.As(err, new(*invalidRecipientError)) {
				t.Fatalf("recipients = %v (exit %d), want InvalidRecipient %q", err, ExitCode(err), tc.want)
			}
			if strings.Contains(err.Error(), secret[16:]) {
				t.Fatalf("error repeats the secret: %v", err)
			}
		})
	}
	must(t, os.Remove(file))
	if _, err := r.recipients(&dbv1.Encryption{RecipientsSecret: ref}); err == nil || ExitCode(err) != dbv1.JobExitPermanent || !strings.Contains(err.Error(), "recipientsSecret") {
		t.Fatalf("missing recipients file: %v", err)
	}
}

// spec.source.tls reaches each source type in its own parameter, and a
// source without it keeps its client's default (no parameter at all).
func TestDatabaseURLCarriesTLS(t *testing.T) {
	for _, c := range []struct {
		typ  dbv1.SourceType
		tls  dbv1.TLSMode
		want string
	}{
		{dbv1.SourceTypePostgres, "", "postgres://app@db:5432/sales"},
		{dbv1.SourceTypePostgres, dbv1.TLSDisable, "postgres://app@db:5432/sales?sslmode=disable"},
		{dbv1.SourceTypePostgres, dbv1.TLSVerifyFull, "postgres://app@db:5432/sales?sslmode=verify-full&sslrootcert=system"},
		{dbv1.SourceTypeMySQL, "", "mysql://app@db:5432/sales"},
		{dbv1.SourceTypeMySQL, dbv1.TLSDisable, "mysql://app@db:5432/sales?tls=disable"},
		{dbv1.SourceTypeMySQL, dbv1.TLSVerifyFull, "mysql://app@db:5432/sales?tls=verify-full"},
	} {
		got := databaseURL(c.typ, "db", 5432, "sales", "app", c.tls)
		if got != c.want {
			t.Errorf("databaseURL(%s, tls %q) = %s, want %s", c.typ, c.tls, got, c.want)
		}
		// Every URL it makes opens: the source accepts its own parameter.
		if _, err := (&Runner{}).openSource(&dbv1.Source{Type: c.typ, Host: "db", Port: 5432, Database: "sales", User: "app", TLS: c.tls}); err != nil {
			t.Errorf("openSource(%s, tls %q): %v", c.typ, c.tls, err)
		}
	}
}

package v1alpha1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/dbarchive/dbarchive/internal/envtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := envtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	os.Exit(code)
}

// A key pair made with age-keygen for these tests (it protects nothing), and
// an ssh public key line.
const (
	testRecipient    = "age1wjkw9cx4nnk54wazkhhjk774vtsyfve53fqf89luw9skgh0rqausjnj233"
	testIdentity     = "AGE-SECRET-KEY-1AVWEPUJDNKG0MAU5WT93RQ7E63C4H2TNF6K7KFK9FS4C0FESLVGQTXR9CA"
	testSSHRecipient = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMVjJyge56y8QHBSw8h1kbB4GW79CpRjJMReqQaA62wC ops@example.com"
)

// valid is a DatabaseBackup every rule accepts; each case breaks one thing.
const valid = `
apiVersion: database.sample.third.party/v1alpha1
kind: DatabaseBackup
metadata:
  name: orders
spec:
  repos:
  - name: cos
    type: ibmcos
    secretName: cos
    bucketNamePrefix: "database-backup-"
  - name: local
    type: fs
    fs:
      claimName: backups
      path: orders
  source:
    type: postgres
    host: db
    database: orders
    passwordSecretRef: {name: db, key: password}
  manualTrigger:
    enabled: true
    time: "2022-12-15T02:59:43.1Z"
    repo: cos
  scheduledTrigger:
    enabled: true
    schedule: "0 * * * *"
    repo: local
`

func newNamespace(t *testing.T, env *envtest.Env) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "api-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func parse(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// Each CEL rule and schema marker rejects its bad case with a message a
// person understands.
func TestValidationRules(t *testing.T) {
	env := envtest.Shared(t)
	ns := newNamespace(t, env)
	ctx := context.Background()

	set := func(path string, v any) func(u *unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			if err := unstructured.SetNestedField(u.Object, v, strings.Split(path, ".")...); err != nil {
				t.Fatal(err)
			}
		}
	}
	repo := func(i int, field string, v any) func(u *unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			repos, _, _ := unstructured.NestedSlice(u.Object, "spec", "repos")
			r := repos[i].(map[string]any)
			if v == nil {
				delete(r, field)
			} else {
				r[field] = v
			}
			_ = unstructured.SetNestedSlice(u.Object, repos, "spec", "repos")
		}
	}
	del := func(path string) func(u *unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			unstructured.RemoveNestedField(u.Object, strings.Split(path, ".")...)
		}
	}

	cases := []struct {
		name   string
		change []func(*unstructured.Unstructured)
		want   string // "" means accepted
	}{
		{"valid", nil, ""},
		{"@daily schedule", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.schedule", "@daily")}, ""},
		{"ranged schedule", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.schedule", "*/15 2-4 * JAN-MAR mon-fri")}, ""},
		{"no source", []func(*unstructured.Unstructured){del("spec.source")}, ""},
		{"duplicate repo names", []func(*unstructured.Unstructured){repo(1, "name", "cos")}, "repo names must be unique within spec.repos"},
		{"repo name not DNS", []func(*unstructured.Unstructured){repo(0, "name", "COS_repo"), set("spec.manualTrigger.repo", "COS_repo")}, "repo name must be a DNS label"},
		{"repo name too long", []func(*unstructured.Unstructured){repo(0, "name", strings.Repeat("a", 64))}, "Too long"},
		{"unknown repo type", []func(*unstructured.Unstructured){repo(0, "type", "ftp")}, `supported values: "fs", "s3", "ibmcos", "gcs", "azure"`},
		{"manual trigger names unknown repo", []func(*unstructured.Unstructured){set("spec.manualTrigger.repo", "nope")}, "manualTrigger.repo must be the name of a repo in spec.repos"},
		{"scheduled trigger names unknown repo", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.repo", "nope")}, "scheduledTrigger.repo must be the name of a repo in spec.repos"},
		{"schedule not cron", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.schedule", "every hour")}, "schedule must be a cron expression of five fields"},
		{"schedule with six fields", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.schedule", "0 0 * * * *")}, "schedule must be a cron expression of five fields"},
		{"schedule with TZ", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.schedule", "TZ=UTC 0 * * * *")}, "schedule must be a cron expression of five fields"},
		{"manual time not a time", []func(*unstructured.Unstructured){set("spec.manualTrigger.time", "tomorrow")}, "spec.manualTrigger.time"},
		{"fs repo without claim", []func(*unstructured.Unstructured){repo(1, "fs", nil)}, "a repo of type fs needs fs.claimName"},
		{"fs settings on s3 repo", []func(*unstructured.Unstructured){repo(0, "fs", map[string]any{"claimName": "x"})}, "fs is only allowed on a repo of type fs"},
		{"object store without bucket", []func(*unstructured.Unstructured){repo(0, "bucketNamePrefix", nil)}, "needs bucket or bucketNamePrefix"},
		{"bucket and prefix", []func(*unstructured.Unstructured){repo(0, "bucket", "b-1")}, "set either bucket or bucketNamePrefix, not both"},
		{"bucketNamePrefix uppercase", []func(*unstructured.Unstructured){repo(0, "bucketNamePrefix", "Backup-")}, "bucketNamePrefix must start with a lowercase letter or digit"},
		{"bucket name too long", []func(*unstructured.Unstructured){repo(0, "bucketNamePrefix", strings.Repeat("b", 60))}, "bucketNamePrefix followed by metadata.name is the bucket name and must be at most 63 characters"},
		{"fs path escapes", []func(*unstructured.Unstructured){repo(1, "fs", map[string]any{"claimName": "x", "path": "a/../../etc"})}, "fs.path must stay inside the volume"},
		{"name too long for CronJob", []func(*unstructured.Unstructured){set("metadata.name", strings.Repeat("n", 43))}, "metadata.name must be at most 42 characters"},
		{"postgres without host", []func(*unstructured.Unstructured){del("spec.source.host")}, "a postgres or mysql source needs host and database"},
		{"http without url", []func(*unstructured.Unstructured){set("spec.source.type", "http")}, "an http source needs url"},
		{"exec without command", []func(*unstructured.Unstructured){set("spec.source.type", "exec")}, "an exec source needs command"},
		{"tls on an http source", []func(*unstructured.Unstructured){set("spec.source.type", "http"), set("spec.source.url", "https://x/y"), set("spec.source.tls", "disable")}, "tls applies to postgres and mysql sources only"},
		{"unknown tls mode", []func(*unstructured.Unstructured){set("spec.source.tls", "prefer")}, `supported values: "disable", "verify-full"`},
		{"unknown source type", []func(*unstructured.Unstructured){set("spec.source.type", "oracle")}, `supported values: "postgres", "mysql", "http", "exec"`},
		{"no repos", []func(*unstructured.Unstructured){set("spec.repos", []any{}), del("spec.manualTrigger"), del("spec.scheduledTrigger")}, "should have at least 1 items"},
		{"compression level out of range", []func(*unstructured.Unstructured){set("spec.compressionLevel", int64(23))}, "should be less than or equal to 22"},
		{"time zone", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.timeZone", "Europe/Berlin")}, ""},
		// What the CronJob API refuses is refused here, not found later.
		{"time zone Local", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.timeZone", "Local")}, `"Local" is not allowed by CronJobs`},
		{"time zone empty", []func(*unstructured.Unstructured){set("spec.scheduledTrigger.timeZone", "")}, "spec.scheduledTrigger.timeZone"},
		{"bad part size", []func(*unstructured.Unstructured){set("spec.partSize", "lots")}, "spec.partSize"},
		{"encryption to age and ssh keys", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipients": []any{testRecipient, testSSHRecipient}})}, ""},
		{"encryption to a recipients Secret", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipientsSecret": map[string]any{"name": "keys", "key": "recipients.txt"}})}, ""},
		{"encryption to nobody", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipients": []any{}})}, "encryption needs recipients or recipientsSecret"},
		{"verification after backup", []func(*unstructured.Unstructured){set("spec.verification", map[string]any{"enabled": true, "afterBackup": true, "checks": []any{map[string]any{"name": "rows", "sql": "SELECT count(*) > 0 FROM t"}}})}, ""},
		{"verification on a schedule", []func(*unstructured.Unstructured){set("spec.verification", map[string]any{"enabled": true, "schedule": "0 5 * * 0", "repo": "local"})}, ""},
		{"verification that never runs", []func(*unstructured.Unstructured){set("spec.verification", map[string]any{"enabled": true})}, "verification.enabled needs afterBackup: true or a schedule"},
		{"verification of an unknown repo", []func(*unstructured.Unstructured){set("spec.verification", map[string]any{"enabled": true, "schedule": "@daily", "repo": "nope"})}, "verification.repo must be the name of a repo in spec.repos"},
		{"verification check without sql", []func(*unstructured.Unstructured){set("spec.verification", map[string]any{"enabled": true, "afterBackup": true, "checks": []any{map[string]any{"name": "x"}}})}, "spec.verification.checks[0].sql: Required"},
		{"encrypted and drilled after backup", []func(*unstructured.Unstructured){
			set("spec.encryption", map[string]any{"recipients": []any{testRecipient}}),
			set("spec.verification", map[string]any{"enabled": true, "afterBackup": true}),
		}, "verification.afterBackup cannot drill an encrypted backup"},
		{"encryption to an identity", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipients": []any{testRecipient, testIdentity}})}, "spec.encryption.recipients[1]: Forbidden: a recipient must be an age public key"},
		{"encryption to garbage", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipients": []any{"age1ABC"}})}, "a recipient must be an age public key"},
		{"encryption to a key with two lines", []func(*unstructured.Unstructured){set("spec.encryption", map[string]any{"recipients": []any{testRecipient + "\n" + testRecipient}})}, "a recipient must be an age public key"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := parse(t, valid)
			u.SetNamespace(ns)
			for _, c := range tc.change {
				c(u)
			}
			if u.GetName() == "orders" {
				u.SetName(fmt.Sprintf("case-%d", i))
			}
			err := env.Client.Create(ctx, u, client.DryRunAll)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("accepted; want rejection with %q", tc.want)
			case !apierrors.IsInvalid(err):
				t.Fatalf("rejected for another reason: %v", err)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("message %q does not contain %q", err.Error(), tc.want)
			case strings.Contains(err.Error(), testIdentity[16:]):
				t.Fatalf("the API server's message repeats the identity: %v", err)
			default:
				t.Logf("rejected: %v", err)
			}
		})
	}
}

// Every sample in config/samples, the article's among them, passes a
// server-side dry-run create (kubectl apply --dry-run=server).
func TestSamplesServerDryRun(t *testing.T) {
	env := envtest.Shared(t)
	ctx := context.Background()
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sawArticle := false
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			ns := newNamespace(t, env)
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
			n := 0
			for {
				doc, err := docs.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				u := &unstructured.Unstructured{}
				if err := yaml.Unmarshal(doc, &u.Object); err != nil {
					t.Fatal(err)
				}
				if len(u.Object) == 0 {
					continue
				}
				n++
				if u.GetNamespace() != "" {
					// The article's namespace: make it exist, as a user would.
					err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetNamespace()}})
					if err != nil && !apierrors.IsAlreadyExists(err) {
						t.Fatal(err)
					}
					if u.GetKind() == "DatabaseBackup" && u.GetName() == "databasebackup-manual" {
						sawArticle = true
					}
				} else {
					u.SetNamespace(ns)
				}
				if err := env.Client.Create(ctx, u, client.DryRunAll); err != nil {
					t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
			if n == 0 {
				t.Fatal("no objects in the sample")
			}
		})
	}
	if !sawArticle {
		t.Error("the article's DatabaseBackup is not among the samples")
	}
}

// validRestore is a DatabaseRestore every rule accepts; each case breaks one
// thing.
const validRestore = `
apiVersion: database.sample.third.party/v1alpha1
kind: DatabaseRestore
metadata:
  name: orders-restore
spec:
  from:
    databaseBackup: orders
    repoName: cos
  backup: latest
  target:
    type: postgres
    host: db
    database: orders_copy
    passwordSecretRef: {name: db, key: password}
  createDatabase: true
`

func TestRestoreValidationRules(t *testing.T) {
	env := envtest.Shared(t)
	ns := newNamespace(t, env)
	ctx := context.Background()
	set := func(path string, v any) func(u *unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			if err := unstructured.SetNestedField(u.Object, v, strings.Split(path, ".")...); err != nil {
				t.Fatal(err)
			}
		}
	}
	del := func(path string) func(u *unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			unstructured.RemoveNestedField(u.Object, strings.Split(path, ".")...)
		}
	}
	inline := map[string]any{"name": "vault", "type": "s3", "bucket": "backups", "prefix": "prod/orders", "secretName": "s3"}
	type change = func(*unstructured.Unstructured)
	cases := []struct {
		name   string
		change []change
		want   string
	}{
		{"valid", nil, ""},
		{"backup id", []change{set("spec.backup", "20261126T101530.123Z-1a2b3c4d")}, ""},
		{"before", []change{set("spec.backup", "before:2026-11-29T03:00:00Z")}, ""},
		{"before with offset and fraction", []change{set("spec.backup", "before:2026-11-29T03:00:00.5+01:00")}, ""},
		{"inline repo", []change{del("spec.from"), set("spec.from.repo", inline)}, ""},
		{"mysql target", []change{set("spec.target.type", "mysql")}, ""},
		{"overwrite", []change{set("spec.overwrite", true), set("spec.createDatabase", false)}, ""},
		{"retries with createDatabase", []change{set("spec.backoffLimit", int64(2))}, ""},
		{"from neither", []change{del("spec.from.databaseBackup"), del("spec.from.repoName")}, "from needs exactly one of from.databaseBackup"},
		{"from both", []change{del("spec.from.repoName"), set("spec.from.repo", inline)}, "from needs exactly one of from.databaseBackup"},
		{"repoName with inline repo", []change{del("spec.from.databaseBackup"), set("spec.from.repo", inline)}, "from.repoName names a repo of from.databaseBackup"},
		{"inline repo without prefix", []change{del("spec.from"), set("spec.from.repo", map[string]any{"name": "vault", "type": "s3", "bucket": "backups"})}, "from.repo.prefix is required"},
		{"inline repo with bucketNamePrefix", []change{del("spec.from"), set("spec.from.repo", map[string]any{"name": "vault", "type": "s3", "bucketNamePrefix": "db-", "prefix": "x"})}, "from.repo.bucketNamePrefix is not allowed"},
		{"inline fs repo without claim", []change{del("spec.from"), set("spec.from.repo", map[string]any{"name": "vault", "type": "fs", "prefix": "x"})}, "a repo of type fs needs fs.claimName"},
		{"target without database", []change{del("spec.target.database")}, "target.database is required"},
		{"target without host", []change{del("spec.target.host")}, "target.host is required"},
		{"target of type http", []change{set("spec.target.type", "http")}, "target.type must be postgres or mysql"},
		{"target of unknown type", []change{set("spec.target.type", "oracle")}, `supported values: "postgres", "mysql", "http", "exec"`},
		{"malformed before", []change{set("spec.backup", "before:yesterday")}, "backup must be latest, a backup id"},
		{"before without zone", []change{set("spec.backup", "before:2026-11-29T03:00:00")}, "backup must be latest, a backup id"},
		{"not an id", []change{set("spec.backup", "../other")}, "spec.backup"},
		{"retries without createDatabase", []change{set("spec.backoffLimit", int64(1)), set("spec.createDatabase", false)}, "backoffLimit above 0 needs createDatabase: true"},
		{"name too long for the Job", []change{set("metadata.name", strings.Repeat("r", 56))}, "metadata.name must be at most 55 characters"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := parse(t, validRestore)
			u.SetNamespace(ns)
			for _, c := range tc.change {
				c(u)
			}
			if u.GetName() == "orders-restore" {
				u.SetName(fmt.Sprintf("case-%d", i))
			}
			err := env.Client.Create(ctx, u, client.DryRunAll)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("accepted; want rejection with %q", tc.want)
			case !apierrors.IsInvalid(err):
				t.Fatalf("rejected for another reason: %v", err)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("message %q does not contain %q", err.Error(), tc.want)
			default:
				t.Logf("rejected: %v", err)
			}
		})
	}

	// The spec cannot change once created; the status can.
	u := parse(t, validRestore)
	u.SetNamespace(ns)
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, "other_db", "spec", "target", "database"); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Update(ctx, u)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "create a new DatabaseRestore") {
		t.Fatalf("spec update: %v; want a refusal saying to create a new DatabaseRestore", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, map[string]any{"job": "orders-restore-restore"}, "status"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Status().Update(ctx, u); err != nil {
		t.Fatalf("status update refused: %v", err)
	}
}

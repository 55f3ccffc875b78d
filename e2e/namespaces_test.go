package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/conformance/emulators"
)

// Two DatabaseBackups of the same name in two namespaces, with the article's
// bucketNamePrefix, share one bucket: each keeps its backups under its own
// namespace, and neither one's keepLast deletes the other's backup.
func TestSameNameInTwoNamespacesKeepBothBackups(t *testing.T) {
	_, dbName, _ := sourceDB(t)
	s3 := emulators.S3(t)
	ctx := context.Background()
	keys := map[string]string{
		"AccessKeyId":     s3.Secrets.Get("AccessKeyId").Reveal(),
		"SecretAccessKey": s3.Secrets.Get("SecretAccessKey").Reveal(),
	}
	var clusters []*cluster
	for range 2 {
		cl := startCluster(t)
		must(t, cl.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-keys", Namespace: cl.ns}, StringData: keys}))
		must(t, cl.c.Create(ctx, &dbv1.DatabaseBackup{
			ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: cl.ns},
			Spec: dbv1.DatabaseBackupSpec{
				Repos: []dbv1.Repo{{
					Name: "s3", Type: dbv1.RepoTypeS3, SecretName: "s3-keys", ServiceEndpoint: s3.Endpoint,
					BucketNamePrefix: "database-backup-", Region: s3.Region, PathStyle: true,
				}},
				ManualTrigger: manual("s3"),
				Source:        pgSource(dbName),
				Retention:     &dbv1.Retention{KeepLast: ptr.To[int32](1)},
			},
		}))
		clusters = append(clusters, cl)
	}
	ids := map[string]string{}
	for _, cl := range clusters {
		j := waitForJob(t, cl.c, cl.ns, "orders-manual-")
		if run := cl.k.runJob(ctx, j); run.exitErr != nil {
			t.Fatalf("job in %s failed: %v", cl.ns, run.exitErr)
		}
		got := cl.waitOutcome("orders")
		requireSucceeded(t, got)
		if want := cl.ns + "/orders/"; !strings.HasPrefix(got.Status.LastBackup.ObjectKey, want) {
			t.Errorf("lastBackup.objectKey = %q, want it under %s", got.Status.LastBackup.ObjectKey, want)
		}
		ids[cl.ns] = got.Status.LastBackup.ID
	}
	// Both backups are still there after both retentions ran.
	for ns, id := range ids {
		repoURL := fmt.Sprintf("s3://database-backup-orders/%s/orders?endpoint=%s&region=%s&path_style=true", ns, s3.Endpoint, s3.Region)
		cmd := exec.Command(binary, "list", "--repo", repoURL, "-o", "json")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+keys["AccessKeyId"], "AWS_SECRET_ACCESS_KEY="+keys["SecretAccessKey"])
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dbarchive list %s: %v\n%s", repoURL, err, out)
		}
		if !strings.Contains(string(out), id) {
			t.Errorf("backup %s of %s/orders is gone from the shared bucket:\n%s", id, ns, out)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/internal/envtest"
	"github.com/dbarchive/dbarchive/job"
)

// restoreRes is the target database of the restores through a
// DatabaseRestore.
const restoreRes = "dbarchive_bench_restore_resource"

// resourceRestore runs restores through a DatabaseRestore on a real
// kube-apiserver (envtest): each run creates the resource and runs its pod's
// container, `dbarchive job restore`, as the kubelet would, with the pod
// contract's environment and the repo Secret mounted as files. What is
// measured is the job: it reads the resource, resolves the backup, writes
// status.backup, restores, and writes the outcome. The operator's part (one
// Job create, milliseconds) and the cluster's pod start-up are not in it.
type resourceRestore struct {
	env        *envtest.Env
	ns         string
	kubeconfig string
	mountRoot  string
}

// startResourceRestore starts the API server and lays out the pod's mounts.
func (b *bench) startResourceRestore(ctx context.Context) (*resourceRestore, error) {
	// envtest logs through controller-runtime's logger, which otherwise
	// prints a stack trace about never having been set.
	ctrllog.SetLogger(logr.Discard())
	env, err := envtest.Start()
	if err != nil {
		return nil, fmt.Errorf("restore through a DatabaseRestore needs envtest (make envtest-assets): %w", err)
	}
	rr := &resourceRestore{env: env, ns: "bench", mountRoot: filepath.Join(b.work, "restore-pod")}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rr.ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	secretDir := filepath.Join(rr.mountRoot, dbv1.RepoSecretMountPath)
	if err := os.MkdirAll(secretDir, 0o700); err != nil {
		return nil, err
	}
	for k, v := range map[string]string{"AccessKeyId": s3AccessKey, "SecretAccessKey": s3SecretKey} {
		if err := os.WriteFile(filepath.Join(secretDir, k), []byte(v), 0o400); err != nil && !os.IsPermission(err) {
			return nil, err
		}
	}
	kc := clientcmdapi.NewConfig()
	cfg := env.Config
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["job"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["job"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "job", Namespace: rr.ns}
	kc.CurrentContext = "job"
	rr.kubeconfig = filepath.Join(b.work, "restore-pod.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, rr.kubeconfig); err != nil {
		return nil, err
	}
	return rr, nil
}

func (rr *resourceRestore) stop() {
	if rr != nil {
		_ = rr.env.Stop()
	}
}

// create makes the DatabaseRestore of one run: the dbarchive backup on the
// S3 server, given as a full repo (as a disaster recovery would), into a new
// database.
func (rr *resourceRestore) create(ctx context.Context, b *bench, run string) error {
	dr := &dbv1.DatabaseRestore{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + run, Namespace: rr.ns},
		Spec: dbv1.DatabaseRestoreSpec{
			From: dbv1.RestoreFrom{Repo: &dbv1.Repo{
				Name: "s3", Type: dbv1.RepoTypeS3, SecretName: "bench-s3", ServiceEndpoint: "http://" + b.srv.addr,
				Region: "us-east-1", PathStyle: true, Bucket: s3Bucket, Prefix: b.dbaBackup.prefix,
			}},
			Backup:         b.dbaBackup.id,
			Target:         dbv1.RestoreTarget{Type: dbv1.SourceTypePostgres, Host: "127.0.0.1", Port: 5432, Database: restoreRes, User: "postgres"},
			CreateDatabase: true,
		},
	}
	_ = rr.env.Client.Delete(ctx, &dbv1.DatabaseRestore{ObjectMeta: dr.ObjectMeta})
	return rr.env.Client.Create(ctx, dr)
}

// command is the restore pod's container as the operator specifies it.
func (rr *resourceRestore) command(b *bench, run string) command {
	name := "bench-" + run
	return command{
		args: append([]string{b.dbarchive}, dbv1.RestoreJobCommand[1:]...),
		env: []string{
			dbv1.JobEnvRestoreName + "=" + name,
			dbv1.JobEnvNamespace + "=" + rr.ns,
			dbv1.JobEnvRepo + "=s3",
			dbv1.JobEnvBucket + "=" + s3Bucket,
			dbv1.JobEnvJobName + "=" + dbv1.RestoreJobName(name),
			job.EnvMountRoot + "=" + rr.mountRoot,
			"KUBECONFIG=" + rr.kubeconfig,
		},
	}
}

// check fails a run whose resource does not say RestoreSucceeded.
func (rr *resourceRestore) check(ctx context.Context, run string) error {
	dr := &dbv1.DatabaseRestore{}
	if err := rr.env.Client.Get(ctx, client.ObjectKey{Namespace: rr.ns, Name: "bench-" + run}, dr); err != nil {
		return err
	}
	c := meta.FindStatusCondition(dr.Status.Conditions, dbv1.ConditionSucceeded)
	if c == nil || c.Reason != dbv1.ReasonRestoreSucceeded {
		return fmt.Errorf("DatabaseRestore bench-%s: Succeeded = %+v", run, c)
	}
	return nil
}

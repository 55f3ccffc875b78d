// Command operator runs the DatabaseBackup controller: it turns
// DatabaseBackup resources into CronJobs and Jobs that run `dbarchive job`.
// It only wires flags, the manager, metrics and health probes; the logic is
// in package controller.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
	// The operator validates scheduledTrigger.timeZone; its image may have
	// no zoneinfo.
	_ "time/tzdata"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/memlimit"
)

// version is the operator's version, set at build time with
// -ldflags "-X main.version=v1.2.3". The default job image is the job image
// of the same version, so that an operator and its jobs move together.
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr string
		probeAddr   string
		leaderElect bool
		leaderNS    string
		workers     int
		jobImage    string
		pullPolicy  string
		allowed     string
		watchNS     string
		defaultRPO  time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader, so that several replicas can run and only one reconciles")
	flag.StringVar(&leaderNS, "leader-election-namespace", "", "namespace of the leader election Lease; the pod's namespace when empty")
	flag.IntVar(&workers, "max-concurrent-reconciles", controller.DefaultMaxConcurrentReconciles, "DatabaseBackups reconciled in parallel")
	flag.StringVar(&jobImage, "job-image", defaultJobImageFlag(), "backup job image used when a DatabaseBackup sets no spec.image (default: the job image of this operator's version)")
	flag.StringVar(&pullPolicy, "job-image-pull-policy", "", "imagePullPolicy of the Jobs' containers: Always, IfNotPresent or Never (default: the cluster's, IfNotPresent unless the tag is latest)")
	flag.StringVar(&allowed, "allowed-job-images", "", "comma-separated path.Match patterns a DatabaseBackup's spec.image must match, e.g. registry.example.com/dbarchive/*; empty allows only --job-image")
	flag.DurationVar(&defaultRPO, "default-rpo", 0, "recovery point objective of a DatabaseBackup without the dbarchive.io/rpo annotation, exported as dbarchive_backup_rpo_seconds for the alerts (0: none)")
	flag.StringVar(&watchNS, "watch-namespace", "", "comma-separated namespaces to watch; empty watches all. With namespaces set, the operator can run with Roles in them instead of a ClusterRole")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	switch corev1.PullPolicy(pullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("--job-image-pull-policy %q: want Always, IfNotPresent or Never", pullPolicy)
	}

	// The caches grow with the DatabaseBackups (about 15 KiB each), and
	// GOGC=100 lets garbage reach the live heap again: at 10,000 the peak
	// passed the Deployment's 256Mi limit. Below the limit the collector
	// works harder instead.
	soft, err := memlimit.Apply()
	if err != nil {
		return err
	}
	if soft > 0 {
		ctrl.Log.WithName("setup").Info("soft memory limit from the container's limit", "bytes", soft)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(dbv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	opts, err := managerOptions(scheme, watchNS)
	if err != nil {
		return err
	}
	opts.Metrics = metricsserver.Options{BindAddress: metricsAddr}
	opts.HealthProbeBindAddress = probeAddr
	opts.LeaderElection = leaderElect
	opts.LeaderElectionID = "dbarchive-operator.database.sample.third.party"
	opts.LeaderElectionNamespace = leaderNS
	// The manager stops reconciling at once when it loses the lease;
	// releasing it on shutdown lets the next replica start sooner.
	opts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(controller.ClientConfig(cfg), opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	m, err := controller.NewMetrics(metrics.Registry)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	rec := &controller.Reconciler{
		Metrics:                 m,
		MaxConcurrentReconciles: workers,
		DefaultJobImage:         jobImage,
		JobImagePullPolicy:      corev1.PullPolicy(pullPolicy),
		DefaultRPO:              defaultRPO,
		AllowedJobImages:        splitList(allowed),
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up DatabaseBackup controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("ready check: %w", err)
	}

	ctrl.Log.WithName("setup").Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// managerOptions are controller.ManagerOptions with the caches narrowed to
// the namespaces of --watch-namespace, each checked to be a namespace name.
func managerOptions(scheme *runtime.Scheme, watch string) (ctrl.Options, error) {
	namespaces := splitList(watch)
	for _, ns := range namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return ctrl.Options{}, fmt.Errorf("--watch-namespace: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	return controller.ManagerOptions(scheme, namespaces), nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// defaultJobImageFlag is --job-image's default: the job image of this
// operator's version.
func defaultJobImageFlag() string { return dbv1.JobImage(version) }

package controller_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
)

// timed records how long each Reconcile takes.
type timed struct {
	next reconcile.Reconciler
	mu   sync.Mutex
	durs []time.Duration
	errs int
}

func (t *timed) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	res, err := t.next.Reconcile(ctx, req)
	d := time.Since(start)
	t.mu.Lock()
	t.durs = append(t.durs, d)
	if err != nil {
		t.errs++
	}
	t.mu.Unlock()
	return res, err
}

func (t *timed) percentile(p float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.durs) == 0 {
		return 0
	}
	s := slices.Clone(t.durs)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// BenchmarkReconcile1000 creates 1,000 DatabaseBackups with a scheduled
// trigger in 20 namespaces, then starts the operator and measures the time
// until every one has its CronJob, and the latency of single reconciles.
// Run it with -benchtime=1x: one iteration is the whole workload.
func BenchmarkReconcile1000(b *testing.B) {
	const namespaces, perNamespace = 20, 50
	env := envtest.Shared(b)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		var nss []string
		for range namespaces {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
			if err := env.Client.Create(ctx, ns); err != nil {
				b.Fatal(err)
			}
			nss = append(nss, ns.Name)
		}
		for _, ns := range nss {
			for _, s := range []*corev1.Secret{
				{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds", Namespace: ns}, StringData: map[string]string{"AccessKeyId": "a", "SecretAccessKey": "b"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "p"}},
			} {
				if err := env.Client.Create(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			for i := range perNamespace {
				bk := scheduled(newBackup(fmt.Sprintf("db-%03d", i)), fmt.Sprintf("%d * * * *", i%60))
				bk.Namespace = ns
				if err := env.Client.Create(ctx, bk); err != nil {
					b.Fatal(err)
				}
			}
		}

		tm := &timed{}
		b.StartTimer()
		began := time.Now()
		h := start(b, func(c *harnessConfig) {
			c.namespace = nss[0]
			c.extraNS = nss[1:]
			c.wrap = func(r reconcile.Reconciler) reconcile.Reconciler { tm.next = r; return tm }
		})
		want := namespaces * perNamespace
		h.eventually("every CronJob", func() string {
			n := 0
			for _, ns := range nss {
				var list batchv1.CronJobList
				if err := env.Client.List(ctx, &list, client.InNamespace(ns),
					client.MatchingLabels{controller.LabelManagedBy: controller.ManagedByValue}); err != nil {
					return err.Error()
				}
				n += len(list.Items)
			}
			if n < want {
				return fmt.Sprintf("%d of %d CronJobs", n, want)
			}
			return ""
		})
		total := time.Since(began)
		b.StopTimer()

		tm.mu.Lock()
		reconciles, errs := len(tm.durs), tm.errs
		tm.mu.Unlock()
		b.ReportMetric(total.Seconds(), "s/1000-backups")
		b.ReportMetric(float64(tm.percentile(0.50).Microseconds())/1000, "p50-ms/reconcile")
		b.ReportMetric(float64(tm.percentile(0.99).Microseconds())/1000, "p99-ms/reconcile")
		b.ReportMetric(float64(reconciles), "reconciles")
		b.ReportMetric(float64(errs), "errors")
		b.Logf("%d DatabaseBackups in %d namespaces: every CronJob after %v; %d reconciles (%d returned an error and were retried), p50 %v, p99 %v, max %v",
			want, namespaces, total.Round(time.Millisecond), reconciles, errs,
			tm.percentile(0.50).Round(10*time.Microsecond), tm.percentile(0.99).Round(10*time.Microsecond), tm.percentile(1).Round(10*time.Microsecond))
	}
}

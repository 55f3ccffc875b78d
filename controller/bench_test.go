package controller_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
	"github.com/dbarchive/dbarchive/controller"
	"github.com/dbarchive/dbarchive/internal/envtest"
	"github.com/dbarchive/dbarchive/internal/memlimit"
)

// The operator benchmark runs the operator as its own process (this test
// binary, re-executed; TestMain hands over to runBenchOperator), so that its
// peak RSS is the operator's alone: not the benchmark's client that creates
// the DatabaseBackups and polls for CronJobs, and not kube-apiserver or
// etcd, which are processes of their own anyway.
const (
	// benchOperatorEnv names the file the operator process writes its
	// benchOperatorStats to when it stops; set, it makes the test binary the
	// operator.
	benchOperatorEnv = "DBARCHIVE_BENCH_OPERATOR_STATS"
	// benchProfileEnv names a directory: the operator process writes its CPU
	// profile (operator-cpu.pprof) and heap profile (operator-heap.pprof)
	// there, and the benchmark kube-apiserver's CPU profile over the run
	// (apiserver-cpu-N.pprof, one per profileChunk; `go tool pprof` merges
	// them).
	benchProfileEnv = "DBARCHIVE_BENCH_PROFILE_DIR"
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
	if ctx.Err() != nil {
		// Cut short by the operator's shutdown: neither a latency nor an
		// error of the operator.
		return res, err
	}
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

// requestCounter counts the operator's API requests by verb and resource
// ("create roles", "update databasebackups/status", "watch cronjobs").
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		key := requestKey(req)
		c.mu.Lock()
		if c.counts == nil {
			c.counts = map[string]int{}
		}
		c.counts[key]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// requestKey is "verb resource[/subresource]" of a Kubernetes API request,
// from its method and path (/api/v1/namespaces/NS/RESOURCE/NAME/SUB or
// /apis/GROUP/VERSION/...), as the API server's audit log names them.
func requestKey(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method) + " discovery"
	}
	if len(parts) == 0 {
		return strings.ToLower(req.Method) + " discovery"
	}
	if parts[0] == "namespaces" && len(parts) >= 3 {
		parts = parts[2:] // namespaced: RESOURCE[/NAME[/SUB]]
	}
	resource, named := parts[0], len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
	if req.Method == http.MethodGet {
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	if verb == "" {
		verb = strings.ToLower(req.Method)
	}
	return verb + " " + resource
}

// benchOperatorStats is what the operator process reports when it stops.
type benchOperatorStats struct {
	Reconciles int            `json:"reconciles"`
	Errors     int            `json:"errors"`
	P50Ms      float64        `json:"p50_ms"`
	P99Ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	Requests   map[string]int `json:"requests"`
	// PeakRSSKiB is VmHWM from /proc/self/status: what the kernel saw at
	// most, the executable's pages included.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// PeakAnonKiB is the largest RssAnon sampled every 100 ms: the
	// process's private memory, without its executable's pages.
	PeakAnonKiB int64 `json:"peak_anon_kib"`
}

// runBenchOperator is the operator process of the benchmark: the manager
// built with controller.ManagerOptions (as cmd/operator builds it, watching
// all namespaces) from the kubeconfig in KUBECONFIG (as ctrl.GetConfig reads
// it in cmd/operator, client-side rate limit included, then
// controller.ClientConfig), with the reconciler
// timed and the API requests counted. It runs until SIGTERM and then writes
// its stats to statsPath. It returns the exit code.
func runBenchOperator(statsPath string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "bench operator:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// To stderr: the benchmark shows the last lines when reconciles failed.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fail(err)
	}
	cfg = controller.ClientConfig(cfg)
	var counter requestCounter
	cfg.Wrap(counter.wrap)

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(dbv1.AddToScheme(scheme))
	opts := controller.ManagerOptions(scheme, nil)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fail(err)
	}
	m, err := controller.NewMetrics(metrics.Registry)
	if err != nil {
		return fail(err)
	}
	r := &controller.Reconciler{Metrics: m, MaxConcurrentReconciles: controller.DefaultMaxConcurrentReconciles, DefaultJobImage: testJobImage}
	tm := &timed{next: r}
	if err := r.SetupWithManagerAs(mgr, tm); err != nil {
		return fail(err)
	}

	profDir := os.Getenv(benchProfileEnv)
	if profDir != "" {
		f, err := os.Create(filepath.Join(profDir, "operator-cpu.pprof"))
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(err)
		}
	}
	var peakAnon atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if kib, err := procStatusKiB("self", "RssAnon"); err == nil && kib > peakAnon.Load() {
				peakAnon.Store(kib)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	if err := mgr.Start(ctx); err != nil {
		return fail(err)
	}
	<-sampled
	if profDir != "" {
		pprof.StopCPUProfile()
		f, err := os.Create(filepath.Join(profDir, "operator-heap.pprof"))
		if err != nil {
			return fail(err)
		}
		// The heap as the last GC left it: what the caches hold.
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return fail(err)
		}
		if err := f.Close(); err != nil {
			return fail(err)
		}
	}

	counter.mu.Lock()
	tm.mu.Lock()
	st := benchOperatorStats{Reconciles: len(tm.durs), Errors: tm.errs, Requests: counter.counts}
	tm.mu.Unlock()
	counter.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	st.P50Ms, st.P99Ms, st.MaxMs = ms(tm.percentile(0.50)), ms(tm.percentile(0.99)), ms(tm.percentile(1))
	if st.PeakRSSKiB, err = procStatusKiB("self", "VmHWM"); err != nil {
		return fail(err)
	}
	st.PeakAnonKiB = peakAnon.Load()
	raw, err := json.Marshal(st)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(statsPath, raw, 0o644); err != nil {
		return fail(err)
	}
	return 0
}

// procStatusKiB reads one "Name:  1234 kB" line of /proc/PID/status.
func procStatusKiB(pid, field string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, pid)
}

// childCPU is the CPU seconds (user+system) used so far by this process's
// children named in names (kube-apiserver, etcd), from /proc/PID/stat.
func childCPU(names ...string) (float64, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	var ticks int64
	for _, p := range dirs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ... utime(14) stime(15)
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		comm, f := s[open+1:end], strings.Fields(s[end+1:])
		if len(f) < 13 || !slices.Contains(names, comm) {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return float64(ticks) / 100, nil // USER_HZ is 100 on Linux
}

// profileChunk is the length of one kube-apiserver CPU profile: the run's
// length is not known in advance, so it is profiled in chunks until it ends.
const profileChunk = 10 * time.Second

// profileAPIServer writes kube-apiserver's CPU profile to dir in chunks
// until ctx ends (the last chunk is cut short: the API server stops
// profiling when the request goes away, and that chunk is lost). It does
// nothing when dir is empty. The returned channel closes when it is done.
func profileAPIServer(ctx context.Context, b *testing.B, cfg *rest.Config, dir string) <-chan struct{} {
	done := make(chan struct{})
	if dir == "" {
		close(done)
		return done
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Logf("no kube-apiserver profile: %v", err)
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(cfg.Host, "/"), int(profileChunk.Seconds()))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				b.Logf("kube-apiserver profile: %v", err)
				return
			}
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					b.Logf("kube-apiserver profile: %v", err)
				}
				return
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				if ctx.Err() == nil {
					b.Logf("kube-apiserver profile: %s %v", resp.Status, err)
				}
				return
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("apiserver-cpu-%d.pprof", i)), raw, 0o644); err != nil {
				b.Logf("kube-apiserver profile: %v", err)
				return
			}
		}
	}()
	return done
}

// deploymentMemoryLimit is limits.memory of the operator's container in
// the Deployment manifest at path, in bytes.
func deploymentMemoryLimit(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(raw, &d); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			return q.Value(), nil
		}
	}
	return 0, fmt.Errorf("%s: no container has limits.memory", path)
}

// writeKubeconfig writes a kubeconfig for cfg (envtest's admin) to path.
func writeKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

// BenchmarkReconcile1000 creates 1,000 DatabaseBackups with a scheduled
// trigger in 20 namespaces, then starts the operator and measures the time
// until every one has its CronJob. Run it with -benchtime=1x: one
// iteration is the whole workload.
func BenchmarkReconcile1000(b *testing.B) { benchReconcile(b, 20, 50) }

// BenchmarkReconcile10000 is BenchmarkReconcile1000 with 10,000
// DatabaseBackups in 100 namespaces: the operator's scale target.
func BenchmarkReconcile10000(b *testing.B) { benchReconcile(b, 100, 100) }

// benchCluster is one iteration's API server of its own (kube-apiserver
// and etcd) with the DatabaseBackups and their Secrets created, and a
// kubeconfig for it: the same starting point for the operator and for the
// API floor.
type benchCluster struct {
	env        *envtest.Env
	kubeconfig string
	want       int // DatabaseBackups

	cpuBefore, etcdBefore float64
	stopProf              context.CancelFunc
	profDone              <-chan struct{}
}

// startBenchCluster starts the API server (the operator watches all
// namespaces, as it does by default, so it must see nothing else) and
// creates perNamespace DatabaseBackups and their two Secrets in each of
// namespaces fresh namespaces. The benchmark's timer is stopped.
func startBenchCluster(b *testing.B, namespaces, perNamespace int) *benchCluster {
	b.StopTimer()
	env, err := envtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	c := &benchCluster{env: env, want: namespaces * perNamespace}
	setup := time.Now()
	if err := createBackups(context.Background(), env.Client, namespaces, perNamespace); err != nil {
		_ = env.Stop()
		b.Fatal(err)
	}
	b.Logf("created %d DatabaseBackups in %d namespaces in %v", c.want, namespaces, time.Since(setup).Round(time.Millisecond))
	c.kubeconfig = filepath.Join(b.TempDir(), "kubeconfig")
	if err := writeKubeconfig(env.Config, c.kubeconfig); err != nil {
		_ = env.Stop()
		b.Fatal(err)
	}
	return c
}

// startMeasuring notes the CPU time of kube-apiserver and etcd so far and
// starts profiling kube-apiserver when benchProfileEnv asks for it.
func (c *benchCluster) startMeasuring(b *testing.B) {
	var err error
	if c.cpuBefore, err = childCPU("kube-apiserver", "etcd"); err != nil {
		_ = c.env.Stop()
		b.Fatal(err)
	}
	c.etcdBefore, _ = childCPU("etcd")
	var profCtx context.Context
	profCtx, c.stopProf = context.WithCancel(context.Background())
	c.profDone = profileAPIServer(profCtx, b, c.env.Config, os.Getenv(benchProfileEnv))
}

// stopMeasuring returns the CPU seconds of kube-apiserver plus etcd, and
// of etcd alone, since startMeasuring, and stops profiling.
func (c *benchCluster) stopMeasuring() (apiserverAndEtcd, etcd float64, err error) {
	after, err := childCPU("kube-apiserver", "etcd")
	etcdAfter, _ := childCPU("etcd")
	c.stopProf()
	<-c.profDone
	return after - c.cpuBefore, etcdAfter - c.etcdBefore, err
}

// reportCluster reports what the operator benchmark and the API floor
// have in common: the seconds until every DatabaseBackup had its objects
// and the CPU seconds of kube-apiserver plus etcd meanwhile.
func reportCluster(b *testing.B, total time.Duration, apiCPU float64) {
	b.ReportMetric(total.Seconds(), "s/all-cronjobs")
	b.ReportMetric(apiCPU, "apiserver+etcd-cpu-s")
}

// benchReconcile creates perNamespace DatabaseBackups and their two
// Secrets in each of namespaces fresh namespaces of a benchCluster, starts
// the operator process and waits until every DatabaseBackup has its
// CronJob. It reports the seconds until then, the latency of single
// reconciles, the API requests per reconcile, the operator's peak RSS, and
// the CPU seconds of the operator and of kube-apiserver plus etcd over the
// run.
func benchReconcile(b *testing.B, namespaces, perNamespace int) {
	if _, err := envtest.AssetsDir(); err != nil {
		envtest.Missing(b, err)
	}
	memLimit, err := deploymentMemoryLimit(filepath.Join("..", "config", "manager", "manager.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		cl := startBenchCluster(b, namespaces, perNamespace)
		env, want := cl.env, cl.want
		statsPath := filepath.Join(b.TempDir(), "stats.json")
		var stderr bytes.Buffer
		op := exec.Command(os.Args[0], "-test.run=^$")
		op.Env = append(os.Environ(), "KUBECONFIG="+cl.kubeconfig, benchOperatorEnv+"="+statsPath)
		if os.Getenv("GOMEMLIMIT") == "" {
			// As cmd/operator sets it in its Deployment's container.
			op.Env = append(op.Env, "GOMEMLIMIT="+memlimit.Env(memLimit))
		}
		op.Stderr = &stderr
		cl.startMeasuring(b)
		b.StartTimer()
		if err := op.Start(); err != nil {
			_ = env.Stop()
			b.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- op.Wait() }()
		total, werr := waitForCronJobs(context.Background(), env.Client, want, exited)
		b.StopTimer()
		apiCPU, etcdCPU, cerr := cl.stopMeasuring()

		var opErr error
		if werr == nil || !errors.Is(werr, errOperatorExited) {
			_ = op.Process.Signal(syscall.SIGTERM)
			select {
			case opErr = <-exited:
			case <-time.After(90 * time.Second):
				_ = op.Process.Kill()
				opErr = fmt.Errorf("the operator did not stop within 90s of SIGTERM: %w", <-exited)
			}
		}
		stopErr := env.Stop()
		switch {
		case werr != nil:
			b.Fatalf("%v; operator stderr: %s", werr, lastLines(stderr.String(), 20))
		case opErr != nil:
			b.Fatalf("operator: %v; stderr: %s", opErr, lastLines(stderr.String(), 20))
		case cerr != nil:
			b.Fatal(cerr)
		case stopErr != nil:
			b.Fatal(stopErr)
		}
		raw, err := os.ReadFile(statsPath)
		if err != nil {
			b.Fatal(err)
		}
		var st benchOperatorStats
		if err := json.Unmarshal(raw, &st); err != nil {
			b.Fatal(err)
		}
		if st.Reconciles == 0 {
			b.Fatal("the operator reports no reconciles")
		}
		requests, writes := 0, 0
		keys := make([]string, 0, len(st.Requests))
		for k, n := range st.Requests {
			requests += n
			if v, _, _ := strings.Cut(k, " "); v != "get" && v != "list" && v != "watch" {
				writes += n
			}
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int { return st.Requests[y] - st.Requests[x] })
		var breakdown []string
		for _, k := range keys {
			breakdown = append(breakdown, fmt.Sprintf("%s %d", k, st.Requests[k]))
		}
		opCPU := op.ProcessState.UserTime() + op.ProcessState.SystemTime()
		per := float64(st.Reconciles)
		reportCluster(b, total, apiCPU)
		b.ReportMetric(st.P50Ms, "p50-ms/reconcile")
		b.ReportMetric(st.P99Ms, "p99-ms/reconcile")
		b.ReportMetric(float64(requests)/per, "requests/reconcile")
		b.ReportMetric(float64(writes)/per, "writes/reconcile")
		b.ReportMetric(float64(st.PeakRSSKiB)/1024, "peak-rss-MiB")
		b.ReportMetric(float64(st.PeakAnonKiB)/1024, "peak-anon-MiB")
		b.ReportMetric(opCPU.Seconds(), "operator-cpu-s")
		b.ReportMetric(float64(st.Reconciles), "reconciles")
		b.ReportMetric(float64(st.Errors), "errors")
		if st.Errors > 0 {
			b.Logf("the operator's last errors:\n%s", lastLines(errorLines(stderr.String()), 3))
		}
		b.Logf("%d DatabaseBackups in %d namespaces: every CronJob after %v; %d reconciles (%d returned an error and were retried), p50 %.1f ms, p99 %.1f ms, max %.1f ms; peak RSS %.1f MiB (anonymous %.1f MiB); CPU: operator %.1f s, kube-apiserver+etcd %.1f s (etcd %.1f s); %d API requests (%.2f per reconcile, %.2f writes): %s",
			want, namespaces, total.Round(time.Millisecond), st.Reconciles, st.Errors, st.P50Ms, st.P99Ms, st.MaxMs,
			float64(st.PeakRSSKiB)/1024, float64(st.PeakAnonKiB)/1024, opCPU.Seconds(), apiCPU, etcdCPU, requests, float64(requests)/per, float64(writes)/per, strings.Join(breakdown, ", "))
	}
}

// floorWrites are the writes the API floor makes per DatabaseBackup, in
// the operator's order.
type floorWrites struct {
	rbac    bool // ServiceAccount, Role, RoleBinding
	cronJob bool
	event   bool // the CronJobCreated Event
	status  bool
}

// floorVariants are the API floor's sub-benchmarks: the writes the design
// requires, and each with one kind of write added or left out, so that
// the difference to "required" is that write's cost.
var floorVariants = []struct {
	name   string
	writes floorWrites
}{
	{"required", floorWrites{rbac: true, cronJob: true, status: true}},
	{"required-status", floorWrites{rbac: true, cronJob: true}},
	{"required-rbac", floorWrites{cronJob: true, status: true}},
	{"required+event", floorWrites{rbac: true, cronJob: true, event: true, status: true}},
}

// BenchmarkAPIFloor1000 is the API floor of BenchmarkReconcile1000: see
// benchAPIFloor.
func BenchmarkAPIFloor1000(b *testing.B) { benchAPIFloor(b, 20, 50) }

// BenchmarkAPIFloor10000 is the API floor of BenchmarkReconcile10000.
func BenchmarkAPIFloor10000(b *testing.B) { benchAPIFloor(b, 100, 100) }

// benchAPIFloor measures what the operator benchmark cannot go below on
// this machine: on the same benchCluster and with no operator, a plain
// client (the operator's client config, as many workers as its
// MaxConcurrentReconciles) makes, for every DatabaseBackup, exactly the
// writes of the operator's first pass (controller's FirstPass: the same
// objects), and nothing else: no cache, no reads, no reconcile logic. The
// DatabaseBackups are listed before the clock starts. It reports the
// seconds until every write returned, the CPU seconds of kube-apiserver
// plus etcd and of this process (the client) meanwhile, and kube-apiserver
// plus etcd CPU milliseconds per write.
func benchAPIFloor(b *testing.B, namespaces, perNamespace int) {
	if _, err := envtest.AssetsDir(); err != nil {
		envtest.Missing(b, err)
	}
	for _, v := range floorVariants {
		b.Run(v.name, func(b *testing.B) {
			for range b.N {
				apiFloorOnce(b, namespaces, perNamespace, v.writes)
			}
		})
	}
}

func apiFloorOnce(b *testing.B, namespaces, perNamespace int, w floorWrites) {
	cl := startBenchCluster(b, namespaces, perNamespace)
	defer func() {
		if err := cl.env.Stop(); err != nil {
			b.Error(err)
		}
	}()
	// The config as the operator process gets it (ctrl.GetConfig from
	// KUBECONFIG, then controller.ClientConfig).
	b.Setenv("KUBECONFIG", cl.kubeconfig)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		b.Fatal(err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(dbv1.AddToScheme(scheme))
	c, err := client.New(controller.ClientConfig(cfg), client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var list dbv1.DatabaseBackupList
	if err := c.List(ctx, &list); err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != cl.want {
		b.Fatalf("listed %d DatabaseBackups, want %d", len(list.Items), cl.want)
	}
	r := &controller.Reconciler{Scheme: scheme, DefaultJobImage: testJobImage}
	passes := make([]controller.FirstPass, len(list.Items))
	for i := range list.Items {
		if passes[i], err = r.FirstPass(&list.Items[i]); err != nil {
			b.Fatal(err)
		}
	}
	var writes atomic.Int64
	create := func(o client.Object, opts ...client.CreateOption) error {
		writes.Add(1)
		if err := c.Create(ctx, o, opts...); err != nil {
			return fmt.Errorf("create %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
		}
		return nil
	}

	cl.startMeasuring(b)
	cpuBefore := selfCPU()
	began := time.Now()
	b.StartTimer()
	g := new(errgroup.Group)
	g.SetLimit(controller.DefaultMaxConcurrentReconciles)
	for i := range list.Items {
		bk, p := &list.Items[i], passes[i]
		g.Go(func() error {
			if w.rbac {
				// As controllerutil.CreateOrUpdate creates them: no field
				// owner of the operator's own.
				for _, o := range []client.Object{p.ServiceAccount, p.Role, p.RoleBinding} {
					if err := create(o); err != nil {
						return err
					}
				}
			}
			if w.cronJob {
				if err := create(p.CronJob, client.FieldOwner(controller.FieldManager)); err != nil {
					return err
				}
			}
			if w.event {
				if err := create(p.CronJobCreated); err != nil {
					return err
				}
			}
			if w.status {
				bk.Status = p.Status
				writes.Add(1)
				if err := c.Status().Update(ctx, bk, client.FieldOwner(controller.FieldManager)); err != nil {
					return fmt.Errorf("update status of %s/%s: %w", bk.Namespace, bk.Name, err)
				}
			}
			return nil
		})
	}
	werr := g.Wait()
	b.StopTimer()
	total := time.Since(began)
	clientCPU := selfCPU() - cpuBefore
	apiCPU, etcdCPU, cerr := cl.stopMeasuring()
	if err := errors.Join(werr, cerr); err != nil {
		b.Fatal(err)
	}
	n := writes.Load()
	reportCluster(b, total, apiCPU)
	b.ReportMetric(float64(n)/float64(cl.want), "writes/backup")
	b.ReportMetric(apiCPU*1000/float64(n), "apiserver+etcd-cpu-ms/write")
	b.ReportMetric(clientCPU, "client-cpu-s")
	b.Logf("%d DatabaseBackups: %d writes (%+v) in %v; CPU: kube-apiserver+etcd %.1f s (etcd %.1f s), client %.1f s",
		cl.want, n, w, total.Round(time.Millisecond), apiCPU, etcdCPU, clientCPU)
}

// selfCPU is the CPU seconds (user+system) this process has used so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// createBackups creates the namespaces, each with the two Secrets the
// DatabaseBackups name and perNamespace DatabaseBackups with a scheduled
// trigger (schedules spread over the hour), in parallel.
func createBackups(ctx context.Context, c client.Client, namespaces, perNamespace int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for n := range namespaces {
		ns := fmt.Sprintf("bench-%03d", n)
		g.Go(func() error {
			if err := c.Create(gctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return err
			}
			for _, s := range []*corev1.Secret{
				{ObjectMeta: metav1.ObjectMeta{Name: "repo-creds", Namespace: ns}, StringData: map[string]string{"AccessKeyId": "a", "SecretAccessKey": "b"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "p"}},
			} {
				if err := c.Create(gctx, s); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create namespaces and Secrets: %w", err)
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for n := range namespaces {
		for i := range perNamespace {
			g.Go(func() error {
				bk := scheduled(newBackup(fmt.Sprintf("db-%03d", i)), fmt.Sprintf("%d * * * *", i%60))
				bk.Namespace = fmt.Sprintf("bench-%03d", n)
				return c.Create(gctx, bk)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create DatabaseBackups: %w", err)
	}
	return nil
}

var errOperatorExited = errors.New("the operator exited")

// cronJobPoll is how often waitForCronJobs counts the CronJobs.
const cronJobPoll = 500 * time.Millisecond

// waitForCronJobs polls until want CronJobs exist and returns how long that
// took. It counts them with a list of one item: the API server tells how
// many remain (remainingItemCount, given for lists without a selector). The
// API server is the benchmark's own, so every CronJob on it is the
// operator's.
//
// Such a list still costs the API server time that grows with the CronJobs
// in its watch cache (about 4 ms at 10,000, under load): polled every
// 100 ms it was 6% of the API server's CPU in the 10,000 run, charged to
// the operator's figure and taken from its CPU. Every cronJobPoll keeps that
// near 1% and still times a run of a minute to within 1%.
func waitForCronJobs(ctx context.Context, c client.Client, want int, exited <-chan error) (time.Duration, error) {
	began := time.Now()
	deadline := time.After(15 * time.Minute)
	tick := time.NewTicker(cronJobPoll)
	defer tick.Stop()
	have := 0
	for {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("%w before every CronJob existed (%d of %d): %v", errOperatorExited, have, want, err)
		case <-deadline:
			return 0, fmt.Errorf("%d of %d CronJobs after 15 minutes", have, want)
		case <-tick.C:
		}
		var list metav1.PartialObjectMetadataList
		list.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("CronJobList"))
		if err := c.List(ctx, &list, client.Limit(1)); err != nil {
			return 0, fmt.Errorf("count CronJobs: %w", err)
		}
		have = len(list.Items)
		if r := list.RemainingItemCount; r != nil {
			have += int(*r)
		} else if list.Continue != "" {
			return 0, errors.New("count CronJobs: the API server gave no remainingItemCount")
		}
		if have >= want {
			return time.Since(began), nil
		}
	}
}

// errorLines are the lines of a zap JSON log at level error.
func errorLines(log string) string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, `"level":"error"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

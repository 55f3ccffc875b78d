package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	dbv1 "github.com/dbarchive/dbarchive/api/v1alpha1"
)

// Metrics are the operator's own series, next to controller-runtime's on the
// manager's metrics endpoint.
type Metrics struct {
	lastSuccess *prometheus.GaugeVec
	failures    *prometheus.CounterVec
	running     *prometheus.GaugeVec
	// The newest restore drill: when one last passed, and how long its
	// restore took (the recovery time a real restore can expect).
	verifiedAt      *prometheus.GaugeVec
	drillDuration   *prometheus.GaugeVec
	restores        *prometheus.CounterVec
	restoreDuration *prometheus.HistogramVec

	// The newest backup and what it is judged against: per resource, the
	// repo as a label where the figure belongs to one repo. No backup ids
	// as labels: one series per resource, not per backup.
	lastRunSucceeded *prometheus.GaugeVec
	lastDuration     *prometheus.GaugeVec
	lastStored       *prometheus.GaugeVec
	lastUncompressed *prometheus.GaugeVec
	rpo              *prometheus.GaugeVec
	created          *prometheus.GaugeVec
	verifyPassed     *prometheus.GaugeVec
}

// NewMetrics creates the series and registers them with reg (in the operator:
// controller-runtime's metrics.Registry). A nil reg leaves them unregistered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbarchive_backup_last_success_timestamp_seconds",
			Help: "Unix time at which the last successful backup of a DatabaseBackup finished.",
		}, []string{"namespace", "name"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbarchive_backup_failures_total",
			Help: "Backup Jobs of a DatabaseBackup that the operator saw fail.",
		}, []string{"namespace", "name"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbarchive_backup_running",
			Help: "1 while a backup Job of a DatabaseBackup is running, else 0.",
		}, []string{"namespace", "name"}),
		verifiedAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbarchive_verification_last_success_timestamp_seconds",
			Help: "Unix time at which a restore drill of a DatabaseBackup's backup last passed.",
		}, []string{"namespace", "name"}),
		drillDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbarchive_restore_duration_seconds",
			Help: "Seconds the newest restore drill of a DatabaseBackup took to read, check and load its backup.",
		}, []string{"namespace", "name"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbarchive_restores_total",
			Help: "Finished DatabaseRestores by outcome (succeeded, failed, target_not_empty).",
		}, []string{"namespace", "outcome"}),
		restoreDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dbarchive_databaserestore_duration_seconds",
			Help: "Duration of finished DatabaseRestores, from the job's start to its report.",
			// 10 s to about 11 hours.
			Buckets: prometheus.ExponentialBuckets(10, 2, 13),
		}, []string{"outcome"}),
		lastRunSucceeded: gauge("dbarchive_backup_last_run_succeeded", "1 when the newest backup run of a DatabaseBackup succeeded, 0 when it failed.", "namespace", "name"),
		lastDuration:     gauge("dbarchive_backup_last_duration_seconds", "How long the newest successful backup of a DatabaseBackup took.", "namespace", "name", "repo"),
		lastStored:       gauge("dbarchive_backup_last_stored_bytes", "Bytes stored in the repo by the newest successful backup of a DatabaseBackup.", "namespace", "name", "repo"),
		lastUncompressed: gauge("dbarchive_backup_last_uncompressed_bytes", "Bytes of the dump (before compression) of the newest successful backup of a DatabaseBackup.", "namespace", "name", "repo"),
		rpo:              gauge("dbarchive_backup_rpo_seconds", "The recovery point objective of a DatabaseBackup (annotation dbarchive.io/rpo, else the operator's --default-rpo): its newest successful backup should be younger.", "namespace", "name"),
		created:          gauge("dbarchive_backup_created_timestamp_seconds", "Unix time at which a DatabaseBackup was created.", "namespace", "name"),
		verifyPassed:     gauge("dbarchive_verification_last_passed", "1 when the newest restore drill of a DatabaseBackup passed, 0 when it failed.", "namespace", "name"),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastSuccess, m.failures, m.running, m.restores, m.restoreDuration, m.verifiedAt, m.drillDuration,
			m.lastRunSucceeded, m.lastDuration, m.lastStored, m.lastUncompressed, m.rpo, m.created, m.verifyPassed} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) setLastSuccess(namespace, name string, unix float64) {
	if m == nil {
		return
	}
	m.lastSuccess.WithLabelValues(namespace, name).Set(unix)
}

func (m *Metrics) setRunning(namespace, name string, running bool) {
	if m == nil {
		return
	}
	v := 0.0
	if running {
		v = 1
	}
	m.running.WithLabelValues(namespace, name).Set(v)
}

func (m *Metrics) countFailure(namespace, name string) {
	if m == nil {
		return
	}
	m.failures.WithLabelValues(namespace, name).Inc()
}

// forget drops the series of a deleted DatabaseBackup, so that the endpoint
// does not grow with every resource ever created.
func (m *Metrics) forget(namespace, name string) {
	if m == nil {
		return
	}
	m.lastSuccess.DeleteLabelValues(namespace, name)
	m.failures.DeleteLabelValues(namespace, name)
	m.running.DeleteLabelValues(namespace, name)
	m.verifiedAt.DeleteLabelValues(namespace, name)
	m.drillDuration.DeleteLabelValues(namespace, name)
	for _, g := range []*prometheus.GaugeVec{m.lastRunSucceeded, m.lastDuration, m.lastStored, m.lastUncompressed, m.rpo, m.created, m.verifyPassed} {
		g.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	}
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// observe exports what b's status and annotations say about its newest
// backup, its objective and its last drill. rpo is the objective in force
// (0: none).
func (m *Metrics) observe(b *dbv1.DatabaseBackup, rpo time.Duration) {
	if m == nil {
		return
	}
	ns, name := b.Namespace, b.Name
	m.created.WithLabelValues(ns, name).Set(float64(b.CreationTimestamp.Unix()))
	if rpo > 0 {
		m.rpo.WithLabelValues(ns, name).Set(rpo.Seconds())
	} else {
		m.rpo.DeleteLabelValues(ns, name)
	}
	if h := b.Status.History; len(h) > 0 {
		m.lastRunSucceeded.WithLabelValues(ns, name).Set(boolValue(h[0].Outcome == dbv1.RunSucceeded))
	}
	if lb := b.Status.LastBackup; lb != nil {
		// The repo may have changed: one series per resource.
		for _, g := range []*prometheus.GaugeVec{m.lastDuration, m.lastStored, m.lastUncompressed} {
			g.DeletePartialMatch(prometheus.Labels{"namespace": ns, "name": name})
		}
		if lb.Duration != nil {
			m.lastDuration.WithLabelValues(ns, name, lb.Repo).Set(lb.Duration.Seconds())
		}
		m.lastStored.WithLabelValues(ns, name, lb.Repo).Set(float64(lb.StoredSize))
		if lb.UncompressedSize > 0 {
			m.lastUncompressed.WithLabelValues(ns, name, lb.Repo).Set(float64(lb.UncompressedSize))
		}
	}
	if lv := b.Status.LastVerification; lv != nil {
		m.verifyPassed.WithLabelValues(ns, name).Set(boolValue(lv.Passed))
	}
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// setVerification exports the newest drill's outcome.
func (m *Metrics) setVerification(namespace, name string, lv *dbv1.LastVerification) {
	if m == nil || lv == nil {
		return
	}
	if lv.LastSuccessTime != nil {
		m.verifiedAt.WithLabelValues(namespace, name).Set(float64(lv.LastSuccessTime.Unix()))
	}
	if lv.RestoreDuration != nil {
		m.drillDuration.WithLabelValues(namespace, name).Set(lv.RestoreDuration.Seconds())
	}
}

// countRestore records one finished restore; duration is 0 when unknown
// (the job never started) and then not observed.
func (m *Metrics) countRestore(namespace, outcome string, seconds float64) {
	if m == nil {
		return
	}
	m.restores.WithLabelValues(namespace, outcome).Inc()
	if seconds > 0 {
		m.restoreDuration.WithLabelValues(outcome).Observe(seconds)
	}
}

package controller

import (
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
	restoreDuration *prometheus.GaugeVec

	restores           *prometheus.CounterVec
	restoreJobDuration *prometheus.HistogramVec
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
		restoreDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dbarchive_restore_duration_seconds",
			Help: "Seconds the newest restore drill of a DatabaseBackup took to read, check and load its backup.",
		}, []string{"namespace", "name"}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dbarchive_restores_total",
			Help: "Finished DatabaseRestores by outcome (succeeded, failed, target_not_empty).",
		}, []string{"namespace", "outcome"}),
		restoreJobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dbarchive_databaserestore_duration_seconds",
			Help: "Duration of finished DatabaseRestores, from the job's start to its report.",
			// 10 s to about 11 hours.
			Buckets: prometheus.ExponentialBuckets(10, 2, 13),
		}, []string{"outcome"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lastSuccess, m.failures, m.running, m.verifiedAt, m.restoreDuration, m.restores, m.restoreJobDuration} {
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
	m.restoreDuration.DeleteLabelValues(namespace, name)
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
		m.restoreDuration.WithLabelValues(namespace, name).Set(lv.RestoreDuration.Seconds())
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
		m.restoreJobDuration.WithLabelValues(outcome).Observe(seconds)
	}
}

package auditlog

import (
	"strconv"
	"time"

	"github.com/attest/attest/internal/index"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the log's Prometheus measurements.
type Metrics struct {
	events        *prometheus.CounterVec
	batchEvents   prometheus.Histogram
	commitSeconds prometheus.Histogram
	commitErrors  prometheus.Counter
	logSize       *prometheus.GaugeVec
	merges        *prometheus.CounterVec
	// CheckpointAge is the age of each tenant's latest checkpoint.
	CheckpointAge *prometheus.GaugeVec
}

// NewMetrics creates the log's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_audit_events_total",
			Help: "Events handed to the audit log writer, by result."}, []string{"result"}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "attest_audit_batch_events",
			Help: "Events per audit log transaction.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "attest_audit_commit_seconds",
			Help: "Duration of audit log transactions.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "attest_audit_commit_errors_total",
			Help: "Audit log transactions that failed."}),
		logSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "attest_audit_log_size",
			Help: "Entries in each tenant's audit log."}, []string{"tenant"}),
		merges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "attest_audit_index_merges_total",
			Help: "Search index segments merged, by the level of the merged segment."}, []string{"level"}),
		CheckpointAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "attest_audit_checkpoint_age_seconds",
			Help: "Age of each tenant's latest signed checkpoint."}, []string{"tenant"}),
	}
	reg.MustRegister(m.events, m.batchEvents, m.commitSeconds, m.commitErrors, m.logSize, m.merges, m.CheckpointAge)
	return m
}

func (m *Metrics) observeCommit(batch []*op, appended int, d time.Duration, err error) {
	m.commitSeconds.Observe(d.Seconds())
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.batchEvents.Observe(float64(appended))
	var dup, rejected int
	for _, o := range batch {
		for _, r := range o.results {
			switch {
			case r.Duplicate:
				dup++
			case r.Err != nil:
				rejected++
			}
		}
	}
	m.events.WithLabelValues("accepted").Add(float64(appended))
	m.events.WithLabelValues("duplicate").Add(float64(dup))
	m.events.WithLabelValues("rejected").Add(float64(rejected))
}

func (m *Metrics) observeMerge(enc *index.Encoded) {
	if m != nil {
		m.merges.WithLabelValues(strconv.Itoa(enc.Meta.Level)).Inc()
	}
}

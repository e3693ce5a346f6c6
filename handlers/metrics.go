package handlers

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are hxchat's Prometheus metrics. None has a per-room label: room
// names are user input and would make cardinality unbounded.
type Metrics struct {
	StreamsOpen prometheus.Gauge
	Posted      prometheus.Counter
	Deleted     prometheus.Counter
	Deliveries  prometheus.Counter
	Replayed    prometheus.Counter
	Overflows   prometheus.Counter
	Rejected    *prometheus.CounterVec
	// PostDuration is the time to answer a message POST (stored or not).
	PostDuration prometheus.Histogram
	// FanoutLatency is the time from a message's post to its fan-out to
	// this node's subscribers (through Redis with many nodes).
	FanoutLatency prometheus.Histogram
	// StoreErrors counts failed store (SQLite, Redis) calls, by operation.
	StoreErrors *prometheus.CounterVec
	// Cancelled counts requests whose client left before they were
	// answered, by route pattern: not a server fault, so apart from errors.
	Cancelled *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		StreamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hxchat_streams_open", Help: "Open SSE streams."}),
		Posted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_messages_posted_total", Help: "Messages stored and fanned out."}),
		Deleted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_messages_deleted_total", Help: "Messages deleted by their authors or operators (on this node)."}),
		Deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_deliveries_total", Help: "Messages queued for a live subscriber."}),
		Replayed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_replayed_total", Help: "Messages sent from history on (re)connect."}),
		Overflows:   prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_subscriber_overflows_total", Help: "Times a subscriber's queue overflowed; it then resumed from the store."}),
		Rejected:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hxchat_rejected_requests_total", Help: "Requests refused, by reason."}, []string{"reason"}),
	}
	m.PostDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hxchat_post_duration_seconds", Help: "Time to answer a message POST.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	m.FanoutLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hxchat_fanout_latency_seconds", Help: "Time from a post to its fan-out to this node's subscribers.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}})
	m.StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hxchat_store_errors_total", Help: "Failed store (SQLite, Redis) calls, by operation."}, []string{"op"})
	m.Cancelled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hxchat_requests_cancelled_total", Help: "Requests (not streams) whose client left before they were answered, by route."}, []string{"route"})
	reg.MustRegister(m.StreamsOpen, m.Posted, m.Deleted, m.Deliveries, m.Replayed, m.Overflows, m.Rejected, m.PostDuration, m.FanoutLatency, m.StoreErrors, m.Cancelled)
	return m
}

func (m *Metrics) rejected(reason string) { m.Rejected.WithLabelValues(reason).Inc() }

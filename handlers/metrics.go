package handlers

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are hxchat's Prometheus metrics. None has a per-room label: room
// names are user input and would make cardinality unbounded.
type Metrics struct {
	StreamsOpen prometheus.Gauge
	Posted      prometheus.Counter
	Deliveries  prometheus.Counter
	Replayed    prometheus.Counter
	Dropped     prometheus.Counter
	Rejected    *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		StreamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hxchat_streams_open", Help: "Open SSE streams."}),
		Posted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_messages_posted_total", Help: "Messages stored and fanned out."}),
		Deliveries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_deliveries_total", Help: "Messages queued for a live subscriber."}),
		Replayed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_replayed_total", Help: "Messages sent from history on (re)connect."}),
		Dropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "hxchat_dropped_subscribers_total", Help: "Subscribers dropped because their queue overflowed."}),
		Rejected:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hxchat_rejected_requests_total", Help: "Requests refused, by reason."}, []string{"reason"}),
	}
	reg.MustRegister(m.StreamsOpen, m.Posted, m.Deliveries, m.Replayed, m.Dropped, m.Rejected)
	return m
}

func (m *Metrics) rejected(reason string) { m.Rejected.WithLabelValues(reason).Inc() }

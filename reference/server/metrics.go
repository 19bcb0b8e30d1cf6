package server

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type serverMetrics struct {
	streams     prometheus.Gauge
	pushes      prometheus.Counter
	bytesSent   prometheus.Counter
	resyncs     prometheus.Counter
	shed        prometheus.Counter
	propagation prometheus.Histogram
}

func newServerMetrics(reg *prometheus.Registry, s *Server) *serverMetrics {
	m := &serverMetrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "configd_streams", Help: "Open Watch streams.",
		}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "configd_pushes_total", Help: "Updates sent on Watch streams.",
		}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "configd_fragment_bytes_sent_total", Help: "Fragment bytes sent on Watch streams.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "configd_stream_resyncs_total", Help: "Catch-ups of Watch streams that fell behind the whole backlog.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "configd_watches_shed_total", Help: "Watch calls refused with ResourceExhausted because too many streams were waiting to catch up.",
		}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "configd_propagation_seconds",
			Help:    "From this replica learning of a change to sending it on a stream.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
	}
	l1 := func(pick func(entries, bytes int, hits, misses uint64) float64) func() float64 {
		return func() float64 { return pick(s.l1.Stats()) }
	}
	reg.MustRegister(m.streams, m.pushes, m.bytesSent, m.resyncs, m.shed, m.propagation,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "configd_l1_hits_total", Help: "L1 cache hits."},
			l1(func(_, _ int, hits, _ uint64) float64 { return float64(hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "configd_l1_misses_total", Help: "L1 cache misses."},
			l1(func(_, _ int, _, misses uint64) float64 { return float64(misses) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "configd_l1_bytes", Help: "Fragment bytes held in L1."},
			l1(func(_, bytes int, _, _ uint64) float64 { return float64(bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "configd_hunts", Help: "Hunts in this replica's index."},
			func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(len(s.hunts)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "configd_store_up", Help: "1 if the config store answered the last check, 0 if this replica is cut off from it."},
			func() float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.storeUp {
					return 1
				}
				return 0
			}),
	)
	return m
}

// metricsResyncs returns how many streams resynced, for tests.
func (s *Server) metricsResyncs() float64 {
	var m dto.Metric
	_ = s.metrics.resyncs.Write(&m)
	return m.GetCounter().GetValue()
}

package residency

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the manager's Prometheus series.
type Metrics struct {
	loads       *prometheus.CounterVec
	evictions   *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	loadSeconds prometheus.Histogram
	queueWait   prometheus.Histogram
	state       *prometheus.GaugeVec
}

var states = []string{StateLoaded, StateLoading, StateSleeping, StateUnloaded, StateFailed}

// NewMetrics returns the series, registered with reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_residency_loads_total",
			Help: "Loads of on-demand models, by model and mechanism (vllm-wake, sglang-resume, ollama-load, process-start)."}, []string{"model", "mechanism"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_residency_evictions_total",
			Help: "Evictions of on-demand models, by model and reason (Pressure, IdleTimeout, Requested, OverBudget)."}, []string{"model", "reason"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_residency_refusals_total",
			Help: "Requests refused instead of held, by model and reason (QueueFull 429, WaitExceeded 503, LoadFailed 503, DoesNotFit 503)."}, []string{"model", "reason"}),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "citadel_residency_load_seconds",
			Help: "Time to load an on-demand model (wake, resume, load or start).", Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120, 300}}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "citadel_residency_queue_wait_seconds",
			Help: "Time a request to an on-demand model was held before it was admitted (0 when resident).", Buckets: []float64{0, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120}}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "citadel_residency_state",
			Help: "1 for the state each on-demand model is in (loaded, loading, sleeping, unloaded, failed), 0 for the others."}, []string{"model", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.loads, m.evictions, m.refusals, m.loadSeconds, m.queueWait, m.state)
	}
	return m
}

func (m *Metrics) setState(model, state string) {
	for _, s := range states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(model, s).Set(v)
	}
}

func (m *Metrics) forget(model string) {
	for _, s := range states {
		m.state.DeleteLabelValues(model, s)
	}
}

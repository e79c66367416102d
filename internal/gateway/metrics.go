package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the gateway's Prometheus series (names after the OpenTelemetry GenAI
// conventions where they exist: time to first token, time per output token, token usage).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	ttft      *prometheus.HistogramVec
	tpot      *prometheus.HistogramVec
	tokens    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	failovers *prometheus.CounterVec
	overhead  prometheus.Histogram
	tasks     *prometheus.CounterVec
	decide    prometheus.Histogram
	refusals  *prometheus.CounterVec

	residencyWait     *prometheus.HistogramVec
	residencyRefusals *prometheus.CounterVec
}

var latencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_requests_total",
		Help: "Requests by front, public model, service, replica, key and HTTP status."}, []string{"front", "model", "service", "replica", "key", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "citadel_gateway_request_duration_seconds",
		Help: "Request latency, arrival to last byte.", Buckets: latencyBuckets}, []string{"model", "service"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "citadel_gateway_time_to_first_token_seconds",
		Help: "Arrival to the first byte of the upstream's response body (gen_ai.server.time_to_first_token).", Buckets: latencyBuckets}, []string{"model", "service"})
	m.tpot = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "citadel_gateway_time_per_output_token_seconds",
		Help:    "(last byte − first byte) / (output tokens − 1) of streamed responses (gen_ai.server.time_per_output_token).",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1}}, []string{"model", "service"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_tokens_total",
		Help: "Tokens by direction (input, output) from the upstream's usage (gen_ai.client.token.usage)."}, []string{"model", "service", "replica", "key", "direction"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_retries_total",
		Help: "Upstream attempts after the first, by public model."}, []string{"model"})
	m.failovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_failovers_total",
		Help: "Attempts that moved to another target (a fallback or another weighted target)."}, []string{"model", "from", "to"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "citadel_gateway_overhead_seconds",
		Help:    "Time the gateway spent before the upstream request left (parsing, auth, routing, balancing).",
		Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01}})
	m.tasks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_task_decisions_total",
		Help: "Requests to a virtual model by the task chosen and what chose it (header, embedding, image, rule, classifier, low-confidence)."}, []string{"model", "task", "how"})
	m.decide = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "citadel_gateway_task_decision_seconds",
		Help:    "Time to route a request to a virtual model: rules, the built-in classifier and the examples.",
		Buckets: []float64{0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005}})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_limit_refusals_total",
		Help: "Requests refused by a limit: scope key (an APIKey, by name) or model (a route's public model), and the limit (requests_per_minute, tokens_per_minute, max_concurrent, max_tokens)."}, []string{"scope", "name", "limit"})
	m.residencyWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "citadel_gateway_residency_wait_seconds",
		Help: "Time a request to an on-demand service waited for it to be resident and to admit the request (0 when it was), by public model and service.", Buckets: latencyBuckets}, []string{"model", "service"})
	m.residencyRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_gateway_residency_refusals_total",
		Help: "Requests to an on-demand service that its residency manager refused (queue full: 429; wait exceeded: 503), by public model, service and the manager's reason."}, []string{"model", "service", "reason"})
	m.reg.MustRegister(m.requests, m.residencyWait, m.residencyRefusals, m.duration, m.ttft, m.tpot, m.tokens, m.retries, m.failovers, m.overhead, m.tasks, m.decide, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(c *call, dur time.Duration) {
	service, replica, key := "", "", ""
	if c.target != nil {
		service = c.target.Name
	}
	if c.replica != nil {
		replica = c.replica.ID
	}
	if c.key != nil {
		key = c.key.Name
	}
	model := c.dec.Public
	if model == "" {
		model = "-" // unresolved: bounded, unlike the names clients send
	}
	m.requests.WithLabelValues(c.front, model, service, replica, key, strconv.Itoa(c.status)).Inc()
	if c.replica == nil {
		return
	}
	m.duration.WithLabelValues(model, service).Observe(dur.Seconds())
	m.overhead.Observe(c.overhead.Seconds())
	if c.ttft > 0 {
		m.ttft.WithLabelValues(model, service).Observe(c.ttft.Seconds())
		if c.tokensOut > 1 && dur > c.ttft {
			m.tpot.WithLabelValues(model, service).Observe((dur - c.ttft).Seconds() / float64(c.tokensOut-1))
		}
	}
	if c.tokensIn > 0 {
		m.tokens.WithLabelValues(model, service, replica, key, "input").Add(float64(c.tokensIn))
	}
	if c.tokensOut > 0 {
		m.tokens.WithLabelValues(model, service, replica, key, "output").Add(float64(c.tokensOut))
	}
}

// refused counts a request a limit refused.
func (m *metrics) refused(scope, name, limit string) {
	m.refusals.WithLabelValues(scope, name, limit).Inc()
}

// replicaCollector reports every replica's live state at scrape time.
type replicaCollector struct {
	s                                         *Server
	inFlight, healthy, ejected, waiting, load *prometheus.Desc
}

func (rc *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rc.inFlight
	ch <- rc.healthy
	ch <- rc.ejected
	ch <- rc.waiting
	ch <- rc.load
}

func (rc *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range rc.s.table.Load().Replicas() {
		snap := r.Snapshot()
		b := func(v bool) float64 {
			if v {
				return 1
			}
			return 0
		}
		ch <- prometheus.MustNewConstMetric(rc.inFlight, prometheus.GaugeValue, float64(snap.InFlight), r.ID, r.Service)
		ch <- prometheus.MustNewConstMetric(rc.healthy, prometheus.GaugeValue, b(snap.Healthy && !snap.Ejected), r.ID, r.Service)
		ch <- prometheus.MustNewConstMetric(rc.ejected, prometheus.GaugeValue, b(snap.Ejected), r.ID, r.Service)
		if snap.Fresh {
			ch <- prometheus.MustNewConstMetric(rc.waiting, prometheus.GaugeValue, snap.Waiting, r.ID, r.Service)
			ch <- prometheus.MustNewConstMetric(rc.load, prometheus.GaugeValue, snap.KVUsage, r.ID, r.Service)
		}
	}
}

// handler serves /metrics, with the replicas' live state.
func (m *metrics) handler(s *Server) http.Handler {
	lab := []string{"replica", "service"}
	m.reg.MustRegister(&replicaCollector{s: s,
		inFlight: prometheus.NewDesc("citadel_gateway_replica_in_flight", "Requests the gateway has outstanding on a replica.", lab, nil),
		healthy:  prometheus.NewDesc("citadel_gateway_replica_healthy", "1 when the replica takes traffic: ready, probes passing, not ejected.", lab, nil),
		ejected:  prometheus.NewDesc("citadel_gateway_replica_ejected", "1 while the replica is ejected after failures.", lab, nil),
		waiting:  prometheus.NewDesc("citadel_gateway_replica_waiting_requests", "The engine's own queue length, as last scraped.", lab, nil),
		load:     prometheus.NewDesc("citadel_gateway_replica_kv_cache_usage", "The engine's KV-cache usage (0–1), as last scraped.", lab, nil),
	})
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer is the gateway's Prometheus registry, as /metrics serves it, for in-process readers.
func (s *Server) Gatherer() prometheus.Gatherer { return s.met.reg }

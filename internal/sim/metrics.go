package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bucket bounds of vLLM's histograms (vllm/v1/metrics/loggers.py).
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	itlBuckets  = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	e2eBuckets  = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)

type histogram struct {
	bounds []float64
	counts []uint64 // per bound, not cumulative
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(d time.Duration) {
	v := d.Seconds()
	h.sum += v
	h.count++
	if i := sort.SearchFloat64s(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
}

// metrics are the engine's Prometheus series. The driver writes them; /metrics reads them.
type metrics struct {
	render func(*metrics) string // the dialect's names (metricsDialect.write); default vLLM's
	extra  func() string         // more series after the dialect's (sleep state, memory); nil: none
	model  string
	names  metricNames

	mu                      sync.Mutex
	running, waiting        int
	held                    int // requests held while the engine sleeps, counted as waiting
	kvUsage                 float64
	promptTokens, genTokens uint64
	success                 map[string]uint64
	ttft, itl, e2eLatency   *histogram
	requests, aborted       uint64 // requests received (SGLang's num_requests_total) and aborted
	steps, busy             uint64 // engine iterations and Σ running sequences over them (llama.cpp)
}

// metricNames are the series that changed between vLLM versions: vllm:gpu_cache_usage_perc
// (renamed vllm:kv_cache_usage_perc in 0.9, hidden from 0.11) and
// vllm:time_per_output_token_seconds (joined by vllm:inter_token_latency_seconds in 0.11,
// hidden from 0.12).
type metricNames struct {
	gpuCache, kvCache bool
	tpot, itl         bool
}

func namesFor(v version) metricNames {
	return metricNames{
		gpuCache: v.less(version{0, 11, 0}), kvCache: !v.less(version{0, 9, 0}),
		tpot: v.less(version{0, 12, 0}), itl: !v.less(version{0, 11, 0}),
	}
}

func newMetrics(model, vllmVersion string) *metrics {
	v, _ := parseVersion(vllmVersion)
	return &metrics{
		render: (*metrics).vllm, model: model,
		names:   namesFor(v),
		success: map[string]uint64{},
		ttft:    newHistogram(ttftBuckets), itl: newHistogram(itlBuckets), e2eLatency: newHistogram(e2eBuckets),
	}
}

// use switches the metrics to a dialect's names and histogram buckets. Call it before any
// observation.
func (m *metrics) use(d metricsDialect) {
	m.render = d.write
	m.ttft, m.itl, m.e2eLatency = newHistogram(d.ttft), newHistogram(d.itl), newHistogram(d.e2e)
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func (m *metrics) setGauges(running, waiting int, kv float64) {
	m.mu.Lock()
	m.running, m.waiting, m.kvUsage = running, waiting, kv
	m.mu.Unlock()
}

// hold counts a request held (d 1) or let through (d -1) while the engine sleeps.
func (m *metrics) hold(d int) {
	m.mu.Lock()
	m.held += d
	m.mu.Unlock()
}

func (m *metrics) prompt(n int) {
	m.mu.Lock()
	m.promptTokens += uint64(n)
	m.mu.Unlock()
}

func (m *metrics) firstToken(ttft time.Duration) {
	m.mu.Lock()
	m.genTokens++
	m.ttft.observe(ttft)
	m.mu.Unlock()
}

func (m *metrics) token(itl time.Duration) {
	m.mu.Lock()
	m.genTokens++
	m.itl.observe(itl)
	m.mu.Unlock()
}

func (m *metrics) e2e(d time.Duration) {
	m.mu.Lock()
	m.e2eLatency.observe(d)
	m.mu.Unlock()
}

func (m *metrics) finished(reason string) {
	m.mu.Lock()
	m.success[reason]++
	if reason == "abort" {
		m.aborted++
	}
	m.mu.Unlock()
}

func (m *metrics) received() {
	m.mu.Lock()
	m.requests++
	m.mu.Unlock()
}

// step counts one engine iteration that ran with running sequences.
func (m *metrics) step(running int) {
	m.mu.Lock()
	m.steps++
	m.busy += uint64(running)
	m.mu.Unlock()
}

// pyFloat formats v as Python's repr does for the values we export ("1.0", "0.25", "1e-05").
func pyFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eIN") {
		s += ".0"
	}
	return s
}

// promWriter writes Prometheus text exposition (version 0.0.4) as prometheus_client does:
// every series with the same labels, in name order (le and other per-sample labels slot in
// among them), counters under their _total name.
type promWriter struct {
	b      strings.Builder
	labels []label // sorted by name
}

type label struct{ name, value string }

func newPromWriter(labels ...label) *promWriter {
	slices.SortFunc(labels, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return &promWriter{labels: labels}
}

// set renders the label set with extra labels merged in name order.
func (p *promWriter) set(extra ...label) string {
	all := append(slices.Clone(p.labels), extra...)
	slices.SortStableFunc(all, func(a, b label) int { return strings.Compare(a.name, b.name) })
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range all {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, l.name, escapeLabel(l.value))
	}
	b.WriteByte('}')
	return b.String()
}

func (p *promWriter) header(name, typ, help string) {
	fmt.Fprintf(&p.b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p *promWriter) sample(name string, v float64, extra ...label) {
	fmt.Fprintf(&p.b, "%s%s %s\n", name, p.set(extra...), pyFloat(v))
}

func (p *promWriter) gauge(name, help string, v float64) {
	p.header(name, "gauge", help)
	p.sample(name, v)
}

func (p *promWriter) counter(name, help string, v float64) {
	p.header(name+"_total", "counter", help)
	p.sample(name+"_total", v)
}

func (p *promWriter) hist(name, help string, h *histogram) {
	p.header(name, "histogram", help)
	var cum uint64
	for i, le := range h.bounds {
		cum += h.counts[i]
		p.sample(name+"_bucket", float64(cum), label{"le", pyFloat(le)})
	}
	p.sample(name+"_bucket", float64(h.count), label{"le", "+Inf"})
	p.sample(name+"_count", float64(h.count))
	p.sample(name+"_sum", h.sum)
}

// write renders the metrics under the engine's names.
func (m *metrics) write(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.render(m)
	if m.extra != nil {
		out += m.extra()
	}
	_, err := io.WriteString(w, out)
	return err
}

// vllm is vLLM's V1 PrometheusStatLogger subset.
func (m *metrics) vllm() string {
	p := newPromWriter(label{"model_name", m.model}, label{"engine", "0"})
	p.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", float64(m.running))
	p.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", float64(m.waiting+m.held))
	if m.names.gpuCache {
		p.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", m.kvUsage)
	}
	if m.names.kvCache {
		p.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m.kvUsage)
	}
	p.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", float64(m.promptTokens))
	p.counter("vllm:generation_tokens", "Number of generation tokens processed.", float64(m.genTokens))
	p.header("vllm:request_success_total", "counter", "Count of successfully processed requests.")
	for _, r := range []string{"stop", "length", "abort"} {
		p.sample("vllm:request_success_total", float64(m.success[r]), label{"finished_reason", r})
	}
	p.hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft)
	if m.names.tpot {
		help := "Histogram of time per output token in seconds."
		if m.names.itl {
			help += "DEPRECATED: Use vllm:inter_token_latency_seconds instead."
		}
		p.hist("vllm:time_per_output_token_seconds", help, m.itl)
	}
	if m.names.itl {
		p.hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.itl)
	}
	p.hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m.e2eLatency)
	return p.b.String()
}

// version is a vLLM release, major.minor.patch.
type version [3]int

func (v version) less(o version) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}

// parseVersion reads "0.10.1", "v0.9", "0.11.0rc1"; "" is the newest behaviour.
func parseVersion(s string) (version, error) {
	if s == "" {
		return version{99}, nil
	}
	var v version
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	for i, p := range parts {
		end := strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' })
		if end >= 0 {
			p = p[:end]
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, fmt.Errorf("vLLM version %q: want major.minor[.patch]", s)
		}
		v[i] = n
	}
	return v, nil
}

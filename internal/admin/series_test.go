package admin

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	bounds := []float64{0.1, 0.5, 1, 2}
	tests := []struct {
		name string
		q    float64
		cum  []float64 // at each bound, then the total
		want float64
	}{
		// 10 in (0, 0.1], 10 in (0.1, 0.5], none above: the median is the first bucket's top.
		{"median at a bucket edge", 0.5, []float64{10, 20, 20, 20, 20}, 0.1},
		// rank 15 is half-way through the second bucket: 0.1 + 0.4 × 5/10.
		{"interpolated", 0.75, []float64{10, 20, 20, 20, 20}, 0.3},
		// The first bucket interpolates from 0.
		{"first bucket", 0.5, []float64{4, 4, 4, 4, 4}, 0.05},
		// 99th percentile of 100 requests, 98 fast and 2 in (1, 2]: rank 99 is half of the way.
		{"p99 in a slow bucket", 0.99, []float64{98, 98, 98, 100, 100}, 1.5},
		// Past the last finite bound: the highest bound, as Prometheus answers.
		{"in +Inf", 0.99, []float64{1, 1, 1, 1, 10}, 2},
		{"empty", 0.5, []float64{0, 0, 0, 0, 0}, math.NaN()},
	}
	for _, tt := range tests {
		got := quantile(tt.q, bounds, tt.cum)
		if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9) {
			t.Errorf("%s: quantile(%v, %v) = %v, want %v", tt.name, tt.q, tt.cum, got, tt.want)
		}
	}
}

// fakeGateway is a registry with the gateway's two series the sampler reads.
type fakeGateway struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	ttft     *prometheus.HistogramVec
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRequests}, []string{"front", "model", "service", "replica", "key", "code"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricTTFT, Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}},
			[]string{"model", "service"}),
	}
	g.reg.MustRegister(g.requests, g.ttft)
	return g
}

// serve records n requests of model to service answered with code, each with this TTFT.
func (g *fakeGateway) serve(model, service, code string, n int, ttft time.Duration) {
	for range n {
		g.requests.WithLabelValues("openai", model, service, "0", "", code).Inc()
		if ttft > 0 {
			g.ttft.WithLabelValues(model, service).Observe(ttft.Seconds())
		}
	}
}

func (g *fakeGateway) gatherer() prometheus.Gatherer { return g.reg }

func TestSamplerIntervals(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	sm := newSampler(g.gatherer)
	t0 := time.Unix(1_000_000, 0)
	g.serve("auto", "default/a", "200", 5, 0) // before the first sample: the baseline, not a point
	sm.sample(t0)
	if ss, _, _ := sm.samples(); len(ss) != 0 {
		t.Fatalf("after the first read: %d samples, want none (it is the baseline)", len(ss))
	}
	g.serve("auto", "default/a", "200", 8, 40*time.Millisecond)
	g.serve("auto", "default/a", "503", 2, 0)
	g.serve("auto", "default/b", "200", 2, 3*time.Second)
	sm.sample(t0.Add(2 * time.Second))
	sm.sample(t0.Add(4 * time.Second)) // nothing happened

	ss, bounds, errText := sm.samples()
	if errText != "" || len(ss) != 2 {
		t.Fatalf("samples: %d (%q), want 2", len(ss), errText)
	}
	all := func(seriesKey) bool { return true }
	p := pointOf(ss[0], bounds, all)
	if p.Rate != 6 || p.Errors != 1 { // 12 requests and 2 failures in 2 s
		t.Errorf("first interval: %v req/s, %v err/s; want 6 and 1", p.Rate, p.Errors)
	}
	// 8 of 10 first tokens in (0, 0.05]: the median is in it; the p99 is among the slow ones.
	if p.P50 > 0.05 || p.P99 < 2.5 || p.P99 > 5 {
		t.Errorf("first interval TTFT p50 %v, p99 %v; want ≤ 0.05 and in (2.5, 5]", p.P50, p.P99)
	}
	if p := pointOf(ss[1], bounds, all); p.Rate != 0 || !math.IsNaN(p.P50) {
		t.Errorf("an idle interval: %v req/s, p50 %v; want 0 and none", p.Rate, p.P50)
	}
	a := windowOf(ss, func(k seriesKey) bool { return k == seriesKey{"auto", "default/a"} })
	if a.Requests != 10 || a.Errors != 2 {
		t.Errorf("window of default/a: %v requests, %v failed; want 10 and 2", a.Requests, a.Errors)
	}
}

func TestSamplerRingAndReset(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	cur := g
	sm := newSampler(func() prometheus.Gatherer { return cur.reg })
	t0 := time.Unix(1_000_000, 0)
	keep := int(sampleWindow / sampleEvery)
	for i := range keep + 11 { // one request per interval; the first read is the baseline
		g.serve("m", "s", "200", 1, 0)
		sm.sample(t0.Add(time.Duration(i) * sampleEvery))
	}
	ss, _, _ := sm.samples()
	if len(ss) != keep {
		t.Fatalf("%d samples kept, want %d (15 minutes at 2 s)", len(ss), keep)
	}
	for i, s := range ss {
		if want := t0.Add(time.Duration(11+i) * sampleEvery); !s.At.Equal(want) {
			t.Fatalf("sample %d at %v, want %v: oldest first, the first 11 dropped", i, s.At, want)
		}
	}
	// A new gateway starts its counters again: the interval counts what the new one has.
	cur = newFakeGateway(t)
	cur.serve("m", "s", "200", 3, 0)
	sm.sample(t0.Add(time.Duration(keep+11) * sampleEvery))
	ss, _, _ = sm.samples()
	if d := ss[len(ss)-1].Delta[seriesKey{"m", "s"}]; d == nil || d.Requests != 3 {
		t.Errorf("after a counter reset: %+v, want 3 requests", d)
	}
}

func TestSamplerBoundsSeries(t *testing.T) {
	t.Parallel()
	g := newFakeGateway(t)
	sm := newSampler(g.gatherer)
	t0 := time.Unix(1_000_000, 0)
	sm.sample(t0)
	for i := range maxSeries + 10 {
		g.serve("m", "s"+string(rune('A'+i%26))+string(rune('a'+i/26)), "200", 1, 0)
	}
	sm.sample(t0.Add(sampleEvery))
	ss, _, _ := sm.samples()
	if n := len(ss[0].Delta); n > maxSeries {
		t.Errorf("%d series kept, want at most %d", n, maxSeries)
	}
	if c := windowOf(ss, func(seriesKey) bool { return true }); c.Requests != maxSeries+10 {
		t.Errorf("%v requests counted, want all %d (the excess summed as one series)", c.Requests, maxSeries+10)
	}
}

func TestFailed(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{"200": false, "404": false, "429": false, "500": true, "503": true, "0": true, "": true} {
		if got := failed(code); got != want {
			t.Errorf("failed(%q) = %v, want %v", code, got, want)
		}
	}
}

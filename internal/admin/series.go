package admin

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The dashboard's charts and objectives come from the gateway's own Prometheus registry,
// read in process every sampleEvery: each sample keeps, per public model and service, what
// changed since the previous one (requests, failures, time-to-first-token buckets), and the
// last sampleWindow of samples are kept.
const (
	sampleEvery  = 2 * time.Second
	sampleWindow = 15 * time.Minute
	// maxSeries bounds the (model, service) pairs a sample keeps; more are summed as one.
	maxSeries = 64
)

// The gateway's series the sampler reads (internal/gateway/metrics.go).
const (
	metricRequests = "citadel_gateway_requests_total"
	metricTTFT     = "citadel_gateway_time_to_first_token_seconds"
)

// seriesKey is a public model and the service that answered it.
type seriesKey struct{ Model, Service string }

// overflowKey sums the series beyond maxSeries.
var overflowKey = seriesKey{Model: "(other)", Service: "(other)"}

// counts are a series' requests, failed requests (5xx, or no answer) and time-to-first-token
// histogram (cumulative bucket counts at the sampler's bounds, then the total with +Inf),
// since the gateway started or over an interval.
type counts struct {
	Requests, Errors float64
	TTFT             []float64 // len(bounds)+1; nil when nothing was observed
}

func (c *counts) add(o *counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	if o.TTFT != nil {
		if c.TTFT == nil {
			c.TTFT = make([]float64, len(o.TTFT))
		}
		for i := range min(len(c.TTFT), len(o.TTFT)) {
			c.TTFT[i] += o.TTFT[i]
		}
	}
}

// sub returns c − prev; a counter that went down was reset (a new gateway), so c is the
// change then.
func (c *counts) sub(prev *counts) *counts {
	if prev == nil || c.Requests < prev.Requests || c.Errors < prev.Errors || len(prev.TTFT) > len(c.TTFT) {
		return c.clone()
	}
	d := &counts{Requests: c.Requests - prev.Requests, Errors: c.Errors - prev.Errors}
	if c.TTFT != nil {
		d.TTFT = slices.Clone(c.TTFT)
		for i := range prev.TTFT {
			d.TTFT[i] -= prev.TTFT[i]
			if d.TTFT[i] < 0 {
				return c.clone()
			}
		}
	}
	return d
}

func (c *counts) clone() *counts {
	return &counts{Requests: c.Requests, Errors: c.Errors, TTFT: slices.Clone(c.TTFT)}
}

func (c *counts) zero() bool {
	return c.Requests == 0 && c.Errors == 0 && (c.TTFT == nil || c.TTFT[len(c.TTFT)-1] == 0)
}

// quantile estimates the q-quantile (0–1) of a histogram as Prometheus' histogram_quantile
// does: cum are the cumulative counts at the upper bounds, then the total (+Inf); the value
// is interpolated linearly within its bucket (from 0 in the first). A rank in the +Inf bucket
// gives the highest finite bound. NaN when the histogram is empty.
func quantile(q float64, bounds, cum []float64) float64 {
	if len(cum) != len(bounds)+1 || len(bounds) == 0 || cum[len(cum)-1] <= 0 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := q * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum[:len(bounds)], rank) // the first bucket holding rank
	if i == len(bounds) {
		return bounds[len(bounds)-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = bounds[i-1], cum[i-1]
	}
	in := cum[i] - below
	if in <= 0 {
		return bounds[i]
	}
	return lower + (bounds[i]-lower)*(rank-below)/in
}

// sample is what changed over one interval, per series that changed.
type sample struct {
	At      time.Time
	Seconds float64 // the interval's length
	Delta   map[seriesKey]*counts
}

// sampler reads a gatherer every sampleEvery and keeps a ring of samples.
type sampler struct {
	g func() prometheus.Gatherer // nil until the gateway runs

	mu     sync.Mutex
	bounds []float64 // the TTFT histogram's finite upper bounds, in seconds
	last   map[seriesKey]*counts
	lastAt time.Time
	ring   []sample // oldest first once full: ring[next:] then ring[:next]
	next   int
	err    string // the last gather's error, if any
}

func newSampler(g func() prometheus.Gatherer) *sampler {
	return &sampler{g: g, ring: make([]sample, 0, int(sampleWindow/sampleEvery))}
}

// run samples until ctx ends.
func (sm *sampler) run(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	sm.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sm.sample(now)
		}
	}
}

// read gathers the gateway's cumulative counts per series.
func (sm *sampler) read() (map[seriesKey]*counts, []float64, error) {
	g := sm.g()
	if g == nil {
		return nil, nil, errors.New("the gateway has not started yet")
	}
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, nil, err
	}
	cur := map[seriesKey]*counts{}
	get := func(k seriesKey) *counts {
		c := cur[k]
		if c == nil {
			if len(cur) >= maxSeries-1 { // one left for the overflow
				k = overflowKey
				if c = cur[k]; c != nil {
					return c
				}
			}
			c = &counts{}
			cur[k] = c
		}
		return c
	}
	var bounds []float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case metricRequests:
			for _, m := range mf.GetMetric() {
				c := get(seriesKey{label(m.GetLabel(), "model"), label(m.GetLabel(), "service")})
				v := m.GetCounter().GetValue()
				c.Requests += v
				if failed(label(m.GetLabel(), "code")) {
					c.Errors += v
				}
			}
		case metricTTFT:
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				var b, cum []float64
				for _, bk := range h.GetBucket() {
					if math.IsInf(bk.GetUpperBound(), 1) {
						continue
					}
					b = append(b, bk.GetUpperBound())
					cum = append(cum, float64(bk.GetCumulativeCount()))
				}
				if bounds == nil {
					bounds = b
				} else if !slices.Equal(bounds, b) {
					continue // the gateway uses one set of buckets; another is not comparable
				}
				cum = append(cum, float64(h.GetSampleCount()))
				c := get(seriesKey{label(m.GetLabel(), "model"), label(m.GetLabel(), "service")})
				c.add(&counts{TTFT: cum})
			}
		}
	}
	return cur, bounds, err
}

// label is the value of a Prometheus label, "" when absent.
func label[L interface {
	GetName() string
	GetValue() string
}](ls []L, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// failed reports whether a request with this HTTP status code failed on the server's side:
// a 5xx, or no status at all (the request ended before an answer).
func failed(code string) bool {
	n, err := strconv.Atoi(code)
	return err != nil || n >= 500 || n < 100
}

// sample reads the gatherer and, after the first read, keeps what changed since the last.
func (sm *sampler) sample(now time.Time) {
	cur, bounds, err := sm.read()
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.err = ""
	if err != nil {
		sm.err = err.Error()
	}
	if cur == nil {
		return
	}
	if sm.bounds != nil && bounds != nil && !slices.Equal(sm.bounds, bounds) {
		sm.last, sm.ring, sm.next = nil, sm.ring[:0], 0 // another histogram: start again
	}
	if bounds != nil {
		sm.bounds = bounds
	}
	if sm.last != nil {
		s := sample{At: now, Seconds: now.Sub(sm.lastAt).Seconds(), Delta: map[seriesKey]*counts{}}
		for k, c := range cur {
			if d := c.sub(sm.last[k]); !d.zero() {
				s.Delta[k] = d
			}
		}
		if len(sm.ring) < cap(sm.ring) {
			sm.ring = append(sm.ring, s)
		} else {
			sm.ring[sm.next] = s
			sm.next = (sm.next + 1) % len(sm.ring)
		}
	}
	sm.last, sm.lastAt = cur, now
}

// samples returns the kept samples, oldest first, and the histogram bounds.
func (sm *sampler) samples() ([]sample, []float64, string) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	out := make([]sample, 0, len(sm.ring))
	out = append(out, sm.ring[sm.next:]...)
	out = append(out, sm.ring[:sm.next]...)
	return out, sm.bounds, sm.err
}

// point is one interval's values; NaN where there is nothing to say (no TTFT observed).
type point struct {
	Rate, Errors, P50, P99 float64
}

// pointOf is an interval's request and error rates (per second) and TTFT p50/p99 (seconds)
// for the series keep selects.
func pointOf(s sample, bounds []float64, keep func(seriesKey) bool) point {
	var c counts
	for k, d := range s.Delta {
		if keep(k) {
			c.add(d)
		}
	}
	p := point{P50: math.NaN(), P99: math.NaN()}
	if s.Seconds > 0 {
		p.Rate, p.Errors = c.Requests/s.Seconds, c.Errors/s.Seconds
	}
	if c.TTFT != nil {
		p.P50, p.P99 = quantile(0.5, bounds, c.TTFT), quantile(0.99, bounds, c.TTFT)
	}
	return p
}

// windowOf sums the samples for the series keep selects.
func windowOf(ss []sample, keep func(seriesKey) bool) counts {
	var c counts
	for _, s := range ss {
		for k, d := range s.Delta {
			if keep(k) {
				c.add(d)
			}
		}
	}
	return c
}

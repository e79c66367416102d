package bench

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadel.dev/citadel/internal/sim"
)

// ---- Schedule ----

func ldGaps(s []time.Duration) []float64 {
	g := make([]float64, len(s))
	prev := time.Duration(0)
	for i, t := range s {
		g[i] = (t - prev).Seconds()
		prev = t
	}
	return g
}

func ldMeanCV(x []float64) (mean, cv float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/float64(len(x))) / mean
}

// TestScheduleStatistics: over many samples the gaps have mean 1/rate and CV 1/√burstiness,
// the last send lands exactly at n/rate, times never go backwards, and the seed decides the
// sequence.
func TestScheduleStatistics(t *testing.T) {
	const n, rate = 200_000, 40.0
	for _, b := range []float64{0.25, 0.5, 1, 2, 4, 16} {
		s := Schedule(n, rate, b, 7)
		if len(s) != n {
			t.Fatalf("len %d", len(s))
		}
		if want := time.Duration(float64(n) / rate * 1e9); s[n-1] != want {
			t.Errorf("b=%v: last send at %v, want exactly %v", b, s[n-1], want)
		}
		if !slices.IsSorted(s) || s[0] < 0 {
			t.Errorf("b=%v: schedule not monotonic", b)
		}
		mean, cv := ldMeanCV(ldGaps(s))
		if math.Abs(mean*rate-1) > 1e-6 {
			t.Errorf("b=%v: mean gap %v s, want %v", b, mean, 1/rate)
		}
		if want := 1 / math.Sqrt(b); math.Abs(cv-want) > 0.03*want {
			t.Errorf("b=%v: CV %.4f, want %.4f ± 3 %%", b, cv, want)
		}
	}
	a, b := Schedule(100, 5, 1, 1), Schedule(100, 5, 1, 1)
	if !slices.Equal(a, b) || slices.Equal(a, Schedule(100, 5, 1, 2)) {
		t.Error("the seed does not decide the schedule")
	}
}

// TestGammaVariate: the sampler's mean and variance are both the shape (scale 1).
func TestGammaVariate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, k := range []float64{0.1, 0.3, 1, 2.5, 9} {
		const n = 300_000
		var sum, sq float64
		for range n {
			x := gammaVariate(r, k)
			if x < 0 || math.IsNaN(x) {
				t.Fatalf("shape %v: sample %v", k, x)
			}
			sum += x
			sq += x * x
		}
		mean := sum / n
		v := sq/n - mean*mean
		if math.Abs(mean-k) > 0.02*k || math.Abs(v-k) > 0.05*k {
			t.Errorf("shape %v: mean %.4f var %.4f", k, mean, v)
		}
	}
}

func TestScheduleEdges(t *testing.T) {
	for _, r := range []float64{math.Inf(1), 0, -1} {
		s := Schedule(10, r, 1, 0)
		if len(s) != 10 || slices.ContainsFunc(s, func(d time.Duration) bool { return d != 0 }) {
			t.Errorf("rate %v: %v, want all zeros", r, s)
		}
	}
	s := Schedule(8, 4, math.Inf(1), 0)
	for i, d := range s {
		if want := time.Duration(float64(i+1) / 4 * 1e9); absDur(d-want) > time.Nanosecond {
			t.Errorf("constant: send %d at %v, want %v", i, d, want)
		}
	}
	if s := Schedule(0, 1, 1, 0); s != nil {
		t.Errorf("n=0: %v", s)
	}
	if a, b := Schedule(50, 3, 0, 9), Schedule(50, 3, 1, 9); !slices.Equal(a, b) {
		t.Error("burstiness 0 is not 1")
	}
	if s := Schedule(1, 2, 1, 0); s[0] != 500*time.Millisecond {
		t.Errorf("n=1: %v", s)
	}
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

// ---- Run ----

// ldServer answers every POST with a two-token SSE stream after delay, counting requests,
// the requests in flight and their maximum.
type ldServer struct {
	*httptest.Server
	total, inFlight, peak atomic.Int64
	prompts               sync.Map // prompt → count
}

func newLDServer(t testing.TB, delay time.Duration) *ldServer {
	s := &ldServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			p := s.peak.Load()
			if n <= p || s.peak.CompareAndSwap(p, n) {
				break
			}
		}
		s.total.Add(1)
		b, _ := io.ReadAll(r.Body)
		if i := strings.Index(string(b), `"content":"`); i >= 0 {
			p := string(b[i+11:])
			p = p[:strings.IndexByte(p, '"')]
			v, _ := s.prompts.LoadOrStore(p, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, clChatChunk("a")+clChatChunk("b")+`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`+"\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *ldServer) count(prompt string) int64 {
	v, ok := s.prompts.Load(prompt)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func ldRequests(n int) []Request {
	rs := make([]Request, n)
	for i := range rs {
		rs[i] = Request{Prompt: "p" + string(rune('A'+i%26)), PromptLen: 3, OutputLen: 2}
	}
	return rs
}

// TestRunMaxConcurrency: with a semaphore of 4 and everything due at once, never more than 4
// requests are in flight (and 4 are), every request succeeds, and the later ones record the
// time they waited for a slot.
func TestRunMaxConcurrency(t *testing.T) {
	srv := newLDServer(t, 10*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 4)
	outs, dur, lag := Run(t.Context(), c, ldRequests(40), LoadOptions{MaxConcurrency: 4})
	if len(outs) != 40 || srv.total.Load() != 40 {
		t.Fatalf("%d outputs, %d requests", len(outs), srv.total.Load())
	}
	if p := srv.peak.Load(); p != 4 {
		t.Errorf("peak in flight %d, want 4", p)
	}
	queued := 0
	for i, o := range outs {
		if !o.Success || o.OutputLen != 2 {
			t.Fatalf("request %d: %+v", i, o)
		}
		if o.QueueTime > 0 {
			queued++
		}
		if o.Start < o.QueueTime {
			t.Errorf("request %d started at %v before its queue time %v elapsed", i, o.Start, o.QueueTime)
		}
	}
	if queued < 36 {
		t.Errorf("%d of 40 requests queued, want ≥ 36", queued)
	}
	// 10 waves of 10 ms.
	if dur < 100*time.Millisecond || dur > time.Second {
		t.Errorf("duration %v", dur)
	}
	if last := outs[39].QueueTime; last < 80*time.Millisecond {
		t.Errorf("last request queued %v, want ≈ 90 ms", last)
	}
	if lag > 20*time.Millisecond {
		t.Errorf("send lag p99 %v", lag)
	}
}

// TestRunUnbounded: at rate inf without a semaphore every request is in flight at once.
func TestRunUnbounded(t *testing.T) {
	// Answers take 400 ms, so that all 30 are sent before the first one ends even when a busy
	// 2-core machine under -race is slow to start goroutines.
	srv := newLDServer(t, 400*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 0)
	outs, dur, _ := Run(t.Context(), c, ldRequests(30), LoadOptions{Rate: math.Inf(1)})
	if len(outs) != 30 || srv.peak.Load() != 30 {
		t.Errorf("%d outputs, peak %d, want 30 and 30", len(outs), srv.peak.Load())
	}
	// 30 requests of 400 ms in flight at once: one round, not 30 (12 s).
	if dur < 400*time.Millisecond || dur > 3*time.Second {
		t.Errorf("duration %v", dur)
	}
	for _, o := range outs {
		if o.QueueTime != 0 || !o.Success {
			t.Errorf("%+v", o)
		}
	}
}

// TestRunWarmups: warmups (copies of the first request) are sent first but are neither in
// the outputs nor in the duration.
func TestRunWarmups(t *testing.T) {
	srv := newLDServer(t, 40*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 1)
	reqs := ldRequests(3)
	outs, dur, _ := Run(t.Context(), c, reqs, LoadOptions{MaxConcurrency: 1, Warmups: 3})
	if len(outs) != 3 || srv.total.Load() != 6 {
		t.Fatalf("%d outputs, %d requests sent, want 3 and 6", len(outs), srv.total.Load())
	}
	if n := srv.count(reqs[0].Prompt); n != 4 {
		t.Errorf("first request sent %d times, want 1 + 3 warmups", n)
	}
	// 3 × 40 ms; with the warmups it would be 240 ms.
	if dur < 120*time.Millisecond || dur > 200*time.Millisecond {
		t.Errorf("duration %v, want ≈ 120 ms (warmups excluded)", dur)
	}
	if outs[0].Start > 5*time.Millisecond {
		t.Errorf("first start %v: the clock should start after the warmups", outs[0].Start)
	}
}

// TestRunRate: at a finite rate with constant gaps every request leaves on time: its start
// is its scheduled send time plus a small lag, and the run lasts n/rate plus the last latency.
func TestRunRate(t *testing.T) {
	srv := newLDServer(t, 0)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 0)
	const n, rate = 100, 250.0
	outs, dur, lag := Run(t.Context(), c, ldRequests(n), LoadOptions{Rate: rate, Burstiness: math.Inf(1), NumRequests: n})
	if len(outs) != n {
		t.Fatalf("%d outputs", len(outs))
	}
	sched := Schedule(n, rate, math.Inf(1), 0)
	for i, o := range outs {
		if !o.Success {
			t.Fatal(o.Error)
		}
		// Bounds are generous: the race detector on 2 busy cores delays goroutines by tens
		// of milliseconds; a scheduler that drifts is off by far more.
		if d := o.Start - sched[i]; d < 0 || d > 60*time.Millisecond {
			t.Errorf("request %d started at %v, scheduled %v", i, o.Start, sched[i])
		}
	}
	if want := time.Duration(n / rate * 1e9); dur < want || dur > want+200*time.Millisecond {
		t.Errorf("duration %v, want ≈ %v", dur, want)
	}
	if lag > 50*time.Millisecond {
		t.Errorf("send lag p99 %v", lag)
	}
	t.Logf("send lag p99 %v at %v req/s", lag, rate)
}

// TestRunPoissonSeed: the Run's sends follow Schedule for the given seed and burstiness.
func TestRunPoissonSeed(t *testing.T) {
	srv := newLDServer(t, 0)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 0)
	o := LoadOptions{Rate: 400, Burstiness: 0.5, Seed: 11, NumRequests: 60}
	outs, _, _ := Run(t.Context(), c, ldRequests(10), o)
	sched := Schedule(60, 400, 0.5, 11)
	if len(outs) != 60 || srv.total.Load() != 60 {
		t.Fatalf("%d outputs", len(outs))
	}
	// Never early; late only by a pause of the process (the race detector on 2 busy cores
	// stalls every goroutine for tens of milliseconds at once), as in TestRunSchedule.
	for i, out := range outs {
		if d := out.Start - sched[i]; d < 0 || d > 60*time.Millisecond {
			t.Errorf("request %d at %v, scheduled %v", i, out.Start, sched[i])
		}
	}
	// NumRequests above len(reqs) cycles through them.
	if n := srv.count("pA"); n != 6 {
		t.Errorf("pA sent %d times, want 6", n)
	}
}

// TestRunDuration: Duration bounds a closed loop (rate inf, a semaphore) and a finite-rate run.
func TestRunDuration(t *testing.T) {
	srv := newLDServer(t, 10*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 2)
	outs, dur, _ := Run(t.Context(), c, ldRequests(5), LoadOptions{MaxConcurrency: 2, Duration: 200 * time.Millisecond})
	// ≈ 2 per 10 ms for 200 ms.
	if len(outs) < 20 || len(outs) > 42 {
		t.Errorf("closed loop for 200 ms: %d requests", len(outs))
	}
	if dur < 200*time.Millisecond || dur > 400*time.Millisecond {
		t.Errorf("closed loop duration %v", dur)
	}
	for _, o := range outs {
		if !o.Success || o.Start > 200*time.Millisecond {
			t.Errorf("%+v", o)
		}
	}

	srv2 := newLDServer(t, 0)
	c = NewClient(Target{BaseURL: srv2.URL, Model: "m"}, 0)
	outs, _, _ = Run(t.Context(), c, ldRequests(5), LoadOptions{Rate: 100, Burstiness: math.Inf(1), Duration: 300 * time.Millisecond})
	if len(outs) != 30 {
		t.Errorf("100 req/s for 300 ms: %d requests, want 30", len(outs))
	}
	outs, _, _ = Run(t.Context(), c, ldRequests(5), LoadOptions{Rate: 100, Burstiness: math.Inf(1), NumRequests: 1000, Duration: 100 * time.Millisecond})
	if len(outs) != 10 {
		t.Errorf("1000 requests at 100 req/s bounded by 100 ms: %d sent, want 10", len(outs))
	}
}

// TestRunCancel: cancelling stops the sending and fails the requests in flight promptly.
func TestRunCancel(t *testing.T) {
	srv := newLDServer(t, 10*time.Second)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	outs, _, _ := Run(ctx, c, ldRequests(10), LoadOptions{Rate: 20, NumRequests: 100})
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("returned after %v", el)
	}
	if len(outs) == 0 || len(outs) > 10 {
		t.Errorf("%d requests sent in 150 ms at 20 req/s", len(outs))
	}
	for _, o := range outs {
		if o.Success || !strings.Contains(o.Error, "deadline") {
			t.Errorf("%+v", o)
		}
	}
}

// TestRunAgainstSim: a Poisson run against sim-vLLM at time scale 0 completes every request
// with exact token counts.
func TestRunAgainstSim(t *testing.T) {
	url := clSimVLLM(t, sim.Faults{})
	c := NewClient(Target{BaseURL: url, Model: "qwen"}, 16)
	reqs := make([]Request, 200)
	for i := range reqs {
		reqs[i] = Request{Prompt: strings.Repeat("word ", 20+i%50), OutputLen: 8 + i%24}
	}
	outs, dur, lag := Run(t.Context(), c, reqs, LoadOptions{Rate: 2000, MaxConcurrency: 16, Warmups: 4, Seed: 1})
	if len(outs) != 200 {
		t.Fatalf("%d outputs", len(outs))
	}
	for i, o := range outs {
		if !o.Success || o.OutputLen != reqs[i].OutputLen || !o.UsageFromAPI {
			t.Fatalf("request %d: %+v", i, o)
		}
	}
	t.Logf("200 requests in %v, send lag p99 %v", dur, lag)
}

// ---- sweeps ----

// TestSweepRates: against a server that takes 10 ms per request whatever the load, the
// synchronous run finds ≈ 100 req/s, the throughput run (8 at a time) ≈ 800 req/s, and the
// constant runs sit at np.linspace(sync, max, points−1)[1:] — strictly increasing offered
// rates, each achieved.
func TestSweepRates(t *testing.T) {
	srv := newLDServer(t, 10*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 8)
	var asked []int
	reqs := func(n int) []Request { asked = append(asked, n); return ldRequests(n) }
	pts, err := SweepRates(t.Context(), c, reqs, 5, LoadOptions{NumRequests: 48, MaxConcurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 5 {
		t.Fatalf("%d points", len(pts))
	}
	profiles := []string{"synchronous", "constant", "constant", "constant", "throughput"}
	for i, p := range pts {
		if p.Profile != profiles[i] || len(p.Outs) != 48 {
			t.Errorf("point %d: %s with %d outputs", i, p.Profile, len(p.Outs))
		}
		if i > 0 && !(p.Rate > pts[i-1].Rate) {
			t.Errorf("rates not increasing: %v then %v", pts[i-1].Rate, p.Rate)
		}
		t.Logf("%-11s rate %7.1f achieved %7.1f req/s, concurrency %d, lag p99 %v", p.Profile, p.Rate, p.Achieved, p.Concurrency, p.SendLagP99)
	}
	syn, thr := pts[0], pts[4]
	// One at a time against 10 ms answers: at most 100 req/s; a busy 2-core machine under
	// -race may add milliseconds to each, so the floor is loose.
	if syn.Concurrency != 1 || syn.Rate != syn.Achieved || syn.Achieved < 25 || syn.Achieved > 105 {
		t.Errorf("synchronous: %+v", syn.Achieved)
	}
	if !math.IsInf(thr.Rate, 1) || thr.Concurrency != 8 || thr.Achieved < 3*syn.Achieved {
		t.Errorf("throughput: rate %v concurrency %d achieved %v", thr.Rate, thr.Concurrency, thr.Achieved)
	}
	for k := 1; k <= 3; k++ {
		want := syn.Achieved + (thr.Achieved-syn.Achieved)*float64(k)/3
		if math.Abs(pts[k].Rate-want) > 1e-9*want {
			t.Errorf("constant %d: rate %v, want %v", k, pts[k].Rate, want)
		}
	}
	// The last constant runs at the throughput rate and cannot be much over it; the first
	// two are well under and achieve close to their rate.
	for _, p := range pts[1:3] {
		if p.Achieved < 0.7*p.Rate {
			t.Errorf("constant at %.0f achieved only %.0f", p.Rate, p.Achieved)
		}
	}
	if !slices.Equal(asked, []int{48, 48, 48, 48, 48}) {
		t.Errorf("asked for %v requests", asked)
	}

	if _, err := SweepRates(t.Context(), c, reqs, 1, LoadOptions{NumRequests: 4}); err == nil {
		t.Error("1 point accepted")
	}
	if _, err := SweepRates(t.Context(), c, reqs, 4, LoadOptions{}); err == nil {
		t.Error("no bound accepted")
	}
}

// TestSweepRatesAgainstSim: a small sweep end to end against sim-vLLM at time scale 0.
func TestSweepRatesAgainstSim(t *testing.T) {
	url := clSimVLLM(t, sim.Faults{})
	c := NewClient(Target{BaseURL: url, Model: "qwen"}, 16)
	reqs := func(n int) []Request {
		rs := make([]Request, n)
		for i := range rs {
			rs[i] = Request{Prompt: "tell me about item " + strings.Repeat("x ", i%7), OutputLen: 16}
		}
		return rs
	}
	pts, err := SweepRates(t.Context(), c, reqs, 4, LoadOptions{NumRequests: 64, MaxConcurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pts {
		for _, o := range p.Outs {
			if !o.Success || o.OutputLen != 16 {
				t.Fatalf("point %d: %+v", i, o)
			}
		}
		t.Logf("%-11s rate %8.1f achieved %8.1f req/s", p.Profile, p.Rate, p.Achieved)
	}
}

// TestSweepConcurrency: one point per level, never more in flight than the level.
func TestSweepConcurrency(t *testing.T) {
	srv := newLDServer(t, 5*time.Millisecond)
	c := NewClient(Target{BaseURL: srv.URL, Model: "m"}, 8)
	pts, err := SweepConcurrency(t.Context(), c, ldRequests, []int{1, 2, 8}, func(l int) int { return 4 * l }, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range []int{1, 2, 8} {
		p := pts[i]
		if p.Profile != "concurrent" || p.Concurrency != l || len(p.Outs) != 4*l || !math.IsInf(p.Rate, 1) || p.Achieved <= 0 {
			t.Errorf("level %d: %s concurrency %d, %d outputs, rate %v", l, p.Profile, p.Concurrency, len(p.Outs), p.Rate)
		}
	}
	if srv.peak.Load() > 8 {
		t.Errorf("peak %d", srv.peak.Load())
	}
	if pts[2].Achieved < 3*pts[0].Achieved {
		t.Errorf("achieved %v at 1, %v at 8", pts[0].Achieved, pts[2].Achieved)
	}
	if _, err := SweepConcurrency(t.Context(), c, ldRequests, []int{0}, nil, LoadOptions{NumRequests: 1}); err == nil {
		t.Error("level 0 accepted")
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// LoadOptions is one run's load shape (vllm bench serve's --request-rate, --burstiness,
// --max-concurrency, --num-warmups, --num-prompts, --seed; guidellm's --max-seconds).
type LoadOptions struct {
	// Rate is the request rate in requests/s; 0 or +Inf sends every request at once.
	Rate float64
	// Burstiness is the gamma shape of the inter-arrival gaps: 0 means 1 (Poisson), < 1 is
	// burstier, > 1 more uniform, +Inf constant gaps of 1/Rate.
	Burstiness float64
	// MaxConcurrency bounds the requests in flight (a client semaphore; 0: none). Time spent
	// waiting for a slot is Output.QueueTime.
	MaxConcurrency int
	// Warmups are sent (copies of the first request, under MaxConcurrency) before the run and
	// are left out of its outputs and duration.
	Warmups int
	// NumRequests is how many requests to send, cycling through the given ones; 0: all of
	// them, or with Duration as many as the duration takes (Rate × Duration at a finite rate;
	// a closed loop until Duration at an infinite rate with MaxConcurrency).
	NumRequests int
	// Duration, when > 0, stops sending once this much time has passed since the run started.
	Duration time.Duration
	// Seed seeds the arrival gaps.
	Seed int64
}

func (o LoadOptions) rate() float64 {
	if o.Rate <= 0 || math.IsNaN(o.Rate) {
		return math.Inf(1)
	}
	return o.Rate
}

// Schedule returns n send times relative to the run's start, as vllm bench serve computes
// them: gaps drawn from gamma(shape=burstiness, scale=1/(rate·burstiness)) (mean 1/rate,
// CV 1/√burstiness), accumulated, then rescaled so that the last send lands exactly at
// n/rate (which removes the seed-to-seed drift in throughput). The first send is at the
// first gap, not at 0. rate ≤ 0 or +Inf gives all zeros; burstiness 0 means 1 and +Inf
// constant gaps. The gap sequence differs from numpy's for the same seed; its statistics
// do not.
func Schedule(n int, rate, burstiness float64, seed int64) []time.Duration {
	if n <= 0 {
		return nil
	}
	out := make([]time.Duration, n)
	if rate <= 0 || math.IsInf(rate, 1) || math.IsNaN(rate) {
		return out
	}
	if burstiness <= 0 || math.IsNaN(burstiness) {
		burstiness = 1
	}
	cum := make([]float64, n)
	if math.IsInf(burstiness, 1) {
		for i := range cum {
			cum[i] = float64(i+1) / rate
		}
	} else {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
		scale := 1 / (rate * burstiness)
		t := 0.0
		for i := range cum {
			t += gammaVariate(rng, burstiness) * scale
			cum[i] = t
		}
	}
	target := float64(n) / rate
	f := 1.0
	if last := cum[n-1]; last > 0 {
		f = target / last
	}
	for i, t := range cum {
		out[i] = time.Duration(t * f * 1e9)
	}
	out[n-1] = time.Duration(target * 1e9) // exact
	return out
}

// gammaVariate draws from gamma(shape, 1) (Marsaglia and Tsang; shape < 1 by boosting).
func gammaVariate(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := 1 - r.Float64() // (0, 1]
		return gammaVariate(r, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		var x, v float64
		for {
			x = r.NormFloat64()
			v = 1 + c*x
			if v > 0 {
				break
			}
		}
		v = v * v * v
		u := 1 - r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// Run sends reqs on the schedule o describes and returns one Output per request sent (in
// send order; warmups excluded), the run's duration — from the schedule's origin (t = 0,
// where vllm bench serve starts its clock, after warmups; the first send is at the first
// gap) until the last request finished — and the p99 of the send lag: how late requests
// left against their schedule (or, when they waited for a concurrency slot, against the
// moment the slot was granted). The lag is the generator's own overhead and should stay far
// below the latencies it measures.
//
// One scheduler goroutine waits on a single timer for each send time (Go's timers wake up to
// about 1 ms late on an idle Linux box, as asyncio's do for vLLM), takes a concurrency slot
// and hands the request to an idle worker or a new one; Output.QueueTime is the wait for the
// slot past the send time. When ctx ends, sending stops and the requests in flight fail with
// the context's error.
func Run(ctx context.Context, c *Client, reqs []Request, o LoadOptions) (outs []Output, duration, sendLagP99 time.Duration) {
	if len(reqs) == 0 {
		return nil, 0, 0
	}
	rate := o.rate()
	var sem chan struct{}
	if o.MaxConcurrency > 0 {
		sem = make(chan struct{}, o.MaxConcurrency)
	}
	if o.Warmups > 0 {
		warmup(ctx, c, reqs[0], o.Warmups, o.MaxConcurrency)
	}
	n, unbounded := o.NumRequests, false
	if n <= 0 {
		switch {
		case o.Duration > 0 && !math.IsInf(rate, 1):
			n = int(math.Ceil(rate * o.Duration.Seconds()))
		case o.Duration > 0 && sem != nil:
			unbounded = true // closed loop until Duration
		default:
			n = len(reqs)
		}
	}
	var sched []time.Duration
	if !unbounded && !math.IsInf(rate, 1) {
		sched = Schedule(n, rate, o.Burstiness, o.Seed)
	}

	// Requests are handed to an elastic pool of workers: an idle worker takes the next one,
	// else a new worker starts. Workers outlive their requests, so their stacks (grown by the
	// HTTP client) are reused; with MaxConcurrency the pool stays near that size.
	type slot struct {
		out Output
		lag time.Duration
	}
	type job struct {
		r          Request
		s          *slot
		due, ready time.Duration
	}
	var (
		wg    sync.WaitGroup
		slots = make([]*slot, 0, max(n, 0))
		jobs  = make(chan job)
	)
	runStart := time.Now()
	worker := func(j job) {
		defer wg.Done()
		for ok := true; ok; j, ok = <-jobs {
			j.s.out = c.Do(ctx, j.r, runStart)
			j.s.out.QueueTime = j.ready - j.due
			j.s.lag = max(j.s.out.Start-j.ready, 0)
			if sem != nil {
				<-sem
			}
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var blockedUntil time.Duration // when the scheduler last got a slot after waiting for it
send:
	for i := 0; unbounded || i < n; i++ {
		var due time.Duration
		if sched != nil {
			due = sched[i]
		}
		if o.Duration > 0 && due > o.Duration {
			break // scheduled past the bound
		}
		if wait := due - time.Since(runStart); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break send
			}
		} else if ctx.Err() != nil {
			break
		}
		// ready is when the request could leave: its send time, or, when it had to wait for a
		// concurrency slot, the moment it got one. It waited if the scheduler blocked on the
		// semaphore for it, or for an earlier request past its send time.
		ready := due
		if sem != nil {
			select {
			case sem <- struct{}{}:
				if blockedUntil > due {
					ready = time.Since(runStart)
				}
			default:
				select {
				case sem <- struct{}{}:
					blockedUntil = time.Since(runStart)
					ready = max(blockedUntil, due)
				case <-ctx.Done():
					break send
				}
			}
		}
		if o.Duration > 0 && sched == nil && time.Since(runStart) >= o.Duration {
			// A closed loop (or an all-at-once run) ends when the time is up.
			if sem != nil {
				<-sem
			}
			break
		}
		j := job{r: reqs[i%len(reqs)], s: &slot{}, due: due, ready: ready}
		slots = append(slots, j.s)
		select {
		case jobs <- j:
		default:
			wg.Add(1)
			go worker(j)
		}
	}
	close(jobs)
	wg.Wait()
	duration = time.Since(runStart)

	outs = make([]Output, len(slots))
	lags := make([]time.Duration, len(slots))
	for i, s := range slots {
		outs[i], lags[i] = s.out, s.lag
	}
	return outs, duration, percentileDuration(lags, 99)
}

// warmup sends n copies of r (vllm bench serve warms up with the first request), at most
// limit at a time (0: all at once), and waits for them.
func warmup(ctx context.Context, c *Client, r Request, n, limit int) {
	if limit <= 0 {
		limit = n
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Do(ctx, r, start)
			<-sem
		}()
	}
	wg.Wait()
}

// percentileDuration is numpy's linear-interpolation percentile (sorts d).
func percentileDuration(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	x := p / 100 * float64(len(d)-1)
	lo := int(math.Floor(x))
	hi := min(lo+1, len(d)-1)
	return d[lo] + time.Duration((x-float64(lo))*float64(d[hi]-d[lo]))
}

// SweepPoint is one run of a sweep.
type SweepPoint struct {
	// Profile is guidellm's strategy name: "synchronous", "throughput", "constant" (SweepRates)
	// or "concurrent" (SweepConcurrency).
	Profile string
	// Rate is the offered request rate: the configured one for constant points (and +Inf for
	// throughput and concurrency points, whose load is bounded by concurrency alone); for the
	// synchronous point, which has no configured rate, the rate it achieved.
	Rate float64
	// Concurrency is the max concurrency the point ran with (0: none).
	Concurrency int
	Outs        []Output
	Duration    time.Duration
	// Achieved is successful requests / Duration (guidellm's requests_per_second.successful).
	Achieved   float64
	SendLagP99 time.Duration
}

// sweepPool is how many distinct requests a duration-bounded closed-loop point asks for
// (they are cycled).
const sweepPool = 1000

// SweepRates is guidellm's sweep profile: a synchronous run (one request at a time) measures
// the lowest useful rate, a throughput run (every request at once, under o.MaxConcurrency if
// set) the highest, and points−2 constant-rate runs follow at rates interpolated between the
// two, as np.linspace(sync, max, points−1)[1:] (so the last constant rate equals the
// throughput run's achieved rate). Each run sends o.NumRequests requests (or runs for
// o.Duration), with reqs supplying them. Constant runs use evenly spaced sends (guidellm's
// constant strategy) unless o.Burstiness is set (1: guidellm's poisson). The points come back
// in increasing order of offered load: synchronous, constants, throughput.
func SweepRates(ctx context.Context, c *Client, reqs func(n int) []Request, points int, o LoadOptions) ([]SweepPoint, error) {
	if points < 2 {
		return nil, fmt.Errorf("a rate sweep needs at least 2 points (synchronous and throughput), got %d", points)
	}
	if reqs == nil || (o.NumRequests <= 0 && o.Duration <= 0) {
		return nil, errors.New("a rate sweep needs requests per point or a duration per point")
	}
	inf := math.Inf(1)
	syn, err := sweepRun(ctx, c, reqs, o, "synchronous", inf, 1, 1)
	if err != nil {
		return nil, err
	}
	syn.Rate = syn.Achieved
	thr, err := sweepRun(ctx, c, reqs, o, "throughput", inf, o.MaxConcurrency, 1)
	if err != nil {
		return []SweepPoint{syn}, err
	}
	switch {
	case syn.Achieved == 0:
		return []SweepPoint{syn, thr}, errors.New("no successful requests in the synchronous run: cannot interpolate rates")
	case thr.Achieved == 0:
		return []SweepPoint{syn, thr}, errors.New("no successful requests in the throughput run: cannot interpolate rates")
	}
	burst := o.Burstiness
	if burst == 0 {
		burst = inf
	}
	out := []SweepPoint{syn}
	k := points - 2
	for i := 1; i <= k; i++ {
		rate := syn.Achieved + (thr.Achieved-syn.Achieved)*float64(i)/float64(k)
		p, err := sweepRun(ctx, c, reqs, o, "constant", rate, o.MaxConcurrency, burst)
		if err != nil {
			return append(out, thr), err
		}
		out = append(out, p)
	}
	return append(out, thr), nil
}

// SweepConcurrency runs one closed-loop point per concurrency level (guidellm's concurrent
// profile; vllm bench serve --max-concurrency L at o.Rate, by default +Inf). perLevel gives the
// number of requests at a level (nil: o.NumRequests, or o.Duration's worth).
func SweepConcurrency(ctx context.Context, c *Client, reqs func(n int) []Request, levels []int, perLevel func(c int) int, o LoadOptions) ([]SweepPoint, error) {
	if reqs == nil {
		return nil, errors.New("a concurrency sweep needs requests")
	}
	var out []SweepPoint
	for _, l := range levels {
		if l <= 0 {
			return out, fmt.Errorf("concurrency level %d: must be positive", l)
		}
		lo := o
		if perLevel != nil {
			lo.NumRequests = perLevel(l)
		}
		if lo.NumRequests <= 0 && lo.Duration <= 0 {
			return out, fmt.Errorf("concurrency level %d: no request count and no duration", l)
		}
		p, err := sweepRun(ctx, c, reqs, lo, "concurrent", o.rate(), l, o.Burstiness)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

// sweepRun runs one point of a sweep.
func sweepRun(ctx context.Context, c *Client, reqs func(n int) []Request, o LoadOptions, profile string, rate float64, conc int, burst float64) (SweepPoint, error) {
	lo := o
	lo.Rate, lo.MaxConcurrency, lo.Burstiness = rate, conc, burst
	n := lo.NumRequests
	if n <= 0 {
		if math.IsInf(rate, 1) {
			n = sweepPool
		} else {
			n = int(math.Ceil(rate * lo.Duration.Seconds()))
		}
	}
	outs, d, lag := Run(ctx, c, reqs(n), lo)
	if err := ctx.Err(); err != nil {
		return SweepPoint{}, err
	}
	p := SweepPoint{Profile: profile, Rate: rate, Concurrency: conc, Outs: outs, Duration: d, SendLagP99: lag}
	ok := 0
	for _, o := range outs {
		if o.Success {
			ok++
		}
	}
	if d > 0 {
		p.Achieved = float64(ok) / d.Seconds()
	}
	return p, nil
}

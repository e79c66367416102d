package bench

import (
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"
)

// This file turns per-request Outputs into a Result with vllm bench serve's definitions
// (vllm/benchmarks/serve.py calculate_metrics and process_one_metric); resultjson.go writes
// and reads Results in the shape of vLLM's --save-result JSON.

// Options selects what Compute reports and carries the run's configuration into the Result.
type Options struct {
	// Percentiles for every selected metric (vLLM's --metric-percentiles); default DefaultPercentiles (99).
	Percentiles []float64
	// Metrics to summarise (vLLM's --percentile-metrics): ttft, tpot, itl, e2el, client_queue_time,
	// e2el_including_client_queue. Default DefaultMetrics (ttft, tpot, itl). Unknown names are ignored.
	Metrics []string
	// Goodput is the SLO set; nil (or every field zero) means no goodput: RequestGoodput stays nil.
	Goodput *Goodput

	Label, Model, Backend string
	RequestRate           float64 // +Inf: every request at t=0
	Burstiness            float64
	MaxConcurrency        int // 0: none
}

// DefaultMetrics are vLLM's default --percentile-metrics for generation.
var DefaultMetrics = []string{"ttft", "tpot", "itl"}

// MaxErrors caps Result.Errors.
const MaxErrors = 100

// Formulas documents each metric as vllm bench serve defines it, one line per metric, keyed by
// the metric's JSON stem. FormulaOrder lists the keys in the order a report prints them.
var Formulas = map[string]string{
	"ttft": "TTFT: time from sending the request to the first streamed chunk with a non-empty choices " +
		"array (vLLM; the chunk's text may be empty; Ollama: the first line with content), over successful requests.",
	"tpot": "TPOT: per successful request with output_len > 1, (E2EL − TTFT) / (output_len − 1) " +
		"(\"time per output token, excl. 1st token\"); requests with output_len ≤ 1 are left out.",
	"itl": "ITL: every gap between consecutive content-bearing chunks after the first, flattened over all " +
		"successful requests; measured per chunk, not per token, so with several tokens a chunk (spec decode) ITL > TPOT.",
	"e2el": "E2EL: time from sending the request to the last token-bearing chunk (a trailing usage-only chunk " +
		"does not extend it), over successful requests.",
	"client_queue_time": "client_queue_time: time a request waited for a --max-concurrency slot before it was sent, " +
		"over successful requests.",
	"e2el_including_client_queue": "e2el_including_client_queue: E2EL + client_queue_time, over successful requests.",
	"output_tokens": "output tokens: usage.completion_tokens from the final usage chunk; when the server sends no " +
		"usage (or 0), the counted content chunks (first chunk + one per ITL gap), which undercounts when a chunk " +
		"holds several tokens (vLLM instead re-tokenizes the text, or takes 1 without a tokenizer). " +
		"Input tokens: usage.prompt_tokens, else the dataset's count.",
	"duration": "duration: seconds from the start of the main run (after the ready check and warmups) until every " +
		"request finished; ramp-up and drain included.",
	"completed": "completed / failed: requests that succeeded / failed; a request that never received a chunk with " +
		"non-empty choices failed. Failed requests are left out of every statistic and throughput.",
	"percentiles": "statistics: mean_, median_, std_ (population, ddof=0) and pNN_<metric>_ms of each selected metric, " +
		"pNN by numpy.percentile's linear interpolation between the closest ranks; an empty sample gives 0.",
	"request_throughput":     "request_throughput: completed requests / duration.",
	"output_throughput":      "output_throughput: Σ output tokens of completed requests / duration.",
	"total_token_throughput": "total_token_throughput: (Σ input tokens + Σ output tokens) of completed requests / duration.",
	"request_goodput": "request_goodput: completed requests meeting every given SLO (ttft, tpot, e2el; SLO ≥ value; " +
		"TPOT counts as 0 when output_len ≤ 1) / duration (DistServe's goodput); null without --goodput.",
	"max_output_tokens_per_s": "max_output_tokens_per_s: chunk timestamps (start + TTFT, then cumulative ITL; each " +
		"chunk counts as one token, as in vLLM) put into 1-second buckets from the earliest successful start; the peak bucket.",
	"max_concurrent_requests": "max_concurrent_requests: peak number of successful requests in flight, by an exact " +
		"sweep-line over the half-open intervals [start, start + E2EL).",
}

// FormulaOrder is the print order of Formulas.
var FormulaOrder = []string{
	"ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue", "percentiles",
	"output_tokens", "duration", "completed", "request_throughput", "output_throughput", "total_token_throughput", "request_goodput",
	"max_output_tokens_per_s", "max_concurrent_requests",
}

// Compute is vLLM's calculate_metrics plus the statistics of process_one_metric, over the
// outputs of one run that took duration. Statistics of an empty sample are 0, as vLLM's
// np.mean(x or 0). The per-request arrays cover every output, failed ones included (their
// output length is 0), in order; Errors holds the failed requests' errors, at most MaxErrors.
func Compute(outs []Output, duration time.Duration, o Options) *Result {
	percentiles := o.Percentiles
	if len(percentiles) == 0 {
		percentiles = DefaultPercentiles
	}
	metrics := o.Metrics
	if len(metrics) == 0 {
		metrics = DefaultMetrics
	}
	r := &Result{
		Label:          o.Label,
		Model:          o.Model,
		Backend:        o.Backend,
		RequestRate:    o.RequestRate,
		Burstiness:     o.Burstiness,
		MaxConcurrency: o.MaxConcurrency,
		Duration:       duration.Seconds(),
		Metrics:        map[string]float64{},
		Formulas:       maps.Clone(Formulas),
	}

	var ttfts, tpots, allTPOTs, itls, e2els, queues, e2elsQueue []float64
	var successful []Output
	for _, out := range outs {
		r.InputLens = append(r.InputLens, out.PromptLen)
		r.TTFTs = append(r.TTFTs, out.TTFT.Seconds())
		itl := make([]float64, len(out.ITL))
		for i, d := range out.ITL {
			itl[i] = d.Seconds()
		}
		r.ITLs = append(r.ITLs, itl)
		r.Latencies = append(r.Latencies, out.Latency.Seconds())
		r.StartTimes = append(r.StartTimes, out.Start.Seconds())
		r.QueueTimes = append(r.QueueTimes, out.QueueTime.Seconds())
		if !out.Success {
			r.OutputLens = append(r.OutputLens, 0)
			r.Failed++
			if len(r.Errors) < MaxErrors {
				msg := out.Error
				if msg == "" {
					msg = "request failed (no error message)"
				}
				r.Errors = append(r.Errors, msg)
			}
			continue
		}
		successful = append(successful, out)
		outputLen := OutputTokens(out)
		r.OutputLens = append(r.OutputLens, outputLen)
		r.TotalInputTokens += out.PromptLen
		r.TotalOutputTokens += outputLen
		tpot := 0.0
		if outputLen > 1 {
			tpot = (out.Latency.Seconds() - out.TTFT.Seconds()) / float64(outputLen-1)
			tpots = append(tpots, tpot)
		}
		allTPOTs = append(allTPOTs, tpot) // TPOT is 0 for goodput when output_len ≤ 1
		itls = append(itls, itl...)
		ttfts = append(ttfts, out.TTFT.Seconds())
		e2els = append(e2els, out.Latency.Seconds())
		queues = append(queues, out.QueueTime.Seconds())
		e2elsQueue = append(e2elsQueue, out.Latency.Seconds()+out.QueueTime.Seconds())
		r.Completed++
	}

	if g := o.Goodput; g != nil && (g.TTFT > 0 || g.TPOT > 0 || g.E2EL > 0) {
		good := 0
		for i := range ttfts {
			ok := true
			if g.TTFT > 0 && !(g.TTFT.Seconds() >= ttfts[i]) {
				ok = false
			}
			if g.TPOT > 0 && !(g.TPOT.Seconds() >= allTPOTs[i]) {
				ok = false
			}
			if g.E2EL > 0 && !(g.E2EL.Seconds() >= e2els[i]) {
				ok = false
			}
			if ok {
				good++
			}
		}
		gp := perSecond(float64(good), r.Duration)
		r.RequestGoodput = &gp
	}

	r.RequestThroughput = perSecond(float64(r.Completed), r.Duration)
	r.OutputThroughput = perSecond(float64(r.TotalOutputTokens), r.Duration)
	r.TotalTokenThroughput = perSecond(float64(r.TotalInputTokens+r.TotalOutputTokens), r.Duration)

	tokens, _ := Timeline(successful)
	for _, n := range tokens {
		r.MaxOutputTokensPerS = max(r.MaxOutputTokensPerS, n)
	}
	r.MaxConcurrentReqs = PeakConcurrency(successful)

	samples := map[string][]float64{
		"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els,
		"client_queue_time": queues, "e2el_including_client_queue": e2elsQueue,
	}
	for _, m := range metrics {
		values, ok := samples[m]
		if !ok {
			continue
		}
		st := Summarize(values, percentiles)
		r.Metrics["mean_"+m+"_ms"] = st.Mean * 1000
		r.Metrics["median_"+m+"_ms"] = st.Median * 1000
		r.Metrics["std_"+m+"_ms"] = st.Std * 1000
		for i, p := range percentiles {
			r.Metrics[PercentileKey(p, m)] = st.Percentiles[i] * 1000
		}
	}
	return r
}

// perSecond divides by the duration; a zero duration gives 0 rather than Inf.
func perSecond(n, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return n / seconds
}

// OutputTokens is the output length Compute uses for a successful request: Output.OutputLen
// (usage.completion_tokens, or the client's counted chunks), and when that is 0, the chunks
// this Output recorded (1 + len(ITL)).
func OutputTokens(out Output) int {
	if out.OutputLen > 0 {
		return out.OutputLen
	}
	return 1 + len(out.ITL)
}

// Timeline is vLLM's per-second view of the successful outputs: tokens[i] counts the chunks
// (each as one token) whose timestamp (Start + TTFT, then cumulative ITL) falls in second i
// after the earliest Start; concurrent[i] counts requests active in second i (from the second
// of Start up to, not including, the ceiling of Start + Latency). Both have
// ceil(last end − first start) + 1 buckets; chunks past them are dropped, as in vLLM.
func Timeline(successful []Output) (tokens, concurrent []float64) {
	if len(successful) == 0 {
		return nil, nil
	}
	minStart, maxEnd := successful[0].Start, successful[0].Start+successful[0].Latency
	for _, out := range successful[1:] {
		minStart = min(minStart, out.Start)
		maxEnd = max(maxEnd, out.Start+out.Latency)
	}
	n := ceilSeconds(maxEnd-minStart) + 1
	if n < 1 {
		n = 1
	}
	tokens = make([]float64, n)
	concurrent = make([]float64, n)
	for _, out := range successful {
		t := out.Start + out.TTFT
		add := func(t time.Duration) {
			// int() truncates toward zero, as Python's int() does.
			if b := int((t - minStart) / time.Second); b >= 0 && b < n {
				tokens[b]++
			}
		}
		add(t)
		for _, gap := range out.ITL {
			t += gap
			add(t)
		}
		first := int((out.Start - minStart) / time.Second)
		last := min(n, ceilSeconds(out.Start+out.Latency-minStart))
		for s := max(first, 0); s < last; s++ {
			concurrent[s]++
		}
	}
	return tokens, concurrent
}

func ceilSeconds(d time.Duration) int {
	s := int(d / time.Second)
	if d%time.Second > 0 {
		s++
	}
	return s
}

// PeakConcurrency is vLLM's max_concurrent_requests: an exact sweep-line over the half-open
// intervals [Start, Start+Latency); at equal times a departure is counted before an arrival.
func PeakConcurrency(successful []Output) int {
	type event struct {
		at    time.Duration
		delta int
	}
	events := make([]event, 0, 2*len(successful))
	for _, out := range successful {
		events = append(events, event{out.Start, 1}, event{out.Start + out.Latency, -1})
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i].at != events[j].at {
			return events[i].at < events[j].at
		}
		return events[i].delta < events[j].delta
	})
	cur, peak := 0, 0
	for _, e := range events {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}

// Stats are numpy's statistics of one sample, in the sample's unit.
type Stats struct {
	Mean, Median, Std float64
	Percentiles       []float64 // in the order asked
}

// Summarize is vLLM's np.mean / np.median / np.std (ddof=0) / np.percentile of values, with an
// empty sample treated as [0] (vLLM's `values or 0`).
func Summarize(values []float64, percentiles []float64) Stats {
	if len(values) == 0 {
		values = []float64{0}
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	st := Stats{Mean: Mean(values), Median: Median(sorted), Std: Std(values)}
	for _, p := range percentiles {
		st.Percentiles = append(st.Percentiles, Percentile(sorted, p))
	}
	return st
}

// Mean is np.mean: numpy's pairwise sum divided by the count; 0 for an empty sample.
func Mean(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	return pairwiseSum(values) / float64(len(values))
}

// Std is np.std with ddof=0 (the population standard deviation), computed as numpy does:
// sqrt(sum((x − mean)²) / n) with pairwise sums; 0 for an empty sample.
func Std(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	mean := Mean(values)
	sq := make([]float64, len(values))
	for i, v := range values {
		d := v - mean
		sq[i] = d * d
	}
	return math.Sqrt(pairwiseSum(sq) / float64(len(values)))
}

// Median is np.median of a sorted sample: the middle value, or the mean of the two middle values.
func Median(sorted []float64) float64 {
	n := len(sorted)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return sorted[n/2]
	default:
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
}

// pairwiseSum is numpy's float64 add.reduce (pairwise_sum in loops_utils.h.src): sequential
// below 8 values, eight accumulators up to 128, halves above.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		res := 0.0
		for _, v := range a {
			res += v
		}
		return res
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range 8 {
				r[j] += a[i+j]
			}
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}

// Percentile is np.percentile(sorted, p) with the default "linear" method: the virtual index
// (n−1)·p/100 between the two neighbouring order statistics, interpolated as numpy's _lerp does.
// sorted must be ascending; p is clamped to [0, 100]; an empty sample gives 0.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	q := min(max(p, 0), 100) / 100
	vi := float64(n-1) * q
	if vi >= float64(n-1) {
		return sorted[n-1]
	}
	lo := math.Floor(vi)
	a, b := sorted[int(lo)], sorted[int(lo)+1]
	t := vi - lo
	diff := b - a
	if t >= 0.5 {
		return b - diff*(1-t)
	}
	return a + diff*t
}

// PercentileKey is vLLM's key for percentile p of metric: "p99_ttft_ms", "p99.9_itl_ms"
// (Python's str(int(p)) for whole numbers, else str(p)).
func PercentileKey(p float64, metric string) string {
	return "p" + percentileWord(p) + "_" + metric + "_ms"
}

func percentileWord(p float64) string {
	if p == math.Trunc(p) && math.Abs(p) < 1e15 {
		return strconv.FormatInt(int64(p), 10)
	}
	return strconv.FormatFloat(p, 'g', -1, 64) // Python's repr: 99.9, 0.5, 1e-05
}

// metricKey matches the statistic keys vLLM writes: mean_/median_/std_/p<N>_<metric>_ms.
var metricKey = regexp.MustCompile(`^(mean|median|std|p[0-9]+(\.[0-9]+)?(e-?[0-9]+)?)_[a-z0-9_]+_ms$`)

// IsMetricKey reports whether key is a mean_/median_/std_/pNN_<metric>_ms statistic key.
func IsMetricKey(key string) bool { return metricKey.MatchString(key) }

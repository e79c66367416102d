package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

func msList(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * ms
	}
	return out
}

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.IsNaN(want) {
		if !math.IsNaN(got) {
			t.Errorf("%s = %v, want NaN", name, got)
		}
		return
	}
	if d := math.Abs(got - want); d > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %.12g", name, got, want)
	}
}

// handOutputs: three successful requests and one failure, all times hand-picked.
//
//	R1: start 0,     TTFT 100, ITL 50,50,100, E2EL 300, 5 tokens, prompt 10 → TPOT (300−100)/4 = 50
//	F:  start 100,   failed ("boom"), would add chunks and overlap everything if it were counted
//	R2: start 300,   TTFT 200, ITL 100,100,   E2EL 400, 3 tokens, prompt 20 → TPOT (400−200)/2 = 100
//	R3: start 500,   TTFT 600, no ITL,        E2EL 600, 1 token,  prompt 30 → no TPOT (0 for goodput)
func handOutputs() []Output {
	return []Output{
		{Success: true, PromptLen: 10, OutputLen: 5, Start: 0, TTFT: 100 * ms, ITL: msList(50, 50, 100), Latency: 300 * ms, UsageFromAPI: true},
		{Success: false, Error: "boom", PromptLen: 40, OutputLen: 7, Start: 100 * ms, TTFT: 50 * ms, ITL: msList(10), Latency: time.Second},
		{Success: true, PromptLen: 20, OutputLen: 3, Start: 300 * ms, TTFT: 200 * ms, ITL: msList(100, 100), Latency: 400 * ms, QueueTime: 50 * ms},
		{Success: true, PromptLen: 30, OutputLen: 1, Start: 500 * ms, TTFT: 600 * ms, Latency: 600 * ms, QueueTime: 100 * ms},
	}
}

func TestComputeHandComputed(t *testing.T) {
	r := Compute(handOutputs(), 2*time.Second, Options{
		Percentiles: []float64{50, 99, 99.9},
		Metrics:     []string{"ttft", "tpot", "itl", "e2el"},
		Goodput:     &Goodput{TTFT: 250 * ms, TPOT: 60 * ms},
		Label:       "vllm", Model: "qwen", Backend: "openai-chat",
		RequestRate: math.Inf(1), Burstiness: 1, MaxConcurrency: 4,
	})

	if r.Completed != 3 || r.Failed != 1 {
		t.Fatalf("completed/failed = %d/%d, want 3/1", r.Completed, r.Failed)
	}
	if r.TotalInputTokens != 60 || r.TotalOutputTokens != 9 {
		t.Errorf("tokens in/out = %d/%d, want 60/9 (failed request excluded)", r.TotalInputTokens, r.TotalOutputTokens)
	}
	near(t, "duration", r.Duration, 2)
	near(t, "request_throughput", r.RequestThroughput, 1.5)
	near(t, "output_throughput", r.OutputThroughput, 4.5)
	near(t, "total_token_throughput", r.TotalTokenThroughput, 34.5)
	// Goodput (ttft ≤ 250 ms, tpot ≤ 60 ms): R1 good; R2 TPOT 100 too slow; R3 TTFT 600 too slow.
	if r.RequestGoodput == nil {
		t.Fatal("request_goodput nil with an SLO")
	}
	near(t, "request_goodput", *r.RequestGoodput, 0.5)
	// Chunk timestamps: R1 0.1 0.15 0.2 0.3, R2 0.5 0.6 0.7 → second 0; R3 1.1 → second 1.
	near(t, "max_output_tokens_per_s", r.MaxOutputTokensPerS, 7)
	// [0,0.3) [0.3,0.7) [0.5,1.1): R1 ends exactly as R2 starts (half-open), R2 and R3 overlap.
	if r.MaxConcurrentReqs != 2 {
		t.Errorf("max_concurrent_requests = %d, want 2", r.MaxConcurrentReqs)
	}

	want := map[string]float64{
		// TTFT 100, 200, 600.
		"mean_ttft_ms": 300, "median_ttft_ms": 200, "std_ttft_ms": math.Sqrt(140000.0 / 3),
		"p50_ttft_ms": 200, "p99_ttft_ms": 592 /* 600 − 400·0.02 */, "p99.9_ttft_ms": 599.2,
		// TPOT 50, 100 (R3 has one token).
		"mean_tpot_ms": 75, "median_tpot_ms": 75, "std_tpot_ms": 25,
		"p50_tpot_ms": 75, "p99_tpot_ms": 99.5, "p99.9_tpot_ms": 99.95,
		// ITL 50, 50, 100, 100, 100.
		"mean_itl_ms": 80, "median_itl_ms": 100, "std_itl_ms": math.Sqrt(600),
		"p50_itl_ms": 100, "p99_itl_ms": 100, "p99.9_itl_ms": 100,
		// E2EL 300, 400, 600.
		"mean_e2el_ms": 1300.0 / 3, "median_e2el_ms": 400, "std_e2el_ms": math.Sqrt(140000.0 / 9),
		"p50_e2el_ms": 400, "p99_e2el_ms": 596, "p99.9_e2el_ms": 599.6,
	}
	if len(r.Metrics) != len(want) {
		t.Errorf("metrics keys = %v, want %d keys", sortedKeys(r.Metrics), len(want))
	}
	for k, v := range want {
		got, ok := r.Metrics[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		near(t, k, got, v)
	}

	// Per-request arrays cover every request in order; the failed one has output length 0.
	if !reflect.DeepEqual(r.InputLens, []int{10, 40, 20, 30}) || !reflect.DeepEqual(r.OutputLens, []int{5, 0, 3, 1}) {
		t.Errorf("input_lens %v output_lens %v", r.InputLens, r.OutputLens)
	}
	if !reflect.DeepEqual(r.TTFTs, []float64{0.1, 0.05, 0.2, 0.6}) || !reflect.DeepEqual(r.Latencies, []float64{0.3, 1, 0.4, 0.6}) {
		t.Errorf("ttfts %v latencies %v", r.TTFTs, r.Latencies)
	}
	if !reflect.DeepEqual(r.ITLs, [][]float64{{0.05, 0.05, 0.1}, {0.01}, {0.1, 0.1}, {}}) {
		t.Errorf("itls %v", r.ITLs)
	}
	if !reflect.DeepEqual(r.StartTimes, []float64{0, 0.1, 0.3, 0.5}) || !reflect.DeepEqual(r.QueueTimes, []float64{0, 0, 0.05, 0.1}) {
		t.Errorf("start_times %v queue_times %v", r.StartTimes, r.QueueTimes)
	}
	if !reflect.DeepEqual(r.Errors, []string{"boom"}) {
		t.Errorf("errors %v", r.Errors)
	}
	if r.Label != "vllm" || r.Model != "qwen" || r.Backend != "openai-chat" || !math.IsInf(r.RequestRate, 1) ||
		r.Burstiness != 1 || r.MaxConcurrency != 4 {
		t.Errorf("configuration not carried: %+v", r)
	}
	for _, k := range FormulaOrder {
		if r.Formulas[k] == "" || Formulas[k] == "" {
			t.Errorf("no formula for %s", k)
		}
	}
	if len(Formulas) != len(FormulaOrder) {
		t.Errorf("Formulas has %d entries, FormulaOrder %d", len(Formulas), len(FormulaOrder))
	}

	tokens, concurrent := Timeline([]Output{handOutputs()[0], handOutputs()[2], handOutputs()[3]})
	// ceil(1.1 − 0) + 1 = 3 buckets.
	if !reflect.DeepEqual(tokens, []float64{7, 1, 0}) || !reflect.DeepEqual(concurrent, []float64{3, 1, 0}) {
		t.Errorf("timeline tokens %v concurrent %v", tokens, concurrent)
	}
}

func TestComputeGoodputVariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Goodput
		want float64 // req/s over 2 s; NaN: nil
	}{
		{"none", nil, math.NaN()},
		{"all zero is no SLO", &Goodput{}, math.NaN()},
		{"tpot only: R1, and R3 whose TPOT counts as 0", &Goodput{TPOT: 60 * ms}, 1},
		{"e2el inclusive: 300 and 400 meet 400", &Goodput{E2EL: 400 * ms}, 1},
		{"ttft 200 inclusive", &Goodput{TTFT: 200 * ms}, 1},
		{"everything", &Goodput{TTFT: time.Second, TPOT: time.Second, E2EL: time.Second}, 1.5},
		{"nothing", &Goodput{TTFT: time.Millisecond}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compute(handOutputs(), 2*time.Second, Options{Goodput: tc.g})
			if math.IsNaN(tc.want) {
				if r.RequestGoodput != nil {
					t.Fatalf("request_goodput = %v, want nil", *r.RequestGoodput)
				}
				return
			}
			if r.RequestGoodput == nil {
				t.Fatal("request_goodput nil")
			}
			near(t, "request_goodput", *r.RequestGoodput, tc.want)
		})
	}
}

// The vLLM docs' example (docs/benchmarking/cli.md, "Understanding the Latency Metrics"):
// chunks at 100, 140, 180 ms carrying 5 tokens → ITL samples 40, 40; TPOT (180−100)/(5−1) = 20.
func TestComputeDocsExample(t *testing.T) {
	r := Compute([]Output{{Success: true, PromptLen: 8, OutputLen: 5, TTFT: 100 * ms, ITL: msList(40, 40), Latency: 180 * ms}},
		time.Second, Options{})
	near(t, "mean_tpot_ms", r.Metrics["mean_tpot_ms"], 20)
	near(t, "mean_itl_ms", r.Metrics["mean_itl_ms"], 40)
	near(t, "p99_itl_ms", r.Metrics["p99_itl_ms"], 40)
	near(t, "mean_ttft_ms", r.Metrics["mean_ttft_ms"], 100)
	// Default metrics are ttft, tpot, itl with p99.
	want := []string{"mean_itl_ms", "mean_tpot_ms", "mean_ttft_ms", "median_itl_ms", "median_tpot_ms", "median_ttft_ms",
		"p99_itl_ms", "p99_tpot_ms", "p99_ttft_ms", "std_itl_ms", "std_tpot_ms", "std_ttft_ms"}
	if got := sortedKeys(r.Metrics); !slices.Equal(got, want) {
		t.Errorf("default keys %v, want %v", got, want)
	}
	// Three chunks, each counted as one token (not the five of usage).
	near(t, "max_output_tokens_per_s", r.MaxOutputTokensPerS, 3)
}

func TestComputeFailedExcluded(t *testing.T) {
	var good []Output
	for _, o := range handOutputs() {
		if o.Success {
			good = append(good, o)
		}
	}
	opts := Options{Metrics: []string{"ttft", "tpot", "itl", "e2el"}, Percentiles: []float64{50, 90, 99}}
	with := Compute(handOutputs(), 2*time.Second, opts)
	without := Compute(good, 2*time.Second, opts)
	if !reflect.DeepEqual(with.Metrics, without.Metrics) {
		t.Errorf("a failed request changed the statistics:\n%v\n%v", with.Metrics, without.Metrics)
	}
	if with.MaxOutputTokensPerS != without.MaxOutputTokensPerS || with.MaxConcurrentReqs != without.MaxConcurrentReqs ||
		with.RequestThroughput != without.RequestThroughput || with.TotalTokenThroughput != without.TotalTokenThroughput {
		t.Errorf("a failed request changed peaks or throughput")
	}
	if with.Failed != 1 || without.Failed != 0 || without.Errors != nil {
		t.Errorf("failed %d/%d errors %v", with.Failed, without.Failed, without.Errors)
	}

	// Errors are capped; every failure is still counted. An empty message gets a placeholder.
	var many []Output
	for i := range 150 {
		many = append(many, Output{Error: fmt.Sprintf("e%d", i)})
	}
	many[0].Error = ""
	r := Compute(many, time.Second, Options{})
	if r.Failed != 150 || r.Completed != 0 || len(r.Errors) != MaxErrors || r.Errors[1] != "e1" || r.Errors[0] == "" {
		t.Errorf("failed %d completed %d errors %d first %q", r.Failed, r.Completed, len(r.Errors), r.Errors[0])
	}
	// All failed: statistics are 0 (vLLM's np.mean(x or 0)), peaks 0.
	for k, v := range r.Metrics {
		if v != 0 {
			t.Errorf("%s = %v with no successful request", k, v)
		}
	}
	if r.MaxOutputTokensPerS != 0 || r.MaxConcurrentReqs != 0 || r.RequestThroughput != 0 {
		t.Errorf("peaks %v %v throughput %v", r.MaxOutputTokensPerS, r.MaxConcurrentReqs, r.RequestThroughput)
	}
}

func TestComputeEmptyAndZeroDuration(t *testing.T) {
	r := Compute(nil, 0, Options{})
	if r.Completed != 0 || r.RequestThroughput != 0 || len(r.Metrics) != 12 {
		t.Errorf("empty run: %+v", r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func TestComputeQueueMetrics(t *testing.T) {
	r := Compute(handOutputs(), 2*time.Second, Options{Metrics: []string{"client_queue_time", "e2el_including_client_queue", "bogus"}})
	near(t, "mean_client_queue_time_ms", r.Metrics["mean_client_queue_time_ms"], 50)
	near(t, "mean_e2el_including_client_queue_ms", r.Metrics["mean_e2el_including_client_queue_ms"], 1450.0/3)
	if len(r.Metrics) != 8 {
		t.Errorf("keys %v", sortedKeys(r.Metrics))
	}
}

func TestOutputTokensFallback(t *testing.T) {
	// No usage: the counted chunks (first + one per ITL gap); vLLM without a tokenizer takes 1.
	outs := []Output{
		{Success: true, TTFT: 10 * ms, ITL: msList(10, 10), Latency: 30 * ms},
		{Success: true, TTFT: 10 * ms, Latency: 10 * ms},
		{Success: true, OutputLen: 9, TTFT: 10 * ms, ITL: msList(10), Latency: 20 * ms, UsageFromAPI: true},
	}
	r := Compute(outs, time.Second, Options{})
	if !reflect.DeepEqual(r.OutputLens, []int{3, 1, 9}) || r.TotalOutputTokens != 13 {
		t.Errorf("output_lens %v total %d", r.OutputLens, r.TotalOutputTokens)
	}
	// TPOT: (30−10)/2 = 10 and (20−10)/8 = 1.25; the one-token request has none.
	near(t, "mean_tpot_ms", r.Metrics["mean_tpot_ms"], 5.625)
}

func TestPeakConcurrencyTies(t *testing.T) {
	outs := []Output{
		{Start: 0, Latency: time.Second},
		{Start: time.Second, Latency: time.Second}, // starts as the first ends: not concurrent
		{Start: 1500 * ms, Latency: 100 * ms},
		{Start: 1550 * ms, Latency: 10 * ms},
	}
	if got := PeakConcurrency(outs); got != 3 {
		t.Errorf("peak %d, want 3", got)
	}
	if got := PeakConcurrency(outs[:2]); got != 1 {
		t.Errorf("peak %d, want 1", got)
	}
	if got := PeakConcurrency(nil); got != 0 {
		t.Errorf("peak %d, want 0", got)
	}
}

func TestTimelineBuckets(t *testing.T) {
	// Starts at 2 s (buckets are relative to the earliest start); chunks at 2.9, 3.0, 3.5, 4.999, 5.0.
	outs := []Output{
		{Start: 2 * time.Second, TTFT: 900 * ms, ITL: msList(100, 500, 1499), Latency: 2999 * ms},
		{Start: 2500 * ms, TTFT: 2500 * ms, Latency: 2500 * ms},
	}
	tokens, concurrent := Timeline(outs)
	// last end 5.0 − 2.0 = 3 s → 3 + 1 = 4 buckets.
	if !reflect.DeepEqual(tokens, []float64{1, 2, 1, 1}) {
		t.Errorf("tokens %v", tokens)
	}
	// Request 1: seconds 0..ceil(2.999)=3 → 0,1,2; request 2: int(0.5)=0..ceil(3.0)=3 → 0,1,2.
	if !reflect.DeepEqual(concurrent, []float64{2, 2, 2, 0}) {
		t.Errorf("concurrent %v", concurrent)
	}
}

func TestPercentileNumpy(t *testing.T) {
	for _, tc := range []struct {
		sorted []float64
		p      float64
		want   float64 // np.percentile(sorted, p)
	}{
		{[]float64{1, 2, 3, 4}, 50, 2.5},
		{[]float64{1, 2, 3, 4}, 25, 1.75},
		{[]float64{1, 2, 3, 4}, 99, 3.97},
		{[]float64{1, 2, 3, 4}, 0, 1},
		{[]float64{1, 2, 3, 4}, 100, 4},
		{[]float64{15, 20, 35, 40, 50}, 40, 29},
		{[]float64{1, 2, 3, 4, 7, 10}, 90, 8.5},
		{[]float64{0.1, 0.2, 0.6}, 99, 0.592},
		{[]float64{42}, 99.9, 42},
		{nil, 99, 0},
	} {
		near(t, fmt.Sprintf("percentile(%v, %v)", tc.sorted, tc.p), Percentile(tc.sorted, tc.p), tc.want)
	}
}

func TestStatsNumpy(t *testing.T) {
	x := []float64{2, 4, 4, 4, 5, 5, 7, 9}
	near(t, "mean", Mean(x), 5)
	near(t, "std (ddof=0)", Std(x), 2)
	near(t, "median even", Median([]float64{1, 2, 3, 4}), 2.5)
	near(t, "median odd", Median([]float64{1, 2, 30}), 2)
	// pairwise sum over more than 128 values (the recursive branch) stays exact for integers.
	var big []float64
	for i := 1; i <= 1000; i++ {
		big = append(big, float64(i))
	}
	near(t, "mean 1..1000", Mean(big), 500.5)
	near(t, "std 1..1000", Std(big), math.Sqrt((1000*1000-1)/12.0))
	st := Summarize(nil, []float64{99})
	if st.Mean != 0 || st.Median != 0 || st.Std != 0 || st.Percentiles[0] != 0 {
		t.Errorf("empty sample: %+v", st)
	}
}

func TestPercentileKey(t *testing.T) {
	for p, want := range map[float64]string{
		99: "p99_ttft_ms", 99.9: "p99.9_ttft_ms", 50: "p50_ttft_ms", 99.99: "p99.99_ttft_ms", 0.5: "p0.5_ttft_ms", 0: "p0_ttft_ms", 100: "p100_ttft_ms",
	} {
		if got := PercentileKey(p, "ttft"); got != want {
			t.Errorf("PercentileKey(%v) = %q, want %q", p, got, want)
		}
		if !IsMetricKey(want) {
			t.Errorf("IsMetricKey(%q) false", want)
		}
	}
	for _, k := range []string{"probe_p99_e2el_ms", "mean_ttft", "citadel_send_lag_p99_ms", "total_input_tokens", "p_ttft_ms"} {
		if IsMetricKey(k) {
			t.Errorf("IsMetricKey(%q) true", k)
		}
	}
}

package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// vLLM's --save-result keys (the result dict of vllm bench serve,
// https://github.com/vllm-project/vllm/blob/main/vllm/benchmarks/serve.py).
var vllmResultKeys = []string{
	"backend", "label", "model_id", "request_rate", "burstiness", "max_concurrency",
	"duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
	"request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
	"input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "queue_times", "errors",
	"max_output_tokens_per_s", "max_concurrent_requests",
	"mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
	"mean_tpot_ms", "median_tpot_ms", "std_tpot_ms", "p99_tpot_ms",
	"mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
	"mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p99_e2el_ms",
}

func TestJSONKeysMatchVLLM(t *testing.T) {
	r := Compute(handOutputs(), 2*time.Second, Options{Metrics: []string{"ttft", "tpot", "itl", "e2el"}, RequestRate: 4, Burstiness: 1})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	keys := topKeys(t, b)
	have := map[string]bool{}
	for _, k := range keys {
		if have[k] {
			t.Errorf("duplicate key %s", k)
		}
		have[k] = true
	}
	for _, k := range vllmResultKeys {
		if !have[k] {
			t.Errorf("missing vLLM key %s", k)
		}
	}
	extra := []string{}
	for _, k := range keys {
		if !slices.Contains(vllmResultKeys, k) {
			extra = append(extra, k)
		}
	}
	if !slices.Equal(extra, []string{"citadel_send_lag_p99_ms"}) {
		t.Errorf("keys beyond vLLM's: %v", extra)
	}
	// Fixed fields first, then the statistics sorted.
	fixed := len(keys) - len(r.Metrics)
	if !sort.StringsAreSorted(keys[fixed:]) || keys[0] != "label" || keys[fixed-1] != "citadel_send_lag_p99_ms" {
		t.Errorf("key order %v", keys)
	}
	// Stable bytes.
	b2, _ := json.Marshal(r)
	if !bytes.Equal(b, b2) {
		t.Error("marshal not deterministic")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["request_goodput"] != nil || m["max_concurrency"] != nil || m["request_rate"] != 4.0 || m["completed"] != 3.0 {
		t.Errorf("values: goodput %v max_concurrency %v rate %v", m["request_goodput"], m["max_concurrency"], m["request_rate"])
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := Compute(handOutputs(), 2*time.Second, Options{
		Percentiles: []float64{50, 90, 99, 99.9}, Metrics: []string{"ttft", "tpot", "itl", "e2el"},
		Goodput: &Goodput{TTFT: 250 * ms}, Label: `say "hi"`, Model: "m/x", Backend: "ollama",
		RequestRate: math.Inf(1), Burstiness: 0.5, MaxConcurrency: 8,
	})
	r.SendLagP99Ms = 1.25
	r.Metrics["mean_gpu_ms"] = math.NaN() // NaN is written as null and read back as NaN
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"request_rate":"inf"`)) || !bytes.Contains(b, []byte(`"mean_gpu_ms":null`)) ||
		!bytes.Contains(b, []byte(`"p99.9_itl_ms":`)) || !bytes.Contains(b, []byte(`"max_concurrency":8`)) {
		t.Errorf("json: %s", b)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.Metrics["mean_gpu_ms"]) {
		t.Errorf("NaN metric read as %v", back.Metrics["mean_gpu_ms"])
	}
	delete(back.Metrics, "mean_gpu_ms")
	delete(r.Metrics, "mean_gpu_ms")
	r.Formulas = nil
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back, *r)
	}

	// Empty result, no goodput, no concurrency limit.
	empty := Compute(nil, time.Second, Options{RequestRate: 2})
	b, _ = json.Marshal(empty)
	var back2 Result
	if err := json.Unmarshal(b, &back2); err != nil {
		t.Fatal(err)
	}
	empty.Formulas = nil
	if !reflect.DeepEqual(&back2, empty) {
		t.Errorf("empty round trip differs:\n got %+v\nwant %+v\n%s", back2, *empty, b)
	}
}

// A vLLM --save-result --save-detailed file (shape of serve.py's result_json), with
// --metric-percentiles 50,99,99.9 --percentile-metrics ttft,tpot,itl,e2el and --burstiness inf,
// which Python's json writes as a bare Infinity.
const vllmSample = `{
  "date": "20250101-120000", "endpoint_type": "openai-chat", "backend": "openai-chat", "label": null,
  "model_id": "Qwen/Qwen2.5-7B-Instruct", "tokenizer_id": "Qwen/Qwen2.5-7B-Instruct", "num_prompts": 3,
  "request_rate": "inf", "burstiness": Infinity, "max_concurrency": null,
  "duration": 2.5, "completed": 2, "failed": 1, "total_input_tokens": 200, "total_output_tokens": 64,
  "request_throughput": 0.8, "request_goodput": null, "output_throughput": 25.6, "total_token_throughput": 105.6,
  "input_lens": [100, 100, 100], "output_lens": [32, 32, 0],
  "ttfts": [0.05, 0.06, 0.0], "itls": [[0.02, 0.021], [0.019], []], "latencies": [0.7, 0.72, 0.0],
  "start_times": [10.0, 10.1, 10.2], "queue_times": [0.0, 0.0, 0.0],
  "generated_texts": ["NaN is not a number", "b", ""], "errors": ["", "", "Never received a valid chunk to calculate TTFT."],
  "max_output_tokens_per_s": 40.0, "max_concurrent_requests": 2, "rtfx": 0.0,
  "probe_median_e2el_ms": 12.0, "probe_p99_e2el_ms": 15.0, "spec_decode_acceptance_rate": 71.5,
  "mean_ttft_ms": 55.0, "median_ttft_ms": 55.0, "std_ttft_ms": 5.0, "p50_ttft_ms": 55.0, "p99_ttft_ms": 59.9, "p99.9_ttft_ms": 59.99,
  "mean_tpot_ms": 21.0, "median_tpot_ms": 21.0, "std_tpot_ms": 0.5, "p50_tpot_ms": 21.0, "p99_tpot_ms": 21.49, "p99.9_tpot_ms": 21.499,
  "mean_itl_ms": 20.0, "median_itl_ms": 20.0, "std_itl_ms": 0.8164965809277263, "p50_itl_ms": 20.0, "p99_itl_ms": 20.98, "p99.9_itl_ms": 20.998,
  "mean_e2el_ms": 710.0, "median_e2el_ms": 710.0, "std_e2el_ms": 10.0, "p50_e2el_ms": 710.0, "p99_e2el_ms": 719.8, "p99.9_e2el_ms": 719.98
}`

func TestReadVLLMSample(t *testing.T) {
	// encoding/json rejects the bare Infinity before UnmarshalJSON runs; ParseResult accepts it.
	var viaJSON Result
	if err := json.Unmarshal([]byte(vllmSample), &viaJSON); err == nil {
		t.Error("encoding/json accepted a bare Infinity")
	}
	if err := json.Unmarshal([]byte(strings.Replace(vllmSample, "Infinity", `"inf"`, 1)), &viaJSON); err != nil {
		t.Fatal(err)
	}
	p, err := ParseResult([]byte(vllmSample))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, &viaJSON) {
		t.Errorf("ParseResult and json.Unmarshal differ:\n%+v\n%+v", *p, viaJSON)
	}
	r := *p
	if r.Label != "" || r.Model != "Qwen/Qwen2.5-7B-Instruct" || r.Backend != "openai-chat" ||
		!math.IsInf(r.RequestRate, 1) || !math.IsInf(r.Burstiness, 1) || r.MaxConcurrency != 0 || r.RequestGoodput != nil {
		t.Errorf("setup: %+v", r)
	}
	if r.Duration != 2.5 || r.Completed != 2 || r.Failed != 1 || r.TotalInputTokens != 200 || r.TotalOutputTokens != 64 ||
		r.RequestThroughput != 0.8 || r.OutputThroughput != 25.6 || r.TotalTokenThroughput != 105.6 ||
		r.MaxOutputTokensPerS != 40 || r.MaxConcurrentReqs != 2 {
		t.Errorf("aggregates: %+v", r)
	}
	if !reflect.DeepEqual(r.ITLs, [][]float64{{0.02, 0.021}, {0.019}, {}}) || !reflect.DeepEqual(r.OutputLens, []int{32, 32, 0}) ||
		!reflect.DeepEqual(r.StartTimes, []float64{10, 10.1, 10.2}) || len(r.TTFTs) != 3 || len(r.Latencies) != 3 {
		t.Errorf("arrays: %+v", r)
	}
	if !reflect.DeepEqual(r.Errors, []string{"Never received a valid chunk to calculate TTFT."}) {
		t.Errorf("errors %q", r.Errors)
	}
	var want []string
	for _, m := range []string{"ttft", "tpot", "itl", "e2el"} {
		for _, s := range []string{"mean", "median", "std", "p50", "p99", "p99.9"} {
			want = append(want, s+"_"+m+"_ms")
		}
	}
	sort.Strings(want)
	if got := sortedKeys(r.Metrics); !slices.Equal(got, want) {
		t.Errorf("metrics keys\n got %v\nwant %v", got, want)
	}
	if r.Metrics["p99.9_itl_ms"] != 20.998 || r.Metrics["p99_ttft_ms"] != 59.9 {
		t.Errorf("values %v", r.Metrics)
	}
	// And it writes back as valid JSON with "inf" for both infinities.
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !bytes.Contains(b, []byte(`"burstiness":"inf"`)) {
		t.Errorf("rewritten: %s", b)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	var r Result
	if err := json.Unmarshal([]byte(`{"completed": 2.5}`), &r); err == nil || !strings.Contains(err.Error(), "completed") {
		t.Errorf("fractional count: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"request_rate": "fast"}`), &r); err == nil {
		t.Error("non-numeric rate accepted")
	}
	if err := json.Unmarshal([]byte(`[1]`), &r); err == nil {
		t.Error("array accepted")
	}
	// A statistic-shaped key with a non-numeric value is not a statistic.
	if err := json.Unmarshal([]byte(`{"mean_x_ms": "n/a", "completed": 4.0}`), &r); err != nil || len(r.Metrics) != 0 || r.Completed != 4 {
		t.Errorf("err %v metrics %v completed %d", err, r.Metrics, r.Completed)
	}
}

func TestPythonJSON(t *testing.T) {
	in := `{"a": NaN, "b": -Infinity, "c": [Infinity, 1], "s": "NaN \"Infinity\" -Infinity"}`
	out := string(pythonJSON([]byte(in)))
	want := `{"a": null, "b": "-inf", "c": ["inf", 1], "s": "NaN \"Infinity\" -Infinity"}`
	if out != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// topKeys returns the top-level keys of a JSON object in document order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

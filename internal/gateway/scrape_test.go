package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"github.com/google/go-cmp/cmp"
)

// vllmMetrics is vLLM V1's exposition (two engine cores, labels in name order), trimmed.
const vllmMetrics = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 4.0
vllm:num_requests_running{engine="1",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 3.0
vllm:num_requests_waiting{engine="1",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 0.75
vllm:kv_cache_usage_perc{engine="1",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 0.25
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 12.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 12.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 12.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="XiaomiMiMo/MiMo-VL-7B-RL"} 1.4
`

// vllmOldMetrics is vLLM before 0.9: the KV series was gpu_cache_usage_perc.
const vllmOldMetrics = `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 0.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
`

// sglangMetrics is SGLang's exposition (one scheduler per TP rank), trimmed.
const sglangMetrics = `# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 7.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 2.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 0.41
# HELP sglang:gen_throughput The generation throughput (token/s).
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{engine_type="unified",model_name="qwen",pp_rank="0",tp_rank="0"} 512.5
`

func TestParseMetric(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, metric string
		want               float64
		ok                 bool
	}{
		{"vLLM: summed over engines", vllmMetrics, "vllm:num_requests_running", 6, true},
		{"vLLM: a zero is there", vllmMetrics, "vllm:num_requests_waiting", 3, true},
		{"vLLM: histogram series are their own", vllmMetrics, "vllm:time_to_first_token_seconds_count", 12, true},
		{"vLLM: le=+Inf is a label", vllmMetrics, "vllm:time_to_first_token_seconds_bucket", 12, true},
		{"vLLM: a prefix of a name is not the name", vllmMetrics, "vllm:num_requests", 0, false},
		{"vLLM: the name in HELP is not a sample", vllmMetrics, "Number", 0, false},
		{"vLLM: absent", vllmMetrics, "vllm:gpu_cache_usage_perc", 0, false},
		{"SGLang", sglangMetrics, "sglang:num_queue_reqs", 2, true},
		{"SGLang: fraction", sglangMetrics, "sglang:token_usage", 0.41, true},
		{"no labels", "llamacpp:requests_processing 3\nllamacpp:requests_deferred 1\n", "llamacpp:requests_processing", 3, true},
		{"empty labels", "x{} 2\n", "x", 2, true},
		{"timestamp", "x{a=\"1\"} 2 1712345678000\n", "x", 2, true},
		{"no final newline", "x 5", "x", 5, true},
		{"CRLF", "# TYPE x gauge\r\nx{a=\"b\"} 5\r\nx 1\r\n", "x", 6, true},
		{"tabs and spaces", "  x\t{a=\"b\"}\t 5 \n", "x", 5, true},
		{"escaped quotes and braces in a label", `x{path="C:\\dir\\",q="say \"}\" ok",b="{"} 2` + "\nx{a=\"\\n\"} 3\n", "x", 5, true},
		{"NaN and Inf left out", "x{a=\"1\"} NaN\nx{a=\"2\"} +Inf\nx{a=\"3\"} -Inf\nx{a=\"4\"} 1.5\n", "x", 1.5, true},
		{"only NaN", "x NaN\n", "x", 0, false},
		{"exponent", "x 1.5e3\nx -2E-1\n", "x", 1499.8, true},
		{"OpenMetrics exemplar and EOF", "x_total{a=\"b\"} 7 # {trace_id=\"abc\"} 1.0 1712345678.1\n# EOF\n", "x_total", 7, true},
		{"Prometheus 3 quoted name", "{\"vllm:num_requests_waiting\",engine=\"0\"} 4\n{\"vllm:num_requests_waiting\"} 1\n", "vllm:num_requests_waiting", 5, true},
		{"garbage lines skipped", "x{a=\"unclosed} 9\nx 1\nx notanumber\nx{\n{a=\"b\"} 8\n\n#x 3\nx 2\n", "x", 3, true},
		{"empty body", "", "x", 0, false},
		{"empty name", "x 1\n", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseMetric([]byte(tt.body), tt.metric)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("ParseMetric(%q) = %v, %v; want %v, %v", tt.metric, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestReadLoad(t *testing.T) {
	t.Parallel()
	type load struct {
		Running, Waiting, KV float64
		OK                   bool
	}
	vllm := &Replica{RunningMetric: "vllm:num_requests_running", WaitingMetric: "vllm:num_requests_waiting", KVMetric: "vllm:kv_cache_usage_perc"}
	sglang := &Replica{RunningMetric: "sglang:num_running_reqs", WaitingMetric: "sglang:num_queue_reqs", KVMetric: "sglang:token_usage"}
	for _, tt := range []struct {
		name string
		body string
		r    *Replica
		want load
	}{
		{"vLLM: KV is the engines' mean", vllmMetrics, vllm, load{6, 3, 0.5, true}},
		{"vLLM before 0.9: gpu_cache_usage_perc", vllmOldMetrics, vllm, load{1, 0, 0.5, true}},
		{"SGLang", sglangMetrics, sglang, load{7, 2, 0.41, true}},
		{"not metrics", "<html>hello</html>\n", vllm, load{}},
		{"nonsense clamped", "vllm:num_requests_running -2\nvllm:num_requests_waiting -1\nvllm:kv_cache_usage_perc 1.7\n", vllm, load{0, 0, 1, true}},
		{"other engine's", sglangMetrics, vllm, load{}},
	} {
		var got load
		got.Running, got.Waiting, got.KV, got.OK = readLoad([]byte(tt.body), tt.r)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestParseMetricAllocs(t *testing.T) {
	body := []byte(vllmMetrics + sglangMetrics)
	r := &Replica{RunningMetric: "vllm:num_requests_running", WaitingMetric: "vllm:num_requests_waiting", KVMetric: "vllm:kv_cache_usage_perc"}
	if n := testing.AllocsPerRun(100, func() { readLoad(body, r) }); n != 0 {
		t.Errorf("readLoad: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { ParseMetric(body, "sglang:token_usage") }); n != 0 {
		t.Errorf("ParseMetric: %v allocations, want 0", n)
	}
}

func TestScraper(t *testing.T) {
	noLeaks(t)
	serve := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Write([]byte(body))
		}
	}
	vllm := newEngine(t, serve(vllmMetrics))
	vllmOld := newEngine(t, serve(vllmOldMetrics))
	sglang := newEngine(t, serve(sglangMetrics))
	broken := newEngine(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	html := newEngine(t, serve("<html>metrics are elsewhere</html>"))
	// A 1 MiB page: what lies past it is not read.
	pad := strings.Repeat("# padding padding padding padding padding padding padding padding\n", maxMetricsBody/64)
	huge := newEngine(t, serve("vllm:num_requests_running 1\n"+pad+"vllm:num_requests_waiting 9\n"))
	nometrics := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("scraped a replica without MetricsPath: %s", r.URL)
	})

	rep := func(e *engine, kind string) *Replica {
		r := replicaAt(e.URL, e.URL, APIOpenAI, kind)
		switch kind {
		case "vllm":
			r.MetricsPath, r.RunningMetric, r.WaitingMetric, r.KVMetric = "/metrics", "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"
		case "sglang":
			r.MetricsPath, r.RunningMetric, r.WaitingMetric, r.KVMetric = "/metrics", "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage"
		}
		return r
	}
	list := []*Replica{rep(vllm, "vllm"), rep(vllmOld, "vllm"), rep(sglang, "sglang"), rep(broken, "vllm"), rep(html, "vllm"), rep(huge, "vllm"), rep(nometrics, "ollama")}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	s := &Scraper{Interval: 10 * time.Millisecond, Timeout: time.Second, Client: &http.Client{Transport: tr}}
	defer start(s.Run, list...)()

	type load struct {
		Running, Waiting, KV float64
		Fresh                bool
	}
	get := func(r *Replica) load {
		s := r.Snapshot()
		return load{s.Running, s.Waiting, s.KVUsage, s.Fresh}
	}
	want := []load{{6, 3, 0.5, true}, {1, 0, 0.5, true}, {7, 2, 0.41, true}, {}, {}, {1, 0, 0, true}, {}}
	eventually(t, "the engines to be scraped", func() bool {
		return get(list[0]).Fresh && get(list[1]).Fresh && get(list[2]).Fresh && get(list[5]).Fresh
	})
	eventually(t, "a few rounds", func() bool { return broken.count("GET /metrics") >= 3 && html.count("GET /metrics") >= 3 })
	var got []load
	for _, r := range list {
		got = append(got, get(r))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Scraping is not health: a failing /metrics does not eject.
	if s := list[3].Snapshot(); !s.Healthy || s.Failures != 0 {
		t.Errorf("broken metrics: %+v, want healthy, no failures", s)
	}
}

// Scraped load steers load-aware balancing; when it goes stale, in-flight counts do.
func TestScrapeSteersPick(t *testing.T) {
	noLeaks(t)
	metrics := func(waiting int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 4.0\nvllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} %d.0\nvllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.5\n", waiting)
		}
	}
	busy, idle := newEngine(t, metrics(8)), newEngine(t, metrics(0))
	tg := &Target{Name: "ns/svc", Policy: v1.BalanceLoadAware}
	for _, e := range []*engine{busy, idle} {
		r := replicaAt(e.URL, e.URL, APIOpenAI, "vllm")
		r.MetricsPath, r.RunningMetric, r.WaitingMetric, r.KVMetric = "/metrics", "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"
		tg.Replicas = append(tg.Replicas, r)
	}
	tg.Replicas[1].State.InFlight.Store(3) // more in flight on the idle engine: only metrics tell it is idle
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, r := range tg.Replicas {
		if err := scrape(t.Context(), client, time.Second, r); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if got := Pick(tg, RequestInfo{}, nil, now); got != tg.Replicas[1] {
		t.Errorf("fresh metrics, 8 waiting against 0: picked %s, want the idle engine", got.ID)
	}
	if got := Pick(tg, RequestInfo{}, nil, now.Add(2*time.Second)); got != tg.Replicas[0] {
		t.Errorf("stale metrics, 0 in flight against 3: picked %s, want the busy engine (fewer in flight)", got.ID)
	}
}

func TestScrapeErrors(t *testing.T) {
	noLeaks(t)
	slow := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	broken := newEngine(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for _, tt := range []struct {
		e    *engine
		want string
	}{
		{slow, "context deadline exceeded"},
		{broken, "answered 500 Internal Server Error"},
	} {
		r := replicaAt("r", tt.e.URL, APIOpenAI, "vllm")
		r.MetricsPath, r.RunningMetric = "/metrics", "vllm:num_requests_running"
		err := scrape(t.Context(), client, 50*time.Millisecond, r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("scrape: %v, want an error saying %q", err, tt.want)
		}
		if !r.State.ScrapedAt.IsZero() {
			t.Errorf("a failed scrape set ScrapedAt")
		}
	}
}

func FuzzParseMetric(f *testing.F) {
	for _, s := range []string{vllmMetrics, vllmOldMetrics, sglangMetrics, "x 1", "x{a=\"\\\"\"} 2\n", "{\"x\"} 3", "x{", "x NaN\nx +Inf\n", "\r\n\t #"} {
		f.Add([]byte(s), "x")
	}
	f.Add([]byte(vllmMetrics), "vllm:num_requests_waiting")
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		sum, ok := ParseMetric(body, name)
		if !ok && sum != 0 {
			t.Fatalf("not found but sum %v", sum)
		}
		if !validName(name) {
			return
		}
		// Comments and a new sample of the series, each on a line of its own, add 0 and 1.
		more := append(append([]byte(nil), body...), "\n# HELP "+name+" 99\n# TYPE "+name+" gauge\n"+name+"{a=\"\\\"}\"} 1\n"...)
		sum2, ok2 := ParseMetric(more, name)
		if !ok2 || !(sum2 == sum+1 || math.IsNaN(sum2) && math.IsNaN(sum)) {
			t.Fatalf("with one more sample of %q: %v, %v; want %v, true", name, sum2, ok2, sum+1)
		}
	})
}

// validName reports whether s is a classic metric name, [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func BenchmarkParseMetric(b *testing.B) {
	// A vLLM page of realistic size: the load series amid histograms.
	var sb strings.Builder
	sb.WriteString(vllmMetrics)
	for i := range 40 {
		fmt.Fprintf(&sb, "# TYPE vllm:hist_%d_seconds histogram\n", i)
		for _, le := range []string{"0.001", "0.005", "0.01", "0.1", "1.0", "10.0", "+Inf"} {
			fmt.Fprintf(&sb, "vllm:hist_%d_seconds_bucket{engine=\"0\",le=\"%s\",model_name=\"XiaomiMiMo/MiMo-VL-7B-RL\"} 17.0\n", i, le)
		}
	}
	body := []byte(sb.String())
	r := &Replica{RunningMetric: "vllm:num_requests_running", WaitingMetric: "vllm:num_requests_waiting", KVMetric: "vllm:kv_cache_usage_perc"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		readLoad(body, r)
	}
}

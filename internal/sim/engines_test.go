package sim

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// startEngine runs an SGLang or llama.cpp personality; the plan defaults to qwen2.5-7b on an
// h100-sxm with a 4096-token context (llama.cpp: Q4_K_M, one slot).
func startEngine(t testing.TB, cfg Config) string {
	t.Helper()
	if cfg.Plan.KVBlocks == 0 {
		opts := perfmodel.Options{MaxModelLen: 4096}
		if cfg.Engine == EngineLlamaCPP {
			opts.Quant, opts.Parallel = perfmodel.QuantQ4KM, 1
		}
		cfg.Plan = newPlan(t, "h100-sxm", "qwen2.5-7b", opts)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Unix(1700000000, 0) }
	}
	if cfg.Engine == EngineLlamaCPP && cfg.LoadTime == 0 {
		cfg.LoadTime = -1
	}
	s, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s).URL
}

func request(t testing.TB, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, b.String()
}

func TestSGLangEndpoints(t *testing.T) {
	url := startEngine(t, Config{Engine: EngineSGLang, TimeScale: 0, ServedModelNames: []string{"qwen"}, ModelRoot: "Qwen/Qwen2.5-7B-Instruct"})
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     []string // substrings of the body; "" means an empty body
	}{
		{"health is empty", "GET", "/health", "", 200, []string{""}},
		{"health_generate runs a token", "GET", "/health_generate", "", 200, []string{""}},
		{"model info", "GET", "/get_model_info", "", 200, []string{`"model_path":"Qwen/Qwen2.5-7B-Instruct"`, `"is_generation":true`, `"architectures":["Qwen2ForCausalLM"]`}},
		{"model info, new name", "GET", "/model_info", "", 200, []string{`"model_type":"qwen2"`}},
		{"server info", "GET", "/get_server_info", "", 200, []string{`"context_length":4096`, `"tp_size":1`, `"version":"` + DefaultSGLangVersion + `"`}},
		{"models", "GET", "/v1/models", "", 200, []string{`"id":"qwen"`, `"owned_by":"sglang"`, `"root":"qwen"`, `"max_model_len":4096`}},
		{"any model name is served and echoed", "POST", "/v1/chat/completions", `{"model":"whatever","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`, 200,
			[]string{`"model":"whatever"`, `"completion_tokens":`}},
		{"no metrics without --enable-metrics", "GET", "/metrics", "", 404, nil},
		{"context error, flat JSON", "POST", "/v1/completions", `{"prompt":"a b","max_tokens":4094}`, 400,
			[]string{`{"object":"error","message":"Requested token count exceeds the model's maximum context length of 4096 tokens. You requested a total of 4096 tokens: 2 tokens from the input messages and 4094 tokens for the completion.`, `"type":"BadRequestError","param":null,"code":400}`}},
		{"generate", "POST", "/generate", `{"text":"The capital city of France is","sampling_params":{"max_new_tokens":8,"ignore_eos":true}}`, 200,
			[]string{`"text":"`, `"finish_reason":{"type":"length","length":8}`, `"prompt_tokens":8`, `"completion_tokens":8`, `"e2e_latency":`}},
		{"generate without input", "POST", "/generate", `{"sampling_params":{}}`, 400, []string{`{"error":{"message":"Either text or input_ids should be provided."}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := request(t, tt.method, url+tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			for _, w := range tt.want {
				if (w == "" && body != "") || !strings.Contains(body, w) {
					t.Errorf("body %s\nlacks %s", body, w)
				}
			}
		})
	}
}

func TestSGLangAuthAndMetrics(t *testing.T) {
	url := startEngine(t, Config{Engine: EngineSGLang, TimeScale: 0, APIKey: "k", EnableMetrics: true, ServedModelNames: []string{"m"}})
	for path, want := range map[string]int{"/health": 200, "/health_generate": 200, "/metrics": 200, "/get_model_info": 401, "/v1/models": 401} {
		status, _, body := request(t, "GET", url+path, "")
		if status != want {
			t.Errorf("GET %s without a key: %d, want %d", path, status, want)
		}
		if status == 401 && body != `{"error":"Unauthorized"}` {
			t.Errorf("GET %s: 401 body %s", path, body)
		}
	}
	status, _, body := request(t, "POST", url+"/generate", `{"text":"x","sampling_params":{"max_new_tokens":5,"ignore_eos":true}}`, "Authorization", "Bearer k")
	if status != 200 {
		t.Fatalf("with the key: %d %s", status, body)
	}
	_, _, metrics := request(t, "GET", url+"/metrics", "")
	for _, want := range []string{
		`sglang:num_running_reqs{engine_type="unified",model_name="m",pp_rank="0",tp_rank="0"} 0.0`,
		`sglang:generation_tokens_total{model_name="m"} 6.0`, // health_generate's token and the request's 5
		`sglang:num_requests_total{model_name="m"} 2.0`,
		`# HELP sglang:e2e_request_latency_seconds Histogram of End-to-end request latency in seconds` + "\n",
		`sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="m"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestSGLangGenerateStreamGolden(t *testing.T) {
	url := startEngine(t, Config{Engine: EngineSGLang, TimeScale: 0, Seed: 7})
	status, _, body := request(t, "POST", url+"/generate", `{"text":"Say hello.","sampling_params":{"max_new_tokens":4,"ignore_eos":true},"stream":true}`)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	evs := events(t, []byte(body))
	if evs[len(evs)-1] != "[DONE]" || len(evs) != 4+1 {
		t.Errorf("want 4 events and [DONE], got %q", evs)
	}
	// Each event carries the whole text so far.
	for i := 1; i < len(evs)-1; i++ {
		prev := decodeJSON[map[string]any](t, []byte(evs[i-1]))["text"].(string)
		cur := decodeJSON[map[string]any](t, []byte(evs[i]))["text"].(string)
		if !strings.HasPrefix(cur, prev) || len(cur) <= len(prev) {
			t.Errorf("event %d text %q does not extend %q", i, cur, prev)
		}
	}
	golden(t, "sglang_generate_stream.golden", regexpSGLangID.ReplaceAll([]byte(body), []byte(`"id":"ID"`)))
}

func TestLlamaCPPLoadingPhase(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, Quant: perfmodel.QuantQ4KM})
	now := time.Unix(1700000000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	url := startEngine(t, Config{Engine: EngineLlamaCPP, Plan: plan, TimeScale: 1, LoadTime: 3 * time.Second, ServedModelNames: []string{"qwen.gguf"},
		Faults: Faults{Now: clock}})
	loading := `{"error":{"message":"Loading model","type":"unavailable_error","code":503}}`
	for _, path := range []string{"/health", "/props", "/slots"} {
		if status, _, body := request(t, "GET", url+path, ""); status != 503 || body != loading {
			t.Errorf("GET %s while loading: %d %s, want 503 %s", path, status, body, loading)
		}
	}
	if status, _, body := request(t, "POST", url+"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`); status != 503 || body != loading {
		t.Errorf("chat while loading: %d %s", status, body)
	}
	if status, _, body := request(t, "GET", url+"/v1/models", ""); status != 200 || !strings.Contains(body, `"meta":null`) {
		t.Errorf("/v1/models while loading: %d %s, want 200 with meta null", status, body)
	}
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	status, h, body := request(t, "GET", url+"/health", "")
	if status != 200 || body != `{"status":"ok"}` || h.Get("Server") != "llama.cpp" {
		t.Errorf("/health when loaded: %d %s (Server %q)", status, body, h.Get("Server"))
	}
	if _, _, body := request(t, "GET", url+"/v1/models", ""); !strings.Contains(body, `"n_vocab":152064`) || !strings.Contains(body, `"owned_by":"llamacpp"`) {
		t.Errorf("/v1/models when loaded: %s", body)
	}
}

func TestLlamaCPPEndpoints(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 2048, Quant: perfmodel.QuantQ4KM, Parallel: 2})
	url := startEngine(t, Config{Engine: EngineLlamaCPP, Plan: plan, TimeScale: 0, ServedModelNames: []string{"qwen"}, APIKey: "k", ModelRoot: "/m/qwen.gguf"})
	key := []string{"Authorization", "Bearer k"}
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		want                     []string
	}{
		{"health is public", "GET", "/health", "", nil, 200, []string{`{"status":"ok"}`}},
		{"models are public", "GET", "/v1/models", "", nil, 200, []string{`"id":"qwen"`}},
		{"no key", "GET", "/props", "", nil, 401, []string{`{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}`}},
		{"X-Api-Key", "GET", "/props", "", []string{"X-Api-Key", "k"}, 200, []string{`"total_slots":2`, `"n_ctx":2048`, `"model_path":"/m/qwen.gguf"`}},
		{"slots", "GET", "/slots", "", key, 200, []string{`"id":1`, `"is_processing":false`}},
		{"no metrics without --metrics", "GET", "/metrics", "", key, 501,
			[]string{`{"error":{"message":"This server does not support metrics endpoint. Start it with ` + "`--metrics`" + `","type":"not_supported_error","code":501}}`}},
		{"unknown path", "GET", "/nope", "", key, 404, []string{`{"error":{"message":"File Not Found","type":"not_found_error","code":404}}`}},
		{"model name is echoed", "POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`, key, 200,
			[]string{`"model":"gpt-4o"`}},
		{"completion", "POST", "/completion", `{"prompt":"Once upon a time","n_predict":6,"ignore_eos":true}`, key, 200,
			[]string{`"tokens_predicted":6`, `"tokens_evaluated":4`, `"stop_type":"limit"`, `"predicted_n":6`, `"stop":true`}},
		{"prompt beyond the slot", "POST", "/completion", `{"prompt":"` + strings.Repeat("w ", 2100) + `"}`, key, 400,
			[]string{`{"error":{"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","code":400}}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := request(t, tt.method, url+tt.path, tt.body, tt.header...)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %s\nlacks %s", body, w)
				}
			}
		})
	}
}

func TestLlamaCPPCompletionStreamGolden(t *testing.T) {
	url := startEngine(t, Config{Engine: EngineLlamaCPP, TimeScale: 0, Seed: 7, ServedModelNames: []string{"qwen2.5-7b-instruct-q4_k_m.gguf"}})
	status, _, body := request(t, "POST", url+"/completion", `{"prompt":"Say hello.","n_predict":4,"stream":true}`)
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	evs := events(t, []byte(body))
	last := decodeJSON[map[string]any](t, []byte(evs[len(evs)-1]))
	if last["stop"] != true || last["timings"] == nil || strings.Contains(body, "[DONE]") {
		t.Errorf("want a final event with stop true and timings and no [DONE]: %s", body)
	}
	golden(t, "llamacpp_completion_stream.golden", []byte(body))
}

// TestLlamaCPPSlots: with -np 2, two requests run and the rest are deferred; llamacpp:
// metrics count them.
func TestLlamaCPPSlots(t *testing.T) {
	plan := newPlan(t, "rtx-4090", "llama-3.1-8b", perfmodel.Options{MaxModelLen: 2048, Quant: perfmodel.QuantQ4KM, Parallel: 2})
	url := startEngine(t, Config{Engine: EngineLlamaCPP, Plan: plan, TimeScale: 1, EnableMetrics: true})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			request(t, "POST", url+"/completion", `{"prompt":"x","n_predict":40,"ignore_eos":true}`)
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	var m string
	for ; time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		_, _, m = request(t, "GET", url+"/metrics", "")
		if strings.Contains(m, "llamacpp:requests_deferred 3\n") {
			break
		}
	}
	if !strings.Contains(m, "llamacpp:requests_processing 2\n") || !strings.Contains(m, "llamacpp:requests_deferred 3\n") {
		t.Errorf("during the burst, want 2 processing and 3 deferred:\n%s", m)
	}
	if status, _, body := request(t, "GET", url+"/slots?fail_on_no_slot=1", ""); status != 503 || !strings.Contains(body, "no slot available") {
		t.Errorf("/slots?fail_on_no_slot=1 with every slot busy: %d %s", status, body)
	}
	wg.Wait()
	_, _, m = request(t, "GET", url+"/metrics", "")
	for _, want := range []string{"llamacpp:tokens_predicted_total 200\n", "# TYPE llamacpp:n_decode_total counter\n", "llamacpp:requests_processing 0\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("after the burst /metrics lacks %q:\n%s", want, m)
		}
	}
}

var regexpSGLangID = regexp.MustCompile(`"id":"[0-9a-f]{32}"`)

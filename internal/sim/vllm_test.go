package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim/simtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// newPlan lays a catalogue model out on a catalogue GPU.
var newPlan = simtest.Plan

// start runs a simulated vLLM for the test; cfg.Plan defaults to qwen2.5-7b on h100-sxm with
// max_model_len 4096.
func start(t testing.TB, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Plan.KVBlocks == 0 {
		cfg.Plan = newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Unix(1700000000, 0) }
	}
	s, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s)
}

// serveTest runs a personality's engine and serves it until the test ends.
func serveTest(t testing.TB, s interface {
	http.Handler
	Run(context.Context) error
}) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		cancel()
		<-done
	})
	return ts
}

func post(t testing.TB, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// events splits an SSE body into its data payloads.
func events(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("event %q does not start with data: ", ev)
		}
		out = append(out, data)
	}
	return out
}

type chatResponse struct {
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		StopReason   any    `json:"stop_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func decodeJSON[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (-update to accept):\n--- want\n%s\n--- got\n%s", name, want, got)
	}
}

func TestStreamGolden(t *testing.T) {
	ts := start(t, Config{TimeScale: 0, Seed: 7})
	tests := []struct{ name, path, body string }{
		{"chat_stream.golden", "/v1/chat/completions",
			`{"model":"qwen2.5-7b","messages":[{"role":"user","content":"Say hello."}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`},
		{"chat_stream_stop.golden", "/v1/chat/completions",
			`{"model":"qwen2.5-7b","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8,"stop":[" compute"],"stream":true}`},
		{"completion_stream.golden", "/v1/completions",
			`{"model":"qwen2.5-7b","prompt":"Once upon a time","max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, ts.URL+tt.path, tt.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			// The request ID counts requests; blank it so subtests may run in any order.
			body = regexpID.ReplaceAll(body, []byte(`"id":"ID"`))
			golden(t, tt.name, body)
		})
	}
}

// TestStreamShape checks the rules the golden files pin, so a regenerated golden cannot drift.
func TestStreamShape(t *testing.T) {
	ts := start(t, Config{})
	_, body := post(t, ts.URL+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"n":2,"stream":true,"stream_options":{"include_usage":true}}`)
	evs := events(t, body)
	if evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("last event %q, want [DONE]", evs[len(evs)-1])
	}
	type chunk struct {
		Object  string `json:"object"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Role    string  `json:"role"`
				Content *string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	seenRole := map[int]bool{}
	finished := map[int]bool{}
	var content [2]string
	for i, ev := range evs[:len(evs)-1] {
		c := decodeJSON[chunk](t, []byte(ev))
		if c.Object != "chat.completion.chunk" {
			t.Errorf("event %d object %q", i, c.Object)
		}
		if i == len(evs)-2 {
			if len(c.Choices) != 0 || c.Usage == nil || c.Usage.CompletionTokens != 6 {
				t.Errorf("usage chunk %s: want choices [] and 6 completion tokens", ev)
			}
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("event %d has %d choices", i, len(c.Choices))
		}
		ch := c.Choices[0]
		if !seenRole[ch.Index] {
			if ch.Delta.Role != "assistant" || ch.Delta.Content == nil || *ch.Delta.Content != "" {
				t.Errorf("first chunk of choice %d = %s, want role assistant with empty content", ch.Index, ev)
			}
			seenRole[ch.Index] = true
			continue
		}
		if finished[ch.Index] {
			t.Errorf("choice %d has a chunk after its finish_reason: %s", ch.Index, ev)
		}
		if ch.FinishReason != nil {
			finished[ch.Index] = true
		}
		content[ch.Index] += *ch.Delta.Content
	}
	if !finished[0] || !finished[1] {
		t.Errorf("finish_reason seen for choices %v, want both", finished)
	}
	// The streamed text equals the non-streamed text of the same request.
	_, whole := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"n":2}`)
	r := decodeJSON[chatResponse](t, whole)
	for i := range 2 {
		if r.Choices[i].Message.Content != content[i] {
			t.Errorf("choice %d: streamed %q, whole %q", i, content[i], r.Choices[i].Message.Content)
		}
	}
	if content[0] == content[1] {
		t.Errorf("choices 0 and 1 are both %q, want different samples", content[0])
	}
}

func TestDeterministicAtTimeScaleZero(t *testing.T) {
	body := `{"model":"qwen2.5-7b","messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":64}`
	var first []byte
	for run := range 3 {
		ts := start(t, Config{TimeScale: 0, Seed: 42})
		status, got := post(t, ts.URL+"/v1/chat/completions", body)
		if status != 200 {
			t.Fatalf("status %d: %s", status, got)
		}
		if run == 0 {
			first = got
		} else if !bytes.Equal(first, got) {
			t.Fatalf("run %d differs:\n%s\n%s", run, first, got)
		}
	}
	ts := start(t, Config{TimeScale: 0, Seed: 43})
	_, other := post(t, ts.URL+"/v1/chat/completions", body)
	if bytes.Equal(first, other) {
		t.Errorf("seed 43 gave the same response as seed 42")
	}
}

func TestSampling(t *testing.T) {
	ts := start(t, Config{TimeScale: 0})
	msgs := `"messages":[{"role":"user","content":"one two three four five six seven"}]` // 9 tokens (three, seven: 2 each) + 4 + 3 framing
	tests := []struct {
		name       string
		body       string
		wantN      int
		wantFinish string
		check      func(t *testing.T, r chatResponse)
	}{
		{"max_tokens with ignore_eos", `{` + msgs + `,"max_tokens":17,"ignore_eos":true}`, 1, "length", func(t *testing.T, r chatResponse) {
			if r.Usage.CompletionTokens != 17 || len(strings.Fields(r.Choices[0].Message.Content)) != 17 {
				t.Errorf("completion %d tokens, text %q; want 17", r.Usage.CompletionTokens, r.Choices[0].Message.Content)
			}
		}},
		{"max_completion_tokens wins", `{` + msgs + `,"max_tokens":50,"max_completion_tokens":5,"ignore_eos":true}`, 1, "length", func(t *testing.T, r chatResponse) {
			if r.Usage.CompletionTokens != 5 {
				t.Errorf("completion tokens %d, want 5", r.Usage.CompletionTokens)
			}
		}},
		{"eos before max_tokens", `{` + msgs + `,"max_tokens":3000}`, 1, "stop", func(t *testing.T, r chatResponse) {
			if n := r.Usage.CompletionTokens; n < 16 || n >= 3000 {
				t.Errorf("completion tokens %d, want a natural length in [16, 528)", n)
			}
		}},
		{"n choices", `{` + msgs + `,"max_tokens":4,"n":3,"ignore_eos":true}`, 3, "length", func(t *testing.T, r chatResponse) {
			if r.Usage.CompletionTokens != 12 || r.Usage.PromptTokens != 16 || r.Usage.TotalTokens != 28 {
				t.Errorf("usage %+v, want 16 prompt (counted once) + 12 completion", r.Usage)
			}
			for i, c := range r.Choices {
				if c.Index != i {
					t.Errorf("choice %d has index %d", i, c.Index)
				}
			}
		}},
		{"stop string", `{` + msgs + `,"max_tokens":200,"ignore_eos":true,"stop":["e"]}`, 1, "stop", func(t *testing.T, r chatResponse) {
			c := r.Choices[0]
			if strings.Contains(c.Message.Content, "e") || c.StopReason != "e" {
				t.Errorf("content %q stop_reason %v: want the text cut before the first e", c.Message.Content, c.StopReason)
			}
			if r.Usage.CompletionTokens >= 200 {
				t.Errorf("generated %d tokens, want an early stop", r.Usage.CompletionTokens)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, ts.URL+"/v1/chat/completions", tt.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			r := decodeJSON[chatResponse](t, body)
			if len(r.Choices) != tt.wantN {
				t.Fatalf("%d choices, want %d", len(r.Choices), tt.wantN)
			}
			if r.Choices[0].FinishReason != tt.wantFinish {
				t.Errorf("finish_reason %q, want %q", r.Choices[0].FinishReason, tt.wantFinish)
			}
			if r.Usage.PromptTokens != 16 {
				t.Errorf("prompt_tokens %d, want 16", r.Usage.PromptTokens)
			}
			tt.check(t, r)
		})
	}
}

func TestCompletionsUsage(t *testing.T) {
	ts := start(t, Config{TimeScale: 0})
	status, body := post(t, ts.URL+"/v1/completions", `{"model":"qwen2.5-7b","prompt":"abcdefgh ab","max_tokens":6,"ignore_eos":true}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	r := decodeJSON[chatResponse](t, body)
	if r.Usage.PromptTokens != 3 || r.Usage.CompletionTokens != 6 || r.Choices[0].Text == "" {
		t.Errorf("got %s; want 3 prompt tokens (8 chars = 2, 2 chars = 1), 6 completion tokens and text", body)
	}
}

func TestVisionTokens(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 280, 56))); err != nil {
		t.Fatal(err)
	}
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
	body := `{"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"` + url + `"}}]}],"max_tokens":2}`

	vl := start(t, Config{TimeScale: 0, Plan: newPlan(t, "h100-sxm", "mimo-vl-7b", perfmodel.Options{MaxModelLen: 4096})})
	status, got := post(t, vl.URL+"/v1/chat/completions", body)
	if status != 200 {
		t.Fatalf("vision model: status %d: %s", status, got)
	}
	// 3 text + 4 framing + 3 assistant + 10×2 patches of 28 px.
	if r := decodeJSON[chatResponse](t, got); r.Usage.PromptTokens != 30 {
		t.Errorf("prompt_tokens %d, want 30", r.Usage.PromptTokens)
	}

	text := start(t, Config{TimeScale: 0})
	status, got = post(t, text.URL+"/v1/chat/completions", body)
	if status != 400 || !strings.Contains(string(got), "is not a multimodal model") {
		t.Errorf("text-only model: %d %s, want 400 not a multimodal model", status, got)
	}
}

func TestErrors(t *testing.T) {
	ts := start(t, Config{TimeScale: 0})
	old := start(t, Config{TimeScale: 0, VLLMVersion: "0.9.2"})
	long := strings.Repeat("word ", 4100)
	tests := []struct {
		name, url, body string
		status          int
		want            string
	}{
		{"unknown model", ts.URL + "/v1/chat/completions", `{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}`, 404,
			`{"error":{"message":"The model ` + "`gpt-4`" + ` does not exist.","type":"NotFoundError","param":"model","code":404}}`},
		{"too long with max_tokens", ts.URL + "/v1/chat/completions", `{"messages":[{"role":"user","content":"x y"}],"max_tokens":4096}`, 400,
			`{"error":{"message":"'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum context length is 4096 tokens and your request has 9 input tokens (4096 > 4096 - 9). None","type":"BadRequestError","param":"max_tokens","code":400}}`},
		{"too long prompt", ts.URL + "/v1/completions", `{"prompt":"` + long + `"}`, 400,
			`{"error":{"message":"This model's maximum context length is 4096 tokens. However, your request has 4100 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","param":"input_tokens","code":400}}`},
		{"too long, 0.9 wording", old.URL + "/v1/chat/completions", `{"messages":[{"role":"user","content":"x y"}],"max_tokens":4096}`, 400,
			`{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 4105 tokens (9 in the messages, 4096 in the completion). Please reduce the length of the messages or completion. None","type":"BadRequestError","param":null,"code":400}`},
		{"bad n", ts.URL + "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"n":0}`, 400,
			`{"error":{"message":"n must be at least 1, got 0.","type":"BadRequestError","param":"n","code":400}}`},
		{"old flat shape", old.URL + "/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404,
			`{"object":"error","message":"The model ` + "`nope`" + ` does not exist.","type":"NotFoundError","param":"model","code":404}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, tt.url, tt.body)
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if string(body) != tt.want { // byte for byte: field order and compact JSON as vLLM writes them
				t.Errorf("body\n%s\nwant\n%s", body, tt.want)
			}
		})
	}
	status, body := post(t, ts.URL+"/v1/chat/completions", `{"messages":`)
	if status != 400 || !strings.Contains(string(body), `"BadRequestError"`) {
		t.Errorf("bad JSON: %d %s", status, body)
	}
}

func TestAPIKey(t *testing.T) {
	ts := start(t, Config{TimeScale: 0, APIKey: "sk-sim"})
	body := `{"messages":[{"role":"user","content":"x"}],"max_tokens":1}`
	status, got := post(t, ts.URL+"/v1/chat/completions", body)
	if status != 401 || strings.TrimSpace(string(got)) != `{"error":"Unauthorized"}` {
		t.Errorf("no key: %d %s, want 401 {\"error\":\"Unauthorized\"}", status, got)
	}
	if status, _ := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", "Bearer wrong"); status != 401 {
		t.Errorf("wrong key: %d, want 401", status)
	}
	if status, got := post(t, ts.URL+"/v1/chat/completions", body, "Authorization", "Bearer sk-sim"); status != 200 {
		t.Errorf("right key: %d %s", status, got)
	}
	for _, path := range []string{"/health", "/metrics", "/version", "/ping"} {
		if status, _ := get(t, ts.URL+path); status != 200 {
			t.Errorf("GET %s without a key: %d, want 200 (vLLM only guards /v1)", path, status)
		}
	}
}

func TestInfoEndpoints(t *testing.T) {
	ts := start(t, Config{TimeScale: 0, ServedModelNames: []string{"qwen", "qwen-alias"}, ModelRoot: "Qwen/Qwen2.5-7B-Instruct"})
	if status, body := get(t, ts.URL+"/health"); status != 200 || body != "" {
		t.Errorf("/health: %d %q, want 200 and an empty body", status, body)
	}
	if status, body := get(t, ts.URL+"/version"); status != 200 || strings.TrimSpace(body) != `{"version":"0.11.0"}` {
		t.Errorf("/version: %d %s", status, body)
	}
	_, body := get(t, ts.URL+"/v1/models")
	models := decodeJSON[struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string `json:"id"`
			Object      string `json:"object"`
			OwnedBy     string `json:"owned_by"`
			Root        string `json:"root"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}](t, []byte(body))
	if models.Object != "list" || len(models.Data) != 2 || models.Data[0].ID != "qwen" || models.Data[1].ID != "qwen-alias" ||
		models.Data[0].OwnedBy != "vllm" || models.Data[0].MaxModelLen != 4096 || models.Data[0].Root != "Qwen/Qwen2.5-7B-Instruct" {
		t.Errorf("/v1/models = %s", body)
	}
	status, tok := post(t, ts.URL+"/tokenize", `{"model":"qwen-alias","prompt":"the engine supercalifragilistic"}`)
	r := decodeJSON[struct {
		Count       int   `json:"count"`
		MaxModelLen int   `json:"max_model_len"`
		Tokens      []int `json:"tokens"`
	}](t, tok)
	if status != 200 || r.Count != 2+5 || len(r.Tokens) != r.Count || r.MaxModelLen != 4096 {
		t.Errorf("/tokenize: %d %s, want 7 tokens (1+1+ceil(20/4))", status, tok)
	}
	_, detok := post(t, ts.URL+"/detokenize", fmt.Sprintf(`{"model":"qwen","tokens":[%d,%d]}`, r.Tokens[0], r.Tokens[1]))
	if strings.TrimSpace(string(detok)) != `{"prompt":"the engine"}` {
		t.Errorf("/detokenize: %s", detok)
	}
}

// scrape returns one sample's value from /metrics ("" when absent).
func scrape(t testing.TB, url, series string) string {
	t.Helper()
	_, body := get(t, url+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestMetrics(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, MaxNumSeqs: 2})
	ts := start(t, Config{TimeScale: 1, Plan: plan, ServedModelNames: []string{"q"}})
	l := `{engine="0",model_name="q"}`
	_, body := get(t, ts.URL+"/metrics")
	for _, name := range []string{"vllm:num_requests_running" + l, "vllm:num_requests_waiting" + l, "vllm:kv_cache_usage_perc" + l,
		"vllm:prompt_tokens_total" + l, "vllm:generation_tokens_total" + l,
		`vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="q"}`,
		"vllm:inter_token_latency_seconds_count" + l, "vllm:e2e_request_latency_seconds_sum" + l,
		"# TYPE vllm:time_to_first_token_seconds histogram", "# TYPE vllm:prompt_tokens_total counter"} {
		if !strings.Contains(body, name+" ") && !strings.Contains(body, name+"\n") {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// A burst of 6 slow requests against max_num_seqs 2: 2 run, 4 wait.
	var wg sync.WaitGroup
	firsts := make(chan struct{}, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"messages":[{"role":"user","content":"x"}],"max_tokens":60,"ignore_eos":true,"stream":true}`))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			firsts <- struct{}{}
			_, _ = io.Copy(io.Discard, resp.Body)
		}()
	}
	<-firsts
	deadline := time.Now().Add(2 * time.Second)
	for scrape(t, ts.URL, "vllm:num_requests_waiting"+l) != "4.0" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r, w := scrape(t, ts.URL, "vllm:num_requests_running"+l), scrape(t, ts.URL, "vllm:num_requests_waiting"+l); r != "2.0" || w != "4.0" {
		t.Errorf("during the burst running=%s waiting=%s, want 2 and 4", r, w)
	}
	if kv := scrape(t, ts.URL, "vllm:kv_cache_usage_perc"+l); kv == "0.0" {
		t.Errorf("kv_cache_usage_perc is 0 while requests run")
	}
	wg.Wait()
	want := map[string]string{
		"vllm:num_requests_running" + l:                                                  "0.0",
		"vllm:generation_tokens_total" + l:                                               "360.0",
		"vllm:prompt_tokens_total" + l:                                                   "48.0",
		"vllm:time_to_first_token_seconds_count" + l:                                     "6.0",
		"vllm:e2e_request_latency_seconds_count" + l:                                     "6.0",
		"vllm:inter_token_latency_seconds_count" + l:                                     "354.0",
		`vllm:request_success_total{engine="0",finished_reason="length",model_name="q"}`: "6.0",
	}
	deadline = time.Now().Add(time.Second)
	for series, v := range want {
		for scrape(t, ts.URL, series) != v && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := scrape(t, ts.URL, series); got != v {
			t.Errorf("after the burst %s = %s, want %s", series, got, v)
		}
	}
}

func TestMetricNamesByVersion(t *testing.T) {
	tests := []struct {
		version   string
		want, not []string
	}{
		{"0.8.5", []string{"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}, []string{"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"}},
		{"0.9.2", []string{"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"}, nil},
		{"0.10.2", []string{"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:time_per_output_token_seconds"}, []string{"vllm:inter_token_latency_seconds"}},
		{"0.11.0", []string{"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"}, []string{"vllm:gpu_cache_usage_perc"}},
		{"0.12.0", []string{"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"}, []string{"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			var b strings.Builder
			if err := newMetrics("m", tt.version).write(&b); err != nil {
				t.Fatal(err)
			}
			for _, n := range tt.want {
				if !strings.Contains(b.String(), "# TYPE "+n+" ") {
					t.Errorf("lacks %s", n)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("has %s", n)
				}
			}
		})
	}
}

func TestClientAbortFreesSlot(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 32768, MaxNumSeqs: 1})
	ts := start(t, Config{TimeScale: 1, Plan: plan})
	l := `{engine="0",model_name="qwen2.5-7b"}`

	// A holds the only slot for ~2.5 minutes of simulated (= wall) time.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions",
		strings.NewReader(`{"messages":[{"role":"user","content":"x"}],"max_tokens":30000,"ignore_eos":true,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()

	start := time.Now()
	status, body := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"y"}],"max_tokens":3,"ignore_eos":true}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second request took %v: the aborted request still holds the slot", d)
	}
	if got := scrape(t, ts.URL, `vllm:request_success_total{engine="0",finished_reason="abort",model_name="qwen2.5-7b"}`); got != "1.0" {
		t.Errorf("abort count %s, want 1", got)
	}
	if got := scrape(t, ts.URL, "vllm:num_requests_running"+l); got != "0.0" {
		t.Errorf("running %s after both requests ended, want 0", got)
	}
}

// TestTTFTRealTime checks that at time scale 1 the first token arrives when the plan says.
func TestTTFTRealTime(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 8192})
	ts := start(t, Config{TimeScale: 1, Plan: plan})
	prompt := strings.TrimSpace(strings.Repeat("tok ", 3000))
	body := `{"messages":[{"role":"user","content":"` + prompt + `"}],"max_tokens":2,"ignore_eos":true,"stream":true}`

	sched, err := perfmodel.NewScheduler(plan, perfmodel.VLLM)
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Add(perfmodel.Request{ID: "r", PromptTokens: 3000 + tokensPerMessage + tokensPerAssistant, MaxOutputTokens: 2}); err != nil {
		t.Fatal(err)
	}
	var want time.Duration
	for want == 0 {
		_, evs := sched.Step()
		for _, ev := range evs {
			if ev.Kind == perfmodel.FirstToken {
				want = ev.At
			}
		}
	}

	begin := time.Now()
	resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var got time.Duration
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"role"`) { // the first content chunk
			got = time.Since(begin)
			break
		}
	}
	t.Logf("TTFT %v, plan %v", got, want)
	if got < want*9/10 || got > want+60*time.Millisecond {
		t.Errorf("TTFT %v, want the plan's %v (-10%%, +60 ms)", got, want)
	}
}

// TestManyStreams runs 2,000 concurrent streaming requests at time scale 0.
func TestManyStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 streams")
	}
	const streams, tokens = 2000, 32
	ts := start(t, Config{TimeScale: 0})
	tr := &http.Transport{MaxIdleConnsPerHost: streams, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	body := fmt.Sprintf(`{"messages":[{"role":"user","content":"hello"}],"max_tokens":%d,"ignore_eos":true,"stream":true}`, tokens)

	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	begin := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures, chunks := 0, 0
	startGate := make(chan struct{})
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			resp, err := client.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			n := strings.Count(string(b), "data: ")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.StatusCode != 200 || !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) || n != tokens+2 {
				failures++
				return
			}
			chunks += n
		}()
	}
	close(startGate)
	wg.Wait()
	elapsed := time.Since(begin)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	if failures > 0 {
		t.Fatalf("%d of %d streams failed", failures, streams)
	}
	total := streams * tokens
	t.Logf("%d streams × %d tokens in %v: %.0f requests/s, %.0f tokens/s; process CPU (server and client) %v = %v per token",
		streams, tokens, elapsed.Round(time.Millisecond), float64(streams)/elapsed.Seconds(), float64(total)/elapsed.Seconds(),
		cpu.Round(time.Millisecond), cpu/time.Duration(total))
}

var regexpID = regexp.MustCompile(`"id":"[a-z]+-[0-9a-f]{32}"`)

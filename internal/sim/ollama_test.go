package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/npmtest"
	"citadel.dev/citadel/internal/perfmodel"
)

// startOllama runs a simulated Ollama for the test; cfg.Plan defaults to qwen2.5-7b on
// h100-sxm with a 4096-token context, the model to "qwen2.5:7b" and the load time to 2 s.
func startOllama(t testing.TB, cfg OllamaConfig) *httptest.Server {
	t.Helper()
	if cfg.Plan.KVBlocks == 0 {
		cfg.Plan = newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	}
	if cfg.Model == "" {
		cfg.Model = "qwen2.5:7b"
	}
	if cfg.LoadTime == 0 {
		cfg.LoadTime = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Unix(1700000000, 0) }
	}
	s, err := NewOllama(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s)
}

// ndjsonLines splits an NDJSON body into its lines, checking each is one JSON object.
func ndjsonLines(t testing.TB, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func postResp(t testing.TB, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestOllamaStreamGolden(t *testing.T) {
	tests := []struct{ name, path, body string }{
		{"ollama_chat_stream.golden", "/api/chat",
			`{"model":"qwen2.5:7b","messages":[{"role":"user","content":"Tell me about the sea."}],"options":{"num_predict":6,"seed":1}}`},
		{"ollama_generate_stream.golden", "/api/generate",
			`{"model":"qwen2.5:7b","prompt":"Why is the sky blue?","options":{"num_predict":5}}`},
		{"ollama_pull.golden", "/api/pull", `{"model":"qwen2.5:7b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startOllama(t, OllamaConfig{Seed: 7})
			resp := postResp(t, ts.URL+tt.path, tt.body)
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
				t.Fatalf("status %d, Content-Type %q; want 200 application/x-ndjson", resp.StatusCode, ct)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, buf.Bytes())
		})
	}
}

// TestOllamaStreamShape checks the rules the golden files pin.
func TestOllamaStreamShape(t *testing.T) {
	ts := startOllama(t, OllamaConfig{})
	_, body := post(t, ts.URL+"/api/chat", `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi there"}],"options":{"num_predict":4}}`)
	lines := ndjsonLines(t, body)
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 4 tokens and a final object:\n%s", len(lines), body)
	}
	var text string
	for _, l := range lines[:4] {
		if l["done"] != false || l["model"] != "qwen2.5:7b" || l["created_at"] != "2023-11-14T22:13:20Z" {
			t.Errorf("partial %v: want done false, the model as asked and created_at RFC 3339", l)
		}
		text += l["message"].(map[string]any)["content"].(string)
	}
	final := lines[4]
	for _, k := range []string{"total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"} {
		if _, ok := final[k].(float64); !ok {
			t.Errorf("final object lacks numeric %s: %v", k, final)
		}
	}
	if final["done"] != true || final["done_reason"] != "length" || final["eval_count"] != 4.0 {
		t.Errorf("final %v: want done, done_reason length, eval_count 4", final)
	}
	// stream:false returns the same text in one object.
	_, body = post(t, ts.URL+"/api/chat", `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi there"}],"options":{"num_predict":4},"stream":false}`)
	whole := decodeJSON[map[string]any](t, body)
	if got := whole["message"].(map[string]any)["content"]; got != text {
		t.Errorf("stream:false content %q, streamed %q", got, text)
	}
}

type ollamaFinal struct {
	DoneReason         string `json:"done_reason"`
	TotalDuration      int64  `json:"total_duration"`
	LoadDuration       int64  `json:"load_duration"`
	PromptEvalCount    int    `json:"prompt_eval_count"`
	PromptEvalDuration int64  `json:"prompt_eval_duration"`
	EvalCount          int    `json:"eval_count"`
	EvalDuration       int64  `json:"eval_duration"`
}

func TestOllamaDurationsNanoseconds(t *testing.T) {
	ts := startOllama(t, OllamaConfig{})
	_, body := post(t, ts.URL+"/api/generate", `{"model":"qwen2.5:7b","prompt":"`+strings.Repeat("word ", 500)+`","stream":false,"options":{"num_predict":50}}`)
	if bytes.Contains(body, []byte(`_duration":"`)) || bytes.Contains(body, []byte(`.`+`e`)) {
		t.Fatalf("durations are not integers: %s", body)
	}
	f := decodeJSON[ollamaFinal](t, body)
	if f.LoadDuration != int64(2*time.Second) {
		t.Errorf("load_duration %d, want the 2 s load in ns (%d)", f.LoadDuration, int64(2*time.Second))
	}
	if f.EvalCount != 50 || f.PromptEvalCount < 500 {
		t.Errorf("eval_count %d, prompt_eval_count %d; want 50 and ≥ 500", f.EvalCount, f.PromptEvalCount)
	}
	// A 7B bf16 model on an H100 decodes a token in a few ms: per-token ns in [1 ms, 50 ms].
	if per := f.EvalDuration / int64(f.EvalCount-1); per < int64(time.Millisecond) || per > int64(50*time.Millisecond) {
		t.Errorf("eval_duration %d ns / %d tokens = %d ns per token; want 1–50 ms in ns", f.EvalDuration, f.EvalCount, per)
	}
	if f.PromptEvalDuration <= 0 || f.TotalDuration < f.LoadDuration+f.PromptEvalDuration+f.EvalDuration {
		t.Errorf("durations %+v: want prompt_eval > 0 and total ≥ load + prompt_eval + eval", f)
	}
}

func TestOllamaLoadUnload(t *testing.T) {
	ts := startOllama(t, OllamaConfig{})
	gen := func(body string) ollamaFinal {
		t.Helper()
		code, b := post(t, ts.URL+"/api/generate", body)
		if code != 200 {
			t.Fatalf("%s: %d %s", body, code, b)
		}
		return decodeJSON[ollamaFinal](t, b)
	}
	psCount := func() int {
		t.Helper()
		_, b := get(t, ts.URL+"/api/ps")
		return len(decodeJSON[struct{ Models []ollamaModel }](t, []byte(b)).Models)
	}
	if n := psCount(); n != 0 {
		t.Fatalf("/api/ps lists %d models before any request", n)
	}
	if f := gen(`{"model":"qwen2.5:7b","stream":false}`); f.DoneReason != "load" || f.LoadDuration != int64(2*time.Second) {
		t.Errorf("empty prompt: %+v, want done_reason load with a 2 s load", f)
	}
	_, b := get(t, ts.URL+"/api/ps")
	ps := decodeJSON[struct{ Models []ollamaModel }](t, []byte(b))
	if len(ps.Models) != 1 || ps.Models[0].ExpiresAt == nil || !ps.Models[0].ExpiresAt.Equal(time.Unix(1700000000, 0).Add(5*time.Minute)) ||
		ps.Models[0].SizeVRAM == nil || *ps.Models[0].SizeVRAM <= ps.Models[0].Size/2 || ps.Models[0].ContextLength != 4096 {
		t.Errorf("/api/ps after load: %s; want the model expiring in 5m, its VRAM size and context 4096", b)
	}
	if f := gen(`{"model":"qwen2.5:7b","prompt":"hi","stream":false,"keep_alive":0,"options":{"num_predict":3}}`); f.LoadDuration != 0 || f.DoneReason != "length" {
		t.Errorf("warm request: %+v, want no load time", f)
	}
	if n := psCount(); n != 0 {
		t.Errorf("keep_alive 0 left %d models loaded", n)
	}
	if f := gen(`{"model":"qwen2.5:7b","prompt":"hi","stream":false,"keep_alive":"-1","options":{"num_predict":3}}`); f.LoadDuration == 0 {
		t.Errorf("request after unload: %+v, want a load time", f)
	}
	if f := gen(`{"model":"qwen2.5:7b","keep_alive":0,"stream":false}`); f.DoneReason != "unload" {
		t.Errorf("empty prompt with keep_alive 0: %+v, want done_reason unload", f)
	}
	if n := psCount(); n != 0 {
		t.Errorf("unload left %d models loaded", n)
	}
}

func TestOllamaInfoAndErrors(t *testing.T) {
	ts := startOllama(t, OllamaConfig{Plan: newPlan(t, "h100-sxm", "mimo-vl-7b", perfmodel.Options{MaxModelLen: 4096}), Model: "mimo-vl"})
	if code, body := get(t, ts.URL+"/"); code != 200 || body != "Ollama is running" {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, body := get(t, ts.URL+"/api/version"); code != 200 || body != `{"version":"`+DefaultOllamaVersion+`"}` {
		t.Errorf("/api/version: %d %s", code, body)
	}
	_, tags := get(t, ts.URL+"/api/tags")
	if !strings.Contains(tags, `"name":"mimo-vl:latest"`) || !strings.Contains(tags, `"digest":"`) {
		t.Errorf("/api/tags: %s", tags)
	}
	_, body := post(t, ts.URL+"/api/show", `{"model":"mimo-vl"}`)
	show := decodeJSON[struct {
		ModelInfo    map[string]any `json:"model_info"`
		Capabilities []string       `json:"capabilities"`
	}](t, body)
	arch, _ := show.ModelInfo["general.architecture"].(string)
	if arch == "" || show.ModelInfo[arch+".context_length"] != 32768.0 || !strings.Contains(strings.Join(show.Capabilities, ","), "vision") {
		t.Errorf("/api/show: %s; want general.architecture, <arch>.context_length 32768 and the vision capability", body)
	}
	tests := []struct {
		path, body string
		code       int
		want       string
	}{
		{"/api/chat", `{"model":"nope","messages":[]}`, 404, `{"error":"model 'nope' not found"}`},
		{"/api/show", `{"model":"nope"}`, 404, `{"error":"model 'nope' not found"}`},
		{"/api/generate", `{"model":"mimo-vl","prompt":`, 400, `{"error":"invalid request body: unexpected EOF"}`},
		{"/api/pull", `{"model":"nope","stream":false}`, 500, `{"error":"pull model manifest: file does not exist"}`},
	}
	for _, tt := range tests {
		code, body := post(t, ts.URL+tt.path, tt.body)
		if code != tt.code || strings.TrimSpace(string(body)) != tt.want {
			t.Errorf("POST %s %s: %d %s; want %d %s", tt.path, tt.body, code, body, tt.code, tt.want)
		}
	}
	_, body = post(t, ts.URL+"/api/embed", `{"model":"mimo-vl","input":["a","b"],"dimensions":8}`)
	emb := decodeJSON[struct{ Embeddings [][]float32 }](t, body)
	_, again := post(t, ts.URL+"/api/embed", `{"model":"mimo-vl","input":"a","dimensions":8}`)
	if len(emb.Embeddings) != 2 || len(emb.Embeddings[0]) != 8 || !cmp.Equal(emb.Embeddings[0], decodeJSON[struct{ Embeddings [][]float32 }](t, again).Embeddings[0]) {
		t.Errorf("/api/embed: %s then %s; want two deterministic 8-d vectors", body, again)
	}
}

// TestOllamaThroughputFlat: with one slot, four concurrent requests queue FIFO, so aggregate
// throughput matches a single stream; with four slots it rises.
func TestOllamaThroughputFlat(t *testing.T) {
	const scale, tokens = 0.5, 32
	rate := func(parallel, conc int) float64 {
		ts := startOllama(t, OllamaConfig{Plan: newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, Parallel: parallel}),
			TimeScale: scale, LoadTime: -1})
		start := time.Now()
		var wg sync.WaitGroup
		for i := range conc {
			wg.Go(func() {
				code, b := post(t, ts.URL+"/api/generate", fmt.Sprintf(`{"model":"qwen2.5:7b","prompt":"request %d","stream":false,"options":{"num_predict":%d}}`, i, tokens))
				if f := decodeJSON[ollamaFinal](t, b); code != 200 || f.EvalCount != tokens {
					t.Errorf("request %d: %d %s", i, code, b)
				}
			})
		}
		wg.Wait()
		return float64(conc*tokens) / time.Since(start).Seconds()
	}
	one, four := rate(1, 1), rate(1, 4)
	if r := four / one; r < 0.75 || r > 1.3 {
		t.Errorf("one slot: aggregate %.0f tok/s at concurrency 4 vs %.0f at 1 (×%.2f); want flat (0.75–1.3)", four, one, r)
	}
	if slots := rate(4, 4); slots/one < 2 {
		t.Errorf("four slots: aggregate %.0f tok/s at concurrency 4 vs %.0f at 1; want at least ×2", slots, one)
	}
}

type nodeUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func TestOpenAINodeClient(t *testing.T) {
	dir := npmtest.Dir(t, "openai", "ollama")
	ts := start(t, Config{ServedModelNames: []string{"qwen2.5-7b"}})
	got := npmtest.Run[struct {
		Chat struct {
			Content      string    `json:"content"`
			FinishReason string    `json:"finish_reason"`
			Usage        nodeUsage `json:"usage"`
		} `json:"chat"`
		Stream struct {
			Content string     `json:"content"`
			Usage   *nodeUsage `json:"usage"`
			Chunks  int        `json:"chunks"`
		} `json:"stream"`
		NotFound map[string]any `json:"not_found"`
	}](t, dir, "openai-client.mjs", ts.URL+"/v1", "qwen2.5-7b")
	if got.Chat.Content == "" || got.Chat.Usage.CompletionTokens != 8 || got.Chat.FinishReason != "length" ||
		got.Chat.Usage.TotalTokens != got.Chat.Usage.PromptTokens+8 {
		t.Errorf("chat: %+v; want 8 tokens of text, finish_reason length", got.Chat)
	}
	if got.Stream.Content != got.Chat.Content || got.Stream.Usage == nil || *got.Stream.Usage != got.Chat.Usage {
		t.Errorf("stream: %+v; want the same text and usage as the whole response %+v", got.Stream, got.Chat)
	}
	if diff := cmp.Diff(map[string]any{"not_found_error": true, "status": 404.0}, got.NotFound); diff != "" {
		t.Errorf("unknown model (-want +got):\n%s", diff)
	}
}

func TestOllamaNodeClient(t *testing.T) {
	dir := npmtest.Dir(t, "openai", "ollama")
	ts := startOllama(t, OllamaConfig{})
	got := npmtest.Run[struct {
		Chat struct {
			Content         string `json:"content"`
			Done            bool   `json:"done"`
			DoneReason      string `json:"done_reason"`
			EvalCount       int    `json:"eval_count"`
			PromptEvalCount int    `json:"prompt_eval_count"`
			TotalDuration   int64  `json:"total_duration"`
		} `json:"chat"`
		Stream struct {
			Content    string `json:"content"`
			Parts      int    `json:"parts"`
			DoneReason string `json:"done_reason"`
			EvalCount  int    `json:"eval_count"`
		} `json:"stream"`
		List []string `json:"list"`
		Show struct {
			Architecture string   `json:"architecture"`
			Capabilities []string `json:"capabilities"`
			Family       string   `json:"family"`
		} `json:"show"`
		Embed    struct{ Count, Dims int } `json:"embed"`
		NotFound map[string]any            `json:"not_found"`
	}](t, dir, "ollama-client.mjs", ts.URL, "qwen2.5:7b")
	if got.Chat.Content == "" || !got.Chat.Done || got.Chat.DoneReason != "length" || got.Chat.EvalCount != 8 ||
		got.Chat.PromptEvalCount == 0 || got.Chat.TotalDuration < int64(2*time.Second) {
		t.Errorf("chat: %+v; want 8 tokens, done_reason length, total_duration including the 2 s load", got.Chat)
	}
	if got.Stream.Content != got.Chat.Content || got.Stream.Parts != 9 || got.Stream.DoneReason != "length" || got.Stream.EvalCount != 8 {
		t.Errorf("stream: %+v; want the same text in 8 parts and a final one", got.Stream)
	}
	if diff := cmp.Diff([]string{"qwen2.5:7b"}, got.List); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if got.Show.Architecture != "qwen2" || got.Show.Family != "qwen2" || len(got.Show.Capabilities) == 0 {
		t.Errorf("show: %+v", got.Show)
	}
	if got.Embed.Count != 2 || got.Embed.Dims != 3584 {
		t.Errorf("embed: %+v; want 2 vectors of 3584", got.Embed)
	}
	if got.NotFound["status"] != 404.0 || got.NotFound["message"] != `model 'no-such-model' not found` {
		t.Errorf("unknown model: %v", got.NotFound)
	}
}

const ollamaChatBody = `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":3}}`

// ollamaErrorBody checks that b is Ollama's error JSON, {"error":"…"} and nothing else, and
// returns the message.
func ollamaErrorBody(t testing.TB, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
		t.Fatalf("error body %s: want {\"error\":\"…\"}", b)
	}
	msg, ok := m["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("error body %s: want {\"error\":\"…\"}", b)
	}
	return msg
}

func TestOllamaFailRate(t *testing.T) {
	count := func(seed int64) (fails []int) {
		ts := startOllama(t, OllamaConfig{Faults: Faults{FailRate: 0.3, Seed: seed}})
		for i := range 100 {
			code, b := post(t, ts.URL+"/api/chat", ollamaChatBody)
			switch code {
			case 500:
				if msg := ollamaErrorBody(t, b); !strings.Contains(msg, "fail-rate") {
					t.Fatalf("failure message %q", msg)
				}
				fails = append(fails, i)
			case 200:
			default:
				t.Fatalf("status %d: %s", code, b)
			}
		}
		if code, body := get(t, ts.URL+"/"); code != 200 || body != "Ollama is running" {
			t.Errorf("GET / %d %q under fail rate", code, body)
		}
		if code, _ := get(t, ts.URL+"/api/tags"); code != 200 {
			t.Errorf("/api/tags %d under fail rate", code)
		}
		return fails
	}
	a, b := count(5), count(5)
	if len(a) < 15 || len(a) > 45 {
		t.Errorf("%d of 100 failed, want about 30", len(a))
	}
	if !cmp.Equal(a, b) {
		t.Fatalf("same seed, different failures: %v vs %v", a, b)
	}
	if c := count(6); cmp.Equal(a, c) {
		t.Errorf("seeds 5 and 6 failed the same requests %v", a)
	}
}

func TestOllamaHangAfter(t *testing.T) {
	ts := startOllama(t, OllamaConfig{Faults: Faults{HangAfter: 2}})
	// Two inference requests on different paths; /api/tags and /api/show do not count.
	if code, b := post(t, ts.URL+"/api/embed", `{"model":"qwen2.5:7b","input":"x"}`); code != 200 {
		t.Fatalf("/api/embed: %d %s", code, b)
	}
	if code, b := post(t, ts.URL+"/v1/completions", `{"model":"qwen2.5:7b","prompt":"hi","max_tokens":3}`); code != 200 {
		t.Fatalf("/v1/completions: %d %s", code, b)
	}
	if code, _ := get(t, ts.URL+"/api/tags"); code != 200 {
		t.Fatalf("/api/tags: %d", code)
	}
	if code, b := post(t, ts.URL+"/api/show", `{"model":"qwen2.5:7b"}`); code != 200 {
		t.Fatalf("/api/show: %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/api/chat", strings.NewReader(`{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("request 3 answered %d, want it to hang", resp.StatusCode)
	}
	if ctx.Err() == nil {
		t.Fatalf("request 3 failed before the client gave up: %v", err)
	}
	if code, _ := get(t, ts.URL+"/"); code != 200 {
		t.Errorf("GET / %d while hanging, want 200 (the process is alive)", code)
	}
}

func TestOllamaCrashAfter(t *testing.T) {
	var mu sync.Mutex
	var codes []int
	exit := func(code int) { mu.Lock(); codes = append(codes, code); mu.Unlock() }
	ts := startOllama(t, OllamaConfig{Faults: Faults{CrashAfter: 1, Exit: exit}})
	if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	if code, _ := get(t, ts.URL+"/api/ps"); code != 200 { // not counted
		t.Fatalf("/api/ps: %d", code)
	}
	if _, err := http.Post(ts.URL+"/api/chat", "application/json", strings.NewReader(ollamaChatBody)); err == nil {
		t.Error("request 2 got a response, want the connection dropped")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(codes) != 1 || codes[0] != 1 {
		t.Errorf("exit calls %v, want one with status 1", codes)
	}
}

func TestOllamaStartupDelay(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := startOllama(t, OllamaConfig{Faults: Faults{StartupDelay: time.Minute, Now: clock}})
	for _, path := range []string{"/", "/api/version"} {
		if code, body := get(t, ts.URL+path); code != 503 || body != "" {
			t.Errorf("GET %s while loading: %d %q, want 503 and an empty body", path, code, body)
		}
	}
	resp, err := http.Head(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("HEAD / while loading: %d, want 503", resp.StatusCode)
	}
	if code, b := post(t, ts.URL+"/api/chat", ollamaChatBody); code != 503 || !strings.Contains(ollamaErrorBody(t, b), "loading") {
		t.Errorf("chat while loading: %d %s, want 503", code, b)
	}
	if code, b := get(t, ts.URL+"/api/tags"); code != 503 || !strings.Contains(ollamaErrorBody(t, []byte(b)), "loading") {
		t.Errorf("/api/tags while loading: %d %s, want 503", code, b)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if code, body := get(t, ts.URL+"/"); code != 200 || body != "Ollama is running" {
		t.Errorf("GET / after the delay: %d %q", code, body)
	}
	if code, b := post(t, ts.URL+"/api/chat", ollamaChatBody); code != 200 {
		t.Errorf("chat after the delay: %d %s", code, b)
	}
}

func TestOllamaSlowdown(t *testing.T) {
	final := func(slow float64) ollamaFinal {
		ts := startOllama(t, OllamaConfig{Slowdown: slow})
		code, b := post(t, ts.URL+"/api/generate", `{"model":"qwen2.5:7b","prompt":"`+strings.Repeat("word ", 300)+`","stream":false,"options":{"num_predict":40}}`)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		return decodeJSON[ollamaFinal](t, b)
	}
	one, three := final(1), final(3)
	if one.EvalCount != 40 || three.EvalCount != 40 {
		t.Fatalf("eval_count %d and %d, want 40", one.EvalCount, three.EvalCount)
	}
	for _, d := range []struct {
		name      string
		one, slow int64
	}{
		{"eval_duration", one.EvalDuration, three.EvalDuration},
		{"prompt_eval_duration", one.PromptEvalDuration, three.PromptEvalDuration},
	} {
		if r := float64(d.slow) / float64(d.one); d.one <= 0 || math.Abs(r-3) > 0.01 {
			t.Errorf("%s %d ns at slowdown 1, %d ns at slowdown 3 (×%.3f): want 3×", d.name, d.one, d.slow, r)
		}
	}
	if one.LoadDuration != three.LoadDuration {
		t.Errorf("load_duration %d at slowdown 1, %d at 3: want the load unchanged", one.LoadDuration, three.LoadDuration)
	}
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	if _, err := NewOllama(OllamaConfig{Plan: plan, Slowdown: -1}); err == nil {
		t.Error("Slowdown -1 accepted")
	}
	if _, err := NewOllama(OllamaConfig{Plan: plan, Faults: Faults{FailRate: 2}}); err == nil {
		t.Error("FailRate 2 accepted")
	}
}

func TestOllamaOOMAtLoad(t *testing.T) {
	ts := startOllama(t, OllamaConfig{OOMAtLoad: true})
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	want := fmt.Sprintf("model requires more system memory (%.1f GiB) than is available (79.6 GiB)", float64(plan.WeightBytes)/(1<<30))
	for _, tt := range []struct{ path, body string }{
		{"/api/chat", ollamaChatBody},
		{"/api/chat", `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi"}]}`}, // streamed: fails before the first line
		{"/api/generate", `{"model":"qwen2.5:7b"}`},                                         // load only
		{"/api/embed", `{"model":"qwen2.5:7b","input":"x"}`},
	} {
		if code, b := post(t, ts.URL+tt.path, tt.body); code != 500 || ollamaErrorBody(t, b) != want {
			t.Errorf("POST %s %s: %d %s; want 500 %q", tt.path, tt.body, code, b, want)
		}
	}
	if code, b := post(t, ts.URL+"/v1/chat/completions", chatBody); code != 500 || !strings.Contains(string(b), want) {
		t.Errorf("/v1/chat/completions: %d %s; want 500 %q", code, b, want)
	}
	// The server itself runs: what does not need the model answers, and nothing is loaded.
	if code, body := get(t, ts.URL+"/"); code != 200 || body != "Ollama is running" {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, b := post(t, ts.URL+"/api/show", `{"model":"qwen2.5:7b"}`); code != 200 {
		t.Errorf("/api/show: %d %s", code, b)
	}
	_, b := get(t, ts.URL+"/api/ps")
	if ps := decodeJSON[struct{ Models []ollamaModel }](t, []byte(b)); len(ps.Models) != 0 {
		t.Errorf("/api/ps after failed loads: %s", b)
	}
}

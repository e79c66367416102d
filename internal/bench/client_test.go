package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/simtest"
)

// ---- helpers (prefixed cl to stay clear of the package's other tests) ----

var clPlan = simtest.Plan

// clServe runs s on a loopback port until the test ends and returns its base URL.
func clServe(t testing.TB, s simtest.Server) string {
	url, _ := simtest.Serve(t, s)
	return url
}

// clSimVLLM is a simulated vLLM (Qwen2.5-7B on an H100) at time scale 0 serving "qwen".
func clSimVLLM(t testing.TB, faults sim.Faults) string {
	t.Helper()
	s, err := sim.NewOpenAI(sim.Config{Plan: clPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096}),
		ServedModelNames: []string{"qwen"}, TimeScale: 0, Faults: faults, NoPrefixCache: true})
	if err != nil {
		t.Fatal(err)
	}
	return clServe(t, s)
}

func clSimOllama(t testing.TB) string {
	t.Helper()
	s, err := sim.NewOllama(sim.OllamaConfig{Plan: clPlan(t, "rtx-4090", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, Quant: perfmodel.QuantQ4KM}),
		Model: "qwen2.5:7b", TimeScale: 0})
	if err != nil {
		t.Fatal(err)
	}
	return clServe(t, s)
}

// clStep is one write of a handcrafted stream, at a fixed offset from the request's arrival.
type clStep struct {
	at   time.Duration
	data string // written as is
}

// clStreamServer answers every POST with steps, each flushed at its offset (absolute, so
// that jitter does not accumulate), and records the last request body.
func clStreamServer(t *testing.T, contentType string, steps []clStep) (*httptest.Server, func() map[string]any) {
	t.Helper()
	var mu sync.Mutex
	var last []byte
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = b
		mu.Unlock()
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, s := range steps {
			if d := time.Until(t0.Add(s.at)); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
			if _, err := io.WriteString(w, s.data); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(ts.Close)
	return ts, func() map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var m map[string]any
		if err := json.Unmarshal(last, &m); err != nil {
			t.Fatalf("request body %q: %v", last, err)
		}
		return m
	}
}

func clChatChunk(content string) string {
	b, _ := json.Marshal(content)
	return `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":` +
		string(b) + `},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n"
}

// clWithin fails unless got is within [want-lo, want+hi].
func clWithin(t *testing.T, name string, got, want, lo, hi time.Duration) {
	t.Helper()
	if got < want-lo || got > want+hi {
		t.Errorf("%s = %v, want %v (−%v/+%v)", name, got, want, lo, hi)
	}
}

// clSlack is the timing tolerance: loopback, scheduling and -race on 2 busy cores (CI runs
// every package at once); still well under the 20 ms gaps the tests tell apart.
const clSlack = 12 * time.Millisecond

// ---- OpenAI chat stream: timing and usage ----

// TestSSETiming: a stream with known delays — the role chunk at 60 ms, four tokens 20 ms
// apart, the usage chunk 30 ms after the last token — gives TTFT 60 ms, four ITL gaps of
// 20 ms and E2EL 140 ms (the usage chunk does not extend it), with the token counts from usage.
func TestSSETiming(t *testing.T) {
	const ms = time.Millisecond
	role := `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n"
	steps := []clStep{
		{0, ": ping\n\n"},
		{60 * ms, role},
		{80 * ms, clChatChunk("Hello")},
		{100 * ms, clChatChunk(",")},
		{120 * ms, clChatChunk(" wörld\n")},
		{140 * ms, `data: {"id":"x","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"length"}],"usage":null}` + "\r\n\r\n"},
		{170 * ms, `data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"total_tokens":18,"completion_tokens":7}}` + "\n\n"},
		{170 * ms, "data: [DONE]\n\n"},
	}
	ts, body := clStreamServer(t, "text/event-stream", steps)
	c := NewClient(Target{BaseURL: ts.URL, Model: "m"}, 1)
	defer c.Close()
	// Warm the connection so that the measured request does not include the TCP handshake.
	c.Do(t.Context(), Request{Prompt: "warm", OutputLen: 1}, time.Now())

	start := time.Now()
	out := c.Do(t.Context(), Request{Prompt: "Say \"hi\"\n", PromptLen: 3, OutputLen: 5}, start)
	if !out.Success {
		t.Fatalf("failed: %s", out.Error)
	}
	clWithin(t, "start", out.Start, 0, 0, 2*ms)
	clWithin(t, "TTFT", out.TTFT, 60*ms, 0, clSlack)
	if len(out.ITL) != 4 {
		t.Fatalf("ITL %v, want 4 gaps", out.ITL)
	}
	for i, g := range out.ITL {
		clWithin(t, fmt.Sprintf("ITL[%d]", i), g, 20*ms, clSlack, clSlack)
	}
	clWithin(t, "latency", out.Latency, 140*ms, 0, clSlack)
	if out.OutputLen != 7 || out.PromptLen != 11 || !out.UsageFromAPI {
		t.Errorf("output %d prompt %d usage %v, want 7 11 true (usage overrides)", out.OutputLen, out.PromptLen, out.UsageFromAPI)
	}
	if out.GeneratedText != "Hello, wörld\n!" {
		t.Errorf("text %q", out.GeneratedText)
	}

	m := body()
	msgs := m["messages"].([]any)
	if m["model"] != "m" || m["stream"] != true || m["max_tokens"] != 5.0 || m["ignore_eos"] != true ||
		m["stream_options"].(map[string]any)["include_usage"] != true || len(msgs) != 1 ||
		msgs[0].(map[string]any)["role"] != "user" || msgs[0].(map[string]any)["content"] != "Say \"hi\"\n" {
		t.Errorf("request body %v", m)
	}
}

// TestSSEFallbackAndFraming: no usage chunk (OutputLen falls back to the chunk count),
// "data:" without a space, comments, event/id lines, escapes and completions' "text".
func TestSSEFallbackAndFraming(t *testing.T) {
	steps := []clStep{{0, strings.Join([]string{
		`: keep-alive`,
		`event: message`,
		`id: 1`,
		`data:{"choices":[{"index":0,"text":"a\nb \"q\" \u00e9 \ud83d\ude00 \/"}]}`,
		``,
		`data: {"choices":[{"index":0,"text":null,"finish_reason":"length"}]}`,
		``,
		`data: {"choices":[],"usage":null}`,
		``,
		`data: [DONE]`,
		``, ``,
	}, "\n")}}
	ts, body := clStreamServer(t, "text/event-stream", steps)
	c := NewClient(Target{BaseURL: ts.URL + "/v1/", Model: "m", API: APICompletion}, 1)
	out := c.Do(t.Context(), Request{Prompt: "p", PromptLen: 9, OutputLen: 2}, time.Now())
	if !out.Success {
		t.Fatalf("failed: %s", out.Error)
	}
	if out.OutputLen != 2 || out.UsageFromAPI || out.PromptLen != 9 || len(out.ITL) != 1 {
		t.Errorf("output %d usage %v prompt %d itl %v, want 2 (chunks) false 9 one gap", out.OutputLen, out.UsageFromAPI, out.PromptLen, out.ITL)
	}
	if want := "a\nb \"q\" é 😀 /"; out.GeneratedText != want {
		t.Errorf("text %q, want %q", out.GeneratedText, want)
	}
	if m := body(); m["prompt"] != "p" || m["messages"] != nil {
		t.Errorf("completions body %v", m)
	}
}

// TestSSEErrors: HTTP errors, error events mid-stream (nested and flat), a stream cut before
// [DONE], a stream with no choices chunk and an invalid chunk all fail with a message.
func TestSSEErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"500 nested", 500, `{"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}}`, "HTTP 500: boom"},
		{"400 flat", 400, `{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}`, "HTTP 400: This model's maximum context length"},
		{"503 text", 503, "overloaded", "HTTP 503: overloaded"},
		{"404 empty", 404, "", "HTTP 404 Not Found"},
		{"error event", 200, clChatChunk("a") + `data: {"error":{"message":"The engine stopped","type":"ServiceUnavailableError","code":503}}` + "\n\ndata: [DONE]\n\n", "error event: The engine stopped"},
		{"flat error event", 200, clChatChunk("a") + `data: {"object":"error","message":"oops \"x\"","code":500}` + "\n\ndata: [DONE]\n\n", `error event: oops "x"`},
		{"ollama-style error", 200, `{"error":"model not found"}` + "\n", "error event: model not found"},
		{"event: error", 200, clChatChunk("a") + "event: error\ndata: {\"detail\":\"x\"}\n\ndata: [DONE]\n\n", "error event:"},
		{"no [DONE]", 200, clChatChunk("a") + clChatChunk("b"), "without data: [DONE]"},
		{"no choices", 200, "data: [DONE]\n\n", "Never received a valid chunk"},
		{"invalid chunk", 200, "data: {\"choices\":[{\"delta\":{\"content\":\"a}\n\ndata: [DONE]\n\n", "invalid stream chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			out := NewClient(Target{BaseURL: ts.URL, Model: "m"}, 1).Do(t.Context(), Request{Prompt: "p", OutputLen: 2}, time.Now())
			if out.Success || !strings.Contains(out.Error, tc.want) {
				t.Errorf("success %v error %q, want failure containing %q", out.Success, out.Error, tc.want)
			}
		})
	}
}

// TestConnectionErrorsAndCancel: a refused connection and a cancelled context fail the
// request with the reason, promptly.
func TestConnectionErrorsAndCancel(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	out := NewClient(Target{BaseURL: "http://" + addr, Model: "m"}, 1).Do(t.Context(), Request{Prompt: "p"}, time.Now())
	if out.Success || !strings.Contains(out.Error, "refused") {
		t.Errorf("refused: %+v", out)
	}

	ts, _ := clStreamServer(t, "text/event-stream", []clStep{{0, clChatChunk("a")}, {5 * time.Second, "data: [DONE]\n\n"}})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	out = NewClient(Target{BaseURL: ts.URL, Model: "m"}, 1).Do(ctx, Request{Prompt: "p"}, time.Now())
	if out.Success || !strings.Contains(out.Error, "deadline") || time.Since(t0) > 2*time.Second {
		t.Errorf("cancelled mid-stream: %+v after %v", out, time.Since(t0))
	}
}

// TestHeadersAndImages: the API key and extra headers are sent; images become image_url
// parts (chat) or base64 images (Ollama).
func TestHeadersAndImages(t *testing.T) {
	var mu sync.Mutex
	var hdr http.Header
	var body map[string]any
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hdr = r.Header.Clone()
		body = nil
		json.NewDecoder(r.Body).Decode(&body)
		mu.Unlock()
		if r.URL.Path == "/api/chat" {
			io.WriteString(w, `{"message":{"role":"assistant","content":"x"},"done":false}`+"\n"+`{"message":{"role":"assistant","content":""},"done":true,"eval_count":1,"prompt_eval_count":2}`+"\n")
			return
		}
		io.WriteString(w, clChatChunk("x")+"data: [DONE]\n\n")
	}))
	defer ts.Close()
	img := "data:image/png;base64,iVBORw0KGgo="
	c := NewClient(Target{BaseURL: ts.URL, Model: "m", APIKey: "sk-1", Headers: map[string]string{"X-Run": "7"}}, 1)
	if out := c.Do(t.Context(), Request{Prompt: "what is this", Images: []string{img}, MultiModal: true, OutputLen: 1}, time.Now()); !out.Success {
		t.Fatal(out.Error)
	}
	mu.Lock()
	if hdr.Get("Authorization") != "Bearer sk-1" || hdr.Get("X-Run") != "7" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", hdr)
	}
	parts := body["messages"].([]any)[0].(map[string]any)["content"].([]any)
	if len(parts) != 2 || parts[0].(map[string]any)["text"] != "what is this" ||
		parts[1].(map[string]any)["image_url"].(map[string]any)["url"] != img {
		t.Errorf("content parts %v", parts)
	}
	mu.Unlock()

	c = NewClient(Target{BaseURL: ts.URL, Model: "m", API: APIOllama}, 1)
	if out := c.Do(t.Context(), Request{Prompt: "what", Images: []string{img}, OutputLen: 3}, time.Now()); !out.Success {
		t.Fatal(out.Error)
	}
	mu.Lock()
	msg := body["messages"].([]any)[0].(map[string]any)
	if msg["content"] != "what" || msg["images"].([]any)[0] != "iVBORw0KGgo=" || body["options"].(map[string]any)["num_predict"] != 3.0 || body["stream"] != true {
		t.Errorf("ollama body %v", body)
	}
	mu.Unlock()
}

// ---- against the simulator ----

// TestAgainstSimVLLM: chat and completions streams from sim-vLLM give exactly max_tokens
// output tokens from usage (ignore_eos), the prompt length from usage, one TTFT chunk plus a
// gap per later chunk, and consistent times; embeddings give TTFT = latency and no output.
func TestAgainstSimVLLM(t *testing.T) {
	url := clSimVLLM(t, sim.Faults{})
	for _, api := range []string{APIChat, APICompletion} {
		t.Run(api, func(t *testing.T) {
			c := NewClient(Target{BaseURL: url, Model: "qwen", API: api}, 4)
			start := time.Now()
			out := c.Do(t.Context(), Request{Prompt: "Tell me a story about a cat.", PromptLen: 1, OutputLen: 40}, start)
			if !out.Success {
				t.Fatal(out.Error)
			}
			if out.OutputLen != 40 || !out.UsageFromAPI || out.PromptLen <= 1 {
				t.Errorf("output %d usage %v prompt %d", out.OutputLen, out.UsageFromAPI, out.PromptLen)
			}
			if n := len(out.ITL); n < 39 || n > 40 { // chat: a role chunk first
				t.Errorf("%d ITL gaps for 40 tokens", n)
			}
			var sum time.Duration
			for _, g := range out.ITL {
				sum += g
			}
			if out.TTFT <= 0 || out.TTFT+sum != out.Latency || out.Start+out.Latency > time.Since(start) {
				t.Errorf("start %v ttft %v Σitl %v latency %v", out.Start, out.TTFT, sum, out.Latency)
			}
			if out.GeneratedText == "" {
				t.Error("no text")
			}
		})
	}
	t.Run("embeddings", func(t *testing.T) {
		c := NewClient(Target{BaseURL: url, Model: "qwen", API: APIEmbeddings}, 1)
		out := c.Do(t.Context(), Request{Prompt: "hello world", PromptLen: 1}, time.Now())
		if !out.Success || out.TTFT <= 0 || out.TTFT != out.Latency || out.OutputLen != 0 || out.PromptLen < 2 || len(out.ITL) != 0 {
			t.Errorf("%+v", out)
		}
	})
	t.Run("fail rate", func(t *testing.T) {
		url := clSimVLLM(t, sim.Faults{FailRate: 1})
		out := NewClient(Target{BaseURL: url, Model: "qwen"}, 1).Do(t.Context(), Request{Prompt: "x", OutputLen: 4}, time.Now())
		if out.Success || !strings.HasPrefix(out.Error, "HTTP 500") {
			t.Errorf("%+v", out)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		out := NewClient(Target{BaseURL: url, Model: "nope"}, 1).Do(t.Context(), Request{Prompt: "x", OutputLen: 4}, time.Now())
		if out.Success || !strings.Contains(out.Error, "HTTP 404") || !strings.Contains(out.Error, "nope") {
			t.Errorf("%+v", out)
		}
	})
}

// TestAgainstSimOllama: Ollama's NDJSON stream: eval_count and prompt_eval_count are the token
// counts, one gap per later content line.
func TestAgainstSimOllama(t *testing.T) {
	url := clSimOllama(t)
	c := NewClient(Target{BaseURL: url, Model: "qwen2.5:7b", API: APIOllama}, 1)
	out := c.Do(t.Context(), Request{Prompt: "Why is the sky blue? Explain briefly.", PromptLen: 1, OutputLen: 24}, time.Now())
	if !out.Success {
		t.Fatal(out.Error)
	}
	if out.OutputLen != 24 || !out.UsageFromAPI || out.PromptLen <= 1 || len(out.ITL) != 23 || out.GeneratedText == "" {
		t.Errorf("output %d usage %v prompt %d itl %d text %q", out.OutputLen, out.UsageFromAPI, out.PromptLen, len(out.ITL), out.GeneratedText)
	}
	out = NewClient(Target{BaseURL: url, Model: "missing:1b", API: APIOllama}, 1).Do(t.Context(), Request{Prompt: "x", OutputLen: 2}, time.Now())
	if out.Success || !strings.Contains(out.Error, "HTTP 404") {
		t.Errorf("missing model: %+v", out)
	}
}

// TestOllamaTiming: TTFT at the first line with content (an empty first line does not count),
// gaps per later content line, latency at the last content line (not the final done line).
func TestOllamaTiming(t *testing.T) {
	const ms = time.Millisecond
	line := func(content string) string {
		return `{"model":"m","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"` + content + `"},"done":false}` + "\n"
	}
	steps := []clStep{
		{10 * ms, line("")},
		{50 * ms, line("The")},
		{65 * ms, line(" sky")},
		{80 * ms, line(" is\\n")},
		{120 * ms, `{"model":"m","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":""},"done_reason":"length","done":true,"total_duration":1,"prompt_eval_count":13,"eval_count":3}` + "\n"},
	}
	ts, _ := clStreamServer(t, "application/x-ndjson", steps)
	c := NewClient(Target{BaseURL: ts.URL, Model: "m", API: APIOllama}, 1)
	c.Do(t.Context(), Request{Prompt: "warm"}, time.Now())
	out := c.Do(t.Context(), Request{Prompt: "p", PromptLen: 1, OutputLen: 3}, time.Now())
	if !out.Success {
		t.Fatal(out.Error)
	}
	clWithin(t, "TTFT", out.TTFT, 50*ms, 0, clSlack)
	if len(out.ITL) != 2 {
		t.Fatalf("ITL %v", out.ITL)
	}
	clWithin(t, "ITL[0]", out.ITL[0], 15*ms, clSlack, clSlack)
	clWithin(t, "ITL[1]", out.ITL[1], 15*ms, clSlack, clSlack)
	clWithin(t, "latency", out.Latency, 80*ms, 0, clSlack)
	if out.OutputLen != 3 || out.PromptLen != 13 || out.GeneratedText != "The sky is\n" {
		t.Errorf("%+v", out)
	}

	for _, tc := range []struct{ name, body, want string }{
		{"error line", line("a") + `{"error":"an error was encountered while running the model"}` + "\n", "error event: an error was encountered"},
		{"no done", line("a") + line("b"), `without a "done":true line`},
		{"nothing", `{"message":{"role":"assistant","content":""},"done":true,"eval_count":0}` + "\n", "Never received"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _ := clStreamServer(t, "application/x-ndjson", []clStep{{0, tc.body}})
			out := NewClient(Target{BaseURL: ts.URL, Model: "m", API: APIOllama}, 1).Do(t.Context(), Request{Prompt: "p"}, time.Now())
			if out.Success || !strings.Contains(out.Error, tc.want) {
				t.Errorf("%+v, want error %q", out, tc.want)
			}
		})
	}
}

// TestKeepAlive: sequential requests reuse one connection.
func TestKeepAlive(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		io.WriteString(w, clChatChunk("x")+`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`+"\n\ndata: [DONE]\n\n")
	}))
	defer ts.Close()
	c := NewClient(Target{BaseURL: ts.URL, Model: "m"}, 1)
	for range 20 {
		if out := c.Do(t.Context(), Request{Prompt: "p", OutputLen: 1}, time.Now()); !out.Success {
			t.Fatal(out.Error)
		}
	}
	if len(conns) != 1 {
		t.Errorf("%d connections for 20 sequential requests, want 1", len(conns))
	}
}

// TestLongChunk: a chunk longer than the reader's buffer is read whole.
func TestLongChunk(t *testing.T) {
	long := strings.Repeat("abcdefgh", 20000) // 160 KB
	ts, _ := clStreamServer(t, "text/event-stream", []clStep{{0, clChatChunk("x") + clChatChunk(long) + clChatChunk("y") + "data: [DONE]\n\n"}})
	out := NewClient(Target{BaseURL: ts.URL, Model: "m"}, 1).Do(t.Context(), Request{Prompt: "p", OutputLen: 3}, time.Now())
	if !out.Success || out.GeneratedText != "x"+long+"y" || out.OutputLen != 3 {
		t.Errorf("success %v error %q text %d bytes, output %d", out.Success, out.Error, len(out.GeneratedText), out.OutputLen)
	}
}

package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/sim"
)

// probe answers the gateway's health probes (GET /v1/models of a URL target); it reports
// whether r was one.
func probe(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	return true
}

// okUpstream answers every chat request with goodChat (usage: 2 tokens) and counts them.
func okUpstream(t *testing.T, n *atomic.Int64) string {
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if probe(w, r) {
			return
		}
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, goodChat)
	})
}

func routeYAML(models string) string {
	return "apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: lim}\nspec:\n" + models
}

// openAIError decodes an OpenAI error body.
func openAIError(t *testing.T, body string) (msg, code string, param any) {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
			Code    string `json:"code"`
			Param   any    `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error body: %q (%v)", body, err)
	}
	return e.Error.Message, e.Error.Code, e.Error.Param
}

// ollamaError decodes an Ollama error body ({"error": "…"}).
func ollamaError(t *testing.T, body string) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e) != 1 {
		t.Fatalf("not an Ollama error body: %q (%v)", body, err)
	}
	msg, _ := e["error"].(string)
	if msg == "" {
		t.Fatalf("not an Ollama error body: %q", body)
	}
	return msg
}

func retryAfterOK(t *testing.T, resp *http.Response) {
	t.Helper()
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 1 || n > 60 {
		t.Errorf("Retry-After %q: want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
}

// TestRouteRequestsPerMinute: a model's requestsPerMinute (a model's own, over the route's)
// refuses the third request in the minute with 429, Retry-After and a message that names the
// model, the route and the limit, in each front's shape; the refused request never reaches
// the engine, and the refusals are counted.
func TestRouteRequestsPerMinute(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  limits: {requestsPerMinute: 100}
  models:
  - {name: a, targets: [{url: %q}], limits: {requestsPerMinute: 2}}
  - {name: b, targets: [{url: %q}], limits: {requestsPerMinute: 2}}
`, u, u)), gateway.Options{})

	for i := range 2 {
		if resp, body := post(t, gw+"/v1/chat/completions", chat("a", "hi")); resp.StatusCode != 200 {
			t.Fatalf("openai request %d: %d %s", i+1, resp.StatusCode, body)
		} else if resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" || resp.Header.Get("X-Ratelimit-Remaining-Requests") != strconv.Itoa(1-i) {
			t.Errorf("openai request %d: x-ratelimit headers %v", i+1, resp.Header)
		}
	}
	resp, body := post(t, gw+"/v1/chat/completions", chat("a", "hi"))
	if resp.StatusCode != 429 {
		t.Fatalf("third openai request: %d %s", resp.StatusCode, body)
	}
	retryAfterOK(t, resp)
	msg, code, _ := openAIError(t, body)
	for _, want := range []string{`model "a"`, "route default/lim", "limits.requestsPerMinute", "Limit 2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("429 message %q lacks %q", msg, want)
		}
	}
	if code != "rate_limit_exceeded" {
		t.Errorf("code %q", code)
	}

	ollama := `{"model":"b","messages":[{"role":"user","content":"hi"}],"stream":false}`
	for i := range 2 {
		if resp, body := post(t, gw+"/api/chat", ollama); resp.StatusCode != 200 {
			t.Fatalf("ollama request %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body = post(t, gw+"/api/chat", ollama)
	if resp.StatusCode != 429 {
		t.Fatalf("third ollama request: %d %s", resp.StatusCode, body)
	}
	retryAfterOK(t, resp)
	if msg := ollamaError(t, body); !strings.Contains(msg, `model "b"`) || !strings.Contains(msg, "limits.requestsPerMinute") {
		t.Errorf("ollama 429 message %q", msg)
	}
	if got := n.Load(); got != 4 {
		t.Errorf("the engine got %d requests, want 4: refused ones must not reach it", got)
	}
	_, m := get(t, gw+"/metrics")
	for _, want := range []string{
		`citadel_gateway_limit_refusals_total{limit="requests_per_minute",name="a",scope="model"} 1`,
		`citadel_gateway_limit_refusals_total{limit="requests_per_minute",name="b",scope="model"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// blockingUpstream holds every request until release is closed (or the gateway gives up on
// it); got receives one value per request that arrived. A "stream": true request gets its
// first SSE chunk at once and the end of the stream at release.
func blockingUpstream(t *testing.T) (url string, got chan struct{}, release func()) {
	got = make(chan struct{}, 16)
	stop := make(chan struct{})
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(stop)
		}
	}
	url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if probe(w, r) {
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- struct{}{}
		if strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, `data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"he"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-stop:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, `data: {"id":"s","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`+"\n\ndata: [DONE]\n\n")
			return
		}
		select {
		case <-stop:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, goodChat)
	})
	t.Cleanup(release) // before the server closes (cleanups run last first)
	return url, got, release
}

func waitGot(t *testing.T, got chan struct{}) {
	t.Helper()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream did not get the request")
	}
}

// TestRouteMaxConcurrent: with maxConcurrent 1, a second request while the first is at a
// slow engine is refused (429, Retry-After, the limit named); once the first has its answer
// a new one passes.
func TestRouteMaxConcurrent(t *testing.T) {
	u, got, release := blockingUpstream(t)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  limits: {maxConcurrent: 1}
  models:
  - {name: a, targets: [{url: %q}]}
`, u)), gateway.Options{})

	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(chat("a", "slow")))
		if err != nil {
			first <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	waitGot(t, got)
	resp, body := post(t, gw+"/v1/chat/completions", chat("a", "second"))
	if resp.StatusCode != 429 {
		t.Fatalf("second concurrent request: %d %s", resp.StatusCode, body)
	}
	retryAfterOK(t, resp)
	if msg, _, _ := openAIError(t, body); !strings.Contains(msg, "limits.maxConcurrent") || !strings.Contains(msg, `model "a"`) {
		t.Errorf("429 message %q", msg)
	}
	release()
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	if resp, body := post(t, gw+"/v1/chat/completions", chat("a", "third")); resp.StatusCode != 200 {
		t.Fatalf("after the first ended: %d %s", resp.StatusCode, body)
	}
}

// TestStreamReleasesSlot: a streamed request holds its slot while it streams and frees it
// when the stream ends, and when the client goes away mid-stream.
func TestStreamReleasesSlot(t *testing.T) {
	u, got, release := blockingUpstream(t)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  models:
  - {name: a, targets: [{url: %q}], limits: {maxConcurrent: 1}}
`, u)), gateway.Options{})
	stream := `{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true}`

	// The client goes away after the first chunk.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(stream))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	waitGot(t, got)
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first chunk %q: %v", line, err)
	}
	if resp, body := post(t, gw+"/v1/chat/completions", stream); resp.StatusCode != 429 {
		t.Fatalf("while streaming: %d %s", resp.StatusCode, body)
	}
	cancel()
	resp.Body.Close()

	// The slot comes back (bounded wait); the next stream runs to its end and frees it too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx2, cancel2 := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx2, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(stream))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel2()
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			waitGot(t, got)
			release()
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel2()
			if !strings.Contains(string(b), "[DONE]") {
				t.Fatalf("stream %q", b)
			}
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel2()
		if time.Now().After(deadline) {
			t.Fatalf("the slot of the stream whose client went away was not freed: still %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 3 {
		if resp, body := post(t, gw+"/v1/chat/completions", stream); resp.StatusCode != 200 || !strings.Contains(body, "[DONE]") {
			t.Fatalf("stream %d after a finished one: %d %s", i, resp.StatusCode, body)
		}
	}
}

// TestRouteTokensPerMinute: tokens are charged from the engine's usage after each answer; a
// request is admitted while the model is under its budget, and refused once it is over.
func TestRouteTokensPerMinute(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  limits: {tokensPerMinute: 3}
  models:
  - {name: a, targets: [{url: %q}]}
`, u)), gateway.Options{})
	for i := range 2 { // 0 then 2 tokens used: under 3
		if resp, body := post(t, gw+"/v1/chat/completions", chat("a", "hi")); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := post(t, gw+"/v1/chat/completions", chat("a", "hi"))
	if resp.StatusCode != 429 {
		t.Fatalf("with 4 of 3 tokens used: %d %s", resp.StatusCode, body)
	}
	retryAfterOK(t, resp)
	if msg, _, _ := openAIError(t, body); !strings.Contains(msg, "tokens per min") || !strings.Contains(msg, "Used 4") || !strings.Contains(msg, "limits.tokensPerMinute") {
		t.Errorf("429 message %q", msg)
	}
	if resp.Header.Get("X-Ratelimit-Remaining-Tokens") != "0" {
		t.Errorf("headers %v", resp.Header)
	}
}

// TestKeyAndRouteLimits: a request must pass both its key's limits and its model's; the one
// refused by either is not counted by the other.
func TestKeyAndRouteLimits(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	const limited, open, single = "ck-limited-0123456789abcdef", "ck-open-0123456789abcdefgh", "ck-single-0123456789abcdef"
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  models:
  - {name: a, targets: [{url: %q}], limits: {requestsPerMinute: 1}}
  - {name: b, targets: [{url: %q}]}
  - {name: c, targets: [{url: %q}], limits: {requestsPerMinute: 2}}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: limited}
spec: {hash: %q, requestsPerMinute: 3}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: open}
spec: {hash: %q}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: single}
spec: {hash: %q, maxConcurrent: 1}
`, u, u, u, sha256hex(limited), sha256hex(open), sha256hex(single))), gateway.Options{})
	send := func(model, key string) (int, string) {
		resp, body := post(t, gw+"/v1/chat/completions", chat(model, "hi"), "Authorization", "Bearer "+key)
		return resp.StatusCode, body
	}
	// The model refuses: the key's budget of 3 is untouched by the refusals.
	if code, body := send("a", limited); code != 200 {
		t.Fatalf("a: %d %s", code, body)
	}
	for range 3 {
		if code, body := send("a", limited); code != 429 || !strings.Contains(body, `model \"a\"`) {
			t.Fatalf("a over the model's limit: %d %s", code, body)
		}
	}
	// Nor does a model's refusal keep the key's concurrency slot.
	for i := range 2 {
		if code, body := send("a", single); code != 429 || !strings.Contains(body, `model \"a\"`) {
			t.Fatalf("a with a key of one slot, %d: %d %s", i+1, code, body)
		}
	}
	for range 2 {
		if code, body := send("b", limited); code != 200 {
			t.Fatalf("b: the model's refusals were charged to the key: %d %s", code, body)
		}
	}
	// The key refuses: the model's count is untouched.
	if code, body := send("c", limited); code != 429 || !strings.Contains(body, `API key \"limited\"`) {
		t.Fatalf("c over the key's limit: %d %s", code, body)
	}
	for range 2 {
		if code, body := send("c", open); code != 200 {
			t.Fatalf("c with another key: the key's refusal was charged to the model: %d %s", code, body)
		}
	}
	if code, body := send("c", open); code != 429 {
		t.Fatalf("c over the model's limit: %d %s", code, body)
	}
	_, m := get(t, gw+"/metrics")
	for _, want := range []string{
		`citadel_gateway_limit_refusals_total{limit="requests_per_minute",name="a",scope="model"} 5`,
		`citadel_gateway_limit_refusals_total{limit="requests_per_minute",name="c",scope="model"} 1`,
		`citadel_gateway_limit_refusals_total{limit="requests_per_minute",name="limited",scope="key"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestRouteMaxTokens: a request asking for more than the model's maxTokens is refused with
// 400 and the field named (max_tokens, max_completion_tokens, Ollama's num_predict); within
// it, or without a bound, it passes.
func TestRouteMaxTokens(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  limits: {maxTokens: 64}
  models:
  - {name: a, targets: [{url: %q}]}
`, u)), gateway.Options{})
	for _, tc := range []struct {
		body  string
		code  int
		param string
	}{
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"max_tokens":64}`, 200, ""},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}]}`, 200, ""},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"max_tokens":65}`, 400, "max_tokens"},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":1000}`, 400, "max_completion_tokens"},
	} {
		resp, body := post(t, gw+"/v1/chat/completions", tc.body)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.body, resp.StatusCode, body, tc.code)
			continue
		}
		if tc.code == 400 {
			msg, code, param := openAIError(t, body)
			if param != tc.param || code != "invalid_value" || !strings.Contains(msg, "at most 64") || !strings.Contains(msg, "limits.maxTokens") {
				t.Errorf("%s: %q %s %v", tc.body, msg, code, param)
			}
		}
	}
	resp, body := post(t, gw+"/api/chat", `{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":100}}`)
	if resp.StatusCode != 400 {
		t.Fatalf("num_predict over the limit: %d %s", resp.StatusCode, body)
	}
	if msg := ollamaError(t, body); !strings.Contains(msg, "options.num_predict") {
		t.Errorf("ollama message %q", msg)
	}
	if resp, body := post(t, gw+"/api/chat", `{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":10}}`); resp.StatusCode != 200 {
		t.Errorf("num_predict within the limit: %d %s", resp.StatusCode, body)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("the engine got %d requests, want 3", got)
	}
}

// TestRouteUpdateKeepsCounts: a route update that keeps the model's name keeps what its
// limiter counted, even when the limit changes.
func TestRouteUpdateKeepsCounts(t *testing.T) {
	var n atomic.Int64
	u := okUpstream(t, &n)
	rpm := func(v int32) *v1.Limits { return &v1.Limits{RequestsPerMinute: &v} }
	route := func(limit int32, extra bool) *v1.Route {
		r := &v1.Route{ObjectMeta: v1.ObjectMeta{Name: "lim", Namespace: "default"},
			Spec: v1.RouteSpec{Limits: rpm(limit), Models: []v1.RouteModel{{Name: "a", Targets: []v1.RouteTarget{{URL: u}}}}}}
		if extra {
			r.Spec.Models = append(r.Spec.Models, v1.RouteModel{Name: "extra", Targets: []v1.RouteTarget{{URL: u}}})
		}
		return r
	}
	src := &memSource{snap: gateway.Snapshot{Routes: []*v1.Route{route(2, false)}}, statuses: map[string]v1.Status{}, changed: make(chan struct{})}
	gw := gateway.New(gateway.Options{Source: src, HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Run(ctx) }()
	ts := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { ts.Close(); cancel(); <-done })

	deadline := time.Now().Add(10 * time.Second)
	for ok := 0; ok < 2; {
		resp, body := post(t, ts.URL+"/v1/chat/completions", chat("a", "hi"))
		switch {
		case resp.StatusCode == 200:
			ok++
		case time.Now().After(deadline):
			t.Fatalf("the route is not served: %d %s", resp.StatusCode, body)
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	src.set(func(s *gateway.Snapshot) { s.Routes = []*v1.Route{route(3, true)} })
	for {
		_, models := get(t, ts.URL+"/v1/models")
		if strings.Contains(models, `"extra"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update did not apply: %s", models)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, body := post(t, ts.URL+"/v1/chat/completions", chat("a", "hi")); resp.StatusCode != 200 {
		t.Fatalf("third request, under the new limit of 3: %d %s", resp.StatusCode, body)
	}
	resp, body := post(t, ts.URL+"/v1/chat/completions", chat("a", "hi"))
	if resp.StatusCode != 429 || !strings.Contains(body, "Used 3") {
		t.Fatalf("fourth request: the update forgot the count: %d %s", resp.StatusCode, body)
	}
}

// TestOllamaFrontChargesTokens: the Ollama front charges a model's tokensPerMinute from the
// answer's counts, whole or streamed, from an OpenAI engine (translated) and from an Ollama
// engine (passed through): after one answer of 4 tokens, a budget of 1 refuses the next.
func TestOllamaFrontChargesTokens(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	ol := simOllama(t, "qwen2.5:7b")
	openaiT := fmt.Sprintf(`[{url: %q, model: qwen}]`, e.URL)
	ollamaT := fmt.Sprintf(`[{url: %q, api: ollama, model: "qwen2.5:7b"}]`, ol.URL)
	_, gw := startGateway(t, routeYAML(fmt.Sprintf(`  limits: {tokensPerMinute: 1}
  models:
  - {name: openai-stream, targets: %s}
  - {name: openai-whole, targets: %s}
  - {name: ollama-stream, targets: %s}
  - {name: ollama-whole, targets: %s}
`, openaiT, openaiT, ollamaT, ollamaT)), gateway.Options{})
	for _, model := range []string{"openai-stream", "openai-whole", "ollama-stream", "ollama-whole"} {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":%v,"options":{"num_predict":4}}`,
			model, strings.HasSuffix(model, "-stream"))
		if resp, b := post(t, gw+"/api/chat", body); resp.StatusCode != 200 || !strings.Contains(b, `"eval_count":4`) {
			t.Fatalf("%s first: %d %s", model, resp.StatusCode, b)
		}
		resp, b := post(t, gw+"/api/chat", body)
		if resp.StatusCode != 429 {
			t.Errorf("%s: the answer's tokens were not charged: %d %s", model, resp.StatusCode, b)
			continue
		}
		if msg := ollamaError(t, b); !strings.Contains(msg, "tokens per min") {
			t.Errorf("%s: message %q", model, msg)
		}
	}
}

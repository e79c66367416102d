package gateway_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/simtest"
)

// engine is a simulated engine on a loopback port that a test can kill.
type engine struct {
	URL  string
	stop func()
}

var plan = simtest.Plan

// simVLLM runs a simulated vLLM of qwen2.5-7b serving names at time scale 0.
func simVLLM(t testing.TB, faults sim.Faults, names ...string) *engine {
	t.Helper()
	return simModel(t, "qwen2.5-7b", faults, names...)
}

func simModel(t testing.TB, model string, faults sim.Faults, names ...string) *engine {
	t.Helper()
	s, err := sim.NewOpenAI(sim.Config{Plan: plan(t, "h100-sxm", model, perfmodel.Options{MaxModelLen: 4096}),
		ServedModelNames: names, TimeScale: 0, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	return serveEngine(t, s)
}

func simOllama(t testing.TB, model string) *engine {
	t.Helper()
	s, err := sim.NewOllama(sim.OllamaConfig{Plan: plan(t, "rtx-4090", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, Quant: perfmodel.QuantQ4KM}),
		Model: model, TimeScale: 0})
	if err != nil {
		t.Fatal(err)
	}
	return serveEngine(t, s)
}

func serveEngine(t testing.TB, s simtest.Server) *engine {
	url, stop := simtest.Serve(t, s)
	return &engine{URL: url, stop: stop}
}

// startGateway runs a gateway over routes (YAML) until the test ends.
func startGateway(t testing.TB, routesYAML string, opts gateway.Options) (*gateway.Server, string) {
	t.Helper()
	items, errs := config.Decode(strings.NewReader(routesYAML), "routes.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	for _, it := range items {
		switch o := it.Object.(type) {
		case *v1.Route:
			opts.Routes = append(opts.Routes, o)
		case *v1.APIKey:
			opts.Keys = append(opts.Keys, o)
		}
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 100 * time.Millisecond
	}
	gw := gateway.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gw.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; <-served })
	return gw, "http://" + ln.Addr().String()
}

func post(t testing.TB, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
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

const chatBody = `{"model":%q,"messages":[{"role":"user","content":%q}],"max_tokens":4}`

func chat(model, text string) string { return fmt.Sprintf(chatBody, model, text) }

func TestRoutingByNameAndTask(t *testing.T) {
	general := simVLLM(t, sim.Faults{}, "qwen")
	coder := simVLLM(t, sim.Faults{}, "deepcoder")
	vision := simModel(t, "mimo-vl-7b", sim.Faults{}, "mimo")
	_, gw := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: lab}
spec:
  models:
  - {name: qwen, aliases: [general], targets: [{url: %q, model: qwen}]}
  - {name: coder, targets: [{url: %q, model: deepcoder}]}
  - {name: mimo-vl, targets: [{url: %q, model: mimo}]}
  - name: auto
    tasks:
    - {task: vision, model: mimo-vl}
    - {task: code, model: coder}
    - {task: general, model: qwen}
`, general.URL, coder.URL, vision.URL), gateway.Options{})

	code, body := get(t, gw+"/v1/models")
	for _, n := range []string{`"id":"qwen"`, `"id":"general"`, `"id":"auto"`, `"id":"coder"`} {
		if code != 200 || !strings.Contains(body, n) {
			t.Errorf("/v1/models lacks %s: %d %s", n, code, body)
		}
	}
	tests := []struct {
		name, body, header, wantRoute string
	}{
		{"exact name", chat("qwen", "hi"), "", "model=qwen"},
		{"alias", chat("general", "hi"), "", "model=qwen"},
		{"auto, general", chat("auto", "tell me about the sea"), "", "task=general"},
		{"auto, code", chat("auto", "why does this fail? ```python\ndef f(): pass\n```"), "", "task=code"},
		{"auto, vision", `{"model":"auto","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`, "", "task=vision"},
		{"auto, header override", chat("auto", "tell me about the sea"), "code", "task=code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = []string{"X-Citadel-Task", tt.header}
			}
			resp, body := post(t, gw+"/v1/chat/completions", tt.body, h...)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			route := resp.Header.Get("X-Citadel-Route")
			if !strings.Contains(route, tt.wantRoute) {
				t.Errorf("x-citadel-route %q lacks %q", route, tt.wantRoute)
			}
			if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Citadel-Overhead-Ms") == "" {
				t.Errorf("missing x-request-id or x-citadel-overhead-ms: %v", resp.Header)
			}
		})
	}
}

// createdField is a chunk's creation time, which differs between two requests a second apart.
var createdField = regexp.MustCompile(`"created":\d+`)

func TestStreamingPassesChunksThrough(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", e.URL), gateway.Options{})
	body := `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`
	_, direct := post(t, e.URL+"/v1/chat/completions", body)
	resp, via := post(t, gw+"/v1/chat/completions", body)
	if resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	// The same events as the engine's, byte for byte but for the ids and timestamps.
	norm := func(s string) string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if i := strings.Index(l, `"object"`); i > 0 {
				l = l[i:]
			}
			out = append(out, createdField.ReplaceAllString(l, `"created":0`))
		}
		return strings.Join(out, "\n")
	}
	if norm(via) != norm(direct) {
		t.Errorf("stream differs through the gateway:\n%s\n---\n%s", via, direct)
	}
}

func TestClientErrors(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", e.URL),
		gateway.Options{MaxBodyBytes: 4096})
	tests := []struct {
		name, path, body, ctype string
		status                  int
		want                    string
	}{
		{"unknown model", "/v1/chat/completions", chat("gpt-9", "x"), "", 404, `"code":"model_not_found"`},
		{"unknown model lists names", "/v1/chat/completions", chat("gpt-9", "x"), "", 404, "Available models: qwen"},
		{"malformed JSON", "/v1/chat/completions", `{"model":`, "", 400, `"type":"invalid_request_error"`},
		{"no model", "/v1/chat/completions", `{"messages":[]}`, "", 400, "you must provide a model parameter"},
		{"oversize", "/v1/chat/completions", chat("qwen", strings.Repeat("x", 5000)), "", 413, "larger than 4096 bytes"},
		{"bad image", "/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@"}}]}]}`, "", 400, `"code":"invalid_image_format"`},
		{"content type", "/v1/chat/completions", chat("qwen", "x"), "text/html", 415, "send application/json"},
		{"ollama unknown model", "/api/chat", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, "", 404, `"error":"model 'gpt-9' not found`},
		{"ollama as curl -d sends it", "/api/chat", `{"model":"qwen","stream":false,"messages":[{"role":"user","content":"x"}]}`, "application/x-www-form-urlencoded", 200, `"done":true`},
		{"ollama malformed", "/api/chat", `{"model":`, "", 400, `"error":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, gw+tt.path, strings.NewReader(tt.body))
			ct := tt.ctype
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("%d %s; want %d with %s", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
}

// TestKillReplicaUnderLoad: with two replicas, killing one mid-run fails no non-streaming
// request.
func TestKillReplicaUnderLoad(t *testing.T) {
	a := simVLLM(t, sim.Faults{}, "qwen")
	b := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    balancing: {policy: round-robin}\n    targets: [{url: %q}, {url: %q}]\n", a.URL, b.URL),
		gateway.Options{})
	var failed, done atomic.Int64
	var wg sync.WaitGroup
	const n = 400
	jobs := make(chan int, n)
	for i := range n {
		jobs <- i
	}
	close(jobs)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if i == n/4 {
					a.stop() // one replica dies under load
				}
				resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"))
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("request %d: %d %s", i, resp.StatusCode, body)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed after a replica died", failed.Load(), done.Load())
	}
}

// TestHungReplicaEjected: a replica that accepts requests and never answers is taken out of
// service within the header timeout (ejected after its timeouts, or marked unhealthy by a
// probe that reached it first), and its requests are served by the other replica.
func TestHungReplicaEjected(t *testing.T) {
	var sent atomic.Int64 // inference requests the hung replica received
	hung := simVLLM(t, sim.Faults{HangAfter: 1, Counted: func(r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
			sent.Add(1)
			return true
		}
		return false
	}}, "qwen")
	ok := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    balancing: {policy: round-robin}\n    targets: [{url: %q}, {url: %q}]\n", hung.URL, ok.URL),
		gateway.Options{HeaderTimeout: 300 * time.Millisecond})
	const n = 30
	start := time.Now()
	for i := range n {
		resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"))
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
	}
	took := time.Since(start)
	// Round robin would send it half of them; out of service, it gets the one it answers, the
	// timeouts that eject it (3), and, on a machine so slow that the 5 s ejection ends first,
	// one more burst.
	limit := int64(1 + 3)
	if took >= 5*time.Second {
		limit += 3
	}
	if got := sent.Load(); got > limit {
		t.Errorf("the hung replica received %d of %d requests in %s (want at most %d): it was not taken out of service", got, n, took, limit)
	}
}

// TestFallbackToOllama: when the vLLM target is down, requests go to the fallback Ollama, on
// both fronts.
func TestFallbackToOllama(t *testing.T) {
	dead := simVLLM(t, sim.Faults{}, "mimo")
	dead.stop()
	ol := simOllama(t, "qwen2.5:7b")
	_, gw := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  models:
  - name: mimo-vl
    targets: [{url: %q, model: mimo}]
    fallback: [{url: %q, api: ollama, model: "qwen2.5:7b"}]
`, dead.URL, ol.URL), gateway.Options{})
	resp, body := post(t, gw+"/v1/chat/completions", chat("mimo-vl", "hi"))
	if resp.StatusCode != 200 || !strings.Contains(body, `"chat.completion"`) {
		t.Fatalf("OpenAI front via the fallback: %d %s", resp.StatusCode, body)
	}
	if r := resp.Header.Get("X-Citadel-Route"); !strings.Contains(r, ol.URL) {
		t.Errorf("x-citadel-route %q does not name the fallback", r)
	}
	resp, body = post(t, gw+"/api/chat", `{"model":"mimo-vl","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":3}}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"done":true`) {
		t.Fatalf("Ollama front via the fallback: %d %s", resp.StatusCode, body)
	}
}

// TestOllamaFrontTranslatesOpenAIBackends: /api/chat against a vLLM backend streams NDJSON.
func TestOllamaFrontTranslatesOpenAIBackends(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", e.URL), gateway.Options{})
	resp, body := post(t, gw+"/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":4}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || last["done"] != true || last["eval_count"] != 4.0 {
		t.Errorf("NDJSON stream %d lines, last %v", len(lines), last)
	}
	code, tags := get(t, gw+"/api/tags")
	if code != 200 || !strings.Contains(tags, `"name":"qwen:latest"`) {
		t.Errorf("/api/tags: %d %s", code, tags)
	}
}

// TestMidStreamFailure: an upstream that stops mid-stream ends the client's stream with an
// OpenAI-shaped error event.
func TestMidStreamFailure(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence
	}))
	defer up.Close()
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: m, targets: [{url: %q}]}\n", up.URL),
		gateway.Options{IdleTimeout: 200 * time.Millisecond})
	resp, body := post(t, gw+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"code":"upstream_stream_error"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("mid-stream failure: %d %q", resp.StatusCode, body)
	}
}

func TestKeysAndLimits(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	secret := "ck-test-secret-0123456789abcdef"
	_, gw := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  models:
  - {name: qwen, targets: [{url: %q}]}
  - {name: other, targets: [{url: %q}]}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: team-a}
spec: {hash: %q, prefix: "ck-test", models: [qwen], requestsPerMinute: 3}
`, e.URL, e.URL, sha256hex(secret)), gateway.Options{})
	if resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi")); resp.StatusCode != 401 || !strings.Contains(body, "invalid_api_key") {
		t.Errorf("no key: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"), "Authorization", "Bearer ck-wrong"); resp.StatusCode != 401 {
		t.Errorf("wrong key: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, gw+"/v1/chat/completions", chat("other", "hi"), "Authorization", "Bearer "+secret); resp.StatusCode != 403 {
		t.Errorf("model outside the allow-list: %d %s", resp.StatusCode, body)
	}
	for i := range 3 {
		if resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"), "Authorization", "Bearer "+secret); resp.StatusCode != 200 {
			t.Fatalf("request %d with the key: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"), "Authorization", "Bearer "+secret)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Ratelimit-Limit-Requests") != "3" {
		t.Errorf("over the limit: %d %s %v", resp.StatusCode, body, resp.Header)
	}
}

func TestMetricsExport(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	var logBuf syncBuffer
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", e.URL), gateway.Options{AccessLog: &logBuf})
	post(t, gw+"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`,
		"X-Request-Id", "req-42")
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logBuf.String())), &line); err != nil {
		t.Fatalf("access log %q: %v", logBuf.String(), err)
	}
	if line["request_id"] != "req-42" || line["status"] != 200.0 || line["tokens_out"] != 4.0 || line["replica"] != e.URL {
		t.Errorf("access log line %v", line)
	}
	_, m := get(t, gw+"/metrics")
	for _, want := range []string{
		`citadel_gateway_requests_total{code="200",front="openai",key="",model="qwen",replica="` + e.URL + `",service="` + e.URL + `"} 1`,
		`citadel_gateway_tokens_total{direction="output",key="",model="qwen",replica="` + e.URL + `",service="` + e.URL + `"} 4`,
		`citadel_gateway_time_to_first_token_seconds_count{model="qwen",service="` + e.URL + `"} 1`,
		`citadel_gateway_replica_healthy{replica="` + e.URL + `",service=""} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

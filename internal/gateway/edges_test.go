package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/sim"
)

const edgeSecret = "ck-edge-secret-0123456789abcdef"

// keyedGateway serves qwen and other from one engine, with one key that may use qwen only.
func keyedGateway(t *testing.T, opts gateway.Options) string {
	t.Helper()
	e := simVLLM(t, sim.Faults{}, "qwen", "other")
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
spec: {hash: %q, prefix: "ck-edge", models: [qwen]}
`, e.URL, e.URL, sha256hex(edgeSecret)), opts)
	return gw
}

func do(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
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
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// With keys on, every endpoint that lists or uses models needs one, and lists only what the
// key may use; /metrics needs one only when told.
func TestKeysOnEveryModelEndpoint(t *testing.T) {
	gw := keyedGateway(t, gateway.Options{})
	auth := []string{"Authorization", "Bearer " + edgeSecret}
	for _, tc := range []struct {
		method, path, body string
		wantWith           int
		contains, lacks    string // in the answer with the key
	}{
		{"GET", "/v1/models", "", 200, `"qwen"`, `"other"`},
		{"GET", "/v1/models/qwen", "", 200, `"qwen"`, ""},
		{"GET", "/v1/models/other", "", 404, "Available models: qwen", `other, qwen`},
		{"GET", "/api/tags", "", 200, `qwen:latest`, `other`},
		{"GET", "/api/ps", "", 200, `qwen:latest`, `other`},
		{"POST", "/api/show", `{"model":"qwen"}`, 200, `qwen:latest`, ""},
		{"POST", "/api/show", `{"model":"other"}`, 404, "available: qwen", `other, qwen`},
		{"POST", "/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":false}`, 200, `"done":true`, ""},
		{"POST", "/v1/chat/completions", chat("qwen", "hi"), 200, `"choices"`, ""},
	} {
		t.Run(tc.method+tc.path+tc.body, func(t *testing.T) {
			if resp, body := do(t, tc.method, gw+tc.path, tc.body); resp.StatusCode != 401 {
				t.Errorf("without a key: %d %s, want 401", resp.StatusCode, body)
			}
			if resp, body := do(t, tc.method, gw+tc.path, tc.body, "Authorization", "Bearer ck-wrong-wrong"); resp.StatusCode != 401 {
				t.Errorf("with a wrong key: %d %s, want 401", resp.StatusCode, body)
			}
			resp, body := do(t, tc.method, gw+tc.path, tc.body, auth...)
			if resp.StatusCode != tc.wantWith || !strings.Contains(body, tc.contains) || (tc.lacks != "" && strings.Contains(body, tc.lacks)) {
				t.Errorf("with the key: %d %s; want %d, with %q, without %q", resp.StatusCode, body, tc.wantWith, tc.contains, tc.lacks)
			}
		})
	}
	for _, path := range []string{"/", "/healthz", "/api/version", "/metrics"} {
		if code, body := get(t, gw+path); code != 200 {
			t.Errorf("%s without a key: %d %s, want 200 (open)", path, code, body)
		}
	}

	locked := keyedGateway(t, gateway.Options{MetricsRequireKey: true})
	if code, body := get(t, locked+"/metrics"); code != 401 {
		t.Errorf("/metrics with MetricsRequireKey, without a key: %d %s, want 401", code, body)
	}
	if resp, body := do(t, "GET", locked+"/metrics", "", auth...); resp.StatusCode != 200 || !strings.Contains(body, "citadel_gateway_") {
		t.Errorf("/metrics with MetricsRequireKey and a key: %d %.200s", resp.StatusCode, body)
	}
}

// countingBody counts the bytes a handler reads.
type countingBody struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingBody) Close() error { return nil }

// A request without a valid key is refused before its body is read: it costs no memory.
func TestAuthenticatesBeforeReadingTheBody(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	var opts gateway.Options
	items, errs := config.Decode(strings.NewReader(fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  models:
  - {name: qwen, targets: [{url: %q}]}
---
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: team-a}
spec: {hash: %q}
`, e.URL, sha256hex(edgeSecret))), "routes.yaml")
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
	h := gateway.New(opts).Handler()
	big := `{"model":"qwen","messages":[{"role":"user","content":"` + strings.Repeat("a", 4<<20) + `"}]}`
	for _, path := range []string{"/v1/chat/completions", "/api/chat", "/api/show"} {
		for _, key := range []string{"", "Bearer ck-wrong-wrong"} {
			body := &countingBody{r: strings.NewReader(big)}
			req := httptest.NewRequest("POST", path, nil)
			req.Body, req.ContentLength = body, int64(len(big))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", key)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 401 || body.n.Load() != 0 {
				t.Errorf("%s with key %q: %d after reading %d body bytes; want 401 after none", path, key, rec.Code, body.n.Load())
			}
		}
	}
}

// A client that sends its headers and then trickles (or stops sending) its body is answered
// 408 once the body timeout passes, and its connection is closed.
func TestSlowBodyTimesOut(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", e.URL),
		gateway.Options{BodyTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // the test's own bound, far above the gateway's
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "request_timeout") || !resp.Close {
		t.Errorf("stalled body: %d close=%v %s; want 408 request_timeout and the connection closed", resp.StatusCode, resp.Close, b)
	}
	// The deadline is the body's only: a request whose body came in time streams for longer.
	resp2, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"))
	if resp2.StatusCode != 200 {
		t.Errorf("a prompt body after the slow one: %d %s", resp2.StatusCode, body)
	}
}

// A wrong method on a known path is 405 with Allow, in the front's error shape.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	_, gw := startGateway(t, "apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: \"http://127.0.0.1:1\"}]}\n", gateway.Options{})
	for _, tc := range []struct{ method, path, allow, shape string }{
		{"GET", "/v1/chat/completions", "POST", `"method_not_allowed"`},
		{"PUT", "/v1/embeddings", "POST", `"method_not_allowed"`},
		{"POST", "/v1/models", "GET, HEAD", `"method_not_allowed"`},
		{"DELETE", "/v1/models/qwen", "GET, HEAD", `"method_not_allowed"`},
		{"GET", "/api/chat", "POST", `{"error":`},
		{"POST", "/api/tags", "GET, HEAD", `{"error":`},
		{"GET", "/api/show", "POST", `{"error":`},
		{"POST", "/healthz", "GET, HEAD", `"method_not_allowed"`},
	} {
		resp, body := do(t, tc.method, gw+tc.path, "")
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || !strings.Contains(body, tc.shape) {
			t.Errorf("%s %s: %d Allow=%q %s; want 405 Allow=%q with %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.allow, tc.shape)
		}
	}
	if resp, body := do(t, "GET", gw+"/v1/nothing", ""); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d %s, want 404", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", gw+"/", ""); resp.StatusCode != 200 || body != "Ollama is running" {
		t.Errorf("GET /: %d %q", resp.StatusCode, body)
	}
}

// An engine's 429 reaches the client with the engine's Retry-After once every attempt was
// refused.
func TestEngine429RetryAfterReachesTheClient(t *testing.T) {
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || r.URL.Path == "/v1/models" || r.URL.Path == "/metrics" {
			return
		}
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"queue full","type":"rate_limit"}}`)
	}))
	defer busy.Close()
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", busy.URL), gateway.Options{Attempts: 1})
	resp, body := post(t, gw+"/v1/chat/completions", chat("qwen", "hi"))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("engine 429: %d Retry-After=%q %s; want 429 with Retry-After 7", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// Error bodies name neither backend URLs nor Go types; they carry the request id, and the
// log has the details.
func TestErrorBodiesRevealNoInternals(t *testing.T) {
	// An engine that passes its probes and drops every request.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}
	}))
	defer down.Close()
	downURL := down.URL
	var logBuf syncBuffer
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", downURL),
		gateway.Options{AccessLog: &logBuf})
	for _, tc := range []struct{ name, path, body string }{
		{"engine down", "/v1/chat/completions", chat("qwen", "hi")},
		{"engine down, Ollama front", "/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":false}`},
		{"wrong JSON type", "/v1/chat/completions", `{"model":7,"messages":[]}`},
		{"wrong content type", "/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":[{"type":"text","text":5}]}]}`},
	} {
		resp, body := post(t, gw+tc.path, tc.body, "X-Request-Id", "req-"+strings.ReplaceAll(tc.name, " ", "-"))
		if resp.StatusCode < 400 {
			t.Errorf("%s: %d %s, want an error", tc.name, resp.StatusCode, body)
		}
		host := strings.TrimPrefix(downURL, "http://")
		for _, bad := range []string{host, "127.0.0.1", "Go struct", "openAIBody", "openAIPart", "EOF"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: the error body reveals %q: %s", tc.name, bad, body)
			}
		}
		if resp.StatusCode >= 500 && !strings.Contains(body, "req-"+strings.ReplaceAll(tc.name, " ", "-")) {
			t.Errorf("%s: the error body lacks the request id: %s", tc.name, body)
		}
	}
	if !strings.Contains(logBuf.String(), downURL) || !strings.Contains(logBuf.String(), "EOF") {
		t.Errorf("the access log lacks the upstream's error: %s", logBuf.String())
	}
}

// A stream the engine resets after its first chunk ends with an error event that names no
// backend address (the connection error has both ends' addresses); the log has it.
func TestMidStreamErrorRevealsNoInternals(t *testing.T) {
	reset := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"qwen\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hel\"},\"finish_reason\":null}]}\n\n")
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		conn, _, err := rc.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with a reset: the reader gets "connection reset by peer"
		}
		conn.Close()
	}))
	defer reset.Close()
	var logBuf syncBuffer
	_, gw := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - {name: qwen, targets: [{url: %q}]}\n", reset.URL),
		gateway.Options{AccessLog: &logBuf})
	host := strings.TrimPrefix(reset.URL, "http://")
	for _, tc := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"stream":true}`},
		{"/api/chat", `{"model":"qwen","messages":[{"role":"user","content":"hi"}]}`},
	} {
		resp, body := post(t, gw+tc.path, tc.body)
		if resp.StatusCode != 200 || !strings.Contains(body, "hel") || !strings.Contains(body, "error") {
			t.Errorf("%s: %d %q; want the first chunk, then an error", tc.path, resp.StatusCode, body)
		}
		for _, bad := range []string{host, "127.0.0.1", "read tcp"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: the stream's error reveals %q: %s", tc.path, bad, body)
			}
		}
	}
	if !strings.Contains(logBuf.String(), "reset by peer") {
		t.Errorf("the access log lacks the upstream's error: %s", logBuf.String())
	}
}

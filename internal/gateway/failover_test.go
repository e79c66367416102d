package gateway_test

// The gateway's failure semantics: per-try timeouts, the total deadline, fair ejection,
// truncated upstream bodies, and balancing url targets by load. These tests count requests
// and outcomes; the only durations are per-try and total timeouts, with generous bounds.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
)

// hungAfterOne is a sim that answers its first chat request and then accepts every other one
// and never answers; it counts the chat requests it received.
func hungAfterOne(t *testing.T, sent *atomic.Int64) *engine {
	t.Helper()
	return simVLLM(t, sim.Faults{HangAfter: 1, Counted: func(r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
			sent.Add(1)
			return true
		}
		return false
	}}, "qwen")
}

// replicaByID finds a replica of the gateway's table.
func replicaByID(t *testing.T, gw *gateway.Server, id string) *gateway.Replica {
	t.Helper()
	for _, r := range gw.Table().Replicas() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no replica %s in the table", id)
	return nil
}

// run sends n requests from workers goroutines and returns the status of each.
func run(t *testing.T, n, workers int, send func(i int) int) []int {
	t.Helper()
	codes := make([]int, n)
	jobs := make(chan int, n)
	for i := range n {
		jobs <- i
	}
	close(jobs)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				codes[i] = send(i)
			}
		})
	}
	wg.Wait()
	return codes
}

func lost(codes []int) int {
	n := 0
	for _, c := range codes {
		if c != http.StatusOK {
			n++
		}
	}
	return n
}

// TestPerTryTimeoutFailsOver: with one of two replicas hung, retry.perTryTimeout cuts each
// attempt on it and the request fails over: no request is lost, streaming or not, although
// the header timeout (120 s) and the total deadline are far longer. The healthy replica
// books no failure.
func TestPerTryTimeoutFailsOver(t *testing.T) {
	var sent atomic.Int64
	hung := hungAfterOne(t, &sent)
	ok := simVLLM(t, sim.Faults{}, "qwen")
	gw, url := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  retry: {attempts: 3, perTryTimeout: 200ms}
  limits: {timeout: 8s}
  models:
  - name: qwen
    targets: [{url: %q}, {url: %q}]
`, hung.URL, ok.URL), gateway.Options{})
	healthy := replicaByID(t, gw, ok.URL)
	var okFailures atomic.Int64
	codes := run(t, 24, 8, func(i int) int {
		body := chat("qwen", "hi")
		if i%2 == 1 {
			body = `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}`
		}
		resp, got := post(t, url+"/v1/chat/completions", body)
		if resp.StatusCode != 200 {
			t.Logf("request %d: %d %s", i, resp.StatusCode, got)
		} else if i%2 == 1 && !strings.HasSuffix(got, "data: [DONE]\n\n") {
			t.Errorf("stream %d is incomplete: %q", i, got)
		}
		if s := healthy.Snapshot(); s.Failures > 0 || s.Ejected {
			okFailures.Add(1)
		}
		return resp.StatusCode
	})
	if n := lost(codes); n != 0 {
		t.Errorf("%d of %d requests lost with one replica of two hung (the hung one received %d)", n, len(codes), sent.Load())
	}
	if n := okFailures.Load(); n != 0 {
		t.Errorf("the healthy replica had failures booked (or was ejected) after %d requests: %+v", n, healthy.Snapshot())
	}
}

// TestTotalDeadlineBooksNoFailure: a request whose total deadline passes on a hung replica
// stops there (504) and books nothing against the replica it did not really try; the
// healthy replica is never ejected, and the hung one is, by its own timeouts.
func TestTotalDeadlineBooksNoFailure(t *testing.T) {
	var sent atomic.Int64
	hung := hungAfterOne(t, &sent)
	ok := simVLLM(t, sim.Faults{}, "qwen")
	gw, url := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  limits: {timeout: 300ms}
  models:
  - name: qwen
    targets: [{url: %q}, {url: %q}]
`, hung.URL, ok.URL), gateway.Options{})
	healthy, wedged := replicaByID(t, gw, ok.URL), replicaByID(t, gw, hung.URL)
	start := time.Now()
	var lostN int
	for i := range 24 {
		resp, body := post(t, url+"/v1/chat/completions", chat("qwen", "hi"))
		if resp.StatusCode != 200 {
			lostN++
			if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, `"code":"gateway_timeout"`) {
				t.Errorf("request %d: want 504 gateway_timeout when the total deadline passes, got %d %s", i, resp.StatusCode, body)
			}
		}
		if s := healthy.Snapshot(); s.Failures > 0 || s.Ejected {
			t.Fatalf("after request %d the healthy replica has a failure booked: %+v", i, s)
		}
	}
	// The hung replica is ejected by its own timeouts (3); a machine so slow that the 5 s
	// ejection runs out first lets one more burst through.
	limit := 3
	if time.Since(start) >= 5*time.Second {
		limit += 3
	}
	if lostN > limit {
		t.Errorf("%d of 24 requests lost (want at most %d): the hung replica was not ejected; its state %+v", lostN, limit, wedged.Snapshot())
	}
}

// upstream is a test server answering with handler h.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

const goodChat = `{"id":"ok","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// rawClose writes raw bytes on the hijacked connection and closes it.
func rawClose(w http.ResponseWriter, raw string) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	_, _ = buf.WriteString(raw)
	_ = buf.Flush()
	conn.Close()
}

// TestTruncatedBody: an upstream answer cut short is never passed on as a complete 200.
// Before the first byte reaches the client it is retried on the fallback (whose name the
// route header then carries); with nowhere else to go the client gets a 502 in OpenAI's
// shape; a stream cut after its first byte ends with an error event.
func TestTruncatedBody(t *testing.T) {
	short := upstream(t, func(w http.ResponseWriter, r *http.Request) { // closed before its Content-Length
		rawClose(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"+goodChat[:60])
	})
	halfJSON := upstream(t, func(w http.ResponseWriter, r *http.Request) { // no length, closed before the JSON ends
		rawClose(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"+goodChat[:60])
	})
	emptyStream := upstream(t, func(w http.ResponseWriter, r *http.Request) { // headers, then nothing
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
	})
	cutStream := upstream(t, func(w http.ResponseWriter, r *http.Request) { // one event, no [DONE]
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"he"}}]}`+"\n\n")
	})
	cutNDJSON := upstream(t, func(w http.ResponseWriter, r *http.Request) { // an Ollama stream without its done line
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, `{"model":"m","message":{"role":"assistant","content":"he"},"done":false}`+"\n")
	})
	var goodCalls atomic.Int64
	good := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return // the health checker's probes
		}
		goodCalls.Add(1)
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"}}]}`+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, goodChat)
	})
	route := func(name, primary, fallback string) string {
		s := fmt.Sprintf("  - name: %s\n    targets: [{url: %q}]\n", name, primary)
		if fallback != "" {
			s += fmt.Sprintf("    fallback: [{url: %q}]\n", fallback)
		}
		return s
	}
	yaml := "apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n" +
		route("short", short, good) + route("half", halfJSON, good) + route("empty", emptyStream, good) +
		route("short-only", short, "") + route("half-only", halfJSON, "") + route("cut", cutStream, "") +
		fmt.Sprintf("  - name: ndjson\n    targets: [{url: %q, api: ollama}]\n", cutNDJSON)
	_, url := startGateway(t, yaml, gateway.Options{})

	stream := func(model string) string {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":true}`, model)
	}
	for _, tt := range []struct {
		name, body string
	}{
		{"closed before Content-Length", chat("short", "hi")},
		{"closed before the JSON ends", chat("half", "hi")},
		{"stream closed before its first byte", stream("empty")},
	} {
		t.Run("retried/"+tt.name, func(t *testing.T) {
			before := goodCalls.Load()
			resp, body := post(t, url+"/v1/chat/completions", tt.body)
			if resp.StatusCode != 200 || !strings.Contains(body, "hello") {
				t.Fatalf("want the fallback's complete answer, got %d %q", resp.StatusCode, body)
			}
			if goodCalls.Load() != before+1 {
				t.Errorf("the fallback was called %d times, want 1", goodCalls.Load()-before)
			}
			route := resp.Header.Get("X-Citadel-Route")
			if !strings.Contains(route, "service="+good+" ") || !strings.Contains(route, "attempts=2") {
				t.Errorf("x-citadel-route %q: want the fallback that answered (service=%s) after 2 attempts", route, good)
			}
		})
	}
	for _, model := range []string{"short-only", "half-only"} {
		t.Run("502/"+model, func(t *testing.T) {
			resp, body := post(t, url+"/v1/chat/completions", chat(model, "hi"))
			var e struct {
				Error struct {
					Message, Type, Code string
				}
			}
			if resp.StatusCode != http.StatusBadGateway || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "upstream_truncated" || e.Error.Message == "" {
				t.Errorf("want 502 with an OpenAI error upstream_truncated, got %d %q", resp.StatusCode, body)
			}
		})
	}
	t.Run("SSE cut after the first byte", func(t *testing.T) {
		resp, body := post(t, url+"/v1/chat/completions", stream("cut"))
		if resp.StatusCode != 200 || !strings.Contains(body, `"content":"he"`) || !strings.Contains(body, `"code":"upstream_stream_error"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Errorf("want the partial stream ended by an error event, got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("NDJSON cut after the first byte", func(t *testing.T) {
		resp, body := post(t, url+"/api/chat", `{"model":"ndjson","messages":[{"role":"user","content":"hi"}]}`)
		sc := bufio.NewScanner(strings.NewReader(body))
		var last string
		for sc.Scan() {
			last = sc.Text()
		}
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(last), &e) != nil || e.Error == "" {
			t.Errorf("want the partial NDJSON stream ended by an {\"error\"} line, got %d %q", resp.StatusCode, body)
		}
	})
}

// TestURLTargetsBalancedByLoad: two url targets of one model, one engine 10× slower than the
// other: the slow one gets far less than half of the traffic (by in-flight requests), and
// the route header names the target that answered.
func TestURLTargetsBalancedByLoad(t *testing.T) {
	simAt := func(slowdown float64) *engine {
		s, err := sim.NewOpenAI(sim.Config{Plan: plan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096}),
			ServedModelNames: []string{"qwen"}, TimeScale: 1, Slowdown: slowdown, FixedTTFT: 20 * time.Millisecond, FixedITL: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return serveEngine(t, s)
	}
	fast, slow := simAt(1), simAt(10)
	_, url := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    targets: [{url: %q}, {url: %q}]\n", fast.URL, slow.URL),
		gateway.Options{})
	const n = 120
	var toSlow, toFast atomic.Int64
	codes := run(t, n, 8, func(i int) int {
		resp, body := post(t, url+"/v1/chat/completions", chat("qwen", "hi"))
		route := resp.Header.Get("X-Citadel-Route")
		for _, e := range []struct {
			url string
			n   *atomic.Int64
		}{{slow.URL, &toSlow}, {fast.URL, &toFast}} {
			if strings.Contains(route, "replica="+e.url+" ") {
				e.n.Add(1)
				if !strings.Contains(route, "service="+e.url+" ") {
					t.Errorf("request %d: x-citadel-route %q: the service is not the target that answered", i, route)
				}
			}
		}
		if resp.StatusCode != 200 {
			t.Logf("request %d: %d %s", i, resp.StatusCode, body)
		}
		return resp.StatusCode
	})
	if l := lost(codes); l != 0 {
		t.Fatalf("%d requests failed", l)
	}
	t.Logf("fast %d, slow %d of %d", toFast.Load(), toSlow.Load(), n)
	if share := float64(toSlow.Load()) / n; share > 0.3 {
		t.Errorf("the 10× slower target got %.0f%% of the requests (%d of %d); balanced by load it gets far less than half", 100*share, toSlow.Load(), n)
	}
}

// TestURLTargetsBalancedByEngineLoad: url targets that name their engine are scraped for its
// load metrics, and a request goes to the one whose engine reports less load, although the
// gateway has nothing in flight on either.
func TestURLTargetsBalancedByEngineLoad(t *testing.T) {
	vllm := func(waiting int, served *atomic.Int64) string {
		return upstream(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/health":
			case "/metrics":
				fmt.Fprintf(w, "vllm:num_requests_running 4\nvllm:num_requests_waiting %d\nvllm:kv_cache_usage_perc 0.5\n", waiting)
			case "/v1/chat/completions":
				served.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, goodChat)
			default:
				http.NotFound(w, r)
			}
		})
	}
	var toBusy, toIdle atomic.Int64
	busy, idle := vllm(50, &toBusy), vllm(0, &toIdle)
	gw, url := startGateway(t, fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    targets: [{url: %q, engine: vllm}, {url: %q, engine: vllm}]\n", busy, idle),
		gateway.Options{ScrapeInterval: 50 * time.Millisecond})
	reps := []*gateway.Replica{replicaByID(t, gw, busy), replicaByID(t, gw, idle)}
	fresh := func() bool { return reps[0].Snapshot().Fresh && reps[1].Snapshot().Fresh }
	deadline := time.Now().Add(30 * time.Second)
	sent := 0
	for sent < 20 && time.Now().Before(deadline) {
		if !fresh() {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if resp, body := post(t, url+"/v1/chat/completions", chat("qwen", "hi")); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		sent++
	}
	if sent < 20 {
		t.Fatalf("the engines' metrics were fresh for only %d requests in 30 s", sent)
	}
	// A scrape may go stale between the check and the pick (the in-flight tie is then a coin
	// toss): allow one such.
	if n := toBusy.Load(); n > 1 {
		t.Errorf("the engine with 50 waiting requests got %d of %d requests, the idle one %d", n, sent, toIdle.Load())
	}
}

// TestURLTargetEngineValidated: a url target's engine is one Citadel knows, and only url
// targets name one.
func TestURLTargetEngineValidated(t *testing.T) {
	for _, tt := range []struct{ target, want string }{
		{`{url: "http://127.0.0.1:8000", engine: tgi}`, "targets[0].engine"},
		{`{service: qwen, engine: vllm}`, "is for url targets"},
	} {
		_, errs := config.Decode(strings.NewReader("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    targets: ["+tt.target+"]\n"), "routes.yaml")
		if err := errs.Err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("target %s: want an error naming %q, got %v", tt.target, tt.want, err)
		}
	}
	if _, errs := config.Decode(strings.NewReader("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n  - name: qwen\n    targets: [{url: \"http://127.0.0.1:8000\", engine: sglang}]\n"), "routes.yaml"); errs.Err() != nil {
		t.Errorf("engine sglang on a url target: %v", errs.Err())
	}
}

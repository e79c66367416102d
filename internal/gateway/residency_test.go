package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/npmtest"
	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/sim"
)

// fakeAdmitter is a residency manager the test steers: the services it manages, a gate
// that holds every Acquire until it is opened (sending progress every tick meanwhile),
// refusals by service, states. It counts admissions and releases, and fails the test when a
// release is called twice.
type fakeAdmitter struct {
	t        *testing.T
	onDemand map[string]bool
	tick     time.Duration

	mu          sync.Mutex
	gate        chan struct{} // nil: admit at once
	refuse      map[string]*residency.Refusal
	refuseAfter time.Duration // a refusal comes after holding this long (progress sent meanwhile)
	states      []residency.State
	loads       []string
	unloads     []string

	entered  chan string // each Acquire's service, when it starts
	admitted atomic.Int64
	gaveUp   atomic.Int64 // Acquires that ended with their context
	released atomic.Int64
}

func newFake(t *testing.T, services ...string) *fakeAdmitter {
	f := &fakeAdmitter{t: t, onDemand: map[string]bool{}, tick: 50 * time.Millisecond, refuse: map[string]*residency.Refusal{},
		entered: make(chan string, 64)}
	for _, s := range services {
		f.onDemand[s] = true
	}
	return f
}

func (f *fakeAdmitter) OnDemand(service string) bool { return f.onDemand[service] }

func (f *fakeAdmitter) Acquire(ctx context.Context, service string, progress func(residency.Progress)) (func(), error) {
	select {
	case f.entered <- service:
	default:
	}
	f.mu.Lock()
	gate, refusal, after := f.gate, f.refuse[service], f.refuseAfter
	f.mu.Unlock()
	if refusal != nil && after == 0 {
		return nil, refusal
	}
	if gate != nil || refusal != nil {
		tick := time.NewTicker(f.tick)
		defer tick.Stop()
		var timeout <-chan time.Time
		if refusal != nil {
			timeout = time.After(after)
		}
	loop:
		for p := 0.0; ; p += 0.1 {
			if progress != nil {
				progress(residency.Progress{Model: service, Progress: min(p, 0.99), ETA: 3 * time.Second})
			}
			select {
			case <-gate:
				break loop
			case <-timeout:
				return nil, refusal
			case <-ctx.Done():
				f.gaveUp.Add(1)
				return nil, ctx.Err()
			case <-tick.C:
			}
		}
	}
	f.admitted.Add(1)
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			f.t.Errorf("release of %s called twice", service)
			return
		}
		f.released.Add(1)
	}, nil
}

func (f *fakeAdmitter) Load(_ context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads = append(f.loads, service)
	if r := f.refuse[service]; r != nil {
		return r
	}
	return nil
}

func (f *fakeAdmitter) Unload(_ context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unloads = append(f.unloads, service)
	return nil
}

func (f *fakeAdmitter) States() []residency.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.states)
}

func (f *fakeAdmitter) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = make(chan struct{})
}

func (f *fakeAdmitter) open() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
}

// balanced waits (bounded) until every admission was released, and reports the counts.
func (f *fakeAdmitter) balanced(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.released.Load() != f.admitted.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a, r := f.admitted.Load(), f.released.Load(); a != want || r != want {
		t.Errorf("admitted %d, released %d; want %d and %d", a, r, want, want)
	}
}

func odRoute(models string) string {
	return "apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nspec:\n  models:\n" + models
}

// sseStream is a stream read as the SSE spec says: comment lines (":" first) kept apart,
// "data:" fields joined per event, an event dispatched at a blank line.
type sseStream struct {
	comments []string
	events   []string
	order    []string // "comment" or "event", in arrival order
}

func readSSE(r io.Reader) sseStream {
	var s sseStream
	var data []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			if data != nil {
				s.events = append(s.events, strings.Join(data, "\n"))
				s.order = append(s.order, "event")
				data = nil
			}
		case strings.HasPrefix(line, ":"):
			s.comments = append(s.comments, line)
			s.order = append(s.order, "comment")
		default:
			field, value, _ := strings.Cut(line, ":")
			if field == "data" {
				data = append(data, strings.TrimPrefix(value, " "))
			}
		}
	}
	return s
}

// TestResidencyHoldsUntilLoaded: a request to an on-demand service waits while it loads and
// is answered once the manager admits it; the wait is in the metrics, not in the overhead.
func TestResidencyHoldsUntilLoaded(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, e.URL)
	f.close()
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n", e.URL)), gateway.Options{Residency: f})
	go func() {
		<-f.entered
		time.Sleep(300 * time.Millisecond)
		f.open()
	}()
	start := time.Now()
	resp, body := post(t, gw+"/v1/chat/completions", chat("m", "hi"))
	if resp.StatusCode != 200 || !strings.Contains(body, `"chat.completion"`) {
		t.Fatalf("held request: %d %s", resp.StatusCode, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %v, before the load ended", d)
	}
	if oh, err := strconv.ParseFloat(resp.Header.Get("X-Citadel-Overhead-Ms"), 64); err != nil || oh >= 250 {
		t.Errorf("x-citadel-overhead-ms %q counts the wait", resp.Header.Get("X-Citadel-Overhead-Ms"))
	}
	f.balanced(t, 1)
	_, metrics := get(t, gw+"/metrics")
	if !regexp.MustCompile(`citadel_gateway_residency_wait_seconds_count\{model="m",service="` + regexp.QuoteMeta(e.URL) + `"\} 1`).MatchString(metrics) {
		t.Errorf("no residency wait observed:\n%s", grep(metrics, "residency"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestResidencyRefusal: a refused request is 429 or 503 with Retry-After in whole seconds,
// rounded up, and the reason in the front's error shape; the refusal is counted.
func TestResidencyRefusal(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, e.URL)
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n", e.URL)), gateway.Options{Residency: f})
	for _, tc := range []struct {
		status int
		reason string
		after  time.Duration
		retry  string
	}{
		{429, "QueueFull", 1200 * time.Millisecond, "2"},
		{503, "WaitExceeded", 3 * time.Second, "3"},
	} {
		f.mu.Lock()
		f.refuse[e.URL] = &residency.Refusal{Status: tc.status, RetryAfter: tc.after, Reason: tc.reason, Message: "64 requests are queued for qwen"}
		f.mu.Unlock()
		resp, body := post(t, gw+"/v1/chat/completions", chat("m", "hi"))
		var oe struct {
			Error struct{ Message, Type, Code string }
		}
		_ = json.Unmarshal([]byte(body), &oe)
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retry || oe.Error.Code != tc.reason ||
			!strings.Contains(oe.Error.Message, "64 requests are queued") {
			t.Errorf("OpenAI front, %s: %d Retry-After %q %s", tc.reason, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		resp, body = post(t, gw+"/api/chat", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
		var ol struct{ Error string }
		_ = json.Unmarshal([]byte(body), &ol)
		if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retry || !strings.Contains(ol.Error, tc.reason) ||
			!strings.Contains(ol.Error, "64 requests are queued") {
			t.Errorf("Ollama front, %s: %d Retry-After %q %s", tc.reason, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	f.balanced(t, 0)
	_, metrics := get(t, gw+"/metrics")
	if !strings.Contains(metrics, `citadel_gateway_residency_refusals_total{model="m",reason="QueueFull",service="`+e.URL+`"} 2`) {
		t.Errorf("refusals not counted:\n%s", grep(metrics, "residency"))
	}
}

// TestResidencyRefusalFailsOver: a target that refuses is skipped for the route's next one.
func TestResidencyRefusalFailsOver(t *testing.T) {
	a := simVLLM(t, sim.Faults{}, "qwen")
	b := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, a.URL)
	f.refuse[a.URL] = &residency.Refusal{Status: 503, RetryAfter: time.Second, Reason: "WaitExceeded", Message: "waited 120s"}
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}], fallback: [{url: %q, model: qwen}]}\n", a.URL, b.URL)),
		gateway.Options{Residency: f})
	resp, body := post(t, gw+"/v1/chat/completions", chat("m", "hi"))
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("X-Citadel-Route"), b.URL) {
		t.Fatalf("refused target not failed over: %d %s %s", resp.StatusCode, resp.Header.Get("X-Citadel-Route"), body)
	}
	f.balanced(t, 0)
}

// TestResidencyStreamProgress: a held streaming request gets comment lines, at most one a
// second, then the engine's stream, which a spec-following SSE reader reads whole.
func TestResidencyStreamProgress(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, e.URL)
	f.close()
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n", e.URL)), gateway.Options{Residency: f})
	go func() {
		<-f.entered
		time.Sleep(1500 * time.Millisecond)
		f.open()
	}()
	resp, err := http.Post(gw+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := readSSE(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	re := regexp.MustCompile(`^: loading m \d{1,2}% eta 3s$`)
	if len(s.comments) < 1 || len(s.comments) > 2 {
		t.Errorf("%d comment lines in a 1.5 s wait with progress every 50 ms, want 1 or 2 (one a second): %q", len(s.comments), s.comments)
	}
	for _, c := range s.comments {
		if !re.MatchString(c) {
			t.Errorf("comment %q is not `: loading m NN%% eta 3s`", c)
		}
	}
	if len(s.order) == 0 || s.order[0] != "comment" || slices.Index(s.order, "event") < len(s.comments) {
		t.Errorf("comments do not all come before the events: %v", s.order)
	}
	if len(s.events) < 2 || s.events[len(s.events)-1] != "[DONE]" {
		t.Fatalf("events %q", s.events)
	}
	var text strings.Builder
	for _, ev := range s.events[:len(s.events)-1] {
		var ch struct {
			Object  string
			Choices []struct{ Delta struct{ Content string } }
		}
		if err := json.Unmarshal([]byte(ev), &ch); err != nil || ch.Object != "chat.completion.chunk" {
			t.Fatalf("event %q is not a chunk: %v", ev, err)
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if text.Len() == 0 {
		t.Error("the stream carried no text")
	}
	f.balanced(t, 1)
}

// TestResidencyStreamRefusedAfterProgress: a wait refused after the comments committed the
// stream ends it with an error event and [DONE], as a mid-stream failure does.
func TestResidencyStreamRefusedAfterProgress(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, e.URL)
	f.refuse[e.URL] = &residency.Refusal{Status: 503, RetryAfter: 2 * time.Second, Reason: "WaitExceeded", Message: "the load did not end within 120s"}
	f.refuseAfter = 300 * time.Millisecond
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n", e.URL)), gateway.Options{Residency: f})
	resp, body := post(t, gw+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	s := readSSE(strings.NewReader(body))
	if resp.StatusCode != 200 || len(s.comments) == 0 || len(s.events) != 2 || s.events[1] != "[DONE]" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	var oe struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal([]byte(s.events[0]), &oe); err != nil || oe.Error.Code != "WaitExceeded" || !strings.Contains(oe.Error.Message, "did not end within 120s") {
		t.Errorf("error event %q", s.events[0])
	}
	// Without stream, nothing is committed: the refusal is a status.
	resp, _ = post(t, gw+"/v1/chat/completions", chat("m", "hi"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("non-streaming refusal after a wait: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	f.balanced(t, 0)
}

// TestResidencyReleaseOncePerAdmission: every admission is released exactly once, whatever
// ends the request: an upstream error, a failover between on-demand targets, a client that
// leaves mid-stream or while held.
func TestResidencyReleaseOncePerAdmission(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, `{"error":{"message":"engine broke"}}`, 500)
	}))
	defer bad.Close()
	good := simVLLM(t, sim.Faults{}, "qwen")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 100; i++ {
			if _, err := io.WriteString(w, `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}`+"\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer slow.Close()
	f := newFake(t, bad.URL, good.URL, slow.URL)
	_, gw := startGateway(t, odRoute(fmt.Sprintf(`  - {name: broken, targets: [{url: %q}]}
  - {name: over, targets: [{url: %q}], fallback: [{url: %q, model: qwen}]}
  - {name: slow, targets: [{url: %q}]}
`, bad.URL, bad.URL, good.URL, slow.URL)), gateway.Options{Residency: f})

	if resp, body := post(t, gw+"/v1/chat/completions", chat("broken", "hi")); resp.StatusCode != 503 {
		t.Errorf("upstream error: %d %s", resp.StatusCode, body)
	}
	f.balanced(t, 1)
	if resp, body := post(t, gw+"/v1/chat/completions", chat("over", "hi")); resp.StatusCode != 200 {
		t.Errorf("failover: %d %s", resp.StatusCode, body)
	}
	f.balanced(t, 3) // bad, then good

	// A client that goes away mid-stream.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions",
		strings.NewReader(`{"model":"slow","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	f.balanced(t, 4)

	// A client that goes away while held: never admitted, nothing to release.
	for len(f.entered) > 0 {
		<-f.entered
	}
	f.close()
	ctx, cancel = context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(chat("slow", "hi")))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-f.entered
	cancel()
	<-done
	for deadline := time.Now().Add(5 * time.Second); f.gaveUp.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if f.gaveUp.Load() != 1 {
		t.Error("the held request's Acquire did not end when its client went away")
	}
	f.open()
	f.balanced(t, 4)
}

// TestResidencyModelStatus: /v1/models shows on-demand models' states in llama.cpp's shape;
// a model with a dedicated target has none. /api/ps lists the resident ones.
func TestResidencyModelStatus(t *testing.T) {
	a := simVLLM(t, sim.Faults{}, "qwen")
	b := simVLLM(t, sim.Faults{}, "qwen")
	c := simVLLM(t, sim.Faults{}, "qwen")
	d := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, a.URL, b.URL, c.URL)
	zone := time.FixedZone("", -7*3600)
	expires := time.Date(2026, 1, 2, 3, 4, 5, 0, zone)
	f.states = []residency.State{
		{Service: a.URL, Model: "qwen", Value: residency.StateLoaded, SizeVRAM: 5 << 30, ExpiresAt: expires},
		{Service: b.URL, Model: "qwen", Value: residency.StateLoading, Progress: 0.4234, ETA: 2500 * time.Millisecond, Reason: "Waking: level 1"},
		{Service: c.URL, Model: "qwen", Value: residency.StateFailed, Reason: "LoadFailed: the engine exited with code 1"},
	}
	_, gw := startGateway(t, odRoute(fmt.Sprintf(`  - {name: loaded, targets: [{url: %q}]}
  - {name: loading, targets: [{url: %q}]}
  - {name: failed, targets: [{url: %q}]}
  - {name: dedicated, targets: [{url: %q}]}
`, a.URL, b.URL, c.URL, d.URL)), gateway.Options{Residency: f})
	_, body := get(t, gw+"/v1/models")
	var list struct {
		Data []struct {
			ID     string
			Status json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"loaded":    `{"value":"loaded"}`,
		"loading":   `{"value":"loading","progress":0.42,"eta_seconds":3,"reason":"Waking: level 1"}`,
		"failed":    `{"value":"unloaded","failed":true,"reason":"LoadFailed: the engine exited with code 1"}`,
		"dedicated": ``,
	}
	for _, m := range list.Data {
		if w, ok := want[m.ID]; ok && string(m.Status) != w {
			t.Errorf("%s: status %s, want %s", m.ID, m.Status, w)
		}
	}
	if _, one := get(t, gw+"/v1/models/loading"); !strings.Contains(one, `"status":{"value":"loading","progress":0.42`) {
		t.Errorf("/v1/models/loading: %s", one)
	}

	_, ps := get(t, gw+"/api/ps")
	var running struct {
		Models []struct {
			Name      string
			SizeVRAM  int64  `json:"size_vram"`
			ExpiresAt string `json:"expires_at"`
		}
	}
	if err := json.Unmarshal([]byte(ps), &running); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range running.Models {
		got[m.Name] = fmt.Sprintf("%d %s", m.SizeVRAM, m.ExpiresAt)
	}
	if got["loaded:latest"] != fmt.Sprintf("%d 2026-01-02T03:04:05-07:00", 5<<30) {
		t.Errorf("/api/ps loaded: %q (%s)", got["loaded:latest"], ps)
	}
	if _, ok := got["loading:latest"]; !ok {
		t.Errorf("/api/ps leaves out the loading model: %s", ps)
	}
	if _, ok := got["failed:latest"]; ok {
		t.Errorf("/api/ps lists a model that is not resident: %s", ps)
	}
	if _, ok := got["dedicated:latest"]; !ok {
		t.Errorf("/api/ps leaves out a dedicated model: %s", ps)
	}
}

// TestResidencyOllamaLoadUnload: an empty prompt loads, keep_alive 0 unloads, as Ollama
// answers them; keep_alive 0 on an ordinary request unloads after it.
func TestResidencyOllamaLoadUnload(t *testing.T) {
	e := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, e.URL)
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n", e.URL)), gateway.Options{Residency: f})
	for _, tc := range []struct{ path, body, reason string }{
		{"/api/generate", `{"model":"m"}`, "load"},
		{"/api/chat", `{"model":"m:latest","messages":[]}`, "load"},
		{"/api/generate", `{"model":"m","keep_alive":0}`, "unload"},
	} {
		resp, body := post(t, gw+tc.path, tc.body)
		var out struct {
			Model      string
			DoneReason string `json:"done_reason"`
			Done       bool
			CreatedAt  string `json:"created_at"`
		}
		_ = json.Unmarshal([]byte(body), &out)
		if resp.StatusCode != 200 || !out.Done || out.DoneReason != tc.reason || out.CreatedAt == "" {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, resp.StatusCode, body)
		}
	}
	f.mu.Lock()
	loads, unloads := slices.Clone(f.loads), slices.Clone(f.unloads)
	f.mu.Unlock()
	if !slices.Equal(loads, []string{e.URL, e.URL}) || !slices.Equal(unloads, []string{e.URL}) {
		t.Errorf("loads %v, unloads %v", loads, unloads)
	}
	resp, body := post(t, gw+"/api/generate", `{"model":"m","prompt":"hi","keep_alive":0,"stream":false,"options":{"num_predict":2}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.unloads)
		f.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keep_alive 0 on a request did not unload after it (%d unloads)", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.balanced(t, 1)

	f.mu.Lock()
	f.refuse[e.URL] = &residency.Refusal{Status: 429, RetryAfter: 500 * time.Millisecond, Reason: "QueueFull", Message: "too many loads"}
	f.mu.Unlock()
	if resp, body := post(t, gw+"/api/generate", `{"model":"m"}`); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("refused load: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestResidencyOllamaLoadDuration: the Ollama front sends nothing while held and reports the
// wait as load_duration (and in total_duration) of the final object, for an OpenAI engine
// (translated) and an Ollama one (passed through), streamed or not.
func TestResidencyOllamaLoadDuration(t *testing.T) {
	vllm := simVLLM(t, sim.Faults{}, "qwen")
	ol := simOllama(t, "qwen2.5:7b")
	f := newFake(t, vllm.URL, ol.URL)
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: v, targets: [{url: %q, model: qwen}]}\n  - {name: o, targets: [{url: %q, api: ollama, model: \"qwen2.5:7b\"}]}\n", vllm.URL, ol.URL)),
		gateway.Options{Residency: f})
	const hold = 250 * time.Millisecond
	for _, model := range []string{"v", "o"} {
		for _, stream := range []bool{true, false} {
			f.close()
			go func() {
				<-f.entered
				time.Sleep(hold)
				f.open()
			}()
			resp, body := post(t, gw+"/api/chat", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":%v,"options":{"num_predict":3}}`, model, stream))
			lines := strings.Split(strings.TrimSpace(body), "\n")
			var last struct {
				Done          bool
				LoadDuration  time.Duration `json:"load_duration"`
				TotalDuration time.Duration `json:"total_duration"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); resp.StatusCode != 200 || err != nil || !last.Done {
				t.Fatalf("%s stream=%v: %d %s", model, stream, resp.StatusCode, body)
			}
			if last.LoadDuration < hold || last.TotalDuration < last.LoadDuration || last.LoadDuration > 10*time.Second {
				t.Errorf("%s stream=%v: load_duration %v, total_duration %v; want at least the %v wait", model, stream, last.LoadDuration, last.TotalDuration, hold)
			}
		}
	}
	f.balanced(t, 4)
}

// residencyNode streams a chat with the official openai SDK, twice: argv[3] is the model
// that loads, argv[4] one whose wait is refused after its progress comments.
const residencyNode = `
import OpenAI from "openai";
const [baseURL, model, refused] = process.argv.slice(1);
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 });
const messages = [{ role: "user", content: "hi" }];
const out = {};
let content = "", chunks = 0;
for await (const chunk of await client.chat.completions.create({ model, messages, max_tokens: 4, stream: true })) {
  chunks++;
  for (const c of chunk.choices) content += c.delta?.content ?? "";
}
out.loaded = { content, chunks };
try {
  for await (const chunk of await client.chat.completions.create({ model: refused, messages, stream: true })) {}
  out.refused = { error: "no error" };
} catch (e) {
  out.refused = { api_error: e instanceof OpenAI.APIError, code: e.code, message: e.message };
}
console.log(JSON.stringify(out));
`

// TestResidencyOpenAINodeClient: the official openai SDK reads a stream that started with
// progress comments as any other, and a wait refused after them as an APIError with the
// manager's reason.
func TestResidencyOpenAINodeClient(t *testing.T) {
	dir := npmtest.Dir(t, "openai")
	a := simVLLM(t, sim.Faults{}, "qwen")
	b := simVLLM(t, sim.Faults{}, "qwen")
	f := newFake(t, a.URL, b.URL)
	f.tick = 100 * time.Millisecond
	f.refuse[b.URL] = &residency.Refusal{Status: 503, RetryAfter: time.Second, Reason: "WaitExceeded", Message: "the load did not end within 120s"}
	f.refuseAfter = 300 * time.Millisecond
	f.close()
	_, gw := startGateway(t, odRoute(fmt.Sprintf("  - {name: m, targets: [{url: %q, model: qwen}]}\n  - {name: r, targets: [{url: %q, model: qwen}]}\n", a.URL, b.URL)),
		gateway.Options{Residency: f})
	go func() {
		<-f.entered
		time.Sleep(1200 * time.Millisecond)
		f.open()
	}()
	got := npmtest.Run[struct {
		Loaded struct {
			Content string
			Chunks  int
		}
		Refused struct {
			APIError bool `json:"api_error"`
			Code     string
			Message  string
		}
	}](t, dir, "--input-type=module", "-e", residencyNode, gw+"/v1", "m", "r")
	if got.Loaded.Content == "" || got.Loaded.Chunks < 2 {
		t.Errorf("stream after progress comments: %+v", got.Loaded)
	}
	if !got.Refused.APIError || got.Refused.Code != "WaitExceeded" || !strings.Contains(got.Refused.Message, "120s") {
		t.Errorf("refused after progress comments: %+v", got.Refused)
	}
	f.balanced(t, 1)
}

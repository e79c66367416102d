package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestProbeTarget(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		api, engine, want string
		lenient           bool
	}{
		{APIOpenAI, "vllm", "/health", false},
		{APIOpenAI, "sglang", "/health", false},
		{APIOpenAI, "llamacpp", "/health", false},
		{APIOpenAI, "ollama", "/", false},
		{APIOllama, "", "/", false},
		{APIOllama, "vllm", "/", false},
		{APIOpenAI, "", "/v1/models", true},
		{"", "", "/v1/models", true},
	} {
		if got, lenient := probeTarget(&Replica{API: tt.api, Engine: tt.engine}); got != tt.want || lenient != tt.lenient {
			t.Errorf("probeTarget(api %q, engine %q) = %q %t, want %q %t", tt.api, tt.engine, got, lenient, tt.want, tt.lenient)
		}
	}
}

// noLeaks checks, once the test and its cleanups (servers closing) are done, that every
// goroutine it started has ended.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// eventually polls cond until it holds, or fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// engine is a fake upstream that records the paths it is asked for.
type engine struct {
	*httptest.Server
	mu    sync.Mutex
	paths map[string]int
}

func newEngine(t *testing.T, h http.HandlerFunc) *engine {
	e := &engine{paths: map[string]int{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.paths[r.Method+" "+r.URL.Path]++
		e.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *engine) count(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.paths[path]
}

func replicaAt(id, url, api, engine string) *Replica {
	r := &Replica{ID: id, BaseURL: url, API: api, Engine: engine}
	r.SetHealthy(true) // a static URL is assumed healthy until a probe fails
	return r
}

func TestHealth(t *testing.T) {
	noLeaks(t)
	var down atomic.Bool
	down.Store(true)
	good := newEngine(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	flaky := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	})
	slow := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
	})
	ollama := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("Ollama is running"))
	})
	hosted := newEngine(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"Incorrect API key provided"}}`, http.StatusUnauthorized)
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	reps := map[string]*Replica{
		"good":   replicaAt("good", good.URL, APIOpenAI, "vllm"),
		"flaky":  replicaAt("flaky", flaky.URL, APIOpenAI, "llamacpp"),
		"slow":   replicaAt("slow", slow.URL, APIOpenAI, "sglang"),
		"ollama": replicaAt("ollama", ollama.URL, APIOllama, ""),
		"hosted": replicaAt("hosted", hosted.URL, APIOpenAI, ""),
		"closed": replicaAt("closed", closed.URL, APIOpenAI, "vllm"),
	}
	list := []*Replica{reps["good"], reps["flaky"], reps["slow"], reps["ollama"], reps["hosted"], reps["closed"]}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	h := &Health{Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, Client: &http.Client{Transport: tr}}
	defer start(h.Run, list...)()

	snap := func(name string) ReplicaSnapshot { return reps[name].Snapshot() }
	eventually(t, "flaky (503), slow (timeout) and closed (refused) to be unhealthy", func() bool {
		return !snap("flaky").Healthy && !snap("slow").Healthy && !snap("closed").Healthy
	})
	eventually(t, "three probes of flaky", func() bool { return snap("flaky").Failures >= 3 })
	for name, want := range map[string]string{
		"flaky":  "GET /health answered 503 Service Unavailable",
		"slow":   "context deadline exceeded",
		"closed": "connection refused",
	} {
		if s := snap(name); !strings.Contains(s.LastError, want) {
			t.Errorf("%s: LastError %q, want it to say %q", name, s.LastError, want)
		}
	}
	if s := snap("closed"); !s.Ejected {
		t.Errorf("closed: not ejected after connection refused: %+v", s)
	}
	if s := snap("flaky"); !s.Ejected {
		t.Errorf("flaky: not ejected after %d failed probes: %+v", s.Failures, s)
	}
	for _, name := range []string{"good", "ollama", "hosted"} {
		if s := snap(name); !s.Healthy || s.Failures != 0 || !reps[name].Usable(time.Now()) {
			t.Errorf("%s: %+v, want healthy and usable", name, s)
		}
	}
	for e, path := range map[*engine]string{good: "GET /health", flaky: "GET /health", ollama: "GET /", hosted: "GET /v1/models"} {
		if e.count(path) == 0 {
			t.Errorf("%s was never asked for %s: %v", e.URL, path, e.paths)
		}
	}

	// flaky comes back: usable at once, its outage's ejection forgotten.
	down.Store(false)
	eventually(t, "flaky to recover", func() bool { return snap("flaky").Healthy })
	if s := snap("flaky"); s.Failures != 0 || s.Ejected || !reps["flaky"].Usable(time.Now()) {
		t.Errorf("flaky recovered: %+v, want no failures, not ejected, usable", s)
	}
}

// start runs a checker or a scraper over replicas; the function it returns stops it and
// waits for it to return.
func start(run func(context.Context, func() []*Replica), replicas ...*Replica) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		run(ctx, func() []*Replica { return replicas })
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}

// handlerTransport serves requests in memory, so that synctest's clock runs the checker.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// The checker probes every 2 s, and a probe that does not answer within 1 s fails.
func TestHealthTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var probes atomic.Int32
		var hang atomic.Bool
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			probes.Add(1)
			if hang.Load() {
				<-r.Context().Done()
				return
			}
			w.Write([]byte("ok"))
		})
		r := replicaAt("r", "http://engine", APIOpenAI, "vllm")
		hc := &Health{Client: &http.Client{Transport: handlerTransport{h}}}
		stop := start(hc.Run, r)
		defer stop()

		synctest.Wait()
		if n := probes.Load(); n != 1 {
			t.Fatalf("%d probes at the start, want 1", n)
		}
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if n := probes.Load(); n != 1 {
			t.Fatalf("%d probes before 2 s, want 1", n)
		}
		hang.Store(true)
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := probes.Load(); n != 2 {
			t.Fatalf("%d probes at 2 s, want 2", n)
		}
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if !r.Snapshot().Healthy {
			t.Fatalf("unhealthy before the probe's 1 s timeout")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if s := r.Snapshot(); s.Healthy || s.Failures != 1 || !strings.Contains(s.LastError, "deadline exceeded") {
			t.Fatalf("after the timeout: %+v, want unhealthy with 1 failure and a deadline error", s)
		}
	})
}

// Stopping the checker mid-probe is not the replica's failure.
func TestHealthStopIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		r := replicaAt("r", "http://engine", APIOpenAI, "vllm")
		hc := &Health{Client: &http.Client{Transport: handlerTransport{h}}}
		stop := start(hc.Run, r)
		time.Sleep(500 * time.Millisecond)
		stop()
		if s := r.Snapshot(); !s.Healthy || s.Failures != 0 {
			t.Errorf("after stopping mid-probe: %+v, want healthy, no failures", s)
		}
	})
}

// A slow replica gets one probe at a time; the others are not held up.
func TestHealthOneProbeAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var slowProbes, fastProbes atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Host == "slow" {
				slowProbes.Add(1)
				time.Sleep(5 * time.Second) // past the timeout
				return
			}
			fastProbes.Add(1)
		})
		slow, fast := replicaAt("slow", "http://slow", APIOpenAI, "vllm"), replicaAt("fast", "http://fast", APIOpenAI, "vllm")
		hc := &Health{Interval: time.Second, Timeout: 10 * time.Second, Client: &http.Client{Transport: handlerTransport{h}}}
		stop := start(hc.Run, slow, fast)
		time.Sleep(4500 * time.Millisecond)
		synctest.Wait()
		if s, f := slowProbes.Load(), fastProbes.Load(); s != 1 || f != 5 {
			t.Errorf("after 4.5 s: %d probes of the slow replica, %d of the fast; want 1 and 5", s, f)
		}
		stop()
	})
}

package residency

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const gb = int64(1) << 30

// clock is a fake clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fake is a mechanism that records loads and evictions and checks that no request of its
// service runs during an eviction.
type fake struct {
	name     string
	log      *swapLog
	inflight atomic.Int32
	gate     chan struct{} // when not nil, a load waits for it to close
	fail     error
}

type swapLog struct {
	mu     sync.Mutex
	events []string // "load A", "evict A"
	bad    []string // evictions with requests in flight
}

func (l *swapLog) add(e string) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *swapLog) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

func (f *fake) Load(ctx context.Context) (string, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return "fake", ctx.Err()
		}
	}
	if f.fail != nil {
		return "fake", f.fail
	}
	f.log.add("load " + f.name)
	return "fake", nil
}

func (f *fake) Evict(context.Context) (string, error) {
	if n := f.inflight.Load(); n > 0 {
		f.log.mu.Lock()
		f.log.bad = append(f.log.bad, fmt.Sprintf("%s evicted with %d requests in flight", f.name, n))
		f.log.mu.Unlock()
	}
	f.log.add("evict " + f.name)
	return StateSleeping, nil
}

type harness struct {
	m     *Manager
	clk   *clock
	log   *swapLog
	fakes map[string]*fake
	mu    sync.Mutex
	evs   []Event
}

// newHarness runs a manager with one GPU of budget bytes and services of size bytes each.
func newHarness(t *testing.T, budget int64, cfg Config, svcs ...Service) *harness {
	t.Helper()
	h := &harness{clk: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, log: &swapLog{}, fakes: map[string]*fake{}}
	cfg.Budget = map[int]int64{0: budget}
	cfg.Now = h.clk.Now
	cfg.Tick = 2 * time.Millisecond
	cfg.Progress = 5 * time.Millisecond
	cfg.Events = func(e Event) { h.mu.Lock(); h.evs = append(h.evs, e); h.mu.Unlock() }
	h.m = New(cfg)
	for _, s := range svcs {
		f := &fake{name: s.Model, log: h.log}
		h.fakes[s.Model] = f
		if s.Mechanism == nil {
			s.Mechanism = f
		}
		h.m.Set(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func svc7b(name string) Service {
	return Service{Name: "default/" + name, Model: name, GPUs: map[int]int64{0: 10 * gb}, LoadTime: 2 * time.Second}
}

// request acquires, holds the request for hold, and releases.
func (h *harness) request(ctx context.Context, model string, hold time.Duration) error {
	release, err := h.m.Acquire(ctx, "default/"+model, func(Progress) {})
	if err != nil {
		return err
	}
	f := h.fakes[model]
	f.inflight.Add(1)
	time.Sleep(hold)
	f.inflight.Add(-1)
	release()
	return nil
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) state(model string) State {
	st, _ := h.m.State("default/" + model)
	return st
}

func (h *harness) queued() int {
	n := 0
	for _, s := range h.m.States() {
		n += s.Queued
	}
	return n
}

// TestCollation: an interleaved burst over four models on a budget for one costs one load
// per model, not one per model change in the arrival order, and no request fails.
func TestCollation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget int64
	}{{"budget for one", 16 * gb}, {"budget for two", 20 * gb}} {
		t.Run(tc.name, func(t *testing.T) {
			models := []string{"a", "b", "c", "d"}
			var svcs []Service
			for _, m := range models {
				svcs = append(svcs, svc7b(m))
			}
			h := newHarness(t, tc.budget, Config{}, svcs...)
			gate := make(chan struct{})
			for _, f := range h.fakes {
				f.gate = gate
			}
			const n = 40 // a, b, c, d, a, b, … : 39 model changes in arrival order
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := h.request(context.Background(), models[i%4], 3*time.Millisecond); err != nil {
						errs <- err
					}
				}()
				eventually(t, "the request to be held", func() bool { return h.queued() == i+1 })
			}
			close(gate) // every request is held before the first load ends
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("request failed: %v", err)
			}
			if loads := h.log.count("load "); loads != 4 {
				t.Errorf("%d loads for a burst over 4 models, want 4: %v", loads, h.log.events)
			}
			if len(h.log.bad) > 0 {
				t.Errorf("evictions with requests in flight: %v", h.log.bad)
			}
		})
	}
}

// TestNeverEvictBusy: a load that needs a busy model's memory waits for its requests, says so,
// and loads once they end.
func TestNeverEvictBusy(t *testing.T) {
	h := newHarness(t, 16*gb, Config{}, svc7b("a"), svc7b("b"))
	relA, err := h.m.Acquire(context.Background(), "default/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.fakes["a"].inflight.Add(1)
	done := make(chan error, 1)
	go func() { done <- h.request(context.Background(), "b", 0) }()
	eventually(t, "b to wait for a", func() bool {
		return strings.Contains(h.state("b").Reason, "waiting for a to finish 1 requests")
	})
	// A new request to a stays held behind b's: a steady stream to a must not starve b.
	h.clk.Add(time.Second)
	ctxA, cancelA := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelA()
	if _, err := h.m.Acquire(ctxA, "default/a", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a new request to the draining model: %v, want it held", err)
	}
	if n := h.log.count("evict"); n != 0 {
		t.Fatalf("evicted with a request in flight: %v", h.log.events)
	}
	h.fakes["a"].inflight.Add(-1)
	relA()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.log.events, ", "); got != "load a, evict a, load b" {
		t.Errorf("swaps: %s, want load a, evict a, load b", got)
	}
	if h.state("a").Value != StateSleeping || h.state("b").Value != StateLoaded {
		t.Errorf("states a %+v, b %+v", h.state("a"), h.state("b"))
	}
	if len(h.log.bad) > 0 {
		t.Error(h.log.bad)
	}
}

// TestQueueFull: beyond maxQueue a request is refused with 429 and Retry-After = the
// expected load time.
func TestQueueFull(t *testing.T) {
	a := svc7b("a")
	a.MaxQueue = 2
	h := newHarness(t, 16*gb, Config{}, a)
	h.fakes["a"].gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() { _, _ = h.m.Acquire(ctx, "default/a", nil) }()
	}
	eventually(t, "two held requests", func() bool { return h.queued() == 2 })
	_, err := h.m.Acquire(ctx, "default/a", nil)
	var r *Refusal
	if !errors.As(err, &r) || r.Status != 429 || r.RetryAfter != 2*time.Second || r.Reason != "QueueFull" {
		t.Fatalf("third request: %v (%+v), want a 429 QueueFull refusal with Retry-After 2s", err, r)
	}
	eventually(t, "a RefusedQueueFull event", func() bool { return h.hasEvent("RefusedQueueFull") })
}

// TestWaitExceeded: a request held past maxWait is refused with 503.
func TestWaitExceeded(t *testing.T) {
	a := svc7b("a")
	a.MaxWait = 10 * time.Second
	h := newHarness(t, 16*gb, Config{}, a)
	h.fakes["a"].gate = make(chan struct{})
	defer close(h.fakes["a"].gate)
	errc := make(chan error, 1)
	go func() { _, err := h.m.Acquire(context.Background(), "default/a", nil); errc <- err }()
	eventually(t, "a held request", func() bool { return h.queued() == 1 })
	h.clk.Add(9 * time.Second)
	select {
	case err := <-errc:
		t.Fatalf("refused before maxWait: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	h.clk.Add(2 * time.Second)
	var r *Refusal
	if err := <-errc; !errors.As(err, &r) || r.Status != 503 || r.Reason != "WaitExceeded" || r.RetryAfter != 2*time.Second {
		t.Fatalf("after 11 s: %v, want a 503 WaitExceeded refusal", err)
	}
}

// TestIdleTimeout: a loaded model idle for its idleTimeout is evicted without pressure, and
// one in use is not.
func TestIdleTimeout(t *testing.T) {
	a, b := svc7b("a"), svc7b("b")
	a.IdleTimeout, b.IdleTimeout = time.Minute, time.Minute
	h := newHarness(t, 32*gb, Config{}, a, b)
	if err := h.request(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	relB, err := h.m.Acquire(context.Background(), "default/b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if exp := h.state("a").ExpiresAt; !exp.Equal(h.clk.Now().Add(time.Minute)) {
		t.Errorf("a expires at %v, want now + 1m", exp)
	}
	h.clk.Add(59 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if h.log.count("evict") != 0 {
		t.Fatalf("evicted before its idle timeout: %v", h.log.events)
	}
	h.clk.Add(2 * time.Second)
	eventually(t, "a to be evicted", func() bool { return h.state("a").Value == StateSleeping })
	if !strings.Contains(h.state("a").Reason, "IdleTimeout") {
		t.Errorf("a's reason %q, want IdleTimeout", h.state("a").Reason)
	}
	if h.state("b").Value != StateLoaded {
		t.Errorf("b, in use, is %s", h.state("b").Value)
	}
	relB()
}

// TestVictimChoice: under pressure the idle model with the highest idle ÷ (reload × (1 +
// demand)) goes first, whatever the load order.
func TestVictimChoice(t *testing.T) {
	a, b, c := svc7b("a"), svc7b("b"), svc7b("c")
	b.LoadTime = 20 * time.Second // expensive to bring back: kept
	h := newHarness(t, 20*gb, Config{}, a, b, c)
	if err := h.request(context.Background(), "b", 0); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(time.Second)
	if err := h.request(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	h.clk.Add(10 * time.Second)
	if err := h.request(context.Background(), "c", 0); err != nil {
		t.Fatal(err)
	}
	// b is least recently used, but reloading it costs 20 s: a (idle 10 s, reload 2 s) goes.
	if h.state("a").Value != StateSleeping || h.state("b").Value != StateLoaded {
		t.Errorf("a %s, b %s: want a evicted and b kept; events %+v", h.state("a").Value, h.state("b").Value, h.evs)
	}
	eventually(t, "an Evicting event", func() bool { return h.hasEvent("Evicting") })
	if !strings.Contains(h.eventText("Evicting"), "c needs 10.00 GiB") {
		t.Errorf("eviction event lacks its arithmetic: %q", h.eventText("Evicting"))
	}
}

// TestLoadFailure: a failed load refuses the held requests with 503 and says why.
func TestLoadFailure(t *testing.T) {
	h := newHarness(t, 16*gb, Config{FailureBackoff: time.Minute}, svc7b("a"))
	h.fakes["a"].fail = errors.New("CUDA out of memory")
	_, err := h.m.Acquire(context.Background(), "default/a", nil)
	var r *Refusal
	if !errors.As(err, &r) || r.Status != 503 || !strings.Contains(r.Message, "CUDA out of memory") {
		t.Fatalf("%v, want a 503 naming the failure", err)
	}
	if st := h.state("a"); st.Value != StateFailed || !strings.Contains(st.Reason, "CUDA out of memory") {
		t.Errorf("state %+v", st)
	}
}

func (h *harness) hasEvent(reason string) bool { return h.eventText(reason) != "" }

func (h *harness) eventText(reason string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.evs {
		if e.Reason == reason {
			return e.Message
		}
	}
	return ""
}

// observed is a fake whose engine can say whether it holds the model.
type observed struct {
	*fake
	resident atomic.Bool
}

func (o *observed) Resident(context.Context) (bool, error) { return o.resident.Load(), nil }

func (o *observed) Load(ctx context.Context) (string, error) {
	how, err := o.fake.Load(ctx)
	if err == nil {
		o.resident.Store(true)
	}
	return how, err
}

// TestObserve: an engine that dropped its model on its own is seen unloaded, and the next
// request loads it again; one that comes back holding it is counted as loaded.
func TestObserve(t *testing.T) {
	a := svc7b("a")
	o := &observed{fake: &fake{name: "a", log: &swapLog{}}}
	a.Mechanism = o
	h := newHarness(t, 16*gb, Config{Observe: 5 * time.Millisecond}, a)
	h.fakes["a"] = o.fake
	if err := h.request(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	o.resident.Store(false) // Ollama's own scheduler unloaded it
	eventually(t, "a seen unloaded", func() bool { return h.state("a").Value == StateUnloaded })
	eventually(t, "an EvictedByEngine event", func() bool { return h.hasEvent("EvictedByEngine") })
	if err := h.request(context.Background(), "a", 0); err != nil {
		t.Fatal(err)
	}
	if n := o.log.count("load"); n != 2 {
		t.Errorf("%d loads, want 2 (the first request, and after the engine dropped it)", n)
	}
	time.Sleep(30 * time.Millisecond) // several observations
	if st := h.state("a"); st.Value != StateLoaded {
		t.Errorf("after the reload: %+v, want loaded", st)
	}
	o.resident.Store(false)
	eventually(t, "a seen unloaded again", func() bool { return h.state("a").Value == StateUnloaded })
	o.resident.Store(true) // a restarted engine came back holding it
	eventually(t, "a seen loaded", func() bool { return h.state("a").Value == StateLoaded })
	eventually(t, "a ResidentByEngine event", func() bool { return h.hasEvent("ResidentByEngine") })
}

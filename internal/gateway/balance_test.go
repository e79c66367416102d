package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"github.com/google/go-cmp/cmp"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTarget returns a target of n healthy replicas ns/svc/0 … ns/svc/n-1.
func newTarget(policy string, n int) *Target {
	t := &Target{Name: "ns/svc", Model: "m", API: APIOpenAI, Policy: policy}
	for i := range n {
		r := &Replica{ID: fmt.Sprintf("ns/svc/%d", i), Service: "ns/svc", BaseURL: fmt.Sprintf("http://10.0.0.%d:8000", i+1), API: APIOpenAI, Engine: "vllm"}
		r.SetHealthy(true)
		t.Replicas = append(t.Replicas, r)
	}
	return t
}

// setLoad gives r in-flight requests and scraped metrics taken at at.
func setLoad(r *Replica, inFlight int64, running, waiting, kv float64, at time.Time) {
	r.State.InFlight.Store(inFlight)
	r.State.mu.Lock()
	r.State.Running, r.State.Waiting, r.State.KVUsage, r.State.ScrapedAt = running, waiting, kv, at
	r.State.mu.Unlock()
}

// index returns r's position in t, or -1 for nil.
func index(t *Target, r *Replica) int {
	for i, x := range t.Replicas {
		if x == r {
			return i
		}
	}
	return -1
}

// picks picks n times without starting requests and returns the replicas' positions.
func picks(t *Target, ri RequestInfo, exclude map[*Replica]bool, now time.Time, n int) []int {
	var got []int
	for range n {
		got = append(got, index(t, Pick(t, ri, exclude, now)))
	}
	return got
}

func TestPickRoundRobin(t *testing.T) {
	t.Parallel()
	tg := newTarget(v1.BalanceRoundRobin, 3)
	if diff := cmp.Diff([]int{0, 1, 2, 0, 1, 2}, picks(tg, RequestInfo{}, nil, t0, 6)); diff != "" {
		t.Errorf("round-robin (-want +got):\n%s", diff)
	}
	// Load does not matter to round-robin.
	tg.Replicas[0].State.InFlight.Store(100)
	if diff := cmp.Diff([]int{0, 1, 2}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
		t.Errorf("round-robin with load (-want +got):\n%s", diff)
	}
	// An excluded replica's turn goes to the next one.
	ex := map[*Replica]bool{tg.Replicas[1]: true}
	if diff := cmp.Diff([]int{0, 2, 2, 0}, picks(tg, RequestInfo{}, ex, t0, 4)); diff != "" {
		t.Errorf("round-robin excluding 1 (-want +got):\n%s", diff)
	}
}

func TestPickLeastOutstanding(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"", v1.BalanceLeastOutstanding} {
		tg := newTarget(policy, 3)
		// Ties go round-robin.
		if diff := cmp.Diff([]int{0, 1, 2, 0}, picks(tg, RequestInfo{}, nil, t0, 4)); diff != "" {
			t.Errorf("policy %q, all idle (-want +got):\n%s", policy, diff)
		}
		tg.Replicas[0].State.InFlight.Store(3)
		tg.Replicas[1].State.InFlight.Store(1)
		tg.Replicas[2].State.InFlight.Store(2)
		if diff := cmp.Diff([]int{1, 1, 1}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
			t.Errorf("policy %q, in flight 3 1 2 (-want +got):\n%s", policy, diff)
		}
		// Begin is what moves the counts: picking and starting spreads the requests.
		for range 6 {
			Pick(tg, RequestInfo{}, nil, t0).Begin()
		}
		for i, r := range tg.Replicas {
			if got := r.State.InFlight.Load(); got != 4 {
				t.Errorf("policy %q: replica %d has %d in flight after 6 more, want 4 each", policy, i, got)
			}
		}
		// Metrics do not matter to least-outstanding.
		setLoad(tg.Replicas[0], 0, 50, 50, 1, t0)
		if got := index(tg, Pick(tg, RequestInfo{}, nil, t0)); got != 0 {
			t.Errorf("policy %q picked %d, want 0 (fewest in flight, whatever its metrics)", policy, got)
		}
	}
}

// Every policy skips excluded, unhealthy and ejected replicas, and gives nil when none is left.
func TestPickSkipsUnusable(t *testing.T) {
	t.Parallel()
	policies := []struct {
		name string
		tg   func() *Target
		ri   RequestInfo
	}{
		{"round-robin", func() *Target { return newTarget(v1.BalanceRoundRobin, 4) }, RequestInfo{}},
		{"least-outstanding", func() *Target { return newTarget(v1.BalanceLeastOutstanding, 4) }, RequestInfo{}},
		{"load-aware", func() *Target { return newTarget(v1.BalanceLoadAware, 4) }, RequestInfo{}},
		{"prefix-affinity", func() *Target { return newTarget(v1.BalancePrefixAffinity, 4) }, RequestInfo{PrefixHash: 42}},
		{"session-affinity", func() *Target { return newTarget(v1.BalanceSessionAffinity, 4) }, RequestInfo{Session: "s"}},
		{"ollama", func() *Target { tg := newTarget("", 4); tg.API = APIOllama; return tg }, RequestInfo{}},
	}
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			tg := p.tg()
			r := tg.Replicas
			r[0].SetHealthy(false)
			r[1].State.EjectedUntil = t0.Add(time.Second)
			ex := map[*Replica]bool{r[2]: true}
			for i := range 8 {
				if got := index(tg, Pick(tg, p.ri, ex, t0)); got != 3 {
					t.Fatalf("pick %d = %d, want 3 (0 unhealthy, 1 ejected, 2 excluded)", i, got)
				}
			}
			ex[r[3]] = true
			if got := Pick(tg, p.ri, ex, t0); got != nil {
				t.Errorf("all out: picked %s, want nil", got.ID)
			}
			// The ejection ends at EjectedUntil.
			if got := index(tg, Pick(tg, p.ri, ex, t0.Add(time.Second))); got != 1 {
				t.Errorf("once the ejection is over: picked %d, want 1", got)
			}
			if got := Pick(&Target{Policy: tg.Policy, API: tg.API}, p.ri, nil, t0); got != nil {
				t.Errorf("no replicas: picked %s, want nil", got.ID)
			}
		})
	}
}

func TestPickLoadAware(t *testing.T) {
	t.Parallel()
	type ld struct {
		inFlight             int64
		running, waiting, kv float64
		age                  time.Duration // of the metrics; -1: never scraped
	}
	tests := []struct {
		name string
		load []ld
		want int
	}{
		{"fresh: fewer waiting wins over fewer in flight", []ld{{1, 2, 4, .5, 0}, {2, 3, 0, .5, 0}}, 1},
		{"fresh: the queue outweighs running", []ld{{0, 2, 2, .2, 0}, {0, 7, 0, .2, 0}}, 1},
		{"fresh: KV usage breaks a tie", []ld{{2, 2, 0, .9, 0}, {2, 2, 0, .1, 0}}, 1},
		{"fresh: in flight moves the cost between scrapes", []ld{{9, 2, 0, .1, 0}, {0, 6, 0, .1, 0}}, 1},
		{"fresh at exactly 1 s", []ld{{1, 2, 4, .5, time.Second}, {2, 3, 0, .5, time.Second}}, 1},
		{"stale: in flight only", []ld{{1, 2, 4, .5, 1001 * time.Millisecond}, {2, 3, 0, .5, 1001 * time.Millisecond}}, 0},
		{"one stale: in flight only", []ld{{1, 2, 4, .5, 0}, {2, 3, 0, .5, 2 * time.Second}}, 0},
		{"never scraped (no metrics): in flight only", []ld{{3, 0, 0, 0, -1}, {2, 0, 0, 0, -1}, {4, 0, 0, 0, -1}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(v1.BalanceLoadAware, len(tt.load))
			for i, l := range tt.load {
				at := t0.Add(-l.age)
				if l.age < 0 {
					at = time.Time{}
				}
				setLoad(tg.Replicas[i], l.inFlight, l.running, l.waiting, l.kv, at)
			}
			if diff := cmp.Diff([]int{tt.want, tt.want, tt.want}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ties go round-robin", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(v1.BalanceLoadAware, 3)
		for _, r := range tg.Replicas {
			setLoad(r, 0, 1, 1, .5, t0)
		}
		if diff := cmp.Diff([]int{0, 1, 2, 0}, picks(tg, RequestInfo{}, nil, t0, 4)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestPickPrefixAffinity(t *testing.T) {
	t.Parallel()
	const keys = 1000
	t.Run("sticky, and spread over the replicas", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(v1.BalancePrefixAffinity, 4)
		count := make([]int, 4)
		for k := range uint64(keys) {
			ri := RequestInfo{PrefixHash: k*0x9e3779b97f4a7c15 + 1}
			got := picks(tg, ri, nil, t0, 3)
			if got[0] != got[1] || got[1] != got[2] {
				t.Fatalf("key %d went to %v: not sticky", k, got)
			}
			count[got[0]]++
		}
		for i, c := range count {
			if c < keys/4/2 || c > keys/4*2 {
				t.Errorf("replica %d got %d of %d keys: %v is not an even spread", i, c, keys, count)
			}
		}
	})
	t.Run("losing a replica moves only its keys", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(v1.BalancePrefixAffinity, 4)
		ex := map[*Replica]bool{tg.Replicas[2]: true}
		moved := 0
		for k := range uint64(keys) {
			ri := RequestInfo{PrefixHash: k*0x9e3779b97f4a7c15 + 1}
			before := index(tg, Pick(tg, ri, nil, t0))
			after := index(tg, Pick(tg, ri, ex, t0))
			switch {
			case before != 2 && after != before:
				t.Fatalf("key %d moved from %d to %d when only 2 went away", k, before, after)
			case before == 2:
				moved++
			}
		}
		if moved == 0 {
			t.Errorf("no key was on replica 2")
		}
	})
	t.Run("overload escape", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(v1.BalancePrefixAffinity, 3)
		ri := RequestInfo{PrefixHash: 12345}
		pinned := Pick(tg, ri, nil, t0)
		// With the others idle, the pinned replica keeps its keys up to 2×0+4 = 4 in flight.
		for i := range 5 {
			if got := Pick(tg, ri, nil, t0); got != pinned {
				t.Fatalf("with %d in flight on the pinned replica, picked %s, want %s", i, got.ID, pinned.ID)
			}
			pinned.Begin()
		}
		// At 5 the request goes where the load is least.
		other := Pick(tg, ri, nil, t0)
		if other == pinned || other == nil {
			t.Fatalf("with 5 in flight on the pinned replica and 0 elsewhere, picked %v, want another", other)
		}
		// The bound follows the least loaded: 2×10+4.
		for _, r := range tg.Replicas {
			r.State.InFlight.Store(10)
		}
		pinned.State.InFlight.Store(24)
		if got := Pick(tg, ri, nil, t0); got != pinned {
			t.Errorf("24 in flight against 10: picked %s, want the pinned %s", got.ID, pinned.ID)
		}
		pinned.State.InFlight.Store(25)
		if got := Pick(tg, ri, nil, t0); got == pinned {
			t.Errorf("25 in flight against 10: picked the pinned replica, want another")
		}
		// Once the load drops, the key comes home.
		pinned.State.InFlight.Store(10)
		if got := Pick(tg, ri, nil, t0); got != pinned {
			t.Errorf("load back to even: picked %s, want the pinned %s", got.ID, pinned.ID)
		}
	})
	t.Run("no prefix: load-aware", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(v1.BalancePrefixAffinity, 3)
		setLoad(tg.Replicas[0], 0, 4, 6, .9, t0)
		setLoad(tg.Replicas[1], 1, 4, 0, .3, t0)
		setLoad(tg.Replicas[2], 0, 4, 3, .5, t0)
		if diff := cmp.Diff([]int{1, 1, 1}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("same replica IDs, same choice", func(t *testing.T) {
		t.Parallel()
		// Another gateway (or the next table) with the same replicas agrees.
		a, b := newTarget(v1.BalancePrefixAffinity, 4), newTarget(v1.BalancePrefixAffinity, 4)
		for k := range uint64(100) {
			ri := RequestInfo{PrefixHash: k + 1}
			if x, y := index(a, Pick(a, ri, nil, t0)), index(b, Pick(b, ri, nil, t0)); x != y {
				t.Fatalf("key %d: %d in one table, %d in the other", k, x, y)
			}
		}
	})
}

func TestPickSessionAffinity(t *testing.T) {
	t.Parallel()
	tg := newTarget(v1.BalanceSessionAffinity, 4)
	seen := map[int]bool{}
	for i := range 200 {
		ri := RequestInfo{Session: fmt.Sprintf("session-%d", i)}
		got := picks(tg, ri, nil, t0, 3)
		if got[0] != got[1] || got[1] != got[2] {
			t.Fatalf("session %d went to %v: not sticky", i, got)
		}
		seen[got[0]] = true
	}
	if len(seen) != 4 {
		t.Errorf("200 sessions used replicas %v, want all 4", seen)
	}
	// Overloaded: the session goes elsewhere for now.
	ri := RequestInfo{Session: "busy"}
	pinned := Pick(tg, ri, nil, t0)
	pinned.State.InFlight.Store(5)
	if got := Pick(tg, ri, nil, t0); got == pinned {
		t.Errorf("pinned replica with 5 in flight and the others idle still picked")
	}
	// No session header: the least loaded.
	tg = newTarget(v1.BalanceSessionAffinity, 3)
	tg.Replicas[0].State.InFlight.Store(2)
	tg.Replicas[2].State.InFlight.Store(1)
	if diff := cmp.Diff([]int{1, 1}, picks(tg, RequestInfo{}, nil, t0, 2)); diff != "" {
		t.Errorf("no session (-want +got):\n%s", diff)
	}
}

func TestPickOllamaSticky(t *testing.T) {
	t.Parallel()
	ollama := func(policy, model string) *Target {
		tg := newTarget(policy, 3)
		tg.API, tg.Model = APIOllama, model
		for _, r := range tg.Replicas {
			r.API, r.Engine = APIOllama, "ollama"
		}
		return tg
	}
	// A model stays on one server, even with the others idle and it busy (up to the escape).
	tg := ollama("", "llama3.2:3b")
	home := Pick(tg, RequestInfo{Model: "llama3.2:3b"}, nil, t0)
	for i := range 5 {
		if got := Pick(tg, RequestInfo{}, nil, t0); got != home {
			t.Fatalf("pick %d with %d in flight: %s, want %s", i, i, got.ID, home.ID)
		}
		home.Begin()
	}
	// Targets of other models on the same servers agree on each model's home, and models
	// spread over the servers.
	seen := map[int]bool{}
	for i := range 50 {
		model := fmt.Sprintf("model-%d", i)
		a, b := ollama("", model), ollama("", model)
		x, y := index(a, Pick(a, RequestInfo{}, nil, t0)), index(b, Pick(b, RequestInfo{}, nil, t0))
		if x != y {
			t.Fatalf("%s: server %d for one target, %d for the other", model, x, y)
		}
		seen[x] = true
	}
	if len(seen) != 3 {
		t.Errorf("50 models used servers %v, want all 3", seen)
	}
	// Without a target model, the request's model is the key.
	tg = ollama("", "")
	if x, y := Pick(tg, RequestInfo{Model: "qwen3"}, nil, t0), Pick(tg, RequestInfo{Model: "qwen3"}, nil, t0); x != y {
		t.Errorf("request model qwen3: %s then %s", x.ID, y.ID)
	}
	// A policy says otherwise.
	tg = ollama(v1.BalanceRoundRobin, "llama3.2:3b")
	if diff := cmp.Diff([]int{0, 1, 2}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
		t.Errorf("ollama with round-robin (-want +got):\n%s", diff)
	}
	// Only API ollama is sticky by default: an OpenAI target is least-outstanding.
	tg = newTarget("", 3)
	tg.Model = "llama3.2:3b"
	if diff := cmp.Diff([]int{0, 1, 2}, picks(tg, RequestInfo{}, nil, t0, 3)); diff != "" {
		t.Errorf("openai target (-want +got):\n%s", diff)
	}
}

// dialError is what net/http returns when nothing listens.
var dialError = &url.Error{Op: "Post", URL: "http://10.0.0.1:8000/v1/chat/completions",
	Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}

// errTimeout is a per-try timeout.
var errTimeout = fmt.Errorf("replica: %w", context.DeadlineExceeded)

func TestEnd(t *testing.T) {
	t.Parallel()
	type event struct {
		at         time.Duration // after t0
		err        error
		status     int
		retryAfter time.Duration
	}
	type state struct {
		Failures, Ejections int
		EjectedUntil        time.Duration // after t0; 0: not ejected
	}
	fail := func(at time.Duration) event { return event{at: at, status: 502} }
	ok := func(at time.Duration) event { return event{at: at, status: 200} }
	tests := []struct {
		name   string
		events []event
		want   state
	}{
		{"two failures do not eject", []event{fail(0), {at: 0, err: errTimeout}}, state{2, 0, 0}},
		{"the third does, for 5 s", []event{fail(0), fail(0), {at: 0, err: errTimeout}}, state{3, 1, 5 * time.Second}},
		{"a connect error ejects at once", []event{{at: 0, err: dialError}}, state{1, 1, 5 * time.Second}},
		{"the cooldown doubles: 10 s", []event{fail(0), fail(0), fail(0), fail(5 * time.Second)}, state{4, 2, 15 * time.Second}},
		{"and doubles up to 60 s", []event{fail(0), fail(0), fail(0), fail(5 * time.Second), fail(15 * time.Second),
			fail(35 * time.Second), fail(75 * time.Second), fail(135 * time.Second)}, state{8, 6, 195 * time.Second}},
		{"failures while ejected do not eject again", []event{fail(0), fail(0), fail(0), fail(time.Second), {at: 4 * time.Second, err: dialError}}, state{5, 1, 5 * time.Second}},
		{"a success resets the counts", []event{fail(0), fail(0), fail(0), fail(5 * time.Second), ok(20 * time.Second)}, state{0, 0, 15 * time.Second}},
		{"after a success, 5 s again", []event{fail(0), fail(0), fail(0), fail(5 * time.Second), ok(20 * time.Second),
			fail(21 * time.Second), fail(21 * time.Second), fail(21 * time.Second)}, state{3, 1, 26 * time.Second}},
		{"4xx is a success", []event{fail(0), fail(0), {at: 0, status: 400}, fail(0), fail(0)}, state{2, 0, 0}},
		{"501 is not a failure", []event{fail(0), fail(0), {at: 0, status: 501}}, state{0, 0, 0}},
		{"a cancelled request says nothing", []event{fail(0), fail(0), {at: 0, err: context.Canceled}, {at: 0, err: fmt.Errorf("copy: %w", context.Canceled)}}, state{2, 0, 0}},
		{"429 with Retry-After ejects for that long", []event{{at: 0, status: 429, retryAfter: 7 * time.Second}}, state{0, 0, 7 * time.Second}},
		{"503 with Retry-After too", []event{{at: 0, status: 503, retryAfter: 2 * time.Second}}, state{0, 0, 2 * time.Second}},
		{"Retry-After is capped at 60 s", []event{{at: 0, status: 429, retryAfter: time.Hour}}, state{0, 0, 60 * time.Second}},
		{"Retry-After does not shorten an ejection", []event{{at: 0, err: dialError}, {at: 0, status: 503, retryAfter: time.Second}}, state{1, 1, 5 * time.Second}},
		{"429 without Retry-After is a success", []event{fail(0), {at: 0, status: 429}}, state{0, 0, 0}},
		{"503 without Retry-After is a failure", []event{{at: 0, status: 503}}, state{1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newTarget("", 1).Replicas[0]
			for _, e := range tt.events {
				r.Begin()
				r.End(e.err, e.status, e.retryAfter, t0.Add(e.at))
			}
			s := &r.State
			got := state{Failures: s.Failures, Ejections: s.Ejections}
			if !s.EjectedUntil.IsZero() {
				got.EjectedUntil = s.EjectedUntil.Sub(t0)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n := s.InFlight.Load(); n != 0 {
				t.Errorf("%d in flight after as many End as Begin", n)
			}
			if until := t0.Add(got.EjectedUntil); got.EjectedUntil != 0 {
				if r.Usable(until.Add(-time.Nanosecond)) || !r.Usable(until) {
					t.Errorf("usable before %v or not at it", got.EjectedUntil)
				}
			}
		})
	}
}

func TestEndLastError(t *testing.T) {
	t.Parallel()
	r := newTarget("", 1).Replicas[0]
	for _, tt := range []struct {
		err        error
		status     int
		retryAfter time.Duration
		want       string
	}{
		{dialError, 0, 0, dialError.Error()},
		{nil, 502, 0, "HTTP 502 Bad Gateway"},
		{nil, 429, 3 * time.Second, "HTTP 429 with Retry-After 3s"},
		{nil, 200, 0, "HTTP 429 with Retry-After 3s"}, // a success keeps the last error for the status page
	} {
		r.Begin()
		r.End(tt.err, tt.status, tt.retryAfter, t0)
		if got := r.Snapshot().LastError; got != tt.want {
			t.Errorf("after %v %d: LastError %q, want %q", tt.err, tt.status, got, tt.want)
		}
	}
}

func TestSetHealthy(t *testing.T) {
	t.Parallel()
	r := &Replica{ID: "u"}
	if r.Usable(t0) {
		t.Errorf("a new replica is usable before its source says it is ready")
	}
	r.SetHealthy(true)
	if !r.Usable(t0) {
		t.Errorf("a ready replica is not usable")
	}
	for range 3 {
		r.End(dialError, 0, 0, t0)
	}
	r.SetHealthy(true) // no change: the ejection stands
	if r.Usable(t0) {
		t.Errorf("SetHealthy(true) on a healthy replica ended its ejection")
	}
	r.SetHealthy(false)
	if r.Usable(t0.Add(time.Hour)) {
		t.Errorf("an unhealthy replica is usable")
	}
	r.SetHealthy(true) // back: the outage is forgotten
	if !r.Usable(t0) || r.State.Failures != 0 || r.State.Ejections != 0 {
		t.Errorf("back to healthy: usable %v, failures %d, ejections %d; want true, 0, 0", r.Usable(t0), r.State.Failures, r.State.Ejections)
	}
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	r := newTarget("", 1).Replicas[0]
	setLoad(r, 2, 3, 4, .5, t0.Add(-500*time.Millisecond))
	r.End(dialError, 0, 0, t0) // InFlight 2 → 1, ejected
	want := ReplicaSnapshot{ID: "ns/svc/0", InFlight: 1, Running: 3, Waiting: 4, KVUsage: .5, Fresh: true,
		Healthy: true, Ejected: true, Failures: 1, LastError: dialError.Error()}
	if diff := cmp.Diff(want, r.snapshot(t0)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	want.Fresh, want.Ejected = false, false
	if diff := cmp.Diff(want, r.snapshot(t0.Add(time.Minute))); diff != "" {
		t.Errorf("a minute later (-want +got):\n%s", diff)
	}
}

func TestCooldown(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for n := range 8 {
		got = append(got, cooldown(n))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := cooldown(1 << 20); got != maxCooldown {
		t.Errorf("cooldown(1<<20) = %v, want %v", got, maxCooldown)
	}
}

func TestConnectError(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{dialError, true},
		{&net.DNSError{Err: "no such host", Name: "engine.invalid", IsNotFound: true}, true},
		{fmt.Errorf("post: %w", syscall.ECONNREFUSED), true},
		{errTimeout, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{errors.New("unexpected EOF"), false},
	} {
		if got := connectError(tt.err); got != tt.want {
			t.Errorf("connectError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// Picks, Begin/End and scrapes from many goroutines keep the books straight (run with -race).
func TestPickConcurrent(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{v1.BalanceRoundRobin, v1.BalanceLeastOutstanding, v1.BalanceLoadAware, v1.BalancePrefixAffinity} {
		tg := newTarget(policy, 4)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					now := t0.Add(time.Duration(i) * time.Millisecond)
					if g == 0 { // a scraper
						r := tg.Replicas[i%4]
						r.State.mu.Lock()
						r.State.Waiting, r.State.ScrapedAt = float64(i%7), now
						r.State.mu.Unlock()
						continue
					}
					r := Pick(tg, RequestInfo{PrefixHash: uint64(i%10 + 1)}, nil, now)
					if r == nil {
						continue // every replica ejected for now
					}
					r.Begin()
					status := 200
					if i%50 == 0 {
						status = 500
					}
					r.End(nil, status, 0, now)
				}
			})
		}
		wg.Wait()
		for _, r := range tg.Replicas {
			if n := r.State.InFlight.Load(); n != 0 {
				t.Errorf("%s: %s has %d in flight, want 0", policy, r.ID, n)
			}
		}
	}
}

// Pick allocates nothing, whatever the policy.
func TestPickAllocs(t *testing.T) {
	for _, tg := range []*Target{
		newTarget(v1.BalanceRoundRobin, 4), newTarget(v1.BalanceLeastOutstanding, 4), newTarget(v1.BalanceLoadAware, 4),
		newTarget(v1.BalancePrefixAffinity, 4), newTarget(v1.BalanceSessionAffinity, 4),
		func() *Target { tg := newTarget("", 4); tg.API = APIOllama; return tg }(),
	} {
		for i, r := range tg.Replicas {
			setLoad(r, int64(i), 2, float64(i), .3, t0)
		}
		ex := map[*Replica]bool{tg.Replicas[0]: true}
		ri := RequestInfo{Model: "m", Session: "abc", PrefixHash: 77}
		if n := testing.AllocsPerRun(100, func() { Pick(tg, ri, ex, t0) }); n != 0 {
			t.Errorf("policy %q (API %s): %v allocations per Pick, want 0", tg.Policy, tg.API, n)
		}
	}
}

func BenchmarkPickLoadAware(b *testing.B) {
	tg := newTarget(v1.BalanceLoadAware, 4)
	for i, r := range tg.Replicas {
		setLoad(r, int64(i%2), 4, float64(3-i), .2*float64(i), t0)
	}
	ri := RequestInfo{Model: "m", PromptTokens: 100}
	b.ReportAllocs()
	for b.Loop() {
		if Pick(tg, ri, nil, t0) == nil {
			b.Fatal("no replica")
		}
	}
}

func BenchmarkPickPrefixAffinity(b *testing.B) {
	tg := newTarget(v1.BalancePrefixAffinity, 4)
	ri := RequestInfo{Model: "m", PrefixHash: 0xdeadbeef}
	b.ReportAllocs()
	for b.Loop() {
		if Pick(tg, ri, nil, t0) == nil {
			b.Fatal("no replica")
		}
	}
}

func BenchmarkPickLoadAwareParallel(b *testing.B) {
	tg := newTarget(v1.BalanceLoadAware, 4)
	for i, r := range tg.Replicas {
		setLoad(r, 0, 4, float64(3-i), .2*float64(i), t0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := Pick(tg, RequestInfo{}, nil, t0)
			r.Begin()
			r.End(nil, 200, 0, t0)
		}
	})
}

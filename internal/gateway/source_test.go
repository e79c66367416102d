package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/sim"
)

// memSource is a Source with no store behind it, as a Kubernetes informer would be: objects
// held in memory, a channel for changes, statuses kept by route name.
type memSource struct {
	mu       sync.Mutex
	snap     gateway.Snapshot
	statuses map[string]v1.Status
	changed  chan struct{}
}

var _ gateway.Source = (*memSource)(nil)

func (m *memSource) Run(ctx context.Context, pass func(context.Context) error) error {
	for {
		_ = pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-m.changed:
		}
	}
}

func (m *memSource) Snapshot(context.Context) (gateway.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap, nil
}

func (m *memSource) SetRouteStatus(_ context.Context, r *v1.Route, st v1.Status) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.statuses[r.Name] = st
	return nil
}

func (m *memSource) set(f func(*gateway.Snapshot)) {
	m.mu.Lock()
	f(&m.snap)
	m.mu.Unlock()
	m.changed <- struct{}{}
}

func (m *memSource) status(name string) v1.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statuses[name]
}

// TestGatewayFromAnotherSource: the gateway serves routes, services and keys from a Source
// that is not the store, and gives each route's status back to it.
func TestGatewayFromAnotherSource(t *testing.T) {
	eng := simVLLM(t, sim.Faults{}, "qwen")
	svc := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "qwen", Namespace: "default"}}
	svc.Status.Phase = v1.ServiceReady
	svc.Status.Endpoints = []v1.Endpoint{{Address: strings.TrimPrefix(eng.URL, "http://"), Engine: "vllm", Ready: true, Served: []string{"qwen"}}}
	route := &v1.Route{ObjectMeta: v1.ObjectMeta{Name: "chat", Namespace: "default"},
		Spec: v1.RouteSpec{Models: []v1.RouteModel{{Name: "chat", Targets: []v1.RouteTarget{{Service: "qwen"}}}}}}
	const key = "ck-source-test-key"
	apiKey := &v1.APIKey{ObjectMeta: v1.ObjectMeta{Name: "k"}, Spec: v1.APIKeySpec{Hash: v1.HashAPIKey(key)}}
	src := &memSource{snap: gateway.Snapshot{Routes: []*v1.Route{route}, Services: []*v1.InferenceService{svc}, Keys: []*v1.APIKey{apiKey}},
		statuses: map[string]v1.Status{}, changed: make(chan struct{})}

	gw := gateway.New(gateway.Options{Source: src, Addr: "gw.test:80", HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = gw.Run(ctx) }()
	ts := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { ts.Close(); cancel(); <-done })

	waitStatus := func(phase, reason string) v1.Status {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := src.status("chat")
			if st.Phase == phase && st.Reason == reason {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("route status %s/%s %q, want %s/%s", st.Phase, st.Reason, st.Message, phase, reason)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := waitStatus(gateway.RoutePhaseReady, v1.ReasonServing)
	if want := "serves chat on http://gw.test:80; 1 of 1 targets have ready replicas"; st.Message != want {
		t.Errorf("message %q, want %q", st.Message, want)
	}
	if resp, body := post(t, ts.URL+"/v1/chat/completions", chat("chat", "hi")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the source's key: %d %s", resp.StatusCode, body)
	}
	if resp, body := post(t, ts.URL+"/v1/chat/completions", chat("chat", "hi"), "Authorization", "Bearer "+key); resp.StatusCode != http.StatusOK {
		t.Errorf("with the source's key: %d %s", resp.StatusCode, body)
	}

	// The service goes away in the source: the route says so.
	src.set(func(s *gateway.Snapshot) { s.Services = nil })
	st = waitStatus(gateway.RoutePhaseDegraded, v1.ReasonServiceNotFound)
	if !strings.Contains(st.Message, "0 of 1 targets have ready replicas") {
		t.Errorf("message %q", st.Message)
	}
}

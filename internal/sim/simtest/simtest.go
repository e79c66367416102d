// Package simtest helps tests run simulated engines: a catalogue plan and a loopback server.
// It imports only the performance model, so internal/sim's own tests can use it too.
package simtest

import (
	"context"
	"net"
	"sync"
	"testing"

	"citadel.dev/citadel/internal/sim/perf"
)

// Plan lays a catalogue model out on a catalogue GPU, failing the test when it does not fit.
func Plan(t testing.TB, gpu, model string, opts perf.Options) perf.Plan {
	t.Helper()
	g, err := perf.LookupGPU(gpu)
	if err != nil {
		t.Fatal(err)
	}
	m, err := perf.LookupModel(model)
	if err != nil {
		t.Fatal(err)
	}
	p, err := perf.NewPlan(g, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Server is a simulated engine (sim.VLLM, sim.Ollama).
type Server interface {
	Serve(context.Context, net.Listener) error
}

// Serve runs s on a loopback port and returns its base URL and a stop function (also called
// when the test ends; calling it twice is fine).
func Serve(t testing.TB, s Server) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// Package simtest helps tests run simulated engines: a catalogue plan and a loopback server.
// It imports only the performance model, so internal/sim's own tests can use it too.
package simtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"citadel.dev/citadel/internal/perfmodel"
)

// Plan lays a catalogue model out on a catalogue GPU, failing the test when it does not fit.
func Plan(t testing.TB, gpu, model string, opts perfmodel.Options) perfmodel.Plan {
	t.Helper()
	g, err := perfmodel.LookupGPU(gpu)
	if err != nil {
		t.Fatal(err)
	}
	m, err := perfmodel.LookupModel(model)
	if err != nil {
		t.Fatal(err)
	}
	p, err := perfmodel.NewPlan(g, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Server is a simulated engine (sim.OpenAI, sim.Ollama).
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

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Citadel is the citadel binary, for tests that run `citadel sim` or `citadel serve` as
// processes: CITADEL_TEST_BIN when set, else built once per test process with go build. The
// test is skipped with -short, or when there is no go command to build with.
func Citadel(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the citadel binary and runs engines as processes; skipped with -short")
	}
	if bin := os.Getenv("CITADEL_TEST_BIN"); bin != "" {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build citadel")
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "citadel-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "citadel")
		if out, err := exec.Command(goBin, "build", "-o", built.path, "citadel.dev/citadel/cmd/citadel").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build citadel: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// RemoveBuilt deletes the binary Citadel built, if it built one; call it from TestMain.
func RemoveBuilt() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// Package simtest helps tests run simulated engines: a catalogue plan and a loopback server.
// It imports only the performance model, so internal/sim's own tests can use it too.
package simtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// builtPrefix starts the name of the directory Citadel builds into, in os.TempDir(); the test
// process's id follows, so that a later build can tell a directory left behind.
const builtPrefix = "citadel-test-pid"

// Citadel is the citadel binary, for tests that run `citadel sim` or `citadel serve` as
// processes: CITADEL_TEST_BIN when set, else built once per test process with go build into a
// directory of os.TempDir(). RemoveBuilt, from TestMain, deletes it; what a test process did
// not delete (no TestMain, or killed) the next build deletes, once that process has exited.
// The test is skipped with -short, or when there is no go command to build with.
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
		removeLeftBuilds()
		if built.dir, built.err = os.MkdirTemp("", fmt.Sprintf("%s%d-", builtPrefix, os.Getpid())); built.err != nil {
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

// removeLeftBuilds deletes the directories Citadel built into in test processes that have
// exited without RemoveBuilt.
func removeLeftBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), builtPrefix+"*-*"))
	for _, dir := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), builtPrefix), "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && exited(n) {
			os.RemoveAll(dir)
		}
	}
}

// exited reports whether process pid is known to have exited; when unsure, it says no.
func exited(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return runtime.GOOS == "windows" // FindProcess fails there for a process that is gone
	}
	err = p.Signal(syscall.Signal(0))
	return errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH)
}

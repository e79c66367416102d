package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary a fake engine (see helperMain).
const helperEnv = "CITADEL_SUPERVISOR_HELPER"

// Every goroutine an Instance starts ends once it has stopped.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperMain()
		return
	}
	goleak.VerifyTestMain(m)
}

// helperMain is a fake engine: an HTTP server on 127.0.0.1:$HELPER_PORT
// whose GET /live fails while $HELPER_DIR/dead exists and GET /ready while
// $HELPER_DIR/unready exists. SIGTERM ends it (Go's default).
func helperMain() {
	dir := os.Getenv("HELPER_DIR")
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	check := func(file string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if exists(file) {
				http.Error(w, file, http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", check("dead"))
	mux.HandleFunc("GET /ready", check("unready"))
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("HELPER_PORT"))
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(1)
	}
	fmt.Println("helper engine listening on", l.Addr())
	fmt.Println(http.Serve(l, mux))
	os.Exit(1)
}

// helperSpec runs the fake engine on a free port, controlled by files in dir.
func helperSpec(t *testing.T, dir string) Spec {
	t.Helper()
	port := freePort(t)
	return Spec{
		Name: "test/" + t.Name(),
		Argv: []string{os.Args[0]},
		Env:  append(os.Environ(), helperEnv+"=1", "HELPER_PORT="+strconv.Itoa(port), "HELPER_DIR="+dir),
		Port: port,
	}
}

// shSpec runs a shell script.
func shSpec(t *testing.T, script string) Spec {
	return Spec{Name: "test/" + t.Name(), Argv: []string{"/bin/sh", "-c", script}}
}

// freePort returns a port nothing listens on (at the time of the call).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// recorder keeps every state reported to OnChange.
type recorder struct {
	mu     sync.Mutex
	states []State
}

func (r *recorder) add(s State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
}

func (r *recorder) all() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

// first returns the first recorded state that satisfies ok.
func (r *recorder) first(ok func(State) bool) (State, bool) {
	for _, s := range r.all() {
		if ok(s) {
			return s, true
		}
	}
	return State{}, false
}

// start starts spec with the recorder as OnChange and stops the instance at
// the end of the test.
func start(t *testing.T, spec Spec) (*Instance, *recorder) {
	t.Helper()
	rec := &recorder{}
	spec.OnChange = rec.add
	in, err := Start(t.Context(), spec, t.TempDir())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := in.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return in, rec
}

// timeout bounds every wait of the tests: generous, for a loaded CI machine.
const timeout = 60 * time.Second

// bounded returns a context that ends after timeout, so that a Stop that
// does not return fails the test instead of hanging it.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds, or fails the test after timeout.
func eventually(t *testing.T, what string, cond func() bool, state func() any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %+v", what, state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits for the instance's state to satisfy ok, and returns it.
func waitState(t *testing.T, in *Instance, what string, ok func(State) bool) State {
	t.Helper()
	var s State
	eventually(t, what, func() bool { s = in.State(); return ok(s) }, func() any { return s })
	return s
}

// waitRecorded waits for a reported state to satisfy ok, and returns the first such.
func waitRecorded(t *testing.T, rec *recorder, what string, ok func(State) bool) State {
	t.Helper()
	var s State
	eventually(t, what, func() bool { var found bool; s, found = rec.first(ok); return found },
		func() any { return rec.all() })
	return s
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && !st.zombie()
}

// spawnOrphan starts script in its own process group, as a daemon killed
// with SIGKILL would have left it, and returns its command and the first
// line it writes. The test kills its group at the end.
func spawnOrphan(t *testing.T, script string) (*os.Process, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	attr := &os.ProcAttr{Files: []*os.File{nil, w, w}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	p, err := os.StartProcess("/bin/sh", []string{"/bin/sh", "-c", script}, attr)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	pgid := p.Pid
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		p.Wait()
	})
	r.SetReadDeadline(time.Now().Add(timeout))
	var line []byte
	for b := make([]byte, 1); !bytes.HasSuffix(line, []byte("\n")); line = append(line, b...) {
		if _, err := r.Read(b); err != nil {
			t.Fatalf("reading the orphan's first line: %v (read %q)", err, line)
		}
	}
	return p, strings.TrimSpace(string(line))
}

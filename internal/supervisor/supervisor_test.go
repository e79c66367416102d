package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStartErrors(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // after the parallel subtests
	busy := l.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name  string
		spec  Spec
		check func(error) bool
		want  []string // substrings of the error
	}{{
		name:  "engine not in PATH",
		spec:  Spec{Name: "a", Argv: []string{"citadel-no-such-engine", "serve"}},
		check: func(err error) bool { _, ok := errors.AsType[*EngineNotFoundError](err); return ok },
		want:  []string{"engine citadel-no-such-engine not found: install citadel-no-such-engine or set the runtime's command"},
	}, {
		name:  "engine path missing",
		spec:  Spec{Name: "a", Argv: []string{"/nonexistent/bin/vllm", "serve"}},
		check: func(err error) bool { _, ok := errors.AsType[*EngineNotFoundError](err); return ok },
		want:  []string{"engine vllm not found at /nonexistent/bin/vllm: install vllm"},
	}, {
		name:  "port in use",
		spec:  Spec{Name: "a", Argv: []string{"/bin/sh", "-c", "exit 0"}, Port: busy},
		check: func(err error) bool { e, ok := errors.AsType[*PortInUseError](err); return ok && e.Port == busy },
		want:  []string{"port " + strconv.Itoa(busy) + " is in use by another process: choose another port"},
	}, {
		name:  "invalid spec",
		spec:  Spec{Argv: []string{"/bin/sh"}, Liveness: &Probe{Path: "health", SuccessThreshold: 2}},
		check: func(err error) bool { return err != nil },
		want: []string{
			"name: must be set",
			"liveness: a probe needs the engine's port",
			`liveness.path: "health" must start with /`,
			"liveness.successThreshold: 2: must be 1",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			in, err := Start(t.Context(), tt.spec, dir)
			if err == nil {
				in.Stop(bounded(t))
				t.Fatal("Start succeeded, want an error")
			}
			if !tt.check(err) {
				t.Errorf("Start: error of type %T: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start: error %q does not say %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("Start failed but left %v in the state directory", entries)
			}
		})
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	t.Parallel()
	spec := shSpec(t, `echo starting engine; echo "fatal: config.json missing" >&2; exit 3`)
	spec.Backoff, spec.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	in, rec := start(t, spec)

	waitRecorded(t, rec, "CrashLoopBackOff", func(s State) bool { return s.Phase == CrashLoopBackOff })
	var failures []State
	for _, s := range rec.all() {
		if s.PID == 0 && (s.Phase == Restarting || s.Phase == CrashLoopBackOff) {
			failures = append(failures, s)
		}
	}
	failures = failures[:3]
	for i, want := range []struct {
		phase   Phase
		backoff string
	}{{Restarting, "restarting in 5ms"}, {Restarting, "restarting in 10ms"}, {CrashLoopBackOff, "back-off 20ms"}} {
		s := failures[i]
		if s.Phase != want.phase || s.Reason != ReasonExited || !strings.Contains(s.Message, want.backoff) {
			t.Errorf("failure %d: %s/%s %q; want %s/%s saying %q", i+1, s.Phase, s.Reason, s.Message, want.phase, ReasonExited, want.backoff)
		}
		if s.Restarts != i {
			t.Errorf("failure %d: Restarts = %d, want %d", i+1, s.Restarts, i)
		}
	}
	got := failures[2]
	if got.LastExitCode != 3 || got.LastExit != "exit status 3" || got.LastSignal != "" {
		t.Errorf("last exit = %d %q, want 3 %q", got.LastExitCode, got.LastExit, "exit status 3")
	}
	if diff := cmp.Diff([]string{"starting engine", "fatal: config.json missing"}, got.LogTail); diff != "" {
		t.Errorf("LogTail (-want +got):\n%s", diff)
	}
	for _, w := range []string{"exited (exit status 3)", "3 failures in a row", "fatal: config.json missing"} {
		if !strings.Contains(got.Message, w) {
			t.Errorf("Message %q does not say %q", got.Message, w)
		}
	}
	if s := in.State(); s.Restarts < 2 {
		t.Errorf("Restarts = %d, want ≥ 2", s.Restarts)
	}
}

func TestStartupTimeout(t *testing.T) {
	t.Parallel()
	spec := shSpec(t, `echo "loading weights 1/2"; echo "loading weights 2/2"; exec sleep 1000`)
	spec.Port = freePort(t) // nothing will listen there
	spec.Startup = &Probe{Path: "/health", Period: 10 * time.Millisecond, Timeout: time.Second, FailureThreshold: 3}
	spec.Backoff = time.Hour // stay in Restarting for the assertions
	in, rec := start(t, spec)
	if s := in.State(); s.Phase != Starting || s.Reason != ReasonStarted || s.PID == 0 || !strings.Contains(s.Message, "startup probe") {
		t.Errorf("state after Start = %+v, want Starting with a PID, waiting for the startup probe", s)
	}

	s := waitState(t, in, "a restart after the startup timeout", func(s State) bool { return s.Reason == ReasonStartupTimeout && s.PID == 0 })
	if s.Phase != Restarting || s.LastExit != "signal: terminated" || s.LastExitCode != 128+15 || s.LastSignal != "terminated" {
		t.Errorf("state = %s, last exit %d %q signal %q; want Restarting after SIGTERM", s.Phase, s.LastExitCode, s.LastExit, s.LastSignal)
	}
	for _, w := range []string{"did not pass its startup probe", "failed 3 times in a row", "connection refused", "restarting in 1h0m0s", "loading weights 2/2"} {
		if !strings.Contains(s.Message, w) {
			t.Errorf("Message %q does not say %q", s.Message, w)
		}
	}
	if diff := cmp.Diff([]string{"loading weights 1/2", "loading weights 2/2"}, s.LogTail); diff != "" {
		t.Errorf("LogTail (-want +got):\n%s", diff)
	}
	if _, ok := rec.first(func(s State) bool { return s.Phase == Ready }); ok {
		t.Error("an engine that never passed its startup probe was reported Ready")
	}

	if err := in.Stop(bounded(t)); err != nil {
		t.Fatal(err)
	}
	if s := in.State(); s.Phase != Stopped || !strings.Contains(s.Message, "while waiting to restart") {
		t.Errorf("after Stop during the back-off: %s %q", s.Phase, s.Message)
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := helperSpec(t, dir)
	fast := 20 * time.Millisecond
	spec.Startup = &Probe{Path: "/live", Period: fast, Timeout: 5 * time.Second, FailureThreshold: 3000}
	spec.Liveness = &Probe{Path: "/live", Period: fast, Timeout: 5 * time.Second, FailureThreshold: 3}
	spec.Readiness = &Probe{Path: "/ready", Period: fast, Timeout: 5 * time.Second}
	spec.Backoff, spec.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	in, rec := start(t, spec)

	first := waitState(t, in, "Ready", func(s State) bool { return s.Phase == Ready })
	if err := os.WriteFile(filepath.Join(dir, "dead"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := waitRecorded(t, rec, "a restart for the liveness probe", func(s State) bool { return s.Reason == ReasonLivenessFailed && s.PID == 0 })
	for _, w := range []string{"failed its liveness probe 3 times in a row", "503", "helper engine listening"} {
		if !strings.Contains(s.Message, w) {
			t.Errorf("Message %q does not say %q", s.Message, w)
		}
	}
	if s.LastExit != "signal: terminated" {
		t.Errorf("LastExit = %q, want the SIGTERM of a graceful kill", s.LastExit)
	}
	if alive(first.PID) {
		t.Errorf("the killed engine %d is still alive", first.PID)
	}

	if err := os.Remove(filepath.Join(dir, "dead")); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, in, "Ready again after a restart", func(s State) bool { return s.Phase == Ready && s.Restarts >= 1 })
	if s.PID == first.PID || s.PID == 0 {
		t.Errorf("PID = %d after a restart, first was %d", s.PID, first.PID)
	}
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := helperSpec(t, dir)
	fast := 20 * time.Millisecond
	spec.Startup = &Probe{Path: "/live", Period: fast, Timeout: 5 * time.Second, FailureThreshold: 3000}
	spec.Readiness = &Probe{Path: "/ready", Period: fast, Timeout: 5 * time.Second, FailureThreshold: 2}
	in, _ := start(t, spec)

	s := waitState(t, in, "Ready", func(s State) bool { return s.Phase == Ready })
	if s.Reason != ReasonReadinessProbeSucceeded {
		t.Errorf("Reason = %q, want %q", s.Reason, ReasonReadinessProbeSucceeded)
	}
	pid := s.PID
	if err := os.WriteFile(filepath.Join(dir, "unready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, in, "Unready", func(s State) bool { return s.Phase == Unready })
	if s.Reason != ReasonReadinessFailed || !strings.Contains(s.Message, "503") {
		t.Errorf("Unready state: %s %q", s.Reason, s.Message)
	}
	if err := os.Remove(filepath.Join(dir, "unready")); err != nil {
		t.Fatal(err)
	}
	s = waitState(t, in, "Ready again", func(s State) bool { return s.Phase == Ready })
	if s.PID != pid || s.Restarts != 0 {
		t.Errorf("PID %d, Restarts %d; a readiness failure must not restart the engine (PID was %d)", s.PID, s.Restarts, pid)
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		grace  time.Duration
		exit   string // of the leader
	}{{
		name:   "SIGTERM ends engine and grandchild",
		script: `sleep 1000 & echo "grandchild $!"; wait`,
		grace:  time.Minute,
		exit:   "signal: terminated",
	}, {
		name:   "grandchild ignoring SIGTERM gets SIGKILL",
		script: `sh -c 'trap "" TERM; echo "grandchild $$"; while :; do sleep 0.05; done' & wait`,
		grace:  300 * time.Millisecond,
		exit:   "signal: terminated",
	}, {
		name:   "engine ignoring SIGTERM gets SIGKILL",
		script: `trap "" TERM; echo "grandchild $$"; while :; do sleep 0.05; done`,
		grace:  300 * time.Millisecond,
		exit:   "signal: killed",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := shSpec(t, tt.script)
			spec.GracePeriod = tt.grace
			stateDir := t.TempDir()
			in, err := Start(t.Context(), spec, stateDir)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Stop(bounded(t))
			pgid := in.State().PID

			rec, err := readRecord(recordPath(stateDir, spec.Name))
			if err != nil {
				t.Fatalf("no process record while running: %v", err)
			}
			if st, _ := readProcStat(pgid); rec.PID != pgid || rec.PGID != pgid || rec.StartTime != st.StartTime || rec.Argv[2] != tt.script {
				t.Errorf("record = %+v, want pid/pgid %d, start time %d", rec, pgid, st.StartTime)
			}

			var grandchild int
			eventually(t, "the grandchild's pid", func() bool {
				for _, l := range in.Logs(0) {
					if pid, ok := strings.CutPrefix(l, "grandchild "); ok {
						grandchild, _ = strconv.Atoi(pid)
					}
				}
				return grandchild > 0
			}, func() any { return in.Logs(0) })

			begin := time.Now()
			if err := in.Stop(bounded(t)); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			took := time.Since(begin)
			if pids, err := groupMembers(pgid); err != nil || len(pids) > 0 {
				t.Errorf("after Stop, process group %d still has %v (%v)", pgid, pids, err)
			}
			if alive(grandchild) {
				t.Errorf("grandchild %d survived Stop", grandchild)
			}
			s := in.State()
			if s.Phase != Stopped || s.Reason != ReasonStopRequested || s.PID != 0 || s.LastExit != tt.exit {
				t.Errorf("state after Stop: %s %s pid %d, last exit %q; want Stopped, %q", s.Phase, s.Reason, s.PID, s.LastExit, tt.exit)
			}
			if tt.grace < time.Minute && took < tt.grace {
				t.Errorf("Stop took %v, less than the grace period %v the engine was owed", took, tt.grace)
			}
			if _, err := os.Stat(recordPath(stateDir, spec.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("process record left after a clean stop: %v", err)
			}
			select {
			case <-in.Done():
			default:
				t.Error("Done is not closed after Stop")
			}
		})
	}
}

func TestExitStopsLeftovers(t *testing.T) {
	t.Parallel()
	spec := shSpec(t, `sleep 1000 & echo "grandchild $!"; exit 1`)
	spec.Backoff = time.Hour
	in, _ := start(t, spec)
	s := waitState(t, in, "Restarting", func(s State) bool { return s.Phase == Restarting })
	if s.Reason != ReasonExited || s.LastExit != "exit status 1" || len(s.LogTail) != 1 {
		t.Fatalf("state = %+v, want Restarting after exit status 1, with a line of output", s)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(s.LogTail[0], "grandchild "))
	if err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("the exited engine's grandchild %d is alive while the engine waits to restart", pid)
	}
}

func TestContextEndStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	in, err := Start(ctx, shSpec(t, "exec sleep 1000"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pid := in.State().PID
	cancel()
	select {
	case <-in.Done():
	case <-time.After(timeout):
		t.Fatal("the instance did not stop when its context ended")
	}
	if s := in.State(); s.Phase != Stopped || s.Reason != ReasonContextDone {
		t.Errorf("state = %s %s, want Stopped %s", s.Phase, s.Reason, ReasonContextDone)
	}
	if alive(pid) {
		t.Errorf("engine %d survived", pid)
	}
	if err := in.Stop(bounded(t)); err != nil {
		t.Errorf("Stop after the context ended: %v", err)
	}
}

func TestAlreadyRunning(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	spec := shSpec(t, "exec sleep 1000")
	in, err := Start(t.Context(), spec, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(bounded(t))
	in2, err := Start(t.Context(), spec, stateDir)
	if err == nil {
		in2.Stop(bounded(t))
	}
	if e, ok := errors.AsType[*AlreadyRunningError](err); !ok || e.PGID != in.State().PID {
		t.Errorf("second Start of the same name: %v, want an AlreadyRunningError for group %d", err, in.State().PID)
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {1000, 5 * time.Minute}} {
		if got := backoffDelay(time.Second, 5*time.Minute, tt.failures); got != tt.want {
			t.Errorf("backoffDelay(1s, 5m, %d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"default/mimo-vl-7b-rl/0": "default_mimo-vl-7b-rl_0",
		"../etc/passwd":           "_._etc_passwd",
		"a b\x00c":                "a_b_c",
		".hidden":                 "_hidden",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

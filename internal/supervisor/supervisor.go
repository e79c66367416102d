package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// crashLoopAfter failures in a row of engines that never became Ready
	// turn Restarting into CrashLoopBackOff.
	crashLoopAfter = 3
	// stableRun is how long an engine without startup and readiness probes
	// must run for its start to count as a success: without probes nothing
	// else tells a working engine from one that is about to crash.
	stableRun = 10 * time.Second
	// drainTimeout bounds the wait for the last output once a process group
	// is gone (a process that left the group may still hold the pipe).
	drainTimeout = time.Second
	// messageTailLines of State.LogTail are repeated in State.Message.
	messageTailLines = 5
)

// Instance is one supervised engine: its current process, the restarts of
// that process, its output and its state. Start creates it; its methods are
// safe for concurrent use.
type Instance struct {
	spec     Spec // with defaults
	engine   string
	path     string // Argv[0], resolved
	record   string // record file
	bootID   string
	log      *slog.Logger
	out      *ring
	file     *rotatingFile // nil without Spec.LogDir
	client   *http.Client
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu    sync.Mutex
	state State
	err   error // set when processes survived SIGKILL
}

// Start starts the engine process spec describes and supervises it in the
// background until Stop is called or ctx ends; either way the engine is
// stopped gracefully (use Stop or Done to wait for that). Before starting
// anything it checks that Argv[0] is installed (*EngineNotFoundError), that
// no other process listens on spec.Port (*PortInUseError) and that no
// process group recorded under spec.Name in stateDir is alive
// (*AlreadyRunningError). stateDir holds the record files (see CleanOrphans)
// and is created if missing. The first process is running when Start
// returns without error.
func Start(ctx context.Context, spec Spec, stateDir string) (*Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting engine %q: %w", spec.Name, err)
	}
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if stateDir == "" {
		return nil, fmt.Errorf("starting engine %q: no state directory given", spec.Name)
	}
	engine := engineLabel(spec.Argv[0])
	path, err := exec.LookPath(spec.Argv[0])
	if err != nil {
		return nil, &EngineNotFoundError{Engine: engine, Path: spec.Argv[0], Err: err}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("starting engine %q: creating the state directory: %w", spec.Name, err)
	}
	in := &Instance{
		spec:   spec,
		engine: engine,
		path:   path,
		record: recordPath(stateDir, spec.Name),
		bootID: readBootID(),
		log:    spec.Logger.With("service", spec.Name, "engine", engine),
		out:    newRing(ringLines, ringBytes),
		client: newProbeClient(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if rec, err := readRecord(in.record); err == nil && rec.alive(in.bootID) {
		return nil, &AlreadyRunningError{Name: spec.Name, PGID: rec.PGID}
	}
	if spec.LogDir != "" {
		if err := os.MkdirAll(spec.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("starting engine %q: creating the log directory: %w", spec.Name, err)
		}
		in.file, err = openRotating(filepath.Join(spec.LogDir, fileName(spec.Name)+".log"), spec.LogMaxBytes, spec.LogFiles)
		if err != nil {
			return nil, fmt.Errorf("starting engine %q: %w", spec.Name, err)
		}
	}
	r := &runner{in: in, probes: make(chan probeResult)}
	a, err := r.spawn(ctx)
	if err != nil {
		in.closeFile()
		return nil, err
	}
	r.started(a)
	go r.run(ctx)
	return in, nil
}

// State returns the instance's current state.
func (in *Instance) State() State {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.state.clone()
}

// Stop stops the engine: SIGTERM to its process group, Spec.GracePeriod to
// exit, then SIGKILL; it returns once no process of the group is left (or,
// waiting for a restart, at once). It returns an error when ctx ends first —
// the stop goes on in the background — or when processes survived SIGKILL
// (then the phase is Failed). Calling it again, or after the context of
// Start ended, waits for the same stop.
func (in *Instance) Stop(ctx context.Context) error {
	in.stopOnce.Do(func() { close(in.stop) })
	select {
	case <-in.done:
	case <-ctx.Done():
		return fmt.Errorf("stopping engine %q: %w (it goes on stopping in the background)", in.spec.Name, ctx.Err())
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return fmt.Errorf("stopping engine %q: %w", in.spec.Name, in.err)
	}
	return nil
}

// Done is closed once the instance has ended (Stopped or Failed) and its
// goroutines are gone.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Logs returns the last n lines of output held in memory (all of them when
// n <= 0), oldest first; the ring holds the last 2000 lines, at most 1 MiB,
// across restarts.
func (in *Instance) Logs(n int) []string { return in.out.last(n) }

// Follow returns a channel of the lines the engine writes from now on. It is
// closed when ctx ends or the instance has ended. A follower that falls more
// than 256 lines behind misses lines (Logs still has them).
func (in *Instance) Follow(ctx context.Context) <-chan string {
	ch := in.out.subscribe()
	go func() {
		select {
		case <-ctx.Done():
		case <-in.done:
		}
		in.out.unsubscribe(ch)
	}()
	return ch
}

// setState applies f to the state and reports the result to OnChange if it
// changed. Only the run loop (and Start, before it) calls it.
func (in *Instance) setState(f func(*State)) {
	in.mu.Lock()
	old := in.state
	s := old.clone()
	f(&s)
	if s.Phase != old.Phase {
		s.Since = time.Now()
	}
	changed := !s.equal(old)
	in.state = s
	in.mu.Unlock()
	if changed {
		in.log.Debug("engine state", "phase", s.Phase, "reason", s.Reason, "pid", s.PID)
		if in.spec.OnChange != nil {
			in.spec.OnChange(s.clone())
		}
	}
}

// line takes one line of engine output.
func (in *Instance) line(s string) {
	in.out.add(s)
	if in.file != nil {
		if err := in.file.writeLine(s); err != nil {
			in.log.Warn("engine output is no longer written to its log file", "err", err)
		}
	}
}

// note writes a line of the supervisor's own to the log file (not the ring:
// LogTail and Follow show only what the engine wrote).
func (in *Instance) note(format string, args ...any) {
	if in.file != nil {
		in.file.writeLine("--- citadel " + time.Now().Format(time.RFC3339) + ": " + fmt.Sprintf(format, args...))
	}
}

func (in *Instance) closeFile() {
	if in.file != nil {
		if err := in.file.close(); err != nil {
			in.log.Warn("closing the engine's log file", "err", err)
		}
	}
}

// exitStatus is how a process ended.
type exitStatus struct {
	code   int    // exit status, or 128+signal
	text   string // "exit status 1", "signal: killed"
	signal string // the signal that ended it ("killed"); "" if it exited
}

func exitStatusOf(ps *os.ProcessState, err error) exitStatus {
	if ps == nil {
		return exitStatus{code: -1, text: err.Error()}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitStatus{code: 128 + int(ws.Signal()), text: ps.String(), signal: ws.Signal().String()}
	}
	return exitStatus{code: ps.ExitCode(), text: ps.String()}
}

// attempt is one engine process (and its process group), from its start
// until its group is gone. The run loop owns it.
type attempt struct {
	n        int // identifies the attempt in probe results
	pid      int // also the process group id
	started  time.Time
	firstSeq uint64          // the ring's sequence number of its first line
	exited   chan exitStatus // receives once the leader was reaped
	out      *os.File        // read end of the output pipe
	outDone  chan struct{}   // closed when all output was read
	probeCtx context.Context // ends the probes
	cancel   context.CancelFunc
	probes   sync.WaitGroup

	startupPassed        bool
	startupFails         int
	liveFails            int
	readyOKs, readyFails int
	ready                bool
	succeeded            bool      // a startup or readiness probe passed
	readyAt              time.Time // first Ready

	terminating  bool        // SIGTERM sent to the group
	killed       bool        // SIGKILL sent to the group
	kill         *time.Timer // SIGKILL when the grace period ends; then give up after killTimeout
	reason       string      // why the supervisor killed it; "" if it ended on its own
	detail       string
	exit         *exitStatus // set once the leader was reaped
	exitedAt     time.Time
	poll         *time.Timer // checks whether the group is gone, once the leader was reaped
	pollInterval time.Duration
}

// runner is the state machine of an instance; its run loop is the only
// goroutine that touches it.
type runner struct {
	in       *Instance
	probes   chan probeResult
	attempts int      // attempts made
	spawned  int      // processes started
	cur      *attempt // nil while waiting out a back-off
	backoff  *time.Timer
	failures int // failures in a row, for the back-off
	crashes  int // failures in a row of engines that never became Ready

	stopping    bool
	stopReason  string
	stopMessage string
}

func (r *runner) run(ctx context.Context) {
	in := r.in
	defer close(in.done)
	defer in.closeFile()
	defer in.client.CloseIdleConnections()

	stop, ctxDone := in.stop, ctx.Done()
	for {
		var (
			exited              <-chan exitStatus
			kill, poll, backoff <-chan time.Time
		)
		if a := r.cur; a != nil {
			if a.exit == nil {
				exited = a.exited
			}
			if a.kill != nil {
				kill = a.kill.C
			}
			if a.poll != nil {
				poll = a.poll.C
			}
		} else if r.backoff != nil {
			backoff = r.backoff.C
		}
		finished := false
		select {
		case <-stop:
			stop, ctxDone = nil, nil
			finished = r.requestStop(ReasonStopRequested, "stop requested")
		case <-ctxDone:
			stop, ctxDone = nil, nil
			finished = r.requestStop(ReasonContextDone, "the supervisor's context ended ("+ctx.Err().Error()+")")
		case res := <-r.probes:
			r.probed(res)
		case st := <-exited:
			r.exited(st)
		case <-kill:
			finished = r.escalate()
		case <-poll:
			finished = r.pollGroup()
		case <-backoff:
			r.backoff = nil
			r.restart(ctx)
		}
		if finished {
			return
		}
	}
}

// spawn starts a process in its own process group, its output into a pipe,
// and records it.
func (r *runner) spawn(ctx context.Context) (*attempt, error) {
	in := r.in
	r.attempts++
	if in.spec.Port > 0 && portInUse(ctx, in.spec.Port) {
		return nil, &PortInUseError{Port: in.spec.Port}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting engine %s: %w", in.engine, err)
	}
	// The write end goes to the child as an *os.File, so no goroutine of
	// ours copies output and Wait returns when the leader exits, whoever
	// else holds the pipe (cmd.WaitDelay is not needed).
	cmd := &exec.Cmd{
		Path:   in.path,
		Args:   in.spec.Argv,
		Env:    in.spec.Env,
		Dir:    in.spec.Dir,
		Stdout: pw,
		Stderr: pw,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid: true,
			// Should the daemon die without stopping it (SIGKILL, a crash),
			// the kernel kills the engine; its own children are left to
			// CleanOrphans. (The signal comes when the thread that started
			// it ends; Go does not end threads of goroutines that did not
			// lock them.)
			Pdeathsig: syscall.SIGKILL,
		},
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("starting engine %s: %w", in.engine, err)
	}
	pid := cmd.Process.Pid
	rec := record{Name: in.spec.Name, PID: pid, PGID: pid, BootID: in.bootID, Argv: in.spec.Argv, Started: time.Now()}
	st, err := readProcStat(pid) // readable until Wait reaps it, even if it already exited
	if err == nil {
		rec.StartTime = st.StartTime
		err = writeRecord(in.record, rec)
	}
	if err != nil {
		// Unrecorded, it could outlive a daemon crash unnoticed: undo.
		signalGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		waitGroupGone(context.Background(), pid, killTimeout)
		pr.Close()
		return nil, fmt.Errorf("starting engine %s: %w", in.engine, err)
	}
	r.spawned++
	a := &attempt{
		n:        r.attempts,
		pid:      pid,
		started:  rec.Started,
		firstSeq: in.out.next(),
		exited:   make(chan exitStatus, 1),
		out:      pr,
		outDone:  make(chan struct{}),
	}
	go func() {
		err := cmd.Wait()
		a.exited <- exitStatusOf(cmd.ProcessState, err)
	}()
	go func() {
		defer close(a.outDone)
		defer pr.Close()
		readLines(pr, maxLineBytes, in.line)
	}()
	in.log.Info("engine started", "pid", pid)
	in.note("started %s as pid %d (restart %d)", in.engine, pid, r.spawned-1)
	return a, nil
}

// started takes a new process: sets its state and starts its probes.
func (r *runner) started(a *attempt) {
	r.cur = a
	a.probeCtx, a.cancel = context.WithCancel(context.Background())
	sp := r.in.spec
	if sp.Startup == nil {
		r.startupPassed(a, ReasonStarted, fmt.Sprintf("process %d started", a.pid))
		return
	}
	r.startProbe(a, startupProbe, sp.Startup)
	r.setRunning(a, Starting, ReasonStarted, fmt.Sprintf("process %d started; waiting for its startup probe (GET %s)", a.pid, probeURL(sp.Port, sp.Startup)))
}

// startupPassed starts the readiness and liveness probes.
func (r *runner) startupPassed(a *attempt, reason, message string) {
	a.startupPassed = true
	sp := r.in.spec
	if sp.Liveness != nil {
		r.startProbe(a, livenessProbe, sp.Liveness)
	}
	if sp.Readiness != nil {
		r.startProbe(a, readinessProbe, sp.Readiness)
		r.setRunning(a, Starting, reason, fmt.Sprintf("%s; waiting for its readiness probe (GET %s)", message, probeURL(sp.Port, sp.Readiness)))
		return
	}
	if sp.Startup != nil {
		r.becomeReady(a, true, reason, message+"; no readiness probe")
		return
	}
	r.becomeReady(a, false, ReasonRunning, message+"; no startup or readiness probe")
}

func (r *runner) becomeReady(a *attempt, proven bool, reason, message string) {
	a.ready = true
	if a.readyAt.IsZero() {
		a.readyAt = time.Now()
	}
	if proven {
		a.succeeded = true
		r.crashes = 0
	}
	r.setRunning(a, Ready, reason, message)
}

func (r *runner) setRunning(a *attempt, phase Phase, reason, message string) {
	if r.stopping {
		return // stays Stopping
	}
	r.in.setState(func(s *State) {
		s.Phase, s.Reason, s.Message = phase, reason, message
		s.PID, s.Restarts = a.pid, r.spawned-1
	})
}

func (r *runner) startProbe(a *attempt, kind probeKind, p *Probe) {
	delay := max(p.InitialDelay-time.Since(a.started), 0)
	url := probeURL(r.in.spec.Port, p)
	a.probes.Go(func() {
		runProbe(a.probeCtx, r.in.client, url, p, delay, a.n, kind, r.probes)
	})
}

// stopProbes ends the probes of a and waits for them.
func (r *runner) stopProbes(a *attempt) {
	a.cancel()
	a.probes.Wait()
}

// probed takes a probe's result.
func (r *runner) probed(res probeResult) {
	a := r.cur
	if a == nil || res.attempt != a.n || a.terminating || a.exit != nil {
		return // about a process that is going or gone
	}
	sp := r.in.spec
	switch res.kind {
	case startupProbe:
		if a.startupPassed {
			return
		}
		if res.err == nil {
			r.startupPassed(a, ReasonStartupProbeSucceeded, fmt.Sprintf("process %d passed its startup probe", a.pid))
			return
		}
		if a.startupFails++; a.startupFails >= sp.Startup.FailureThreshold {
			r.killFor(a, ReasonStartupTimeout, fmt.Sprintf("the engine did not pass its startup probe within %v: it failed %d times in a row (%v)",
				time.Since(a.started).Round(time.Millisecond), a.startupFails, res.err))
		}
	case livenessProbe:
		if res.err == nil {
			a.liveFails = 0
			return
		}
		if a.liveFails++; a.liveFails >= sp.Liveness.FailureThreshold {
			r.killFor(a, ReasonLivenessFailed, fmt.Sprintf("the engine failed its liveness probe %d times in a row (%v)", a.liveFails, res.err))
		}
	case readinessProbe:
		if res.err == nil {
			a.readyFails = 0
			if a.readyOKs++; !a.ready && a.readyOKs >= sp.Readiness.SuccessThreshold {
				r.becomeReady(a, true, ReasonReadinessProbeSucceeded, fmt.Sprintf("process %d passes its readiness probe", a.pid))
			}
			return
		}
		a.readyOKs = 0
		if a.readyFails++; a.ready && a.readyFails >= sp.Readiness.FailureThreshold {
			a.ready = false
			r.setRunning(a, Unready, ReasonReadinessFailed, fmt.Sprintf("process %d failed its readiness probe %d times in a row (%v)", a.pid, a.readyFails, res.err))
		}
	}
}

// killFor stops a's process group because it failed a probe; a restart follows.
func (r *runner) killFor(a *attempt, reason, detail string) {
	a.reason, a.detail = reason, detail
	r.in.log.Warn("killing engine", "reason", reason, "pid", a.pid, "err", detail)
	r.in.note("killing pid %d: %s", a.pid, detail)
	r.in.setState(func(s *State) {
		s.Phase, s.Reason = Restarting, reason
		s.Message = fmt.Sprintf("%s; stopping process group %d (SIGTERM, then SIGKILL after %v)", detail, a.pid, r.in.spec.GracePeriod)
	})
	r.terminate(a)
}

// terminate sends SIGTERM to a's process group and arms the SIGKILL.
func (r *runner) terminate(a *attempt) {
	if a.terminating {
		return
	}
	a.terminating = true
	r.stopProbes(a)
	if err := signalGroup(a.pid, syscall.SIGTERM); err != nil {
		r.in.log.Warn("stopping engine", "pid", a.pid, "err", err)
	}
	a.kill = time.NewTimer(r.in.spec.GracePeriod)
}

// exited takes the exit of a's leader; the rest of its group goes next.
func (r *runner) exited(st exitStatus) {
	a := r.cur
	a.exit, a.exitedAt = &st, time.Now()
	r.in.log.Info("engine exited", "pid", a.pid, "status", st.text)
	r.in.note("pid %d ended: %s", a.pid, st.text)
	r.terminate(a) // what it left behind in its group, if anything
	a.pollInterval = 0
	a.poll = time.NewTimer(0)
}

// pollGroup checks whether a's process group is gone, and finishes a if so.
func (r *runner) pollGroup() (finished bool) {
	a := r.cur
	if !groupGone(a.pid) {
		a.pollInterval = min(max(2*a.pollInterval, 5*time.Millisecond), 100*time.Millisecond)
		a.poll.Reset(a.pollInterval)
		return false
	}
	return r.finish(a)
}

// escalate sends SIGKILL once the grace period is over, and gives up when
// that does not end the group within killTimeout.
func (r *runner) escalate() (finished bool) {
	a := r.cur
	if !a.killed {
		a.killed = true
		r.in.log.Warn("engine did not stop within its grace period; sending SIGKILL", "pid", a.pid, "grace", r.in.spec.GracePeriod)
		r.in.note("process group %d did not stop within %v of SIGTERM: SIGKILL", a.pid, r.in.spec.GracePeriod)
		if err := signalGroup(a.pid, syscall.SIGKILL); err != nil {
			r.in.log.Warn("killing engine", "pid", a.pid, "err", err)
		}
		a.kill.Reset(killTimeout)
		return false
	}
	if a.exit != nil && groupGone(a.pid) {
		return r.finish(a)
	}
	pids, _ := groupMembers(a.pid)
	err := fmt.Errorf("processes %v of engine process group %d survived SIGKILL for %v (they may hold the GPU and port; its record %s is kept): %w",
		pids, a.pid, killTimeout, r.in.record, errSurvived)
	r.in.log.Error("giving up on engine", "pid", a.pid, "err", err)
	stopTimer(a.poll)
	a.out.SetReadDeadline(time.Now()) // the survivors hold the pipe
	<-a.outDone
	// A leader that survived SIGKILL keeps the goroutine waiting for it
	// until it ends; nothing else of the instance is left.
	r.in.mu.Lock()
	r.in.err = err
	r.in.mu.Unlock()
	r.in.setState(func(s *State) {
		s.Phase, s.Reason, s.Message = Failed, ReasonKillFailed, err.Error()
		s.PID = 0
		if a.exit != nil {
			s.LastExitCode, s.LastExit, s.LastSignal = a.exit.code, a.exit.text, a.exit.signal
		}
		s.LogTail = r.in.out.since(a.firstSeq, tailLines)
	})
	return true
}

// finish ends attempt a, whose leader was reaped and whose group is gone:
// the instance stops, or restarts after a back-off.
func (r *runner) finish(a *attempt) (finished bool) {
	stopTimer(a.kill)
	stopTimer(a.poll)
	r.stopProbes(a)
	select {
	case <-a.outDone:
	case <-time.After(drainTimeout):
		a.out.SetReadDeadline(time.Now()) // a process that left the group holds the pipe
		<-a.outDone
	}
	if err := os.Remove(r.in.record); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.in.log.Warn("removing the engine's process record", "err", err)
	}
	r.cur = nil
	tail := r.in.out.since(a.firstSeq, tailLines)
	st := *a.exit
	if r.stopping {
		r.in.setState(func(s *State) {
			s.Phase, s.Reason = Stopped, r.stopReason
			s.Message = fmt.Sprintf("%s: process %d ended (%s) and its process group is gone", r.stopMessage, a.pid, st.text)
			s.PID, s.LastExitCode, s.LastExit, s.LastSignal, s.LogTail = 0, st.code, st.text, st.signal, tail
		})
		return true
	}
	reason, detail := a.reason, a.detail
	if reason == "" {
		reason, detail = ReasonExited, fmt.Sprintf("the engine exited (%s) after %v", st.text, a.exitedAt.Sub(a.started).Round(time.Millisecond))
	} else {
		detail += "; it ended with " + st.text
	}
	r.failed(a, reason, detail, &st, tail)
	return false
}

// failed counts a failure — of attempt a, or of a start when a is nil — and
// schedules the restart.
func (r *runner) failed(a *attempt, reason, detail string, st *exitStatus, tail []string) {
	sp := r.in.spec
	if a != nil && !a.readyAt.IsZero() && a.exitedAt.Sub(a.readyAt) >= sp.BackoffReset {
		r.failures = 0
	}
	r.failures++
	noProbes := sp.Startup == nil && sp.Readiness == nil
	if a != nil && (a.succeeded || noProbes && a.exitedAt.Sub(a.started) >= stableRun) {
		r.crashes = 0
	} else {
		r.crashes++
	}
	delay := backoffDelay(sp.Backoff, sp.MaxBackoff, r.failures)
	phase, msg := Restarting, fmt.Sprintf("%s; restarting in %v", detail, delay)
	if r.crashes >= crashLoopAfter {
		phase = CrashLoopBackOff
		msg = fmt.Sprintf("%s; back-off %v before restarting, after %d failures in a row without becoming ready", detail, delay, r.crashes)
	}
	msg += tailMessage(tail)
	r.in.log.Warn("engine failed", "reason", reason, "err", detail, "backoff", delay)
	r.in.setState(func(s *State) {
		s.Phase, s.Reason, s.Message, s.PID = phase, reason, msg, 0
		if st != nil {
			s.LastExitCode, s.LastExit, s.LastSignal, s.LogTail = st.code, st.text, st.signal, tail
		}
	})
	r.backoff = time.NewTimer(delay)
}

// restart starts the next process once the back-off is over.
func (r *runner) restart(ctx context.Context) {
	a, err := r.spawn(ctx)
	if err != nil {
		reason := ReasonStartFailed
		if _, ok := errors.AsType[*PortInUseError](err); ok {
			reason = ReasonPortInUse
		}
		r.failed(nil, reason, err.Error(), nil, nil)
		return
	}
	r.started(a)
}

// requestStop begins a stop; it reports whether the instance has stopped.
func (r *runner) requestStop(reason, message string) (finished bool) {
	r.stopping, r.stopReason, r.stopMessage = true, reason, message
	r.in.log.Info("stopping engine", "reason", reason)
	a := r.cur
	if a == nil {
		stopTimer(r.backoff)
		r.backoff = nil
		r.in.setState(func(s *State) {
			s.Phase, s.Reason, s.PID = Stopped, reason, 0
			s.Message = message + ": stopped while waiting to restart; no process was running"
		})
		return true
	}
	r.in.setState(func(s *State) {
		s.Phase, s.Reason = Stopping, reason
		s.Message = fmt.Sprintf("%s: stopping process group %d (SIGTERM, then SIGKILL after %v)", message, a.pid, r.in.spec.GracePeriod)
	})
	r.terminate(a)
	return false
}

// backoffDelay is the wait before the restart that follows the given number
// of failures in a row (≥ 1): base, doubled per further failure, at most max.
func backoffDelay(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// tailMessage renders the last lines of output for State.Message.
func tailMessage(tail []string) string {
	if len(tail) == 0 {
		return "; it wrote no output"
	}
	tail = tail[max(len(tail)-messageTailLines, 0):]
	return "; its last output:\n  " + strings.Join(tail, "\n  ")
}

package supervisor

import (
	"fmt"
	"slices"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Phase is where an instance is in its lifecycle.
type Phase string

// The phases of an instance, declared in api/v1 (the EnginePhase constants) since they
// reach an InferenceService's status. Stopped and Failed are terminal.
const (
	Starting         Phase = v1.EnginePhaseStarting         // running; startup or readiness probe not passed yet
	Ready            Phase = v1.EnginePhaseReady            // running and passing its readiness probe (or has none)
	Unready          Phase = v1.EnginePhaseUnready          // running, was Ready, now failing its readiness probe
	Restarting       Phase = v1.EnginePhaseRestarting       // being killed after a failure, or waiting out the back-off
	CrashLoopBackOff Phase = v1.EnginePhaseCrashLoopBackOff // as Restarting, after ≥3 failures in a row without becoming Ready
	Stopping         Phase = v1.EnginePhaseStopping         // stop requested; waiting for the process group to go
	Stopped          Phase = v1.EnginePhaseStopped          // stopped; no process left
	Failed           Phase = v1.EnginePhaseFailed           // gave up: processes survived SIGKILL (see State.Message)
)

// Terminal reports whether the phase is final: the instance will not run again.
func (p Phase) Terminal() bool { return p == Stopped || p == Failed }

// Reasons: State.Reason is one of these, declared in api/v1 (see v1.Reasons) since the
// serving controller copies them into an InferenceService's status.
const (
	ReasonStarted                 = v1.ReasonStarted                 // Starting: the process was started
	ReasonStartupProbeSucceeded   = v1.ReasonStartupProbeSucceeded   // Starting (awaiting readiness) or Ready
	ReasonReadinessProbeSucceeded = v1.ReasonReadinessProbeSucceeded // Ready
	ReasonRunning                 = v1.ReasonRunning                 // Ready: no probe says otherwise
	ReasonReadinessFailed         = v1.ReasonReadinessFailed         // Unready
	ReasonExited                  = v1.ReasonExited                  // Restarting/CrashLoopBackOff: the process ended on its own
	ReasonStartupTimeout          = v1.ReasonStartupTimeout          // Restarting/CrashLoopBackOff: killed, startup probe kept failing
	ReasonLivenessFailed          = v1.ReasonLivenessFailed          // Restarting/CrashLoopBackOff: killed, liveness probe kept failing
	ReasonStartFailed             = v1.ReasonStartFailed             // Restarting/CrashLoopBackOff: the process could not be started
	ReasonPortInUse               = v1.ReasonPortInUse               // Restarting/CrashLoopBackOff: another process holds the port
	ReasonStopRequested           = v1.ReasonStopRequested           // Stopping/Stopped: Stop was called
	ReasonContextDone             = v1.ReasonContextDone             // Stopping/Stopped: the context given to Start ended
	ReasonKillFailed              = v1.ReasonKillFailed              // Failed: processes survived SIGKILL
)

// State is a snapshot of an instance.
type State struct {
	Phase Phase
	// Reason is a CamelCase word saying why the instance is in Phase, and
	// Message says it to a person (with the last lines of output after a
	// failure).
	Reason, Message string
	// PID is the engine's process id (and process group id); 0 when no
	// process runs.
	PID int
	// Restarts counts the processes started after the first.
	Restarts int
	// LastExitCode and LastExit describe how the last process ended: its exit
	// status, or 128+signal when a signal ended it (as shells and Kubernetes
	// report it), and Go's wording: "exit status 1", "signal: killed";
	// LastExitCode is -1 when the process could not be waited for. LastSignal
	// names the signal that ended it ("killed"), "" when it exited by itself.
	LastExitCode int
	LastExit     string
	LastSignal   string
	// LogTail is the last lines (up to 20) the last process wrote before it
	// ended.
	LogTail []string
	// Since is when the instance entered Phase.
	Since time.Time
}

func (s State) clone() State {
	s.LogTail = slices.Clone(s.LogTail)
	return s
}

func (s State) equal(t State) bool {
	return s.Phase == t.Phase && s.Reason == t.Reason && s.Message == t.Message && s.PID == t.PID &&
		s.Restarts == t.Restarts && s.LastExitCode == t.LastExitCode && s.LastExit == t.LastExit && s.LastSignal == t.LastSignal &&
		slices.Equal(s.LogTail, t.LogTail) && s.Since.Equal(t.Since)
}

// EngineNotFoundError: the engine's command is not installed (or not executable).
type EngineNotFoundError struct {
	Engine string // "vllm"
	Path   string // Argv[0]
	Err    error  // from exec.LookPath
}

func (e *EngineNotFoundError) Error() string {
	where := ""
	if e.Path != e.Engine {
		where = " at " + e.Path
	}
	return fmt.Sprintf("engine %s not found%s: install %s or set the runtime's command (%v)", e.Engine, where, e.Engine, e.Err)
}

func (e *EngineNotFoundError) Unwrap() error { return e.Err }

// PortInUseError: another process listens on the engine's port.
type PortInUseError struct {
	Port int
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d is in use by another process: choose another port, or stop that process", e.Port)
}

// AlreadyRunningError: a process group recorded for this instance name, in
// this state directory, is still alive.
type AlreadyRunningError struct {
	Name string
	PGID int
}

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("engine instance %q already runs as process group %d: stop it first (or let CleanOrphans stop a previous daemon's engines)", e.Name, e.PGID)
}

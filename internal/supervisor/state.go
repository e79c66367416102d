package supervisor

import (
	"fmt"
	"slices"
	"time"
)

// Phase is where an instance is in its lifecycle.
type Phase string

// The phases of an instance. Stopped and Failed are terminal.
const (
	Starting         Phase = "Starting"         // running; startup or readiness probe not passed yet
	Ready            Phase = "Ready"            // running and passing its readiness probe (or has none)
	Unready          Phase = "Unready"          // running, was Ready, now failing its readiness probe
	Restarting       Phase = "Restarting"       // being killed after a failure, or waiting out the back-off
	CrashLoopBackOff Phase = "CrashLoopBackOff" // as Restarting, after ≥3 failures in a row without becoming Ready
	Stopping         Phase = "Stopping"         // stop requested; waiting for the process group to go
	Stopped          Phase = "Stopped"          // stopped; no process left
	Failed           Phase = "Failed"           // gave up: processes survived SIGKILL (see State.Message)
)

// Terminal reports whether the phase is final: the instance will not run again.
func (p Phase) Terminal() bool { return p == Stopped || p == Failed }

// Reasons: State.Reason is one of these.
const (
	ReasonStarted                 = "Started"                 // Starting: the process was started
	ReasonStartupProbeSucceeded   = "StartupProbeSucceeded"   // Starting (awaiting readiness) or Ready
	ReasonReadinessProbeSucceeded = "ReadinessProbeSucceeded" // Ready
	ReasonRunning                 = "Running"                 // Ready: no probe says otherwise
	ReasonReadinessFailed         = "ReadinessFailed"         // Unready
	ReasonExited                  = "Exited"                  // Restarting/CrashLoopBackOff: the process ended on its own
	ReasonStartupTimeout          = "StartupTimeout"          // Restarting/CrashLoopBackOff: killed, startup probe kept failing
	ReasonLivenessFailed          = "LivenessFailed"          // Restarting/CrashLoopBackOff: killed, liveness probe kept failing
	ReasonStartFailed             = "StartFailed"             // Restarting/CrashLoopBackOff: the process could not be started
	ReasonPortInUse               = "PortInUse"               // Restarting/CrashLoopBackOff: another process holds the port
	ReasonStopRequested           = "StopRequested"           // Stopping/Stopped: Stop was called
	ReasonContextDone             = "ContextDone"             // Stopping/Stopped: the context given to Start ended
	ReasonKillFailed              = "KillFailed"              // Failed: processes survived SIGKILL
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
	// report it), and Go's wording: "exit status 1", "signal: killed".
	LastExitCode int
	LastExit     string
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
		s.Restarts == t.Restarts && s.LastExitCode == t.LastExitCode && s.LastExit == t.LastExit &&
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

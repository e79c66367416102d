// Package supervisor runs inference engine processes (vLLM, SGLang,
// llama.cpp's llama-server, ollama serve, or citadel sim) and keeps them
// running: one Instance per engine process, started with Start and ended
// with Stop.
//
// # Processes
//
// Each engine runs in its own process group (Setpgid), with SIGKILL as its
// parent-death signal as a second line of defence should the daemon die
// without stopping it. Stopping sends SIGTERM to the whole group, waits for
// Spec.GracePeriod, sends SIGKILL, and returns only once /proc shows no live
// process left in the group; workers and grandchildren an engine spawns are
// stopped with it. When an engine's main process exits on its own, whatever
// it left behind in its group is stopped the same way before it is restarted,
// so a restarted engine never finds its port or GPU memory still held.
//
// While a process group may be alive, a record file in the state directory
// (<stateDir>/<name>.json: pid, process group, start time from /proc, boot id,
// argv) remembers it; it is removed once the group is gone. A daemon that was
// killed with SIGKILL leaves its records behind, and CleanOrphans, called when
// the next daemon starts, stops the groups they name — only when the process
// is provably the one recorded, never a process that reused its pid.
//
// # Lifecycle
//
// An instance moves through these phases (State.Phase); every change is
// reported to Spec.OnChange:
//
//	Starting ──startup/readiness probe──▶ Ready ◀──readiness──▶ Unready
//	   │                                    │
//	   └── exit, StartupTimeout, LivenessFailed, StartFailed, PortInUse ──▶ Restarting or CrashLoopBackOff ──backoff──▶ Starting
//	Stop or the context of Start ends ──▶ Stopping ──group gone──▶ Stopped
//	a process survives SIGKILL ──▶ Failed
//
// Probes follow Kubernetes: the startup probe runs first and gates the others;
// when it fails FailureThreshold times in a row the engine is killed and
// restarted (StartupTimeout). The liveness probe then kills and restarts an
// engine that fails it FailureThreshold times in a row (LivenessFailed), and
// the readiness probe moves it between Ready and Unready without restarting
// it. Without a readiness probe an engine is Ready once it runs (and its
// startup probe, if any, has passed). Any end of an engine process — exit,
// signal, or a kill for a failed probe — is followed by a restart after a
// back-off that starts at Spec.Backoff and doubles up to Spec.MaxBackoff; it
// starts over once an engine has been Ready for Spec.BackoffReset (10 minutes
// by default). After three failures in a row of engines that never became
// Ready (without startup or readiness probe: that did not keep running for
// 10 seconds), the phase of the wait is CrashLoopBackOff instead of
// Restarting. Restarts go on for as long as the instance is not stopped.
//
// # Output
//
// An engine's stdout and stderr are merged, split into lines (lines longer
// than 16 KiB are cut), kept in a bounded in-memory ring (the last 2000 lines,
// at most 1 MiB; Logs, Follow, State.LogTail) and, when Spec.LogDir is set,
// appended to <LogDir>/<name>.log, rotated at 10 MiB with 3 older files kept.
//
// # Concurrency
//
// Each Instance has one goroutine that owns its state machine; probes, the
// process waiter and the output reader report to it. Instance methods are safe
// for concurrent use. The goroutines of an Instance end when it has stopped:
// after Stop returns, or once Done is closed.
package supervisor

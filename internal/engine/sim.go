package engine

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Simulate rewrites a launch of a known engine to run the simulator in its
// place:
//
//	citadel sim --engine E --gpu G --time-scale S <the engine's own flags>
//
// The engine's program prefix is dropped ("vllm serve MODEL" becomes
// "--model MODEL", "python3 -m sglang.launch_server" and "llama-server"
// become nothing). An engine whose flags cannot be passed on writes the
// simulator's arguments itself (the adapter's simArgs: `ollama serve` has no
// flags, so the simulator gets --host/--port and the model or store). The
// environment, probe paths and metrics are kept: the simulator answers them as
// the engine would; probe delays and periods shrink with the time scale, as the
// simulated engine loads in simulated time.
//
// The simulator accepts each engine's common flags; a few real flags it
// does not know are rewritten (SGLang's argparse abbreviation --mem-frac,
// --tensor-parallel-size for SGLang's --tp-size) or dropped when they do not
// change what is simulated (--log-requests, CUDA-graph and kernel
// settings), each said in Notes: the adapter's simRewrites. A launch whose command is a shell script
// cannot be simulated.
func Simulate(l Launch, citadel, gpuProfile string, timeScale float64) (Launch, error) {
	switch {
	case l.Simulated:
		return Launch{}, errors.New("simulate: the launch already runs citadel sim")
	case citadel == "":
		return Launch{}, errors.New("simulate: no path to the citadel binary")
	case gpuProfile == "":
		return Launch{}, errors.New("simulate: no GPU profile (e.g. h100-sxm, rtx-4090; see citadel sim --help)")
	case timeScale < 0 || math.IsNaN(timeScale) || math.IsInf(timeScale, 0):
		return Launch{}, fmt.Errorf("simulate: time scale %g: want 0 (as fast as possible) or more", timeScale)
	}
	a, prefix, model := detect(l.Argv)
	if a == nil || a.Name != l.Engine {
		return Launch{}, fmt.Errorf("simulate: %q is not the command line of a known engine (%s); a runner's shell script must be one simple command",
			strings.Join(l.Argv, " "), strings.Join(CommandLines(), ", "))
	}
	engine := a.Name
	if a.SimDialect == "" {
		return Launch{}, fmt.Errorf("simulate: citadel sim has no dialect for %s: serve it on a real GPU, or give internal/sim one", engine)
	}
	out := l
	out.Env = slices.Clone(l.Env)
	out.Served = slices.Clone(l.Served)
	out.Notes = slices.Clone(l.Notes)
	argv := []string{citadel, "sim", "--engine", a.SimDialect, "--gpu", gpuProfile, "--time-scale", strconv.FormatFloat(timeScale, 'g', -1, 64)}
	if a.simArgs != nil {
		args, err := a.simArgs(l)
		if err != nil {
			return Launch{}, err
		}
		argv = append(argv, args...)
	} else {
		if model != "" {
			argv = append(argv, "--model", model)
		}
		argv = append(argv, simFlags(a, l.Argv[prefix:], &out.Notes)...)
	}
	out.Argv = argv
	out.Simulated = true
	// The simulated engine loads in simulated time: so do its probes' waits.
	out.Startup, out.Readiness, out.Liveness = scaleProbe(l.Startup, timeScale), scaleProbe(l.Readiness, timeScale), scaleProbe(l.Liveness, timeScale)
	out.Notes = append(out.Notes, fmt.Sprintf("simulated by citadel sim: gpu %s, time scale %s (no %s process)",
		gpuProfile, strconv.FormatFloat(timeScale, 'g', -1, 64), engine))
	return out, nil
}

// scaleProbe shortens a probe's initial delay and period by the simulation's time scale (< 1),
// never the period below 100 ms; timeouts and thresholds stay.
func scaleProbe(p *Probe, timeScale float64) *Probe {
	if p == nil || timeScale >= 1 {
		return p
	}
	q := *p
	q.InitialDelay = time.Duration(float64(q.InitialDelay) * timeScale)
	if q.Period > 0 {
		q.Period = max(time.Duration(float64(q.Period)*timeScale), 100*time.Millisecond)
	}
	return &q
}

// simFlags applies the adapter's simRewrites to an engine's flags.
func simFlags(a *Adapter, args []string, notes *[]string) []string {
	rw := a.simRewrites
	var out []string
	var dropped []string
	for _, o := range parseOpts(args) {
		to, ok := rw[o.name]
		switch {
		case o.name == "" || !ok:
			out = append(out, args[o.start:o.end]...)
		case to == "":
			dropped = append(dropped, render(o))
		default:
			out = append(out, to)
			out = append(out, o.values...)
			*notes = append(*notes, fmt.Sprintf("sim: %s passed as %s", o.name, to))
		}
	}
	if len(dropped) > 0 {
		*notes = append(*notes, fmt.Sprintf("sim: dropped %s (no effect on the simulation)", strings.Join(dropped, ", ")))
	}
	return out
}

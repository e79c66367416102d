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
// become nothing). `ollama serve` has no flags; the simulator gets
// --host/--port (from OLLAMA_HOST, i.e. Launch.Host and Port) and, when the
// launch has no OLLAMA_MODELS store to serve, --model (the first served
// name), and reads OLLAMA_MODELS, OLLAMA_NUM_PARALLEL, OLLAMA_KEEP_ALIVE
// and OLLAMA_CONTEXT_LENGTH from the environment as ollama does. The
// environment, probe paths and metrics are kept: the simulator answers them as
// the engine would; probe delays and periods shrink with the time scale, as the
// simulated engine loads in simulated time.
//
// The simulator accepts each engine's common flags; a few real flags it
// does not know are rewritten (SGLang's argparse abbreviation --mem-frac,
// --tensor-parallel-size for SGLang's --tp-size) or dropped when they do not
// change what is simulated (--log-requests, CUDA-graph and kernel
// settings), each said in Notes. A launch whose command is a shell script
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
	engine, prefix, model := detect(l.Argv)
	if engine == "" || engine != l.Engine {
		return Launch{}, fmt.Errorf("simulate: %q is not the command line of a known engine (vllm serve, python3 -m sglang.launch_server, llama-server, ollama serve); a runner's shell script must be one simple command",
			strings.Join(l.Argv, " "))
	}
	out := l
	out.Env = slices.Clone(l.Env)
	out.Served = slices.Clone(l.Served)
	out.Notes = slices.Clone(l.Notes)
	argv := []string{citadel, "sim", "--engine", engine, "--gpu", gpuProfile, "--time-scale", strconv.FormatFloat(timeScale, 'g', -1, 64)}
	if engine == Ollama {
		host := l.Host
		if host == "" {
			host = "127.0.0.1"
		}
		argv = append(argv, "--host", host, "--port", strconv.Itoa(l.Port))
		// With a store (OLLAMA_MODELS), the simulator serves every model in it, as ollama
		// serve does; without one, the model the launch names.
		if !slices.ContainsFunc(l.Env, func(kv string) bool { return strings.HasPrefix(kv, "OLLAMA_MODELS=") }) {
			if len(l.Served) == 0 || l.Served[0] == "" {
				return Launch{}, errors.New("simulate: the ollama launch names no model (Served) and no store (OLLAMA_MODELS)")
			}
			argv = append(argv, "--model", l.Served[0])
		}
	} else {
		if model != "" {
			argv = append(argv, "--model", model)
		}
		flags := simFlags(engine, l.Argv[prefix:], &out.Notes)
		argv = append(argv, flags...)
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

// simRewrites are real engines' flags the simulator does not take: renamed
// to the simulator's spelling, or dropped ("") because they do not change
// what is simulated.
var simRewrites = map[string]map[string]string{
	VLLM: {
		"--enable-chunked-prefill": "", "--disable-custom-all-reduce": "", "--swap-space": "", "--block-size": "",
		"--allowed-local-media-path": "", "--distributed-executor-backend": "", "--compilation-config": "", "-O": "",
		"--enable-lora": "", "--max-loras": "", "--max-lora-rank": "", "--lora-modules": "",
	},
	SGLang: {
		"--mem-frac": "--mem-fraction-static", "--tensor-parallel-size": "--tp-size", "-tp": "--tp-size",
		"--model": "--model-path", "--context-len": "--context-length",
		"--log-requests": "", "--log-requests-level": "", "--enable-torch-compile": "", "--disable-cuda-graph": "",
		"--cuda-graph-max-bs": "", "--attention-backend": "", "--mm-attention-backend": "", "--sampling-backend": "",
		"--grammar-backend": "", "--schedule-policy": "", "--max-prefill-tokens": "", "--random-seed": "",
		"--enable-mixed-chunk": "", "--disable-overlap-schedule": "", "--enable-dp-attention": "", "--host-ip": "",
	},
	LlamaCPP: {
		"-sm": "", "--split-mode": "", "-ts": "", "--tensor-split": "", "-mg": "", "--main-gpu": "", "-dev": "",
		"--device": "", "--cache-reuse": "", "--reasoning-format": "", "--chat-template-file": "", "--log-disable": "",
		"-v": "", "--verbose": "", "-s": "", "--seed": "",
	},
}

// simFlags applies simRewrites to an engine's flags.
func simFlags(engine string, args []string, notes *[]string) []string {
	rw := simRewrites[engine]
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

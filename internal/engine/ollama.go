package engine

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Ollama is Ollama (https://ollama.com): `ollama serve`, one process per host that serves
// every model of its store, configured by OLLAMA_* variables only, with no Prometheus
// metrics.
const Ollama = "ollama"

var _ = register(&Adapter{
	Name: Ollama, Title: "Ollama", Install: "ollama", Runtime: Ollama,
	Commands:    []Command{{Program: "ollama", Sub: "serve"}},
	build:       ollamaEnv,
	ByName:      true,
	EnvConfig:   "OLLAMA_",
	hostEnv:     "OLLAMA_HOST",
	HostDefault: "127.0.0.1",
	place:       ollamaPlace,

	// Ollama has no Prometheus endpoint: MetricsPath and Metrics stay empty.
	// ollama serve binds within a second or two; models load on first use.
	Startup:   Probe{Path: "/", Period: time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 120},
	Readiness: Probe{Path: "/", Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	Liveness:  Probe{Path: "/", Period: 30 * time.Second, Timeout: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},

	Shared: true, Slots: true,
	DefaultContext: 4096, // OLLAMA_CONTEXT_LENGTH's default
	settingEnv:     map[string]string{"OLLAMA_CONTEXT_LENGTH": "max-model-len", "OLLAMA_NUM_PARALLEL": "concurrency"},
	OutOfMemory:    []string{"cudamalloc failed", "out of memory"},
	SimDialect:     Ollama,
	simArgs:        ollamaSimArgs,
})

// ollamaEnv configures `ollama serve`, which takes no flags: OLLAMA_HOST
// (host:port), OLLAMA_MODELS (the model store), OLLAMA_KEEP_ALIVE,
// OLLAMA_NUM_PARALLEL and OLLAMA_CONTEXT_LENGTH (Ollama's variables:
// https://docs.ollama.com/faq). Ollama loads the model on first use from its own store,
// so ModelPath is unused; the model is ModelName (e.g. qwen2.5:7b). It exports no
// Prometheus metrics.
func ollamaEnv(s Spec, l *Launch, env *envSet) (prog, args []string, err error) {
	if len(s.ExtraArgs) > 0 {
		return nil, nil, fmt.Errorf("runtime args %q: ollama serve takes no arguments; set OLLAMA_* variables in the engine's env", s.ExtraArgs)
	}
	if s.ModelName == "" {
		return nil, nil, errors.New("no model name: ollama loads the model by its name (ModelName, e.g. qwen2.5:7b)")
	}
	if len(l.Served) > 1 || l.Served[0] != s.ModelName {
		l.Notes = append(l.Notes, fmt.Sprintf("ollama answers to the model's own name %s (served names %v not applied)", s.ModelName, l.Served))
		l.Served = []string{s.ModelName}
	}
	if s.KeepAlive != "" {
		env.set("OLLAMA_KEEP_ALIVE", s.KeepAlive)
	}
	if s.Parallel > 0 {
		env.set("OLLAMA_NUM_PARALLEL", strconv.Itoa(s.Parallel))
	}
	if s.MaxModelLen > 0 {
		env.set("OLLAMA_CONTEXT_LENGTH", strconv.Itoa(s.MaxModelLen))
	}
	if s.TP > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("tensor parallelism %d: ollama has no such setting; it spreads layers over the visible GPUs", s.TP))
	}
	if s.GPUMemoryUtilization > 0 {
		l.Notes = append(l.Notes, fmt.Sprintf("GPU memory utilization %s not applied: ollama has no such setting", formatFloat(s.GPUMemoryUtilization)))
	}
	return []string{"ollama", "serve"}, nil, nil
}

// ollamaPlace gives ollama serve its address and Citadel's store.
func ollamaPlace(s Spec, env *envSet, notes *[]string) {
	env.force("OLLAMA_HOST", ollamaHost(s.Host, s.Port), "placement (ports are allocated per host)", notes)
	if s.OllamaModels != "" {
		env.force("OLLAMA_MODELS", s.OllamaModels, "the model store Citadel pulled into", notes)
	}
	// ollama serve prunes, at start, blobs no manifest names and partial files older than
	// an hour: Citadel's own downloads in progress in the same store.
	env.force("OLLAMA_NOPRUNE", "1", "Citadel (its downloads share the store)", notes)
}

// ollamaSimArgs: `ollama serve` has no flags; the simulator gets --host/--port (from
// OLLAMA_HOST, i.e. Launch.Host and Port) and, when the launch has no OLLAMA_MODELS store
// to serve, --model (the first served name), and reads OLLAMA_MODELS,
// OLLAMA_NUM_PARALLEL, OLLAMA_KEEP_ALIVE and OLLAMA_CONTEXT_LENGTH from the environment as
// ollama does.
func ollamaSimArgs(l Launch) ([]string, error) {
	host := l.Host
	if host == "" {
		host = "127.0.0.1"
	}
	argv := []string{"--host", host, "--port", strconv.Itoa(l.Port)}
	// With a store (OLLAMA_MODELS), the simulator serves every model in it, as ollama
	// serve does; without one, the model the launch names.
	if !slices.ContainsFunc(l.Env, func(kv string) bool { return strings.HasPrefix(kv, "OLLAMA_MODELS=") }) {
		if len(l.Served) == 0 || l.Served[0] == "" {
			return nil, errors.New("simulate: the ollama launch names no model (Served) and no store (OLLAMA_MODELS)")
		}
		argv = append(argv, "--model", l.Served[0])
	}
	return argv, nil
}

// ollamaHost is OLLAMA_HOST for an address.
func ollamaHost(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// hostPart returns the host of an address variable's value (OLLAMA_HOST:
// scheme://host:port, host:port or host).
func hostPart(v string) string {
	if _, rest, ok := strings.Cut(v, "://"); ok {
		v = rest
	}
	if i := strings.LastIndexByte(v, ':'); i >= 0 && !strings.Contains(v[i:], "]") {
		v = v[:i]
	}
	v = strings.Trim(v, "[]")
	if v == "" {
		return "127.0.0.1"
	}
	return v
}

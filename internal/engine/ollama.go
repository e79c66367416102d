package engine

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ollamaEnv configures `ollama serve`, which takes no flags: OLLAMA_HOST
// (host:port), OLLAMA_MODELS (the model store), OLLAMA_KEEP_ALIVE,
// OLLAMA_NUM_PARALLEL and OLLAMA_CONTEXT_LENGTH (protocols.md §7.1). Ollama
// loads the model on first use from its own store, so ModelPath is unused;
// the model is ModelName (e.g. qwen2.5:7b). It exports no Prometheus
// metrics.
func ollamaEnv(s Spec, l *Launch, env *envSet) ([]string, error) {
	if len(s.ExtraArgs) > 0 {
		return nil, fmt.Errorf("runtime args %q: ollama serve takes no arguments; set OLLAMA_* variables in the engine's env", s.ExtraArgs)
	}
	if s.ModelName == "" {
		return nil, errors.New("no model name: ollama loads the model by its name (ModelName, e.g. qwen2.5:7b)")
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
	return []string{"ollama", "serve"}, nil
}

// ollamaHost is OLLAMA_HOST for an address.
func ollamaHost(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// Settings are what an engine's own arguments and environment say about its memory and
// parallelism: the values the placement planner must size the engine with, because the
// engine will run with them.
type Settings struct {
	MaxModelLen          int     // vllm --max-model-len, sglang --context-length, llama.cpp -c ÷ -np, OLLAMA_CONTEXT_LENGTH
	GPUMemoryUtilization float64 // vllm --gpu-memory-utilization, sglang --mem-fraction-static
	Concurrency          int     // slots that each hold a full context: llama.cpp -np, OLLAMA_NUM_PARALLEL
	MaxNumSeqs           int     // vllm --max-num-seqs, sglang --max-running-requests (share the KV cache)
	TP                   int     // vllm --tensor-parallel-size/-tp, sglang --tp-size
	KVCacheDtype         string  // vllm --kv-cache-dtype, sglang --kv-cache-dtype
	Quantization         string  // vllm --quantization/-q, sglang --quantization
	GPULayers            int     // llama.cpp -ngl; -1 when not set
	ctxTotal             int     // llama.cpp -c before it is divided by the slots

	// From says where each value came from, by setting name ("max-model-len": "runtime vllm
	// engine.args"), in the order they were read.
	From []SettingSource
}

// SettingSource is one value the arguments set, and where it was written.
type SettingSource struct {
	Name, Value, Source string
}

// NewSettings returns empty settings.
func NewSettings() Settings { return Settings{GPULayers: -1} }

// Read takes the settings an engine's arguments and environment (KEY=VALUE) give, over the
// ones read before: read the runtime first and the InferenceService's overrides last. A
// shell script (sh -c "vllm serve …") is read word by word. A value that does not parse is an
// error naming the flag and the source.
func (s *Settings) Read(engine string, args, env []string, source string) error {
	a, ok := Lookup(engine)
	if !ok {
		a = unknown
	}
	flags := a.settingFlags
	if len(args) > 0 {
		if i, ok := shellScript(args); ok {
			args = looseFields(args[i], func(string) (string, bool) { return "", false })
		}
	}
	for _, o := range parseOpts(args) {
		name, ok := flags[o.name]
		if !ok || len(o.values) == 0 {
			continue
		}
		if err := s.set(name, o.values[0], source+" "+o.name); err != nil {
			return err
		}
	}
	if a.settingEnv != nil {
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if name, ok := a.settingEnv[k]; ok {
				if err := s.set(name, v, source+" env "+k); err != nil {
					return err
				}
			}
		}
	}
	if s.ctxTotal > 0 { // llama-server splits -c over its slots
		s.MaxModelLen = s.ctxTotal / max(s.Concurrency, 1)
	}
	return nil
}

func (s *Settings) set(name, v, source string) error {
	bad := func(want string) error {
		return fmt.Errorf("%s: %q is not %s", source, v, want)
	}
	switch name {
	case "max-model-len", "ctx-size", "concurrency", "max-num-seqs", "tensor-parallel-size", "gpu-layers":
		n, err := parseHumanInt(v)
		if err != nil || n < 0 {
			return bad("a whole number")
		}
		switch name {
		case "max-model-len":
			s.MaxModelLen = n
		case "ctx-size":
			s.ctxTotal = n
		case "concurrency":
			s.Concurrency = n
		case "max-num-seqs":
			s.MaxNumSeqs = n
		case "tensor-parallel-size":
			s.TP = n
		case "gpu-layers":
			s.GPULayers = n
		}
	case "gpu-memory-utilization":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			return bad("a fraction in (0, 1]")
		}
		s.GPUMemoryUtilization = f
	case "kv-cache-dtype":
		s.KVCacheDtype = strings.ToLower(v)
	case "quantization":
		s.Quantization = strings.ToLower(v)
	}
	s.From = append(s.From, SettingSource{Name: name, Value: v, Source: source})
	return nil
}

// parseHumanInt reads 8192, 8k, 8K, 1m as vLLM's human_readable_int does (k = 1000, K = 1024).
func parseHumanInt(v string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(v, "k"):
		mult, v = 1000, v[:len(v)-1]
	case strings.HasSuffix(v, "K"):
		mult, v = 1024, v[:len(v)-1]
	case strings.HasSuffix(v, "m"):
		mult, v = 1000*1000, v[:len(v)-1]
	case strings.HasSuffix(v, "M"):
		mult, v = 1024*1024, v[:len(v)-1]
	}
	n, err := strconv.Atoi(v)
	return n * mult, err
}

// Lines describes the settings read, one per value, e.g. "--max-model-len 8192 (from
// InferenceService spec.engine.runner.args)". A value set twice shows the last.
func (s *Settings) Lines() []string {
	last := map[string]int{}
	for i, f := range s.From {
		last[f.Name] = i
	}
	var out []string
	for i, f := range s.From {
		if last[f.Name] == i {
			out = append(out, fmt.Sprintf("%s %s (from %s)", f.Name, f.Value, f.Source))
		}
	}
	return out
}

// FlagFor is the way to write a setting on an engine's command line (or, for an engine
// configured by its environment such as Ollama, its environment): the flag (or variable)
// name and whether it is an environment variable. Empty when the engine has no such
// setting.
func FlagFor(engine, setting string) (name string, isEnv bool) {
	a, ok := Lookup(engine)
	switch {
	case !ok:
		return "", false
	case a.EnvConfig != "":
		for k, v := range a.settingEnv {
			if v == setting {
				return k, true
			}
		}
		return "", false
	case a.writeFlags != nil:
		return a.writeFlags[setting], false
	}
	best := ""
	for f, v := range a.settingFlags {
		if v == setting && strings.HasPrefix(f, "--") && (best == "" || len(f) > len(best)) {
			best = f
		}
	}
	return best, false
}

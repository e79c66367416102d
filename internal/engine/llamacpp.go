package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LlamaCPP is llama.cpp's server (https://github.com/ggml-org/llama.cpp): `llama-server -m
// FILE.gguf`, one process per model, requests in fixed slots (-np), Prometheus metrics with
// --metrics.
const LlamaCPP = "llamacpp"

var _ = register(&Adapter{
	Name: LlamaCPP, Title: "llama.cpp", Install: "llama.cpp (llama-server)", Runtime: LlamaCPP,
	Commands:    []Command{{Program: "llama-server"}},
	build:       llamacppArgs,
	HostDefault: "127.0.0.1", // no tensor-parallel flag: llama-server spreads layers over the visible GPUs
	aliases: map[string]string{
		"-m": "--model", "-c": "--ctx-size", "-np": "--parallel", "-ngl": "--n-gpu-layers",
		"--gpu-layers": "--n-gpu-layers", "-a": "--alias",
	},
	served: func(flags []string, _ string) []string {
		if a := firstValue(flags, "--alias"); a != "" {
			return strings.Split(a, ",")
		}
		if m := firstValue(flags, "--model"); m != "" {
			return []string{m}
		}
		return nil
	},

	// llama-server binds at once and answers /health 503 "Loading model" until loaded.
	Startup:     Probe{Path: "/health", Period: 5 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 360},
	Readiness:   Probe{Path: "/health", Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	Liveness:    Probe{Path: "/health", Period: 30 * time.Second, Timeout: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
	MetricsPath: "/metrics", metricsFlag: []string{"--metrics"},
	// Current llama-server builds export no KV-cache usage
	// (llamacpp:kv_cache_usage_ratio was removed), so KVUsage is empty.
	Metrics: LoadMetrics{Running: "llamacpp:requests_processing", Waiting: "llamacpp:requests_deferred"},

	Slots: true, ContextTotal: true,
	settingFlags: map[string]string{
		"-c": "ctx-size", "--ctx-size": "ctx-size", "-np": "concurrency", "--parallel": "concurrency",
		"-ngl": "gpu-layers", "--gpu-layers": "gpu-layers", "--n-gpu-layers": "gpu-layers",
	},
	// -c is the context of all the slots together: a fix multiplies by -np.
	writeFlags:  map[string]string{"max-model-len": "-c", "concurrency": "-np"},
	OutOfMemory: []string{"cudamalloc failed", "out of memory"},

	SimDialect: LlamaCPP,
	simRewrites: map[string]string{
		"-sm": "", "--split-mode": "", "-ts": "", "--tensor-split": "", "-mg": "", "--main-gpu": "", "-dev": "",
		"--device": "", "--cache-reuse": "", "--reasoning-format": "", "--chat-template-file": "", "--log-disable": "",
		"-v": "", "--verbose": "", "-s": "", "--seed": "",
	},
})

// llamacppArgs writes `llama-server` and its flags (llama-server's options:
// https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md).
// llama-server splits -c over its -np slots, so the context it is given is
// MaxModelLen × Parallel: every slot gets MaxModelLen tokens; -kvu keeps the
// slot count literal (see below). -ngl 999 puts
// every layer on the GPU; layers are spread over the visible GPUs (there is
// no tensor-parallel flag). -a is the model id /v1/models reports.
func llamacppArgs(s Spec, l *Launch, _ *envSet) (prog, args []string, err error) {
	if !strings.HasSuffix(strings.ToLower(s.ModelPath), ".gguf") {
		return nil, nil, fmt.Errorf("model path %q is not a GGUF file: llama-server loads .gguf files", s.ModelPath)
	}
	prog = []string{"llama-server"}
	slots := max(s.Parallel, 1)
	if len(l.Served) > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("llama-server reports one model id (-a): %s (not %s)", l.Served[0], strings.Join(l.Served[1:], ", ")))
		l.Served = l.Served[:1]
	}
	args = append(args, "-m", s.ModelPath, "--host", s.Host, "--port", strconv.Itoa(s.Port))
	if s.MaxModelLen > 0 {
		args = append(args, "-c", strconv.Itoa(s.MaxModelLen*slots))
	}
	// -kvu: one KV buffer shared by the slots. Without it, llama-server turns -np 1 into 4
	// slots with a unified KV cache (server main()), which is not the plan.
	args = append(args, "-np", strconv.Itoa(slots), "-kvu", "-ngl", "999", "--metrics", "-a", l.Served[0])
	if s.TP > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("tensor parallelism %d: llama-server has no such flag; it spreads layers over the %d visible GPUs", s.TP, max(len(s.GPUs), s.TP)))
	}
	if s.GPUMemoryUtilization > 0 {
		l.Notes = append(l.Notes, fmt.Sprintf("GPU memory utilization %s not applied: llama-server has no such flag", formatFloat(s.GPUMemoryUtilization)))
	}
	if s.Vision && !slices.Contains(s.ExtraArgs, "--mmproj") {
		l.Notes = append(l.Notes, "vision model without --mmproj: llama-server answers text only until the runtime args name the projector GGUF (--mmproj FILE)")
	}
	return prog, args, nil
}

package engine

import (
	"fmt"
	"strconv"
	"time"
)

// VLLM is vLLM (https://docs.vllm.ai): `vllm serve MODEL`, one process per model with the
// GPUs to itself, Prometheus metrics on /metrics.
const VLLM = "vllm"

var _ = register(&Adapter{
	Name: VLLM, Title: "vLLM", Install: "vllm", Runtime: VLLM,
	Commands: []Command{
		{Program: "vllm", Sub: "serve", Model: true},
		{Module: "vllm.entrypoints.openai.api_server"},
	},
	build: func(s Spec, l *Launch, _ *envSet) (prog, args []string, err error) {
		prog, args = vllmArgs(s, l)
		return prog, args, nil
	},
	HostDefault: "0.0.0.0", TPFlag: "--tensor-parallel-size",
	aliases:     map[string]string{"-tp": "--tensor-parallel-size"},
	splitInline: true, HFEnv: true,
	env:    map[string]string{"VLLM_NO_USAGE_STATS": "1"}, // a self-hosted engine does not report home
	served: vllmServed,

	// vLLM binds only when the weights are loaded, the KV cache profiled and CUDA graphs
	// captured: until then a connection is refused, so allow 30 min.
	Startup:     Probe{Path: "/health", Period: 5 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 360},
	Readiness:   Probe{Path: "/health", Period: 10 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	Liveness:    Probe{Path: "/health", Period: 30 * time.Second, Timeout: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
	MetricsPath: "/metrics",
	Metrics:     LoadMetrics{Running: "vllm:num_requests_running", Waiting: "vllm:num_requests_waiting", KVUsage: "vllm:kv_cache_usage_perc"},

	settingFlags: map[string]string{
		"--max-model-len": "max-model-len", "--gpu-memory-utilization": "gpu-memory-utilization",
		"--max-num-seqs": "max-num-seqs", "--tensor-parallel-size": "tensor-parallel-size", "-tp": "tensor-parallel-size",
		"--kv-cache-dtype": "kv-cache-dtype", "--quantization": "quantization", "-q": "quantization",
	},
	OutOfMemory: []string{"cuda out of memory", "outofmemoryerror", "cuda error: out of memory", "out of memory",
		"no available memory for the cache blocks", "larger than the maximum number of tokens that can be stored in kv cache"},

	SimDialect: VLLM,
	simRewrites: map[string]string{
		"--enable-chunked-prefill": "", "--disable-custom-all-reduce": "", "--swap-space": "", "--block-size": "",
		"--allowed-local-media-path": "", "--distributed-executor-backend": "", "--compilation-config": "", "-O": "",
		"--enable-lora": "", "--max-loras": "", "--max-lora-rank": "", "--lora-modules": "",
	},
})

// vllmArgs writes `vllm serve MODEL` and its flags (the options of `vllm serve`:
// https://docs.vllm.ai/en/latest/configuration/serve_args.html).
// The served names follow --served-model-name as separate arguments
// (argparse nargs="+"); the first is the model_name label of vLLM's metrics.
// --limit-mm-per-prompt uses the JSON form of vLLM ≥ 0.8 ('{"image": N}').
func vllmArgs(s Spec, l *Launch) (prog, args []string) {
	prog = []string{"vllm", "serve", s.ModelPath}
	args = append(args, "--served-model-name")
	args = append(args, l.Served...)
	args = append(args, "--host", s.Host, "--port", strconv.Itoa(s.Port))
	if s.TP > 0 {
		args = append(args, "--tensor-parallel-size", strconv.Itoa(s.TP))
	}
	if s.GPUMemoryUtilization > 0 {
		args = append(args, "--gpu-memory-utilization", formatFloat(s.GPUMemoryUtilization))
	}
	if s.MaxModelLen > 0 {
		args = append(args, "--max-model-len", strconv.Itoa(s.MaxModelLen))
	}
	if s.Vision && s.ImagesPerPrompt > 0 {
		args = append(args, "--limit-mm-per-prompt", fmt.Sprintf(`{"image": %d}`, s.ImagesPerPrompt))
	}
	if s.TrustRemoteCode {
		args = append(args, "--trust-remote-code")
	}
	if s.CacheDir != "" {
		args = append(args, "--download-dir", s.CacheDir)
	}
	return prog, args
}

// vllmServed: every --served-model-name, else the positional model, else --model.
func vllmServed(flags []string, positional string) []string {
	if v, ok := flagValue(flags, "--served-model-name"); ok && len(v) > 0 {
		return v
	}
	if positional != "" {
		return []string{positional}
	}
	if m := firstValue(flags, "--model"); m != "" {
		return []string{m}
	}
	return nil
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

package engine

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SGLang is SGLang (https://docs.sglang.io): `python3 -m sglang.launch_server`, one
// process per model with the GPUs to itself, Prometheus metrics with --enable-metrics.
const SGLang = "sglang"

var _ = register(&Adapter{
	Name: SGLang, Title: "SGLang", Install: "sglang", Runtime: SGLang,
	Commands: []Command{
		{Module: "sglang.launch_server"},
		{Program: "sglang", Sub: "serve"},
	},
	build: func(s Spec, l *Launch, _ *envSet) (prog, args []string, err error) {
		prog, args = sglangArgs(s, l)
		return prog, args, nil
	},
	HostDefault: "127.0.0.1", TPFlag: "--tp-size",
	aliases: map[string]string{
		"--tp-size": "--tensor-parallel-size", "--tp": "--tensor-parallel-size",
		"--model-path": "--model", "--mem-frac": "--mem-fraction-static",
	},
	splitInline: true, HFEnv: true,
	served: func(flags []string, _ string) []string {
		if n := firstValue(flags, "--served-model-name"); n != "" {
			return []string{n}
		}
		if m := firstValue(flags, "--model-path"); m != "" {
			return []string{m}
		}
		return nil
	},

	// Like vLLM, SGLang binds once loaded. /health_generate runs one decode step, so
	// readiness means the model really answers. SGLang's /health also runs a one-token
	// generation and waits up to SGLANG_HEALTH_CHECK_TIMEOUT (20 s) for it: probes wait
	// longer than that.
	Startup:     Probe{Path: "/health", Period: 5 * time.Second, Timeout: 5 * time.Second, SuccessThreshold: 1, FailureThreshold: 360},
	Readiness:   Probe{Path: "/health_generate", Period: 30 * time.Second, Timeout: 30 * time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	Liveness:    Probe{Path: "/health", Period: 30 * time.Second, Timeout: 25 * time.Second, SuccessThreshold: 1, FailureThreshold: 5},
	MetricsPath: "/metrics", metricsFlag: []string{"--enable-metrics"},
	Metrics: LoadMetrics{Running: "sglang:num_running_reqs", Waiting: "sglang:num_queue_reqs", KVUsage: "sglang:token_usage"},

	settingFlags: map[string]string{
		"--context-length": "max-model-len", "--context-len": "max-model-len", "--mem-fraction-static": "gpu-memory-utilization",
		"--mem-frac": "gpu-memory-utilization", "--max-running-requests": "max-num-seqs", "--tp-size": "tensor-parallel-size",
		"--tp": "tensor-parallel-size", "--tensor-parallel-size": "tensor-parallel-size", "--kv-cache-dtype": "kv-cache-dtype",
		"--quantization": "quantization",
	},
	OutOfMemory: []string{"cuda out of memory", "outofmemoryerror", "cuda error: out of memory", "out of memory"},

	SimDialect: SGLang,
	simRewrites: map[string]string{
		"--mem-frac": "--mem-fraction-static", "--tensor-parallel-size": "--tp-size", "-tp": "--tp-size",
		"--model": "--model-path", "--context-len": "--context-length",
		"--log-requests": "", "--log-requests-level": "", "--enable-torch-compile": "", "--disable-cuda-graph": "",
		"--cuda-graph-max-bs": "", "--attention-backend": "", "--mm-attention-backend": "", "--sampling-backend": "",
		"--grammar-backend": "", "--schedule-policy": "", "--max-prefill-tokens": "", "--random-seed": "",
		"--enable-mixed-chunk": "", "--disable-overlap-schedule": "", "--enable-dp-attention": "", "--host-ip": "",
	},
})

// sglangArgs writes `python3 -m sglang.launch_server` and its flags (SGLang's server
// arguments: https://docs.sglang.io/advanced_features/server_arguments.html). SGLang
// serves one name (--served-model-name takes one value); --enable-metrics turns on
// /metrics, which Citadel scrapes for load. Vision models need no flag: SGLang enables its
// multimodal path from the model's config.
func sglangArgs(s Spec, l *Launch) (prog, args []string) {
	prog = []string{"python3", "-m", "sglang.launch_server"}
	if len(l.Served) > 1 {
		l.Notes = append(l.Notes, fmt.Sprintf("sglang serves one model name: %s (not %s)", l.Served[0], strings.Join(l.Served[1:], ", ")))
		l.Served = l.Served[:1]
	}
	args = append(args, "--model-path", s.ModelPath, "--served-model-name", l.Served[0],
		"--host", s.Host, "--port", strconv.Itoa(s.Port))
	if s.TP > 0 {
		args = append(args, "--tp-size", strconv.Itoa(s.TP))
	}
	if s.GPUMemoryUtilization > 0 {
		args = append(args, "--mem-fraction-static", formatFloat(s.GPUMemoryUtilization))
	}
	if s.MaxModelLen > 0 {
		args = append(args, "--context-length", strconv.Itoa(s.MaxModelLen))
	}
	args = append(args, "--enable-metrics")
	if s.TrustRemoteCode {
		args = append(args, "--trust-remote-code")
	}
	if s.CacheDir != "" {
		args = append(args, "--download-dir", s.CacheDir)
	}
	if s.Vision && s.ImagesPerPrompt > 0 {
		l.Notes = append(l.Notes, fmt.Sprintf("images per prompt %d not applied: sglang has no per-prompt image limit", s.ImagesPerPrompt))
	}
	return prog, args
}

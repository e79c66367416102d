package engine

import (
	"fmt"
	"strconv"
)

// vllmArgs writes `vllm serve MODEL` and its flags (protocols.md §4.6).
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

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

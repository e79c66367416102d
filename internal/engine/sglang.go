package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// sglangArgs writes `python3 -m sglang.launch_server` and its flags
// (protocols.md §5). SGLang serves one name (--served-model-name takes one
// value); --enable-metrics turns on /metrics, which Citadel scrapes for load.
// Vision models need no flag: SGLang enables its multimodal path from the
// model's config.
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

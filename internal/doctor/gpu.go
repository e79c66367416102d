package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"citadel.dev/citadel/internal/placement"
)

// noGPUFix is what a host without an NVIDIA GPU can still do.
const noGPUFix = "nothing to fix for CPU engines (llama.cpp, Ollama); to try GPU models here, run citadel serve --gpus 2xrtx-4070-ti-super --simulate-engines (simulated GPUs and engines); on a GPU host, install the NVIDIA driver"

// GPU checks the NVIDIA driver and GPUs with nvidia-smi: the inventory query serve runs
// (placement.Query, read by placement.ParseNvidiaSMI) and the driver version. No nvidia-smi
// is a warning (CPU engines still run); an nvidia-smi that fails or lists no GPU fails.
func GPU(ctx context.Context, look LookPath, run Runner, timeout time.Duration) Check {
	c := Check{Name: "gpu", Checked: "NVIDIA driver and GPUs (nvidia-smi)"}
	prog, args, _ := strings.Cut(placement.Query, " ")
	path, err := look(prog)
	if err != nil {
		c.Status = Warn
		c.Finding = "nvidia-smi is not on PATH: no NVIDIA driver, so no GPU; citadel serve --gpus auto finds none and only CPU engines (llama.cpp, Ollama) can run"
		c.Fix = noGPUFix
		return c
	}
	c.Checked = "NVIDIA driver and GPUs (" + path + ")"
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := run(qctx, path, strings.Fields(args)...)
	if err != nil {
		c.Status = Fail
		c.Finding = "nvidia-smi failed: " + runErr(qctx, timeout, err, out)
		c.Fix = "check the driver with nvidia-smi (is the kernel module loaded? does the driver match the kernel?), or run citadel serve --gpus none"
		return c
	}
	gpus, err := placement.ParseNvidiaSMI(out)
	if err != nil {
		c.Status = Fail
		c.Finding = "nvidia-smi's answer does not read: " + err.Error()
		c.Fix = "run " + placement.Query + " and check the driver; or run citadel serve --gpus none"
		return c
	}
	driver := ""
	if dout, err := run(qctx, path, "--query-gpu=driver_version", "--format=csv,noheader"); err == nil {
		driver = firstLine(string(dout))
	}
	var parts, unusable []string
	for _, g := range gpus {
		mem := "memory not reported"
		if g.MemoryTotal > 0 {
			mem = fmt.Sprintf("%.1f GiB", float64(g.MemoryTotal)/(1<<30))
		}
		parts = append(parts, fmt.Sprintf("%d: %s, %s", g.Index, g.Name, mem))
		if g.Unusable != "" {
			unusable = append(unusable, fmt.Sprintf("GPU %d: %s", g.Index, g.Unusable))
		}
	}
	c.Status = OK
	c.Finding = fmt.Sprintf("%d GPU(s): %s", len(gpus), strings.Join(parts, "; "))
	if driver != "" {
		c.Finding += "; driver " + driver
	}
	if len(unusable) > 0 {
		c.Status = Warn
		c.Finding += "; not usable by placement: " + strings.Join(unusable, "; ")
		c.Fix = "disable MIG (nvidia-smi -mig 0) on the GPUs Citadel should use"
	}
	return c
}

package perfmodel

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// GPU is one accelerator's performance profile. Peak figures are datasheet values; the
// efficiency factors turn them into what an inference engine actually achieves (η_bw ≈ 0.7–0.9,
// η_c ≈ 0.4–0.6, t_overhead ≈ 0.5–5 ms; docs/design/perfmodel-calibration.md says how each is set).
type GPU struct {
	Name         string
	MemoryBytes  int64   // total device memory as the driver reports it (nvidia-smi "Total")
	Bandwidth    float64 // HBM/GDDR bandwidth, bytes/s
	BF16FLOPS    float64 // dense bf16/fp16 tensor FLOP/s (FP32 accumulate on GeForce)
	FP8FLOPS     float64 // dense fp8 tensor FLOP/s; 0 when the GPU has no fp8 tensor cores
	Interconnect float64 // GPU-to-GPU bandwidth per direction, bytes/s (NVLink, else PCIe)

	BandwidthEfficiency float64       // η_bw: fraction of Bandwidth a decode step achieves
	ComputeEfficiency   float64       // η_c: fraction of peak FLOP/s a prefill achieves
	StepOverhead        time.Duration // fixed host/launch cost of one engine iteration
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

// gpus is the built-in catalogue. Memory is nvidia-smi's total; bandwidth and FLOP/s are
// datasheet figures (NVIDIA's; the table with sources is in docs/design/perfmodel-calibration.md).
// a100-40g is the PCIe card (250 W) of the reference A100 sweep, which reached 77 % of its
// bandwidth roofline at batch 1, hence its lower η_bw; a100-80g is the SXM module.
var gpus = []GPU{
	{Name: "rtx-4070-ti-super", MemoryBytes: 16376 * mib, Bandwidth: 672e9, BF16FLOPS: 88.2e12, FP8FLOPS: 176.4e12,
		Interconnect: 20e9, BandwidthEfficiency: 0.85, ComputeEfficiency: 0.55, StepOverhead: time.Millisecond},
	{Name: "rtx-4090", MemoryBytes: 24564 * mib, Bandwidth: 1008e9, BF16FLOPS: 165.2e12, FP8FLOPS: 330.4e12,
		Interconnect: 20e9, BandwidthEfficiency: 0.85, ComputeEfficiency: 0.55, StepOverhead: time.Millisecond},
	{Name: "l4", MemoryBytes: 23034 * mib, Bandwidth: 300e9, BF16FLOPS: 121e12, FP8FLOPS: 242.5e12,
		Interconnect: 25e9, BandwidthEfficiency: 0.85, ComputeEfficiency: 0.5, StepOverhead: time.Millisecond},
	{Name: "a100-40g", MemoryBytes: 40960 * mib, Bandwidth: 1555e9, BF16FLOPS: 312e12,
		Interconnect: 25e9, BandwidthEfficiency: 0.80, ComputeEfficiency: 0.5, StepOverhead: 500 * time.Microsecond},
	{Name: "a100-80g", MemoryBytes: 81920 * mib, Bandwidth: 2039e9, BF16FLOPS: 312e12,
		Interconnect: 300e9, BandwidthEfficiency: 0.90, ComputeEfficiency: 0.5, StepOverhead: 500 * time.Microsecond},
	{Name: "h100-sxm", MemoryBytes: 81559 * mib, Bandwidth: 3350e9, BF16FLOPS: 989e12, FP8FLOPS: 1979e12,
		Interconnect: 450e9, BandwidthEfficiency: 0.90, ComputeEfficiency: 0.5, StepOverhead: 500 * time.Microsecond},
	{Name: "h200", MemoryBytes: 143771 * mib, Bandwidth: 4800e9, BF16FLOPS: 989e12, FP8FLOPS: 1979e12,
		Interconnect: 450e9, BandwidthEfficiency: 0.90, ComputeEfficiency: 0.5, StepOverhead: 500 * time.Microsecond},
}

// GPUNames lists the built-in GPU profiles, sorted.
func GPUNames() []string {
	names := make([]string, len(gpus))
	for i, g := range gpus {
		names[i] = g.Name
	}
	slices.Sort(names)
	return names
}

// LookupGPU returns the built-in profile called name (case-insensitive).
func LookupGPU(name string) (GPU, error) {
	for _, g := range gpus {
		if strings.EqualFold(g.Name, name) {
			return g, nil
		}
	}
	return GPU{}, fmt.Errorf("unknown GPU %q: choose one of %s", name, strings.Join(GPUNames(), ", "))
}

// computeFLOPS is the peak FLOP/s for weights in q: fp8 weights use fp8 tensor cores where the
// GPU has them (else they are dequantised to bf16, as vLLM's Marlin kernels do on A100).
func (g GPU) computeFLOPS(q Quant) float64 {
	if q == QuantFP8 && g.FP8FLOPS > 0 {
		return g.FP8FLOPS
	}
	return g.BF16FLOPS
}

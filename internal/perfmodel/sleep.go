package perfmodel

import "time"

// Sleep and wake timings of an engine that keeps its process and releases GPU memory (vLLM's
// sleep mode, SGLang's release_memory_occupation), fitted to vLLM's published figures
// (blog.vllm.ai/2025/10/26/sleep-mode.html; vLLM 0.11.0 on an A100, TP 1):
//
//	              Qwen3-0.6B bf16 (1.2 GB)   Phi-3-vision bf16 (8.3 GB)
//	wake level 1  0.26 s                     0.82 s
//	wake level 2  0.85 s                     2.58 s
//
// Level 1 copies the weights back from pinned host memory: 0.165 s + bytes ÷ 12.7 GB/s fits
// both points (a PCIe 4.0 ×16 link's practical rate) and gives ≈ 4.8 s for a 235B FP8 model
// over 4 GPUs, inside the post's "3–6 s for large models". Level 2 reads them from disk:
// 0.55 s + bytes ÷ DiskReadRate (4 GB/s, a PCIe 4.0 NVMe drive) gives 0.85 s and 2.6 s.
// Tensor parallel ranks copy their shards at once, so the bytes are per GPU.
const (
	HostToDeviceRate = 12.7e9 // bytes/s, pinned host memory to GPU
	DiskReadRate     = 4e9    // bytes/s, weights read from a local NVMe drive

	wakeOverhead1 = 165 * time.Millisecond // allocator remap, CUDA graph replay set-up
	wakeOverhead2 = 550 * time.Millisecond // the same plus opening and parsing the checkpoint
	sleepOverhead = 100 * time.Millisecond // freeing and unmapping
)

// WakeTime is how long an engine takes to wake from sleep level 1 (weights in host memory) or
// level 2 (weights read again from disk), weightBytes per GPU.
func WakeTime(level int, weightBytes int64) time.Duration {
	if level >= 2 {
		return wakeOverhead2 + byteTime(weightBytes, DiskReadRate)
	}
	return wakeOverhead1 + byteTime(weightBytes, HostToDeviceRate)
}

// SleepTime is how long putting an engine to sleep takes: level 1 copies the weights to host
// memory, level 2 only frees them. The published figures do not separate it from the switch;
// this assumes the copy runs at the wake rate.
func SleepTime(level int, weightBytes int64) time.Duration {
	if level == 1 {
		return sleepOverhead + byteTime(weightBytes, HostToDeviceRate)
	}
	return sleepOverhead
}

// ColdLoadTime is reading weightBytes per GPU from disk into a fresh process, without the
// process start, allocator set-up, CUDA graph capture and kernel compilation a real cold start
// adds (≈ 48 s per switch in the same post, against 2.6 s for a level-2 wake).
func ColdLoadTime(weightBytes int64) time.Duration {
	return wakeOverhead2 + byteTime(weightBytes, DiskReadRate)
}

func byteTime(b int64, rate float64) time.Duration {
	if b <= 0 {
		return 0
	}
	return time.Duration(float64(b) / rate * float64(time.Second))
}

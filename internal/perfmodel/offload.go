package perfmodel

// Partial offload: how Ollama (llama.cpp -ngl) runs a model larger than the free VRAM by keeping
// some of its layers in host memory and running them on the CPU.
//
// The split follows Ollama's estimate (llm/memory.go EstimateGPULayers, as of 2024–2025):
//
//   - A layer is one repeating block (its weights plus its KV cache for ctx × parallel tokens, f16)
//     or the output layer (lm_head, or the tied embedding table). The token-embedding table stays in
//     host memory (llama.cpp reads one row of it per token). So a model of N blocks has N + 1 layers.
//   - Every GPU that gets layers reserves llama.cpp's minimum (457 MiB on CUDA), the compute graph
//     (Ollama's GraphSize for the llama family at num_batch 512, the larger of its partial- and
//     full-offload figures) and one spare layer; the first GPU also holds a vision projector.
//   - Blocks are placed from the last to the first, spread round-robin over the GPUs that still
//     have room (a GPU that cannot take a block drops out); then the output layer goes to a GPU if
//     one has room. The blocks that are left — the first ones — run on the CPU.
//
// Ollama's newer engine measures the allocations by loading the graph instead of estimating, so a
// real split can differ by a layer or two; the planner's figures are an estimate and say so.
//
// Speed: decoding is memory-bound, so a token's time is Σ bytes read / bandwidth over the devices
// that hold them: bytes_GPU / (η_bw · BW_GPU) + bytes_CPU / BW_host, where BW_host is the
// bandwidth llama.cpp's CPU kernels achieve. The PCIe hop of the hidden state between devices
// (a few KiB per token) is negligible.
//
// Calibration (offload_test.go TestOffloadCalibration, simulated 17.4 tokens/s): llmfit's
// community benchmark of an RTX 2080 8 GB (448 GB/s) in an i9-10900X host (quad-channel DDR4, ≈ 102 GB/s measured), llama.cpp, Qwen3-14B
// Q4_K_M, context 4096, one slot, -ngl 32 of 41 layers: 16.9 tokens/s
// (https://github.com/AlexsJones/llmfit/pull/774; the bandwidth figure is the same host's, in
// https://github.com/AlexsJones/llmfit/pull/755). That figure is reproduced with the host's CPU
// kernels achieving hostEfficiency (0.5) of its measured bandwidth; DefaultHostBandwidth is
// that efficiency applied to dual-channel DDR5-5600 (89.6 GB/s peak), the desktop the seed host
// is likely to be.

const (
	// hostEfficiency is the fraction of host memory bandwidth llama.cpp's CPU matrix-vector
	// kernels achieve on quantised weights during decode (calibrated above).
	hostEfficiency = 0.5
	// DefaultHostBandwidth is the effective bandwidth, bytes/s, of the CPU part of a partially
	// offloaded model: dual-channel DDR5-5600 (89.6 GB/s peak) × hostEfficiency ≈ 45 GB/s.
	DefaultHostBandwidth = 89.6e9 * hostEfficiency

	// ollamaMinimumMemory is llama.cpp's per-GPU minimum that Ollama keeps free on CUDA
	// (discover: CudaMinimumMemory = 457 MiB).
	ollamaMinimumMemory = 457 * mib
	// ollamaNumBatch is Ollama's default num_batch, the batch the compute graph is sized for.
	ollamaNumBatch = 512
)

// Offload is how a model's layers are split between GPUs and the CPU, as Ollama (llama.cpp -ngl) does.
type Offload struct {
	Layers    int   // repeating layers (block_count) + 1 output layer, as Ollama counts them
	GPULayers []int // layers on each GPU, in the order of the free list given
	CPULayers int
	Slowdown  float64 // decode time per token ÷ all-on-GPU decode time (1 when nothing is on the CPU)

	GPUBytes   []int64 // what Ollama allocates on each GPU: layers, KV, graph and minimum (0 when it gets no layer)
	CPUBytes   int64   // weights and KV of the layers in host memory (not counting the token embeddings)
	LayerBytes int64   // one repeating layer: its weights plus its KV cache
	GraphBytes int64   // the compute graph reserved on each GPU in use
}

// OnGPU is how many layers are on GPUs.
func (o Offload) OnGPU() int {
	n := 0
	for _, l := range o.GPULayers {
		n += l
	}
	return n
}

// Fits reports whether at least one layer is on a GPU: with none, Ollama runs the model on the
// CPU alone, which the planner does not count as placing it.
func (o Offload) Fits() bool { return o.OnGPU() > 0 }

// PlanOffload splits m in format q, with ctx tokens of context for each of parallel slots, over
// GPUs with free bytes free each, as Ollama would. Slowdown is costed on the reference GPU
// (rtx-4070-ti-super, the seed host's card) and DefaultHostBandwidth; use PlanOffloadOn to
// cost it on another GPU or host.
func PlanOffload(m Model, q Quant, ctx, parallel int, free []int64) Offload {
	g, _ := LookupGPU("rtx-4070-ti-super")
	return PlanOffloadOn(g, DefaultHostBandwidth, m, q, ctx, parallel, free)
}

// PlanOffloadOn is PlanOffload with the GPU whose bandwidth the GPU part runs at and the host's
// effective bandwidth (bytes/s; 0 for DefaultHostBandwidth).
func PlanOffloadOn(g GPU, hostBandwidth float64, m Model, q Quant, ctx, parallel int, free []int64) Offload {
	if hostBandwidth <= 0 {
		hostBandwidth = DefaultHostBandwidth
	}
	if q == "" {
		q = m.Quant
	}
	if q == "" {
		q = QuantBF16
	}
	ctx, parallel = max(ctx, 1), max(parallel, 1)
	blocks := max(m.Layers, 1)
	tokens := int64(ctx) * int64(parallel)

	blockWeights := int64(float64(m.blockParams()) * q.bytesPerWeight() / float64(blocks))
	kvPerLayer := tokens * 2 * int64(m.KVHeads) * int64(m.HeadDim) * 2 // K and V, f16
	layer := blockWeights + kvPerLayer
	outBPW := 2.0
	if q == QuantQ4KM {
		outBPW = q.bytesPerWeight()
	}
	output := int64(float64(m.EmbeddingParams) * outBPW)
	projector := m.VisionParams * 2
	graph := ollamaGraph(m, tokens)

	o := Offload{Layers: blocks + 1, GPULayers: make([]int, len(free)), GPUBytes: make([]int64, len(free)),
		LayerBytes: layer, GraphBytes: graph}
	// Each GPU first holds the minimum and a spare layer (and the projector on the first); one
	// without room for the graph and two layers beyond that gets nothing.
	alloc := make([]int64, len(free))
	var withSpace []int
	for i, f := range free {
		zero := int64(0)
		if i == 0 {
			zero = projector
		}
		if f < zero+graph+ollamaMinimumMemory+2*layer {
			continue
		}
		alloc[i] = ollamaMinimumMemory + layer + zero
		withSpace = append(withSpace, i)
	}
	fits := func(i int, b int64) bool { return free[i] > alloc[i]+graph+b }
	placed := 0
	for b := blocks - 1; b >= 0; b-- {
		for j := len(withSpace); j > 0; j-- {
			k := b % j
			i := withSpace[k]
			if fits(i, layer) {
				alloc[i] += layer
				o.GPULayers[i]++
				placed++
				break
			}
			withSpace = append(withSpace[:k:k], withSpace[k+1:]...)
		}
	}
	outputOnGPU := false
	for j := len(withSpace); j > 0 && placed == blocks; j-- {
		// Ollama offers the output layer only once every block is on a GPU (with num_gpu unset).
		i := withSpace[placed%j]
		if fits(i, output) {
			alloc[i] += output
			o.GPULayers[i]++
			outputOnGPU = true
			break
		}
	}
	for i, n := range o.GPULayers {
		if n > 0 {
			o.GPUBytes[i] = alloc[i] + graph
		}
	}
	o.CPULayers = o.Layers - placed
	if outputOnGPU {
		o.CPULayers--
	}

	// Decode reads every layer's weights once per token.
	cpuBlocks := int64(blocks - placed)
	gpuBytes := int64(placed) * blockWeights
	cpuBytes := cpuBlocks * blockWeights
	o.CPUBytes = cpuBlocks * layer
	if outputOnGPU {
		gpuBytes += output
	} else {
		cpuBytes += output
		o.CPUBytes += output
	}
	o.Slowdown = 1
	if all := decodeSeconds(gpuBytes+cpuBytes, 0, g, hostBandwidth); all > 0 && o.CPULayers > 0 {
		o.Slowdown = decodeSeconds(gpuBytes, cpuBytes, g, hostBandwidth) / all
	}
	return o
}

// decodeSeconds is the memory-bound time of one decode step that reads gpu bytes from g's memory
// and cpu bytes from host memory at hostBandwidth (effective, bytes/s).
func decodeSeconds(gpu, cpu int64, g GPU, hostBandwidth float64) float64 {
	gpuBW := g.Bandwidth * g.BandwidthEfficiency
	if gpuBW <= 0 {
		gpuBW = hostBandwidth
	}
	return float64(gpu)/gpuBW + float64(cpu)/hostBandwidth
}

// ollamaGraph is the compute graph Ollama reserves per GPU for llama-family models (fs/ggml
// GraphSize, case "llama"): the larger of the full- and partial-offload figures, at num_batch
// 512 over ctx × parallel tokens.
func ollamaGraph(m Model, context int64) int64 {
	batch := int64(ollamaNumBatch)
	emb, heads, kvHeads, vocab := int64(m.Hidden), int64(m.Heads), int64(m.KVHeads), int64(m.Vocab)
	headDim := int64(m.HeadDim)
	full := max(4*batch*(1+4*emb+context*(1+heads)), 4*batch*(emb+vocab))
	partial := 4*batch*emb + max(
		4*batch*(1+emb+max(context, emb))+emb*emb*9/16+4*context*(batch*heads+headDim*kvHeads),
		4*batch*(emb+vocab)+emb*vocab*105/128,
	)
	return max(full, partial)
}

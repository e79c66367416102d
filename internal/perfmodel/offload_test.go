package perfmodel

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOffloadCalibration(t *testing.T) {
	t.Parallel()
	// llmfit community benchmark (https://github.com/AlexsJones/llmfit/pull/774): RTX 2080 8 GB in
	// an i9-10900X host (≈ 102 GB/s measured, https://github.com/AlexsJones/llmfit/pull/755),
	// llama.cpp, Qwen3-14B Q4_K_M, context 4096, one slot, -ngl 32: 16.9 tokens/s. With -ngl 32
	// llama.cpp puts 32 of the 40 blocks on the GPU; the other 8 and the output layer (it goes to
	// the GPU only when -ngl exceeds the block count) run on the CPU.
	qwen3 := Model{Name: "qwen3-14b", Params: 14_768_307_200, EmbeddingParams: 151936 * 5120, Layers: 40, Hidden: 5120,
		Heads: 40, KVHeads: 8, HeadDim: 128, Intermediate: 17408, Vocab: 151936, MaxContext: 40960, Quant: QuantBF16}
	rtx2080 := GPU{Name: "rtx-2080", MemoryBytes: 8192 * mib, Bandwidth: 448e9, BandwidthEfficiency: 0.85}
	block := int64(float64(qwen3.blockParams()) * QuantQ4KM.bytesPerWeight() / 40)
	output := int64(float64(qwen3.EmbeddingParams) * QuantQ4KM.bytesPerWeight())
	got := 1 / decodeSeconds(32*block, 8*block+output, rtx2080, 102e9*hostEfficiency)
	const want = 16.9
	t.Logf("Qwen3-14B Q4_K_M, 32 of 40 blocks on an RTX 2080: simulated %.1f tokens/s, measured %.1f", got, want)
	if math.Abs(got-want)/want > 0.10 {
		t.Errorf("simulated %.1f tokens/s, want %.1f ± 10 %%", got, want)
	}
}

func TestPlanOffload(t *testing.T) {
	t.Parallel()
	ds, err := LookupModel("deepseek-r1-distill-qwen-32b")
	if err != nil {
		t.Fatal(err)
	}
	coder, err := LookupModel("deepcoder-14b")
	if err != nil {
		t.Fatal(err)
	}
	const gib16 = 16376 * mib
	type split struct {
		Layers    int
		GPULayers []int
		CPULayers int
	}
	tests := []struct {
		name         string
		m            Model
		free         []int64
		want         split
		minSlow, max float64 // Slowdown bounds
	}{
		{"fits on one GPU: every layer there, no slowdown", coder, []int64{gib16}, split{49, []int{49}, 0}, 1, 1},
		{"32B on one 16 GiB GPU: three quarters on the GPU", ds, []int64{gib16}, split{65, []int{49}, 16}, 2, 5},
		{"32B on two GPUs with 6 GiB free each: spread evenly, rest on the CPU", ds, []int64{6 << 30, 6 << 30},
			split{65, []int{14, 14}, 37}, 3, 10},
		{"32B over two idle GPUs: all of it", ds, []int64{gib16, gib16}, split{65, []int{33, 32}, 0}, 1, 1},
		{"a GPU without room for the graph and two layers gets none", ds, []int64{1 << 30, gib16}, split{65, []int{0, 49}, 16}, 2, 5},
		{"no GPU memory: all on the CPU", ds, []int64{0}, split{65, []int{0}, 65}, 5, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := PlanOffload(tt.m, QuantQ4KM, 4096, 1, tt.free)
			got := split{o.Layers, o.GPULayers, o.CPULayers}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("split (-want +got):\n%s", diff)
			}
			if o.Slowdown < tt.minSlow || o.Slowdown > tt.max {
				t.Errorf("slowdown %.2f, want in [%g, %g]", o.Slowdown, tt.minSlow, tt.max)
			}
			for i, b := range o.GPUBytes {
				if b > tt.free[i] {
					t.Errorf("GPU %d: allocates %d bytes, more than the %d free", i, b, tt.free[i])
				}
			}
			if o.OnGPU()+o.CPULayers != o.Layers {
				t.Errorf("%d on GPUs + %d on the CPU ≠ %d layers", o.OnGPU(), o.CPULayers, o.Layers)
			}
		})
	}
}

func TestPlanOffloadMoreContextMeansFewerGPULayers(t *testing.T) {
	t.Parallel()
	ds, err := LookupModel("deepseek-r1-distill-qwen-32b")
	if err != nil {
		t.Fatal(err)
	}
	short := PlanOffload(ds, QuantQ4KM, 2048, 1, []int64{12 << 30})
	long := PlanOffload(ds, QuantQ4KM, 16384, 1, []int64{12 << 30})
	if long.OnGPU() >= short.OnGPU() || long.Slowdown <= short.Slowdown {
		t.Errorf("16k context: %d layers on the GPU, slowdown %.2f; 2k: %d, %.2f — want fewer layers and slower with more KV",
			long.OnGPU(), long.Slowdown, short.OnGPU(), short.Slowdown)
	}
}

func TestKVCacheDtype(t *testing.T) {
	t.Parallel()
	m, err := LookupModel("qwen2.5-7b")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := LookupGPU("rtx-4090")
	auto, err := NewPlan(g, m, Options{MaxModelLen: 8192})
	if err != nil {
		t.Fatal(err)
	}
	fp8, err := NewPlan(g, m, Options{MaxModelLen: 8192, KVCacheDtype: "fp8_e4m3"})
	if err != nil {
		t.Fatal(err)
	}
	if fp8.KVBytesPerToken*2 != auto.KVBytesPerToken || fp8.KVTokens < 2*auto.KVTokens-BlockSize {
		t.Errorf("fp8 KV: %d bytes per token, %d tokens; auto: %d, %d — want half the bytes and twice the tokens",
			fp8.KVBytesPerToken, fp8.KVTokens, auto.KVBytesPerToken, auto.KVTokens)
	}
	if _, err := NewPlan(g, m, Options{KVCacheDtype: "int3"}); err == nil || !strings.Contains(err.Error(), `kv_cache_dtype: unknown KV cache dtype "int3"`) {
		t.Errorf("unknown dtype: %v", err)
	}
}

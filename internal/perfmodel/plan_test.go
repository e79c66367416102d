package perfmodel

import (
	"errors"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/modelinfo"
	"github.com/google/go-cmp/cmp"
)

func mustGPU(t testing.TB, name string) GPU {
	t.Helper()
	g, err := LookupGPU(name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustModel(t testing.TB, name string) Model {
	t.Helper()
	m, err := LookupModel(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookupGPU(t *testing.T) {
	t.Parallel()
	want := []string{"a100-40g", "a100-80g", "h100-sxm", "h200", "l4", "rtx-4070-ti-super", "rtx-4090"}
	if diff := cmp.Diff(want, GPUNames()); diff != "" {
		t.Errorf("GPUNames() (-want +got):\n%s", diff)
	}
	g, err := LookupGPU("H100-SXM")
	if err != nil || g.Bandwidth != 3350e9 {
		t.Errorf("LookupGPU(H100-SXM) = %v, %v; want the h100-sxm profile", g.Name, err)
	}
	_, err = LookupGPU("tpu-v5")
	if err == nil || !strings.Contains(err.Error(), `"tpu-v5"`) || !strings.Contains(err.Error(), "rtx-4070-ti-super") {
		t.Errorf("LookupGPU(tpu-v5) error = %v; want the name and the list of GPUs", err)
	}
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	// Parameter counts the shapes imply (modelinfo's estimate) must agree with the catalogue's
	// counts to within 2 % (vision towers and biases aside), or a shape was mistyped.
	for _, m := range catalogue {
		t.Run(m.Name, func(t *testing.T) {
			tied := m.TiedEmbeddings
			cfg := modelinfo.Config{Architecture: "XForCausalLM", HiddenSize: m.Hidden, NumHiddenLayers: m.Layers,
				NumAttentionHeads: m.Heads, NumKeyValueHeads: m.KVHeads, HeadDim: m.HeadDim,
				IntermediateSize: m.Intermediate, VocabSize: m.Vocab, TieWordEmbeddings: &tied, NumExperts: m.Experts}
			est := float64(modelinfo.EstimateParameters(cfg))
			got := float64(m.Params - m.VisionParams)
			if r := got / est; r < 0.98 || r > 1.02 {
				t.Errorf("params %0.f vs %0.f estimated from the shape (ratio %.3f)", got, est, r)
			}
			if m.ActiveParams() > m.Params || m.Quant != QuantBF16 {
				t.Errorf("ActiveParams %d > Params %d or quant %q", m.ActiveParams(), m.Params, m.Quant)
			}
		})
	}
	mx := mustModel(t, "mixtral-8x7b")
	if a := float64(mx.ActiveParams()) / 1e9; a < 12.5 || a > 13.3 {
		t.Errorf("mixtral active params = %.2f B, want ≈ 12.9 B", a)
	}
	if _, err := LookupModel("gpt-5"); err == nil || !strings.Contains(err.Error(), "qwen2.5-7b") {
		t.Errorf("LookupModel(gpt-5) error = %v; want the list of models", err)
	}
}

func TestReferenceConstants(t *testing.T) {
	t.Parallel()
	q := mustModel(t, "qwen2.5-7b")
	// benchmarks.md §5.4: KV/token 57,344 B; BF16 weights ≈ 15.2 GB; Llama-3-8B KV 131,072 B.
	if got := q.KVBytesPerToken(); got != 57344 {
		t.Errorf("qwen2.5-7b KV bytes/token = %d, want 57344", got)
	}
	if got := float64(q.WeightBytes(QuantBF16)) / 1e9; got < 15.1 || got > 15.3 {
		t.Errorf("qwen2.5-7b bf16 weights = %.2f GB, want ≈ 15.2", got)
	}
	if got := mustModel(t, "llama-3.1-8b").KVBytesPerToken(); got != 131072 {
		t.Errorf("llama-3.1-8b KV bytes/token = %d, want 131072", got)
	}
	// AWQ-int4 Qwen2.5-7B ≈ 5.5 GB (embedding and lm_head stay 16-bit).
	if got := float64(q.WeightBytes(QuantAWQInt4)) / 1e9; got < 4.9 || got > 5.8 {
		t.Errorf("qwen2.5-7b awq-int4 weights = %.2f GB, want ≈ 5.5", got)
	}
	// H100 80 GB at 0.9 with Qwen2.5-7B BF16 ≈ 0.94 M tokens of KV.
	p, err := NewPlan(mustGPU(t, "h100-sxm"), q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := float64(p.KVTokens) / 1e6; got < 0.85 || got > 1.1 {
		t.Errorf("h100 qwen2.5-7b KV tokens = %.2f M, want ≈ 0.94 M (%s)", got, p)
	}
}

func TestPlanMiMoOn4070TiSuper(t *testing.T) {
	t.Parallel()
	gpu, mimo := mustGPU(t, "rtx-4070-ti-super"), mustModel(t, "mimo-vl-7b")

	_, err := NewPlan(gpu, mimo, Options{})
	// 15.46 GiB of weights leave nothing of 16 GiB: vLLM fails loading them (CUDA out of memory).
	if !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("mimo-vl-7b bf16 on one rtx-4070-ti-super: err = %v, want ErrOutOfMemory", err)
	}
	var pe *PlanError
	if !errors.As(err, &pe) || pe.Plan.KVBytes >= 0 {
		t.Fatalf("error %v is not a *PlanError with a negative KV budget", err)
	}
	for _, want := range []string{"CUDA out of memory", "15.46 GiB weights per GPU", "total capacity of 15.99 GiB",
		"--tensor-parallel-size 2", "awq-int4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	t.Log(err)

	for _, opts := range []Options{{TP: 2}, {Quant: QuantAWQInt4}, {Quant: QuantQ4KM, MaxModelLen: 8192}} {
		p, err := NewPlan(gpu, mimo, opts)
		if err != nil {
			t.Errorf("%+v: %v", opts, err)
			continue
		}
		if p.MaxConcurrency() < 1 {
			t.Errorf("%+v: max concurrency %.2f < 1", opts, p.MaxConcurrency())
		}
		t.Log(p)
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		gpu   string
		model string
		opts  Options
		want  error
		text  []string
	}{
		{"32b bf16 on a 4090 does not load", "rtx-4090", "deepseek-r1-distill-qwen-32b", Options{}, ErrOutOfMemory,
			[]string{"CUDA out of memory", "total capacity of 23.99 GiB"}},
		{"mimo-vl-7b bf16 at 0.7 on a 4090", "rtx-4090", "mimo-vl-7b", Options{GPUMemoryUtilization: 0.7}, ErrNoCacheMemory,
			[]string{"No available memory for the cache blocks", "23.99 GiB × gpu_memory_utilization 0.70 = 16.79 GiB, minus 15.46 GiB weights"}},
		{"llama 128k context on an L4", "l4", "llama-3.1-8b", Options{}, ErrMaxModelLen,
			[]string{"max seq len (131072)", "estimated maximum model length is", "decreasing `max_model_len`"}},
		{"llama 8k context on an L4", "l4", "llama-3.1-8b", Options{MaxModelLen: 8192}, nil, nil},
		{"mixtral on two H100s", "h100-sxm", "mixtral-8x7b", Options{TP: 2}, nil, nil},
		{"mixtral on one H100", "h100-sxm", "mixtral-8x7b", Options{}, ErrOutOfMemory, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewPlan(mustGPU(t, tt.gpu), mustModel(t, tt.model), tt.opts)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestPlanInvalidOptions(t *testing.T) {
	t.Parallel()
	_, err := NewPlan(mustGPU(t, "h100-sxm"), mustModel(t, "qwen2.5-7b"),
		Options{TP: 3, GPUMemoryUtilization: 1.5, MaxNumSeqs: -1, Quant: "int3"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"tensor_parallel_size: 3 does not divide", "gpu_memory_utilization: 1.5",
		"max_num_seqs: -1", `quantization: unknown weight format "int3"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestParseQuant(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Quant{"bfloat16": QuantBF16, "FP8": QuantFP8, "awq": QuantAWQInt4,
		"gptq": QuantAWQInt4, "Q4_K_M": QuantQ4KM, "float16": QuantBF16} {
		if got, err := ParseQuant(in); err != nil || got != want {
			t.Errorf("ParseQuant(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseQuant("int2"); err == nil {
		t.Error("ParseQuant(int2) succeeded")
	}
}

const qwenVLConfig = `{
  "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
  "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
  "intermediate_size": 18944, "vocab_size": 152064, "max_position_embeddings": 128000,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vision_config": {"depth": 32}
}`

func TestModelFromInfo(t *testing.T) {
	t.Parallel()
	cfg, err := modelinfo.ParseConfig([]byte(qwenVLConfig))
	if err != nil {
		t.Fatal(err)
	}
	info := modelinfo.Info{Format: modelinfo.FormatSafetensors, ParameterCount: 8_292_166_656, Vision: true,
		Dtype: "bfloat16", ContextLength: 128000}
	got, err := ModelFromInfo("qwen2.5-vl-7b", cfg, info)
	if err != nil {
		t.Fatal(err)
	}
	want := Model{Name: "qwen2.5-vl-7b", Params: 8_292_166_656, EmbeddingParams: 152064 * 3584,
		VisionParams: 8_292_166_656 - modelinfo.EstimateParameters(cfg), Layers: 28, Hidden: 3584, Heads: 28,
		KVHeads: 4, HeadDim: 128, Intermediate: 18944, Vocab: 152064, MaxContext: 128000, Vision: true, Quant: QuantBF16}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ModelFromInfo (-want +got):\n%s", diff)
	}
	if v := float64(got.VisionParams) / 1e9; v < 0.5 || v > 0.8 {
		t.Errorf("vision params %.2f B, want ≈ 0.67 B", v)
	}

	awq := info
	awq.Quantization, awq.ParameterCountEstimated = "awq", true
	m, err := ModelFromInfo("x", cfg, awq)
	if err != nil || m.Quant != QuantAWQInt4 || m.VisionParams != 0 {
		t.Errorf("awq: quant %q, vision params %d, err %v; want awq-int4, 0 (estimated count), nil", m.Quant, m.VisionParams, err)
	}

	_, err = ModelFromInfo("broken", modelinfo.Config{HiddenSize: 10}, modelinfo.Info{})
	if err == nil || !strings.Contains(err.Error(), "num_hidden_layers") {
		t.Errorf("incomplete config: err = %v, want one naming num_hidden_layers", err)
	}
}

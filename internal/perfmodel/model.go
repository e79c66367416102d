package perfmodel

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"citadel.dev/citadel/internal/modelinfo"
)

// Quant is a weight format: the data type or quantisation the weights are stored in.
type Quant string

// Weight formats.
const (
	QuantBF16    Quant = "bf16"     // also fp16: 2 bytes per weight
	QuantFP8     Quant = "fp8"      // 1 byte per weight; embeddings, lm_head and vision tower stay bf16
	QuantAWQInt4 Quant = "awq-int4" // 4-bit, group 128 with fp16 scales (≈ 4.16 bits); embeddings, lm_head, vision bf16
	QuantQ4KM    Quant = "q4_k_m"   // GGUF Q4_K_M: ≈ 4.85 bits for every tensor (Q4_K/Q6_K mix); mmproj f16
)

var quants = []Quant{QuantBF16, QuantFP8, QuantAWQInt4, QuantQ4KM}

// ParseQuant accepts a Quant's name or a common alias (bfloat16, float16, fp16, awq, gptq, int4,
// gguf-q4_k_m, Q4_K_M).
func ParseQuant(s string) (Quant, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "bf16", "bfloat16", "fp16", "float16", "f16", "half":
		return QuantBF16, nil
	case "fp8", "float8", "f8", "fbgemm_fp8", "compressed-tensors-fp8":
		return QuantFP8, nil
	case "awq-int4", "awq", "gptq", "int4", "w4a16", "awq_marlin", "gptq_marlin":
		return QuantAWQInt4, nil
	case "q4_k_m", "gguf-q4_k_m", "gguf q4_k_m", "gguf":
		return QuantQ4KM, nil
	}
	return "", fmt.Errorf("unknown weight format %q: choose one of bf16, fp8, awq-int4, q4_k_m", s)
}

// bytesPerWeight is the storage cost of one quantised weight.
func (q Quant) bytesPerWeight() float64 {
	switch q {
	case QuantFP8:
		return 1
	case QuantAWQInt4:
		return (4 + 16.0/128) / 8 // int4 plus an fp16 scale per group of 128 (zeros packed alongside)
	case QuantQ4KM:
		return 4.85 / 8
	}
	return 2
}

// Model is a transformer's shape, enough to cost its memory and compute.
type Model struct {
	Name            string
	Params          int64 // every parameter, including embeddings, lm_head and a vision tower
	EmbeddingParams int64 // one vocab × hidden table
	TiedEmbeddings  bool  // lm_head shares the embedding table
	VisionParams    int64 // vision encoder and projector
	Layers          int
	Hidden          int
	Heads           int
	KVHeads         int
	HeadDim         int
	Intermediate    int
	Vocab           int
	MaxContext      int
	Vision          bool

	// Mixture of experts: Experts routed experts per layer, ExpertsPerToken active per token,
	// ExpertParams the routed experts' parameters over all layers. Memory counts all of them,
	// compute only the active share.
	Experts         int
	ExpertsPerToken int
	ExpertParams    int64

	Quant Quant // the format the published weights are in
}

// catalogue holds built-in model profiles (shapes from each model's config.json; parameter
// counts from its safetensors headers).
var catalogue = []Model{
	{Name: "qwen2.5-7b", Params: 7_615_616_512, EmbeddingParams: 152064 * 3584, Layers: 28, Hidden: 3584,
		Heads: 28, KVHeads: 4, HeadDim: 128, Intermediate: 18944, Vocab: 152064, MaxContext: 32768, Quant: QuantBF16},
	// MiMo-VL-7B: a Qwen2.5-VL vision tower (≈ 0.67 B) on the MiMo-7B language model.
	{Name: "mimo-vl-7b", Params: 8_298_000_000, EmbeddingParams: 151680 * 4096, VisionParams: 676_000_000,
		Layers: 36, Hidden: 4096, Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 11008, Vocab: 151680,
		MaxContext: 32768, Vision: true, Quant: QuantBF16},
	{Name: "llama-3.1-8b", Params: 8_030_261_248, EmbeddingParams: 128256 * 4096, Layers: 32, Hidden: 4096,
		Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336, Vocab: 128256, MaxContext: 131072, Quant: QuantBF16},
	{Name: "mixtral-8x7b", Params: 46_702_792_704, EmbeddingParams: 32000 * 4096, Layers: 32, Hidden: 4096,
		Heads: 32, KVHeads: 8, HeadDim: 128, Intermediate: 14336, Vocab: 32000, MaxContext: 32768,
		Experts: 8, ExpertsPerToken: 2, ExpertParams: 32 * 8 * 3 * 4096 * 14336, Quant: QuantBF16},
	{Name: "deepseek-r1-distill-qwen-32b", Params: 32_763_876_352, EmbeddingParams: 152064 * 5120, Layers: 64,
		Hidden: 5120, Heads: 40, KVHeads: 8, HeadDim: 128, Intermediate: 27648, Vocab: 152064, MaxContext: 131072,
		Quant: QuantBF16},
	{Name: "deepcoder-14b", Params: 14_770_033_664, EmbeddingParams: 152064 * 5120, Layers: 48, Hidden: 5120,
		Heads: 40, KVHeads: 8, HeadDim: 128, Intermediate: 13824, Vocab: 152064, MaxContext: 131072, Quant: QuantBF16},
}

// ModelNames lists the built-in model profiles, sorted.
func ModelNames() []string {
	names := make([]string, len(catalogue))
	for i, m := range catalogue {
		names[i] = m.Name
	}
	slices.Sort(names)
	return names
}

// LookupModel returns the built-in profile called name (case-insensitive).
func LookupModel(name string) (Model, error) {
	for _, m := range catalogue {
		if strings.EqualFold(m.Name, name) {
			return m, nil
		}
	}
	return Model{}, fmt.Errorf("unknown model %q: choose one of %s, or point at a model directory",
		name, strings.Join(ModelNames(), ", "))
}

// defaultExpertsPerToken is assumed for mixture-of-experts configs: modelinfo.Config does not
// carry num_experts_per_tok, and 2 is Mixtral's value.
const defaultExpertsPerToken = 2

// ModelFromInfo builds a profile from a model directory's config.json and weight headers (see
// modelinfo.FromDir). name labels the profile. It fails when the config lacks the shape needed to
// cost the model. The vision tower's size is the exact parameter count minus the language model's
// estimate, when the count is exact.
func ModelFromInfo(name string, cfg modelinfo.Config, info modelinfo.Info) (Model, error) {
	var missing []string
	for _, f := range []struct {
		v    int
		name string
	}{{cfg.HiddenSize, "hidden_size"}, {cfg.NumHiddenLayers, "num_hidden_layers"},
		{cfg.NumAttentionHeads, "num_attention_heads"}, {cfg.VocabSize, "vocab_size"}} {
		if f.v <= 0 {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Model{}, fmt.Errorf("model %q: config.json lacks %s, needed to simulate it", name, strings.Join(missing, ", "))
	}
	m := Model{
		Name: name, Layers: cfg.NumHiddenLayers, Hidden: cfg.HiddenSize, Heads: cfg.NumAttentionHeads,
		KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim, Intermediate: cfg.IntermediateSize,
		Vocab: cfg.VocabSize, MaxContext: cfg.ContextLength, Vision: cfg.Vision || info.Vision,
		TiedEmbeddings: cfg.TieWordEmbeddings != nil && *cfg.TieWordEmbeddings,
		Experts:        cfg.NumExperts,
	}
	if m.KVHeads == 0 {
		m.KVHeads = m.Heads
	}
	if m.HeadDim == 0 {
		m.HeadDim = m.Hidden / m.Heads
	}
	if m.MaxContext == 0 {
		m.MaxContext = info.ContextLength
	}
	if m.MaxContext == 0 {
		m.MaxContext = 4096
	}
	m.EmbeddingParams = int64(m.Vocab) * int64(m.Hidden)
	estimate := modelinfo.EstimateParameters(cfg)
	m.Params = info.ParameterCount
	if m.Params <= 0 {
		m.Params = estimate
	}
	if m.Params <= 0 {
		return Model{}, fmt.Errorf("model %q: cannot tell its parameter count from config.json or weights", name)
	}
	if m.Vision && !info.ParameterCountEstimated && estimate > 0 && m.Params > estimate {
		m.VisionParams = m.Params - estimate
	}
	if m.Experts > 0 {
		m.ExpertsPerToken = defaultExpertsPerToken
		ei := cfg.MoEIntermediateSize
		if ei <= 0 {
			ei = cfg.IntermediateSize
		}
		m.ExpertParams = int64(m.Layers) * int64(m.Experts) * 3 * int64(m.Hidden) * int64(ei)
	}
	m.Quant = QuantBF16
	for _, s := range []string{info.Quantization, info.Dtype} {
		if q, err := ParseQuant(s); err == nil && s != "" {
			m.Quant = q
			break
		}
	}
	if q := strings.ToLower(info.Quantization); info.Format == modelinfo.FormatGGUF && q != "" && q != "q4_k_m" {
		m.Quant = QuantQ4KM // other GGUF types are costed as Q4_K_M, the common case
	}
	return m, nil
}

func (m Model) embeddingCopies() int64 {
	if m.TiedEmbeddings {
		return 1
	}
	return 2
}

// blockParams are the transformer blocks' parameters: everything but embeddings, lm_head and vision.
func (m Model) blockParams() int64 {
	return max(m.Params-m.embeddingCopies()*m.EmbeddingParams-m.VisionParams, 0)
}

// ActiveParams is the parameter count one token's forward pass uses (MoE: only its experts).
func (m Model) ActiveParams() int64 {
	if m.Experts == 0 {
		return m.Params
	}
	return m.Params - m.ExpertParams + m.ExpertParams*int64(m.ExpertsPerToken)/int64(m.Experts)
}

// WeightBytes is the memory the weights take in format q on one GPU (tp = 1).
func (m Model) WeightBytes(q Quant) int64 {
	blocks := float64(m.blockParams()) * q.bytesPerWeight()
	rest := float64(m.embeddingCopies()*m.EmbeddingParams) * 2
	if q == QuantQ4KM {
		rest = float64(m.embeddingCopies()*m.EmbeddingParams) * q.bytesPerWeight()
	}
	return int64(math.Round(blocks + rest + float64(m.VisionParams)*2))
}

// KVBytesPerToken is the bf16 KV cache one token takes over all layers (tp = 1):
// 2 (K and V) × layers × kv_heads × head_dim × 2 bytes.
func (m Model) KVBytesPerToken() int64 {
	return 2 * int64(m.Layers) * int64(m.KVHeads) * int64(m.HeadDim) * 2
}

package perfmodel

import (
	"math"
	"time"
)

// Batch describes one engine iteration: decode sequences (one new token each) plus prefill
// chunks, all forwarded together.
type Batch struct {
	Tokens        int     // tokens forwarded: prefill chunk tokens plus one per decode sequence
	Sampled       int     // sequences that sample a token this step (logits computed)
	ContextTokens int64   // Σ over sequences of the KV tokens attention reads (context incl. new tokens)
	AttentionWork float64 // Σ over sequences of new tokens × context they attend to
	VisionTokens  int     // image tokens whose vision encoding runs this step
}

const (
	allReduceLatency = 8 * time.Microsecond
	// visionPatchesPerToken: Qwen2.5-VL-style towers merge 2×2 patches into one LLM token, so the
	// encoder runs over four patches per vision token.
	visionPatchesPerToken = 4
)

// StepTime is the duration of one iteration:
//
//	bytes = weights read (all but the embedding table; MoE: experts touched) + KV read and written
//	flops = 2·active_block_params·tokens + 2·vocab·hidden·sampled + 4·layers·heads·head_dim·Σ new·ctx
//	        + 2·vision_params·4·vision_tokens
//	t     = max(bytes / (η_bw·BW), flops/tp / (η_c·FLOPS)) + all-reduce time (tp > 1) + overhead
//
// Tensor parallelism splits bytes and FLOPs tp ways and adds two ring all-reduces of the
// activations per layer. A zero batch takes no time.
func (p *Plan) StepTime(b Batch) time.Duration {
	if b.Tokens <= 0 && b.VisionTokens <= 0 {
		return 0
	}
	m, g, tp := &p.Model, &p.GPU, float64(p.Options.TP)
	bpw := p.Options.Quant.bytesPerWeight()

	// Weights read this step, whole model (split tp ways below).
	dense := float64(m.blockParams() - m.ExpertParams)
	experts := float64(m.ExpertParams)
	if m.Experts > 0 && b.Tokens > 0 {
		// Fraction of experts some token routes to: 1 − (1 − k/E)^tokens.
		experts *= 1 - math.Pow(1-float64(m.ExpertsPerToken)/float64(m.Experts), float64(b.Tokens))
	}
	lmHeadBytes := 2.0
	if p.Options.Quant == QuantQ4KM {
		lmHeadBytes = bpw
	}
	weights := (dense+experts)*bpw + float64(m.EmbeddingParams)*lmHeadBytes
	if b.VisionTokens > 0 {
		weights += float64(m.VisionParams) * 2
	}
	kv := float64(p.KVBytesPerToken) * float64(b.ContextTokens) // per GPU already
	bytes := weights/tp + kv

	active := float64(m.blockParams())
	if m.Experts > 0 {
		active = float64(m.blockParams()-m.ExpertParams) + float64(m.ExpertParams)*float64(m.ExpertsPerToken)/float64(m.Experts)
	}
	flops := 2*active*float64(b.Tokens) +
		2*float64(m.Vocab)*float64(m.Hidden)*float64(b.Sampled) +
		4*float64(m.Layers)*float64(m.Heads)*float64(m.HeadDim)*b.AttentionWork +
		2*float64(m.VisionParams)*visionPatchesPerToken*float64(b.VisionTokens)
	flops /= tp

	memT := bytes / (g.BandwidthEfficiency * g.Bandwidth)
	compT := flops / (g.ComputeEfficiency * g.computeFLOPS(p.Options.Quant))
	secs := max(memT, compT)
	if p.Options.TP > 1 && g.Interconnect > 0 {
		msg := float64(b.Tokens) * float64(m.Hidden) * 2
		ring := 2 * (tp - 1) / tp * msg / g.Interconnect
		secs += 2 * float64(m.Layers) * (allReduceLatency.Seconds() + ring)
	}
	return time.Duration(secs*float64(time.Second)) + g.StepOverhead
}

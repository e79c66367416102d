package perfmodel

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Defaults applied by Plan to zero Options fields (vLLM V1's defaults).
const (
	DefaultGPUMemoryUtilization = 0.9
	DefaultMaxNumSeqs           = 256
	DefaultMaxNumBatchedTokens  = 8192
	DefaultParallel             = 1 // Ollama's OLLAMA_NUM_PARALLEL
	BlockSize                   = 16

	runtimeReserve = 768 * mib // CUDA context, non-torch allocations and CUDA graphs
)

// Options are the engine settings that decide memory and batching.
type Options struct {
	TP                   int     // --tensor-parallel-size; default 1
	GPUMemoryUtilization float64 // --gpu-memory-utilization; default 0.9
	MaxModelLen          int     // --max-model-len (Ollama: num_ctx per slot); default the model's context
	MaxNumSeqs           int     // --max-num-seqs; default 256
	MaxNumBatchedTokens  int     // --max-num-batched-tokens, the chunked-prefill budget per step; default 8192
	Quant                Quant   // weight format; default the model's own
	Parallel             int     // Ollama mode: OLLAMA_NUM_PARALLEL slots; default 1
	KVCacheDtype         string  // --kv-cache-dtype (vLLM), OLLAMA_KV_CACHE_TYPE; "" or auto for bf16/f16 (see KVCacheBytes)
}

// KVCacheBytes is the storage of one KV cache element in dtype: vLLM's --kv-cache-dtype (auto,
// bfloat16, fp8, fp8_e4m3, fp8_e5m2, fp8_inc) or llama.cpp's/Ollama's cache types (f16, q8_0,
// q4_0; quantised blocks of 32 with an f16 scale).
func KVCacheBytes(dtype string) (float64, error) {
	switch strings.ToLower(strings.TrimSpace(dtype)) {
	case "", "auto", "bf16", "bfloat16", "fp16", "f16", "float16", "half":
		return 2, nil
	case "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla":
		return 1, nil
	case "q8_0":
		return 34.0 / 32, nil
	case "q4_0":
		return 18.0 / 32, nil
	case "f32", "float32", "float":
		return 4, nil
	}
	return 0, fmt.Errorf("unknown KV cache dtype %q: choose one of auto, fp8, fp8_e4m3, fp8_e5m2 (vLLM) or f16, q8_0, q4_0 (llama.cpp, Ollama)", dtype)
}

// Plan is how a model is laid out on tp identical GPUs: the per-GPU memory split and the KV cache.
// Byte figures are per GPU.
type Plan struct {
	GPU     GPU
	Model   Model
	Options Options // with defaults filled in

	BudgetBytes     int64 // MemoryBytes × GPUMemoryUtilization
	WeightBytes     int64
	ActivationBytes int64 // peak activations of a full step, logits, and the runtime reserve
	KVBytes         int64 // what is left for the KV cache
	KVBytesPerToken int64
	KVBlocks        int   // of BlockSize tokens
	KVTokens        int64 // KVBlocks × BlockSize
}

// Sentinel errors of Plan, for errors.Is; a *PlanError carries the arithmetic.
var (
	ErrOutOfMemory   = errors.New("CUDA out of memory")
	ErrNoCacheMemory = errors.New("no available memory for the cache blocks")
	ErrMaxModelLen   = errors.New("max_model_len is greater than the KV cache can hold")
)

// PlanError is a model that does not fit, worded as vLLM refuses to start, with the arithmetic.
type PlanError struct {
	Kind error // ErrOutOfMemory, ErrNoCacheMemory or ErrMaxModelLen
	Plan Plan  // as far as it was computed
}

func (e *PlanError) Unwrap() error { return e.Kind }

func (e *PlanError) Error() string {
	p := e.Plan
	o := p.Options
	setup := fmt.Sprintf("%s %s on %d× %s", p.Model.Name, o.Quant, o.TP, p.GPU.Name)
	math := fmt.Sprintf("%.2f GiB × gpu_memory_utilization %.2f = %.2f GiB, minus %.2f GiB weights per GPU and %.2f GiB activations and runtime, leaves %.2f GiB for the KV cache",
		gibs(p.GPU.MemoryBytes), o.GPUMemoryUtilization, gibs(p.BudgetBytes), gibs(p.WeightBytes),
		gibs(p.ActivationBytes), gibs(p.KVBytes))
	hint := "use --tensor-parallel-size " + fmt.Sprint(o.TP*2) + ", a 4-bit quantisation (awq-int4) or a larger GPU"
	switch e.Kind {
	case ErrOutOfMemory:
		return fmt.Sprintf("%s: CUDA out of memory loading weights: %.2f GiB weights per GPU and %.2f GiB for the CUDA runtime exceed the GPU's total capacity of %.2f GiB; %s",
			setup, gibs(p.WeightBytes), gibs(runtimeReserve), gibs(p.GPU.MemoryBytes), hint)
	case ErrNoCacheMemory:
		return fmt.Sprintf("%s: No available memory for the cache blocks (%s). Try increasing `gpu_memory_utilization` when initializing the engine, or %s",
			setup, math, hint)
	}
	need := int64(o.MaxModelLen) * p.KVBytesPerToken
	return fmt.Sprintf("%s: To serve at least one request with the model's max seq len (%d), %.2f GiB KV cache is needed, which is larger than the available KV cache memory (%.2f GiB: %s). Based on the available memory, the estimated maximum model length is %d. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine",
		setup, o.MaxModelLen, gibs(need), gibs(p.KVBytes), math, p.KVTokens)
}

func gibs(b int64) float64 { return float64(b) / gib }

// NewPlan lays model out on opts.TP GPUs of type gpu. Invalid options are reported together;
// a model that does not fit gives a *PlanError.
func NewPlan(gpu GPU, model Model, opts Options) (Plan, error) {
	if opts.TP == 0 {
		opts.TP = 1
	}
	if opts.GPUMemoryUtilization == 0 {
		opts.GPUMemoryUtilization = DefaultGPUMemoryUtilization
	}
	if opts.MaxModelLen == 0 {
		opts.MaxModelLen = model.MaxContext
	}
	if opts.MaxNumSeqs == 0 {
		opts.MaxNumSeqs = DefaultMaxNumSeqs
	}
	if opts.MaxNumBatchedTokens == 0 {
		opts.MaxNumBatchedTokens = DefaultMaxNumBatchedTokens
	}
	if opts.Quant == "" {
		opts.Quant = model.Quant
	}
	if opts.Quant == "" {
		opts.Quant = QuantBF16
	}
	if opts.Parallel == 0 {
		opts.Parallel = DefaultParallel
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if opts.TP < 1 {
		bad("tensor_parallel_size", "%d is not positive", opts.TP)
	} else if model.Heads%opts.TP != 0 {
		bad("tensor_parallel_size", "%d does not divide the model's %d attention heads", opts.TP, model.Heads)
	}
	if opts.GPUMemoryUtilization <= 0 || opts.GPUMemoryUtilization > 1 {
		bad("gpu_memory_utilization", "%g is not in (0, 1]", opts.GPUMemoryUtilization)
	}
	if opts.MaxModelLen < 1 {
		bad("max_model_len", "%d is not positive", opts.MaxModelLen)
	}
	if opts.MaxNumSeqs < 1 {
		bad("max_num_seqs", "%d is not positive", opts.MaxNumSeqs)
	}
	if opts.MaxNumBatchedTokens < 1 {
		bad("max_num_batched_tokens", "%d is not positive", opts.MaxNumBatchedTokens)
	}
	if opts.Parallel < 1 {
		bad("parallel", "%d is not positive", opts.Parallel)
	}
	kvElem, err := KVCacheBytes(opts.KVCacheDtype)
	if err != nil {
		bad("kv_cache_dtype", "%v", err)
	}
	if !validQuant(opts.Quant) {
		bad("quantization", "unknown weight format %q", opts.Quant)
	}
	if model.Layers < 1 || model.Hidden < 1 || model.Heads < 1 || model.KVHeads < 1 || model.HeadDim < 1 || model.Params < 1 {
		bad("model", "%q has an incomplete shape", model.Name)
	}
	if len(errs) > 0 {
		return Plan{}, fmt.Errorf("planning %s on %s: %w", model.Name, gpu.Name, errors.Join(errs...))
	}

	tp := int64(opts.TP)
	p := Plan{GPU: gpu, Model: model, Options: opts}
	p.BudgetBytes = int64(float64(gpu.MemoryBytes) * opts.GPUMemoryUtilization)
	p.WeightBytes = model.WeightBytes(opts.Quant) / tp
	// Peak activations of vLLM's profiling run: a full token budget through the MLP (gate and up
	// projections) and the residual stream, plus fp32 logits for every sequence.
	act := int64(opts.MaxNumBatchedTokens)*(2*int64(model.Intermediate)/tp+4*int64(model.Hidden))*2 +
		int64(opts.MaxNumSeqs)*int64(model.Vocab)*4
	p.ActivationBytes = act + runtimeReserve
	kvHeads := max(int64(model.KVHeads)/tp, 1) // vLLM replicates KV heads when tp > kv_heads
	p.KVBytesPerToken = int64(math.Round(2 * float64(model.Layers) * float64(kvHeads) * float64(model.HeadDim) * kvElem))
	p.KVBytes = p.BudgetBytes - p.WeightBytes - p.ActivationBytes
	if p.KVBytes > 0 {
		p.KVBlocks = int(p.KVBytes / (BlockSize * p.KVBytesPerToken))
	}
	p.KVTokens = int64(p.KVBlocks) * BlockSize
	switch {
	case p.WeightBytes+runtimeReserve > gpu.MemoryBytes:
		return p, &PlanError{Kind: ErrOutOfMemory, Plan: p}
	case p.KVBlocks <= 0:
		return p, &PlanError{Kind: ErrNoCacheMemory, Plan: p}
	case int64(opts.MaxModelLen) > p.KVTokens:
		return p, &PlanError{Kind: ErrMaxModelLen, Plan: p}
	}
	return p, nil
}

func validQuant(q Quant) bool {
	for _, v := range quants {
		if q == v {
			return true
		}
	}
	return false
}

// MaxConcurrency is how many requests of MaxModelLen tokens the KV cache holds at once, as vLLM
// logs it ("Maximum concurrency for 32768 tokens per request: 2.40x").
func (p Plan) MaxConcurrency() float64 {
	return float64(p.KVTokens) / float64(p.Options.MaxModelLen)
}

// String summarises the plan like vLLM's start-up log.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s on %d× %s: weights %.2f GiB/GPU, activations %.2f GiB, KV cache %.2f GiB = %d blocks = %d tokens; ",
		p.Model.Name, p.Options.Quant, p.Options.TP, p.GPU.Name, gibs(p.WeightBytes), gibs(p.ActivationBytes),
		gibs(p.KVBytes), p.KVBlocks, p.KVTokens)
	fmt.Fprintf(&b, "maximum concurrency for %d tokens per request: %.2fx", p.Options.MaxModelLen, p.MaxConcurrency())
	return b.String()
}

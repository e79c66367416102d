package placement

// The planner's words: engine flag spellings, the settings and arithmetic lines of a
// placement, and where a decision puts a service.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// flagSet is how an engine spells the settings the planner uses.
type flagSet struct {
	tp, util, ctx, seqs, slots, kv string
}

func (j *job) flags() flagSet {
	switch j.Engine {
	case "sglang":
		return flagSet{"--tp-size", "--mem-fraction-static", "--context-length", "--max-running-requests", "", "--kv-cache-dtype"}
	case "llamacpp", "llama.cpp", "llama-server":
		return flagSet{"", "", "-c", "", "-np", "-ctk/-ctv"}
	case "ollama":
		return flagSet{"", "", "num_ctx", "", "OLLAMA_NUM_PARALLEL", "OLLAMA_KV_CACHE_TYPE"}
	}
	return flagSet{"--tensor-parallel-size", "--gpu-memory-utilization", "--max-model-len", "--max-num-seqs", "", "--kv-cache-dtype"}
}

// settings is the line that says which engine settings the plan used, in the engine's own
// spelling: "vllm: CUDA_VISIBLE_DEVICES=0,1 --tensor-parallel-size 2 …".
func (j *job) settings(a Assignment) string {
	f := j.flags()
	kv := cmp.Or(j.KVCacheDtype, "auto")
	if j.Shared {
		line := fmt.Sprintf("%s: CUDA_VISIBLE_DEVICES=%s for this model, %s %d, %s %d", j.Engine, a.CUDAVisibleDevices(), f.ctx, j.MaxModelLen, f.slots, j.Concurrency)
		if j.KVCacheDtype != "" {
			line += fmt.Sprintf(", %s %s", f.kv, j.KVCacheDtype)
		}
		return line
	}
	if f.tp == "" { // llama.cpp: one context of MaxModelLen per slot
		return fmt.Sprintf("%s: CUDA_VISIBLE_DEVICES=%s -c %d -np %d (%d tokens per slot), %s %s",
			j.Engine, a.CUDAVisibleDevices(), j.MaxModelLen*j.Concurrency, j.Concurrency, j.MaxModelLen, f.kv, cmp.Or(j.KVCacheDtype, "f16"))
	}
	return fmt.Sprintf("%s: CUDA_VISIBLE_DEVICES=%s %s %d %s %s %s %d %s %d %s %s", j.Engine, a.CUDAVisibleDevices(),
		f.tp, a.TP, f.util, ratio(a.MemoryUtilization), f.ctx, j.MaxModelLen, f.seqs, cmp.Or(j.MaxNumSeqs, perfmodel.DefaultMaxNumSeqs), f.kv, kv)
}

// arith is the memory sum for one GPU of a tp-wide replica against what the job may use there
// when free bytes are free: a shared model the free memory; an exclusive engine util × total
// (util 0: the utilisation room gives it).
func (j *job) arith(tp int, s *slot, e eval, free int64, util float64) string {
	each, per := "", ""
	if tp > 1 {
		each, per = " each", "per GPU "
	}
	total := s.gpu.MemoryTotal
	var budget int64
	var against, but string
	switch {
	case j.Shared:
		budget = free
		against = gib(max(free, 0)) + " free"
	default:
		u, b := util, int64(float64(total)*util)
		if util == 0 {
			u, b = j.room(s, free)
		}
		if b < 0 { // vLLM checks at start-up that util × total is free
			u, b = j.util, int64(float64(total)*j.util)
			but = fmt.Sprintf("; but GPU %d has only %s free, and vLLM starts only when %s are", s.gpu.Index, gib(max(free, 0)), gib(b))
		}
		budget = b
		against = fmt.Sprintf("%s (%s × %s", gib(b), ratio(u), gib(total))
		if u < j.util {
			against += ", as much as is free"
		}
		against += ")"
	}
	op := "≤"
	if e.need > budget {
		op = ">"
		if gib(e.need) == gib(budget) { // too close to see in hundredths of a GiB
			but = fmt.Sprintf(" (short by %d MiB)", (e.need-budget+mibB-1)/mibB) + but
		}
	}
	line := fmt.Sprintf("%s %s on %d× %s (%s%s): %sweights %s + activations and runtime %s + KV for %s tokens %s = %s %s %s%s",
		j.Model.Name, j.Quant, tp, s.gpu.kind(), gib(total), each, per,
		gib(e.plan.WeightBytes), gib(e.plan.ActivationBytes), j.tokenText(), gib(e.kv), gib(e.need), op, against, but)
	if errors.Is(e.err, perfmodel.ErrOutOfMemory) {
		line += fmt.Sprintf("; the weights alone do not fit in %s", gib(total))
	}
	return line
}

func (j *job) tokenText() string {
	if j.Concurrency > 1 {
		return fmt.Sprintf("%d × %d", j.Concurrency, j.MaxModelLen)
	}
	return strconv.Itoa(j.MaxModelLen)
}

// heldLine explains a tensor-parallel size that fits the GPUs but not what others left free.
func (j *job) heldLine(st state, tp int, cands []int, evs []eval, idleOK, nowOK []int) string {
	i := idleOK[0]
	s := &st[cands[i]]
	var busy []string
	for _, k := range idleOK {
		if !slices.Contains(nowOK, k) {
			busy = append(busy, st[cands[k]].describe(j.Shared))
		}
	}
	room := "no GPU has room"
	if len(nowOK) > 0 {
		room = fmt.Sprintf("only %d of the %d GPUs it needs has room", len(nowOK), tp)
	}
	return fmt.Sprintf("%s would fit (%s), but %s: %s", j.spread(tp), j.arith(tp, s, evs[i], s.idleFree(), 0), room, strings.Join(busy, "; "))
}

// available says which GPUs a replica may use.
func (j *job) available(st state, cands []int, exclude map[int]bool) string {
	var why []string
	if len(j.Pinned) > 0 {
		why = append(why, "pinned to GPUs "+joinInts(j.Pinned, ","))
	}
	if len(exclude) > 0 {
		var ix []int
		for c := range exclude {
			ix = append(ix, st[c].gpu.Index)
		}
		slices.Sort(ix)
		why = append(why, "earlier replicas hold GPUs "+joinInts(ix, ",")+" and replicas need distinct GPUs")
	}
	for _, sl := range st {
		if sl.gpu.Unusable != "" && (len(j.Pinned) == 0 || slices.Contains(j.Pinned, sl.gpu.Index)) {
			why = append(why, fmt.Sprintf("GPU %d cannot be used: %s", sl.gpu.Index, sl.gpu.Unusable))
		}
	}
	n := fmt.Sprintf("%d available", len(cands))
	if len(st) == 0 {
		n = "the inventory has none"
	}
	if len(why) > 0 {
		n += " (" + strings.Join(why, "; ") + ")"
	}
	return n
}

// spread names a tp-wide layout as the subject of a sentence: vLLM shards the tensors; Ollama
// splits the layers.
func (j *job) spread(tp int) string {
	switch {
	case !j.Shared:
		return fmt.Sprintf("tensor parallel %d", tp)
	case tp == 1:
		return "on one GPU, it"
	}
	return fmt.Sprintf("split over %d GPUs, it", tp)
}

// sizeName names a tp-wide layout as an object: "tensor parallel 2", "one GPU", "a split over 2 GPUs".
func (j *job) sizeName(tp int) string {
	switch {
	case !j.Shared:
		return fmt.Sprintf("tensor parallel %d", tp)
	case tp == 1:
		return "one GPU"
	}
	return fmt.Sprintf("a split over %d GPUs", tp)
}

// layout names a placed replica: "on GPU 0", "tensor parallel 2 over GPUs 0,1", "split over GPUs 0,1".
func (j *job) layout(a Assignment) string {
	switch {
	case a.Offload != nil:
		o := a.Offload
		gpus := "GPUs "
		if len(a.GPUs) == 1 {
			gpus = "GPU "
		}
		return fmt.Sprintf("with %d of %d layers on %s%s and %d on the CPU", o.OnGPU(), o.Layers, gpus, a.CUDAVisibleDevices(), o.CPULayers)
	case a.TP == 1:
		return "on GPU " + a.CUDAVisibleDevices()
	case j.Shared:
		return "split over GPUs " + a.CUDAVisibleDevices()
	}
	return fmt.Sprintf("tensor parallel %d over GPUs %s", a.TP, a.CUDAVisibleDevices())
}

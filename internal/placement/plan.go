package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// Request is one service to place.
type Request struct {
	Service string          // "namespace/name", for messages
	Model   perfmodel.Model // the model's shape (perfmodel.LookupModel or perfmodel.ModelFromInfo)
	Quant   perfmodel.Quant // the weights' format; "" for the model's own
	// Engine names the engine in messages and its flags in Decision.Lines: "vllm", "sglang",
	// "llamacpp" or "ollama"; "" for vllm, or ollama when Shared.
	Engine string

	// MaxModelLen is the context length (vLLM --max-model-len, SGLang --context-length,
	// llama.cpp -c per slot, Ollama num_ctx); 0 for the model's context, or 4096 when Shared
	// (Ollama's default).
	MaxModelLen int
	// Concurrency is how many sequences of MaxModelLen tokens must fit in the KV cache at once:
	// Ollama's OLLAMA_NUM_PARALLEL and llama.cpp's -np slots, each of which holds a full context;
	// default 1. vLLM's --max-num-seqs is not that (its sequences share the cache): see MaxNumSeqs.
	Concurrency int
	// MaxNumSeqs is vLLM's --max-num-seqs (SGLang --max-running-requests): the batch the
	// activations are sized for (fp32 logits per sequence); 0 for vLLM's 256.
	MaxNumSeqs int
	// GPUMemoryUtilization is the fraction of each GPU's memory the engine takes (vLLM
	// --gpu-memory-utilization, SGLang --mem-fraction-static). 0 means 0.9, lowered to the
	// memory actually free when a GPU has less; a value set here is used as is. Shared requests
	// ignore it.
	GPUMemoryUtilization float64
	// KVCacheDtype is the KV cache's element type (vLLM/SGLang --kv-cache-dtype: auto, fp8,
	// fp8_e4m3, fp8_e5m2; Ollama OLLAMA_KV_CACHE_TYPE: f16, q8_0, q4_0); "" for auto (the
	// model's bf16/f16). fp8 halves the KV cache. See perfmodel.KVCacheBytes.
	KVCacheDtype string
	TP           int   // tensor-parallel size; 0 for the smallest power of two that fits
	Replicas     int   // default 1
	OnePerGPU    bool  // replicas on distinct GPUs, so that one GPU failing leaves the others
	Pinned       []int // GPU indexes the service may use; none for any
	// Shared marks a model served by a multi-model server (Ollama), which loads models on demand
	// and sizes its memory to each one; see the package comment for what it reserves.
	Shared bool

	// Keep are the replicas already running, as an earlier Plan placed them. Plan leaves each
	// where it is and reserves what it holds before placing anything new, unless one of its
	// GPUs is gone from the inventory or unusable; then that replica is placed afresh (its
	// Assignment.Kept is false, so the caller restarts it). At most Replicas are kept.
	Keep []Assignment
}

// Assignment is one replica's place.
type Assignment struct {
	GPUs []int // GPU indexes, ascending
	TP   int   // tensor-parallel size (Shared: the number of GPUs the model is split over)
	// Plan is perf's memory plan on the assignment's GPUs; on mixed GPUs, the one whose KV cache
	// is smallest, which is what the engine can use. For a Shared model it is sized to the
	// model's need: KV for exactly Concurrency × MaxModelLen tokens.
	Plan perfmodel.Plan
	// MemoryUtilization is the fraction of each GPU's memory to pass to the engine (vLLM
	// --gpu-memory-utilization); 0 for a Shared model.
	MemoryUtilization float64
	// Offload is set for a Shared model that does not fit in the GPUs' free memory: Ollama runs
	// some of its layers on the CPU. Its GPULayers are in the order of GPUs.
	Offload *perfmodel.Offload
	// Kept is true when the replica is one of Request.Keep, left where it runs.
	Kept bool
}

// CUDAVisibleDevices is the value of CUDA_VISIBLE_DEVICES for the replica, e.g. "0,1". The
// indexes are nvidia-smi's, so the engine also needs CUDA_DEVICE_ORDER=PCI_BUS_ID, which the
// engine adapters (internal/engine) set with it.
func (a Assignment) CUDAVisibleDevices() string {
	return joinInts(a.GPUs, ",")
}

// Decision is where a service goes, with the arithmetic that put it there and the engine
// settings it used (the last line of each replica).
type Decision struct {
	Service  string
	Replicas []Assignment
	Lines    []string
}

// Refusal is a service that does not fit: why, with the numbers, and what would fit instead.
// Alternatives are single changes to the request, each checked against the services placed
// before it (running ones and larger ones), so taking one may in turn displace a smaller service.
type Refusal struct {
	Service      string
	Lines        []string
	Alternatives []Alternative
}

// Alternative is one way the refused service would fit: Text for people, Change for a program
// that renders the edit.
type Alternative struct {
	Text   string
	Change Change
	// Stop names the services that would have to stop for it to fit as requested (Change is
	// then zero).
	Stop []string
}

// Change is a change to a Request; zero fields are left as they are. At most a few are set:
// the planner suggests single changes (a quantised variant may come with a shorter context).
type Change struct {
	TP                   int             // --tensor-parallel-size
	Quant                perfmodel.Quant // a variant of the model in this format
	MaxModelLen          int             // --max-model-len, --context-length, -c, num_ctx
	Concurrency          int             // OLLAMA_NUM_PARALLEL, -np
	GPUMemoryUtilization float64         // --gpu-memory-utilization, --mem-fraction-static
	KVCacheDtype         string          // --kv-cache-dtype
	Replicas             int             // minReplicas
	Unpin                bool            // drop the GPU pinning
}

func (r *Refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s does not fit:", r.Service)
	for _, l := range r.Lines {
		b.WriteString("\n  " + l)
	}
	if len(r.Alternatives) > 0 {
		b.WriteString("\nit would fit with one of:")
		for _, a := range r.Alternatives {
			b.WriteString("\n  - " + a.Text)
		}
	}
	return b.String()
}

const (
	defaultSharedContext = 4096 // Ollama's num_ctx
	maxReplicas          = 1024
	// maxSuggestedUtilization is the highest --gpu-memory-utilization a refusal suggests: above
	// it, allocations outside vLLM's accounting (NCCL, CUDA graphs, a desktop) tend to run out.
	maxSuggestedUtilization = 0.95
	gibF                    = 1 << 30
)

// Plan places every request on the inventory. It returns one decision and one error per
// request, index-aligned with reqs: errs[i] is nil where the service is placed, a *Refusal
// when it does not fit, and a plain error when the request is invalid; decisions[i] has no
// Replicas where the service is refused — except kept replicas, which stay (a Refusal then
// concerns only the replicas to add). When the inventory itself is unusable, every errs[i] is
// that error.
//
// Kept replicas (Request.Keep) are reserved first, in request order. Then the other replicas
// are placed: exclusive engines before shared models (Ollama adapts to what is left, by
// putting layers on the CPU; vLLM cannot), largest need first within each (weights plus KV,
// times replicas; ties in input order), each service whole or not at all, each replica on the
// smallest tensor-parallel size that fits, on the GPUs that fit it most tightly. Plan is
// deterministic and pure.
func Plan(reqs []Request, inv []GPU) ([]Decision, []error) {
	decs := make([]Decision, len(reqs))
	errs := make([]error, len(reqs))
	st, err := newState(inv)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return decs, errs
	}
	var order []*job
	for i, r := range reqs {
		j, err := newJob(r, st)
		if err != nil {
			errs[i] = err
			continue
		}
		j.idx = i
		order = append(order, j)
	}
	for _, j := range order {
		st = j.keep(st)
	}
	slices.SortStableFunc(order, func(a, b *job) int {
		return cmp.Or(cmp.Compare(boolInt(a.Shared), boolInt(b.Shared)), cmp.Compare(b.size(), a.size()))
	})
	for _, j := range order {
		p, f := place(j, st)
		if f != nil {
			errs[j.idx] = refuse(j, st, f)
			decs[j.idx] = Decision{Service: j.Service, Replicas: slices.Clone(j.kept), Lines: slices.Clone(j.keptLines)}
			if len(j.kept) == 0 {
				decs[j.idx] = Decision{Service: j.Service}
			}
			continue
		}
		st = p.state
		decs[j.idx] = p.Decision
	}
	for i := range decs {
		if decs[i].Service == "" {
			decs[i].Service = cmp.Or(reqs[i].Service, reqs[i].Model.Name)
		}
	}
	return decs, errs
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

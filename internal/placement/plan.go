package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"citadel.dev/citadel/internal/sim/perf"
)

// Request is one service to place.
type Request struct {
	Service string     // "namespace/name", for messages
	Model   perf.Model // the model's shape (perf.LookupModel or perf.ModelFromInfo)
	Quant   perf.Quant // the weights' format; "" for the model's own

	// MaxModelLen is the context length (vLLM --max-model-len, Ollama num_ctx); 0 for the
	// model's context, or 4096 when Shared (Ollama's default).
	MaxModelLen int
	// Concurrency is how many sequences of MaxModelLen tokens must fit in the KV cache at once
	// (Ollama: OLLAMA_NUM_PARALLEL slots); default 1.
	Concurrency int
	// GPUMemoryUtilization is the fraction of each GPU's memory the engine takes (vLLM
	// --gpu-memory-utilization). 0 means 0.9, lowered to the memory actually free when a GPU
	// has less; a value set here is used as is. Shared requests ignore it.
	GPUMemoryUtilization float64
	TP                   int   // tensor-parallel size; 0 for the smallest power of two that fits
	Replicas             int   // default 1
	OnePerGPU            bool  // replicas on distinct GPUs, so that one GPU failing leaves the others
	Pinned               []int // GPU indexes the service may use; none for any
	// Shared marks a model served by a multi-model server (Ollama), which loads models on demand
	// and sizes its memory to each one; see the package comment for what it reserves.
	Shared bool
}

// Assignment is one replica's place.
type Assignment struct {
	GPUs []int // GPU indexes, ascending
	TP   int   // tensor-parallel size (Shared: the number of GPUs the model is split over)
	// Plan is perf's memory plan on the assignment's GPUs; on mixed GPUs, the one whose KV cache
	// is smallest, which is what the engine can use. For a Shared model it is sized to the
	// model's need: KV for exactly Concurrency × MaxModelLen tokens.
	Plan perf.Plan
	// MemoryUtilization is the fraction of each GPU's memory to pass to the engine (vLLM
	// --gpu-memory-utilization); 0 for a Shared model.
	MemoryUtilization float64
}

// CUDAVisibleDevices is the value of CUDA_VISIBLE_DEVICES for the replica, e.g. "0,1". The
// indexes are nvidia-smi's, so the engine also needs CUDA_DEVICE_ORDER=PCI_BUS_ID (see Env).
func (a Assignment) CUDAVisibleDevices() string {
	return joinInts(a.GPUs, ",")
}

// Env is the environment that gives the engine its GPUs. CUDA numbers devices fastest first
// unless told otherwise, which is not nvidia-smi's order on mixed machines.
func (a Assignment) Env() []string {
	return []string{"CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES=" + a.CUDAVisibleDevices()}
}

// Decision is where a service goes, with the arithmetic that put it there.
type Decision struct {
	Service  string
	Replicas []Assignment
	Lines    []string
}

// Refusal is a service that does not fit: why, with the numbers, and what would fit instead.
// Alternatives are single changes to the request, each checked against the services placed
// before it (the larger ones), so taking one may in turn displace a smaller service.
type Refusal struct {
	Service      string
	Lines        []string
	Alternatives []string
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
			b.WriteString("\n  - " + a)
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

// Plan places every request on the inventory: largest need first (weights plus KV, times
// replicas; ties in input order), each replica on the smallest tensor-parallel size that fits,
// on the GPUs that fit it most tightly. A service is placed whole or not at all. Decisions and
// errors come back in input order; an error is a *Refusal when the service does not fit, and a
// plain error when the request or the inventory is invalid. Plan is deterministic and pure.
func Plan(reqs []Request, inv []GPU) ([]Decision, []error) {
	st, err := newState(inv)
	if err != nil {
		return nil, []error{err}
	}
	jobs := make([]*job, len(reqs))
	errs := make([]error, len(reqs))
	var order []*job
	for i, r := range reqs {
		j, err := newJob(r, st)
		if err != nil {
			errs[i] = err
			continue
		}
		j.idx = i
		jobs[i] = j
		order = append(order, j)
	}
	slices.SortStableFunc(order, func(a, b *job) int { return cmp.Compare(b.size(), a.size()) })
	decs := make([]*Decision, len(reqs))
	for _, j := range order {
		p, f := place(j, st)
		if f != nil {
			errs[j.idx] = refuse(j, st, f)
			continue
		}
		st = p.state
		decs[j.idx] = &p.Decision
	}
	var outD []Decision
	var outE []error
	for i := range reqs {
		if decs[i] != nil {
			outD = append(outD, *decs[i])
		}
		if errs[i] != nil {
			outE = append(outE, errs[i])
		}
	}
	return outD, outE
}

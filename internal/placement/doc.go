// Package placement decides which GPUs serve which model: a pure function from requests and a
// GPU inventory to decisions and refusals, with the arithmetic behind each. It does no I/O and
// no logging; the inventory comes from nvidia-smi's CSV (Query, ParseNvidiaSMI), from a
// configuration, or from perf's GPU profiles (FakeInventory).
//
// # Memory
//
// The need of one replica is perf's memory plan (perf.NewPlan), the single memory model of
// Citadel: per GPU, weights ÷ tensor-parallel size, plus activations of a full step and the
// CUDA runtime, plus the KV cache for MaxModelLen × Concurrency tokens in whole blocks of 16.
// A GPU whose model perf knows is planned with that profile; any other with a generic one. The
// memory is always the inventory's. GPU.MemoryUsed is memory the plan cannot have (a desktop,
// other users' jobs): when re-planning a host whose engines are running, leave their memory out
// of it, or they are counted twice.
//
// # Reservations
//
// An exclusive engine (vLLM, SGLang) takes gpu_memory_utilization × total memory on each of its
// GPUs whatever the model's size, because it gives all the rest to the KV cache, and it refuses
// to start unless that much is free. The planner therefore reserves exactly utilisation ×
// total, and the need must fit within it. With the default utilisation (0.9) it lowers the
// utilisation, in hundredths, to the memory that is actually free (MemoryTotal − MemoryUsed −
// earlier reservations) when a GPU has less, as long as the need still fits; a utilisation set
// in the request is used as is. Two vLLM replicas can share a GPU only with utilisations that
// add up to what is free, e.g. 0.45 each.
//
// A shared model (Request.Shared: Ollama serving many models from one server) reserves nothing
// of its own. The server loads models on demand and evicts idle ones, so each shared model has
// to fit beside the exclusive engines, not beside the other shared models; what the shared
// models hold on a GPU is the largest need among them (their peak), and exclusive engines are
// placed in what that leaves. A shared model that needs more than one GPU is split by layers
// over them (Ollama's way), costed like tensor parallelism. Replicas of a shared model go on
// distinct GPUs, since one server loads a model once. The caller gives the shared server the
// union of its models' GPUs.
//
// # Engine settings
//
// The request carries the engine's own arguments as the user wrote them: the context
// (--max-model-len, --context-length, -c, num_ctx), the utilisation (--gpu-memory-utilization,
// --mem-fraction-static), --tensor-parallel-size, the weight format, the KV cache dtype
// (--kv-cache-dtype fp8 halves the KV cache; Ollama's q8_0 and q4_0 are costed too), vLLM's
// --max-num-seqs (the batch the activations are sized for) and the slots that each hold a full
// context (OLLAMA_NUM_PARALLEL, -np). The last line of each placed replica states every value
// used, in the engine's spelling (Request.Engine), so status can say which were used.
//
// # Partial offload
//
// A shared model that fits no GPU set whole is placed as Ollama runs it: some of its layers on
// the GPUs, the rest on the CPU (perf.PlanOffload: Ollama's layer estimate, blocks spread
// round-robin over the GPUs from the last block, the output layer last). Assignment.Offload
// holds the split; the lines state the layers per GPU, the CPU's share in host memory and the
// expected decode slowdown (memory-bound: bytes on the GPU at its bandwidth plus bytes on the
// CPU at the host's). It is refused only when no GPU has room for the compute graph, llama.cpp's
// minimum and two layers. Host memory is not checked: the planner does not know it.
//
// # Order and running replicas
//
// Replicas already running (Request.Keep, as an earlier Plan placed them) are reserved first,
// exactly where they are: a running replica is never moved or stopped to place another
// service. Only when one of its GPUs is gone from the inventory, or unusable, is it placed
// afresh (Assignment.Kept false, and a line says why). Then the other replicas are placed:
// exclusive engines before shared models, since Ollama adapts to the memory left (by offloading)
// and vLLM does not; within each, largest first (weights plus KV cache, times replicas; ties in
// request order), each whole or not at all. A replica takes the smallest tensor-parallel size
// (1, 2, 4, … up to the GPUs it may use, dividing the attention heads) that fits, or the size
// the request fixes. Among the GPU sets that fit, an exclusive engine takes the one where it
// gets the highest utilisation and then the least free memory (best fit); a shared model the
// one where it raises the shared peak least and then the least free memory; ties go to the
// lower index. Replicas with OnePerGPU use distinct GPUs.
//
// # Refusals
//
// Plan's results are aligned with its requests: each service carries only its own error. A
// service that does not fit is refused with a *Refusal: for each size tried, the memory sum
// against the budget, or which GPUs lacked room and who holds them ("GPU 0: 9.76 GiB reserved
// by default/mimo (vllm, utilisation 0.61), 6.24 GiB free of 15.99 GiB"); then every single
// change that would fit given the other services (tensor parallelism, an 8- or 4-bit variant,
// an fp8 KV cache, a shorter context, fewer slots, another utilisation, fewer replicas, no
// pinning), each as text and as a machine-readable Change, else which services would have to
// stop (Alternative.Stop), else how large a GPU it needs.
//
// # Inventory
//
// nvidia-smi values the driver does not report ([N/A], [Not Supported]) do not abort the
// inventory. A GPU without a memory size (unified memory: DGX Spark/GB10) or with MIG mode on is
// listed with GPU.Unusable saying why and what to do, and the planner places nothing on it
// (Citadel places whole GPUs; under MIG, CUDA sees MIG instances instead). A GPU.Note records a
// value that was missing and what was assumed (memory.used counted as 0).
//
// GPU indexes are nvidia-smi's, which follow the PCI bus; CUDA numbers devices fastest first
// unless CUDA_DEVICE_ORDER=PCI_BUS_ID, which the engine adapters (internal/engine) set with
// CUDA_VISIBLE_DEVICES.
package placement

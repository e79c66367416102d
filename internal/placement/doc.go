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
// # Order
//
// Services are placed largest first (weights plus KV cache, times replicas; ties in request
// order), each whole or not at all. A replica takes the smallest tensor-parallel size (1, 2,
// 4, … up to the GPUs it may use, dividing the attention heads) that fits, or the size the
// request fixes. Among the GPU sets that fit, an exclusive engine takes the one where it gets
// the highest utilisation and then the least free memory (best fit); a shared model the one
// where it raises the shared peak least and then the least free memory; ties go to the lower
// index. Replicas with OnePerGPU use distinct GPUs.
//
// # Refusals
//
// A service that does not fit is refused with a *Refusal: for each size tried, the memory sum
// against the budget, or which GPUs lacked room and who holds them; then every single change
// that would fit given the other services (tensor parallelism, an 8- or 4-bit variant, a
// shorter context, fewer concurrent sequences, a higher utilisation, fewer replicas, no
// pinning), else whether it would fit alone, else how large a GPU it needs.
//
// GPU indexes are nvidia-smi's, which follow the PCI bus; CUDA numbers devices fastest first
// unless CUDA_DEVICE_ORDER=PCI_BUS_ID, which Assignment.Env sets with CUDA_VISIBLE_DEVICES.
package placement

// Package perfmodel is Citadel's GPU and model capacity model, used alike by the planner
// (internal/placement: what fits where) and by `citadel sim` (how fast it runs): GPU and model
// profiles, a vLLM-like memory plan, a roofline step-time model and a deterministic iteration
// scheduler. The planner does not depend on the simulator; both depend on this package.
// It does no I/O, starts no goroutines and reads no clock: simulated time advances only by
// Scheduler.Step, so one goroutine can drive thousands of streams (the HTTP personalities
// translate Step's events into wall-clock delays, scaled by --time-scale).
//
// The recipe (docs/design/perfmodel-calibration.md has it with its sources):
//
//   - NewPlan splits GPU memory × gpu_memory_utilization into weights (/ tensor-parallel size),
//     activations (a full max_num_batched_tokens step plus fp32 logits for max_num_seqs) and a
//     768 MiB runtime reserve, and gives the rest to the KV cache in blocks of 16 tokens; a model
//     that does not fit fails with a *PlanError worded like vLLM's (CUDA out of memory, "No
//     available memory for the cache blocks", max seq len larger than the KV cache).
//   - Plan.StepTime costs one iteration as max(bytes / (η_bw·BW), FLOPs / (η_c·FLOPS)) + all-reduce
//     time + fixed overhead; see its comment for the terms.
//   - Scheduler runs vLLM's continuous batching (chunked prefill within a token budget, FCFS
//     admission while max_num_seqs and free KV blocks allow with a 1 % watermark, preemption of
//     the newest request by recompute) or Ollama's fixed slots (Options.Parallel, each holding a
//     MaxModelLen context, FIFO queue, 2048-token prompt batches).
//
// # Calibration
//
// The tests in calib_test.go pin the model to published reference figures (their sources are in
// docs/design/perfmodel-calibration.md; docs/sim.md has the same table):
//
//	scenario                                          reference            simulated      tolerance
//	Llama-3.1-8B bf16, A100-40G PCIe, c=1, 1024/128    ≈ 75 tok/s decode    78.9 tok/s     ± 25 %
//	Qwen2.5-7B bf16, H100 SXM, batch 64, 1k context    ≈ 12k tok/s (roofline) 9.5k tok/s   ± 25 %
//	A100-40G knee, closed loop 1024/128, c=1/8/64      8× → 6.6×; peak 793  75/416/974 tok/s  see below
//	Ollama, RTX 4090, Llama-3.1-8B Q4_K_M, c=1…16      flat                 150.9 tok/s at every c  ± 10 %
//	TTFT, 64-request burst, max_num_seqs 8 / 1 slot    grows with queue     0.11 s → 3.2 s / 0.08 s → 30.5 s
//
// The knee criterion: throughput at concurrency 8 is at least 4× that at 1 (simulated 5.5×), the
// throughput gained per added stream from 8 to 64 is under a third of that from 1 to 8 (simulated
// 10 vs 49 tok/s per stream), and ITL at 8 is within 25 % of ITL at 1 (13.5 vs 12.7 ms). The
// H100 figure sits 20 % under its target because the reference number is the bandwidth roofline
// (η_bw = 1, no overhead) while the profile uses η_bw = 0.9 and 0.5 ms per step.
//
// The scheduler's own cost is ≈ 18 ns of CPU per simulated token with 2,000 running streams
// (BenchmarkSchedulerStep, one core of an AMD EPYC).
package perfmodel

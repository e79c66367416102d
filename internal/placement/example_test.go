package placement_test

import (
	"errors"
	"fmt"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/placement"
)

// seed001 is the plan of the seed deployment: MiMo-VL-7B-RL in bf16 on vLLM with
// --gpu-memory-utilization 0.6 and --max-model-len 8192, and three GGUF models on one shared
// Ollama at its defaults (num_ctx 4096, one slot).
func seed001() []placement.Request {
	m := func(name string) perfmodel.Model {
		model, err := perfmodel.LookupModel(name)
		if err != nil {
			panic(err)
		}
		return model
	}
	return []placement.Request{
		{Service: "default/mimo-vl-7b-rl", Model: m("mimo-vl-7b"), Engine: "vllm", GPUMemoryUtilization: 0.6, MaxModelLen: 8192},
		{Service: "default/deepseek-r1-32b", Model: m("deepseek-r1-distill-qwen-32b"), Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "default/deepcoder-14b", Model: m("deepcoder-14b"), Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "default/qwen2-5-7b", Model: m("qwen2.5-7b"), Quant: perfmodel.QuantQ4KM, Shared: true},
	}
}

func show(decisions []placement.Decision, errs []error) {
	for i, d := range decisions {
		if errs[i] != nil {
			fmt.Println(errs[i])
			continue
		}
		fmt.Println(d.Service + ":")
		for _, l := range d.Lines {
			fmt.Println("  " + l)
		}
	}
}

// The seed deployment on its host, 2× RTX 4070 Ti SUPER (16 GiB each). MiMo-VL in bf16 needs
// both GPUs (tensor parallel 2), and within 0.6 of each it is 6 MiB short for an 8192-token
// context: it is refused with the changes that would fit, and the Ollama models take the GPUs.
// With the smallest of those changes, --gpu-memory-utilization 0.61, it runs with tensor
// parallel 2; the Ollama models share the remaining 39 %, and deepseek-r1:32b, larger than
// that, runs with some of its layers on the CPU, as Ollama would.
func ExamplePlan_seed001() {
	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		panic(err)
	}
	reqs := seed001()
	fmt.Println("## as written: --gpu-memory-utilization 0.6 --max-model-len 8192")
	decisions, errs := placement.Plan(reqs, inv)
	show(decisions, errs)

	var rf *placement.Refusal
	if !errors.As(errs[0], &rf) {
		panic(errs[0])
	}
	for _, alt := range rf.Alternatives {
		if u := alt.Change.GPUMemoryUtilization; u > 0 {
			reqs[0].GPUMemoryUtilization = u
			break
		}
	}
	fmt.Printf("## with the suggested --gpu-memory-utilization %g\n", reqs[0].GPUMemoryUtilization)
	show(placement.Plan(reqs, inv))
	// Output:
	// ## as written: --gpu-memory-utilization 0.6 --max-model-len 8192
	// default/mimo-vl-7b-rl does not fit:
	//   mimo-vl-7b bf16: weights 15.46 GiB; KV cache 144 KiB per token × 8192 tokens (max-model-len 8192 × 1 sequence) = 1.12 GiB
	//   tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 8192 tokens 1.12 GiB = 18.06 GiB > 9.60 GiB (0.6 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 does not fit: mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + activations and runtime 1.31 GiB + KV for 8192 tokens 0.56 GiB = 9.60 GiB > 9.60 GiB (0.6 × 15.99 GiB) (short by 9 MiB)
	// it would fit with one of:
	//   - an 8-bit variant (fp8: weights 9.51 GiB) with tensor parallel 2 over GPUs 0,1
	//   - a 4-bit variant (awq-int4: weights 6.64 GiB) on one GPU (GPU 0)
	//   - --kv-cache-dtype fp8 (KV cache 0.56 GiB instead of 1.12 GiB) with tensor parallel 2 over GPUs 0,1
	//   - --max-model-len 7168 with tensor parallel 2 over GPUs 0,1
	//   - --gpu-memory-utilization 0.61 with tensor parallel 2 over GPUs 0,1
	// default/deepseek-r1-32b:
	//   deepseek-r1-distill-qwen-32b q4_k_m: weights 18.50 GiB; KV cache 256 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 1.00 GiB
	//   on one GPU, it does not fit: deepseek-r1-distill-qwen-32b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 18.50 GiB + activations and runtime 2.05 GiB + KV for 4096 tokens 1.00 GiB = 21.55 GiB > 15.99 GiB free; the weights alone do not fit in 15.99 GiB
	//   split over GPUs 0,1: deepseek-r1-distill-qwen-32b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 9.25 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.50 GiB = 11.38 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   ollama: CUDA_VISIBLE_DEVICES=0,1 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// default/deepcoder-14b:
	//   deepcoder-14b q4_k_m: weights 8.34 GiB; KV cache 192 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.75 GiB
	//   on GPU 0: deepcoder-14b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 8.34 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.75 GiB = 10.72 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   ollama: CUDA_VISIBLE_DEVICES=0 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// default/qwen2-5-7b:
	//   qwen2.5-7b q4_k_m: weights 4.30 GiB; KV cache 56 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.22 GiB
	//   on GPU 0: qwen2.5-7b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 4.30 GiB + activations and runtime 1.69 GiB + KV for 4096 tokens 0.22 GiB = 6.21 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   ollama: CUDA_VISIBLE_DEVICES=0 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// ## with the suggested --gpu-memory-utilization 0.61
	// default/mimo-vl-7b-rl:
	//   mimo-vl-7b bf16: weights 15.46 GiB; KV cache 144 KiB per token × 8192 tokens (max-model-len 8192 × 1 sequence) = 1.12 GiB
	//   tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 8192 tokens 1.12 GiB = 18.06 GiB > 9.76 GiB (0.61 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 over GPUs 0,1: mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + activations and runtime 1.31 GiB + KV for 8192 tokens 0.56 GiB = 9.60 GiB ≤ 9.76 GiB (0.61 × 15.99 GiB); the KV cache gets 0.71 GiB = 10400 tokens, 1.27 × 8192
	//   vllm: CUDA_VISIBLE_DEVICES=0,1 --tensor-parallel-size 2 --gpu-memory-utilization 0.61 --max-model-len 8192 --max-num-seqs 256 --kv-cache-dtype auto
	// default/deepseek-r1-32b:
	//   deepseek-r1-distill-qwen-32b q4_k_m: weights 18.50 GiB; KV cache 256 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 1.00 GiB
	//   on one GPU, it does not fit: deepseek-r1-distill-qwen-32b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 18.50 GiB + activations and runtime 2.05 GiB + KV for 4096 tokens 1.00 GiB = 21.55 GiB > 15.99 GiB free; the weights alone do not fit in 15.99 GiB
	//   split over 2 GPUs, it would fit (deepseek-r1-distill-qwen-32b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 9.25 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.50 GiB = 11.38 GiB ≤ 15.99 GiB free), but no GPU has room: GPU 0: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.24 GiB free of 15.99 GiB; GPU 1: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.24 GiB free of 15.99 GiB
	//   deepseek-r1-distill-qwen-32b: 30 of 65 layers on GPUs 0,1 (15 + 15), 35 on the CPU; decode ≈ 7.4× slower than all on GPU
	//   offload arithmetic (Ollama's estimate): a layer is 0.29 GiB (weights + KV for 4096 tokens); each GPU in use also holds the compute graph 0.90 GiB, llama.cpp's minimum 0.45 GiB and a spare layer; the CPU part holds 10.33 GiB in host memory and runs at ≈ 45 GB/s against the GPU's 571 GB/s
	//   GPU 0: 15 layers, 6.01 GiB of 6.24 GiB free to the shared server beside 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61)
	//   GPU 1: 15 layers, 6.01 GiB of 6.24 GiB free to the shared server beside 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61)
	//   ollama: CUDA_VISIBLE_DEVICES=0,1 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// default/deepcoder-14b:
	//   deepcoder-14b q4_k_m: weights 8.34 GiB; KV cache 192 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.75 GiB
	//   on one GPU, it would fit (deepcoder-14b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 8.34 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.75 GiB = 10.72 GiB ≤ 15.99 GiB free), but no GPU has room: GPU 0: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.24 GiB free of 15.99 GiB; GPU 1: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.24 GiB free of 15.99 GiB
	//   split over GPUs 0,1: deepcoder-14b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 4.17 GiB + activations and runtime 1.42 GiB + KV for 4096 tokens 0.38 GiB = 5.96 GiB ≤ 6.24 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   ollama: CUDA_VISIBLE_DEVICES=0,1 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// default/qwen2-5-7b:
	//   qwen2.5-7b q4_k_m: weights 4.30 GiB; KV cache 56 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.22 GiB
	//   on GPU 0: qwen2.5-7b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 4.30 GiB + activations and runtime 1.69 GiB + KV for 4096 tokens 0.22 GiB = 6.21 GiB ≤ 6.24 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   ollama: CUDA_VISIBLE_DEVICES=0 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
}

// One more exclusive service while the seed deployment runs: its replicas are kept where they
// are, and the newcomer is refused with the arithmetic and the names of what holds the GPUs.
func ExamplePlan_keep() {
	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		panic(err)
	}
	reqs := seed001()
	reqs[0].GPUMemoryUtilization = 0.61 // as ExamplePlan_seed001 suggests
	decisions, _ := placement.Plan(reqs, inv)
	for i := range reqs {
		reqs[i].Keep = decisions[i].Replicas // running, as placed
	}
	qwen, err := perfmodel.LookupModel("qwen2.5-7b")
	if err != nil {
		panic(err)
	}
	reqs = append(reqs, placement.Request{Service: "default/qwen-awq", Model: qwen, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 8192})
	decisions, errs := placement.Plan(reqs, inv)
	for i, d := range decisions[:4] {
		fmt.Printf("%s kept on GPUs %s: %v\n", d.Service, d.Replicas[0].CUDAVisibleDevices(), d.Replicas[0].Kept && errs[i] == nil)
	}
	fmt.Println(errs[4])
	// Output:
	// default/mimo-vl-7b-rl kept on GPUs 0,1: true
	// default/deepseek-r1-32b kept on GPUs 0,1: true
	// default/deepcoder-14b kept on GPUs 0,1: true
	// default/qwen2-5-7b kept on GPUs 0: true
	// default/qwen-awq does not fit:
	//   qwen2.5-7b awq-int4: weights 5.16 GiB; KV cache 56 KiB per token × 8192 tokens (max-model-len 8192 × 1 sequence) = 0.44 GiB
	//   tensor parallel 1 would fit (qwen2.5-7b awq-int4 on 1× rtx-4070-ti-super (15.99 GiB): weights 5.16 GiB + activations and runtime 1.69 GiB + KV for 8192 tokens 0.44 GiB = 7.29 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.21 GiB for the shared server's models (default/deepseek-r1-32b, default/deepcoder-14b, default/qwen2-5-7b), 0.03 GiB free of 15.99 GiB; GPU 1: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.01 GiB for the shared server's models (default/deepseek-r1-32b, default/deepcoder-14b), 0.23 GiB free of 15.99 GiB
	//   tensor parallel 2 would fit (qwen2.5-7b awq-int4 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 2.58 GiB + activations and runtime 1.40 GiB + KV for 8192 tokens 0.22 GiB = 4.20 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.21 GiB for the shared server's models (default/deepseek-r1-32b, default/deepcoder-14b, default/qwen2-5-7b), 0.03 GiB free of 15.99 GiB; GPU 1: 9.76 GiB reserved by default/mimo-vl-7b-rl (vllm, utilisation 0.61), 6.01 GiB for the shared server's models (default/deepseek-r1-32b, default/deepcoder-14b), 0.23 GiB free of 15.99 GiB
	// it would fit with one of:
	//   - if default/mimo-vl-7b-rl and default/deepseek-r1-32b and default/deepcoder-14b and default/qwen2-5-7b did not hold the GPUs, it would fit on one GPU (GPU 0)
}

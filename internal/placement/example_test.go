package placement_test

import (
	"fmt"

	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/sim/perf"
)

// The seed deployment on its host, 2× RTX 4070 Ti SUPER: MiMo-VL-7B-RL on vLLM beside the GGUF
// models of the Ollama server it was to replace; then the same models, each on its own vLLM.
func ExamplePlan_seed001() {
	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		panic(err)
	}
	m := func(name string) perf.Model {
		model, err := perf.LookupModel(name)
		if err != nil {
			panic(err)
		}
		return model
	}
	reqs := []placement.Request{
		{Service: "citadel/mimo-vl-7b-rl", Model: m("mimo-vl-7b"), MaxModelLen: 32768},
		{Service: "citadel/mixtral-8x7b", Model: m("mixtral-8x7b"), Quant: perf.QuantQ4KM, Shared: true},
		{Service: "citadel/deepseek-r1-32b", Model: m("deepseek-r1-distill-qwen-32b"), Quant: perf.QuantQ4KM, Shared: true},
		{Service: "citadel/deepcoder-14b", Model: m("deepcoder-14b"), Quant: perf.QuantQ4KM, Shared: true},
	}
	show := func(title string) {
		fmt.Println("## " + title)
		decisions, errs := placement.Plan(reqs, inv)
		for _, d := range decisions {
			fmt.Println(d.Service + ":")
			for _, l := range d.Lines {
				fmt.Println("  " + l)
			}
		}
		for _, err := range errs {
			fmt.Println(err)
		}
	}
	show("MiMo on vLLM, the GGUF models on Ollama (shared)")
	for i := range reqs {
		reqs[i].Shared, reqs[i].MaxModelLen = false, max(reqs[i].MaxModelLen, 4096)
	}
	show("every model on its own vLLM, 4096-token context for the GGUF models")
	// Output:
	// ## MiMo on vLLM, the GGUF models on Ollama (shared)
	// citadel/mixtral-8x7b:
	//   mixtral-8x7b q4_k_m: weights 26.37 GiB; KV cache 128 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.50 GiB
	//   on one GPU, it does not fit: mixtral-8x7b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 26.37 GiB + activations and runtime 1.47 GiB + KV for 4096 tokens 0.50 GiB = 28.34 GiB > 15.99 GiB free; the weights alone do not fit in 15.99 GiB
	//   split over GPUs 0,1: mixtral-8x7b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 13.18 GiB + activations and runtime 1.25 GiB + KV for 4096 tokens 0.25 GiB = 14.68 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   shared server: CUDA_VISIBLE_DEVICES=0,1, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// citadel/deepseek-r1-32b:
	//   deepseek-r1-distill-qwen-32b q4_k_m: weights 18.50 GiB; KV cache 256 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 1.00 GiB
	//   on one GPU, it does not fit: deepseek-r1-distill-qwen-32b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 18.50 GiB + activations and runtime 2.05 GiB + KV for 4096 tokens 1.00 GiB = 21.55 GiB > 15.99 GiB free; the weights alone do not fit in 15.99 GiB
	//   split over GPUs 0,1: deepseek-r1-distill-qwen-32b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 9.25 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.50 GiB = 11.38 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   shared server: CUDA_VISIBLE_DEVICES=0,1, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// citadel/deepcoder-14b:
	//   deepcoder-14b q4_k_m: weights 8.34 GiB; KV cache 192 KiB per token × 4096 tokens (num_ctx 4096 × 1 slot) = 0.75 GiB
	//   on GPU 0: deepcoder-14b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 8.34 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.75 GiB = 10.72 GiB ≤ 15.99 GiB free; Ollama loads it on demand, unloading idle models to make room
	//   shared server: CUDA_VISIBLE_DEVICES=0, num_ctx 4096, OLLAMA_NUM_PARALLEL 1
	// citadel/mimo-vl-7b-rl does not fit:
	//   mimo-vl-7b bf16: weights 15.46 GiB; KV cache 144 KiB per token × 32768 tokens (max-model-len 32768 × 1 sequence) = 4.50 GiB
	//   tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 32768 tokens 4.50 GiB = 21.44 GiB > 14.39 GiB (0.9 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 would fit (mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + activations and runtime 1.31 GiB + KV for 32768 tokens 2.25 GiB = 11.29 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0 has 1.31 GiB free of 15.99 GiB: 14.68 GiB for shared models (citadel/mixtral-8x7b); GPU 1 has 1.31 GiB free of 15.99 GiB: 14.68 GiB for shared models (citadel/mixtral-8x7b)
	// it would fit with one of:
	//   - if citadel/mixtral-8x7b did not hold the GPUs, it would fit with tensor parallel 2 over GPUs 0,1
	// ## every model on its own vLLM, 4096-token context for the GGUF models
	// citadel/mimo-vl-7b-rl:
	//   mimo-vl-7b bf16: weights 15.46 GiB; KV cache 144 KiB per token × 32768 tokens (max-model-len 32768 × 1 sequence) = 4.50 GiB
	//   tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 32768 tokens 4.50 GiB = 21.44 GiB > 14.39 GiB (0.9 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 over GPUs 0,1: mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + activations and runtime 1.31 GiB + KV for 32768 tokens 2.25 GiB = 11.29 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB); the KV cache gets 5.35 GiB = 77936 tokens, 2.38 × 32768
	//   CUDA_VISIBLE_DEVICES=0,1 --tensor-parallel-size 2 --gpu-memory-utilization 0.9 --max-model-len 32768
	// citadel/mixtral-8x7b does not fit:
	//   mixtral-8x7b q4_k_m: weights 26.37 GiB; KV cache 128 KiB per token × 4096 tokens (max-model-len 4096 × 1 sequence) = 0.50 GiB
	//   tensor parallel 1 does not fit: mixtral-8x7b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 26.37 GiB + activations and runtime 1.47 GiB + KV for 4096 tokens 0.50 GiB = 28.34 GiB > 14.39 GiB (0.9 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 does not fit: mixtral-8x7b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 13.18 GiB + activations and runtime 1.25 GiB + KV for 4096 tokens 0.25 GiB = 14.68 GiB > 14.39 GiB (0.9 × 15.99 GiB)
	// it would fit with one of:
	//   - --gpu-memory-utilization 0.92 with tensor parallel 2 over GPUs 0,1
	// citadel/deepseek-r1-32b does not fit:
	//   deepseek-r1-distill-qwen-32b q4_k_m: weights 18.50 GiB; KV cache 256 KiB per token × 4096 tokens (max-model-len 4096 × 1 sequence) = 1.00 GiB
	//   tensor parallel 1 does not fit: deepseek-r1-distill-qwen-32b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 18.50 GiB + activations and runtime 2.05 GiB + KV for 4096 tokens 1.00 GiB = 21.55 GiB > 14.39 GiB (0.9 × 15.99 GiB); the weights alone do not fit in 15.99 GiB
	//   tensor parallel 2 would fit (deepseek-r1-distill-qwen-32b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 9.25 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.50 GiB = 11.38 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl; GPU 1 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl
	// it would fit with one of:
	//   - if citadel/mimo-vl-7b-rl did not hold the GPUs, it would fit with tensor parallel 2 over GPUs 0,1
	// citadel/deepcoder-14b does not fit:
	//   deepcoder-14b q4_k_m: weights 8.34 GiB; KV cache 192 KiB per token × 4096 tokens (max-model-len 4096 × 1 sequence) = 0.75 GiB
	//   tensor parallel 1 would fit (deepcoder-14b q4_k_m on 1× rtx-4070-ti-super (15.99 GiB): weights 8.34 GiB + activations and runtime 1.63 GiB + KV for 4096 tokens 0.75 GiB = 10.72 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl; GPU 1 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl
	//   tensor parallel 2 would fit (deepcoder-14b q4_k_m on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 4.17 GiB + activations and runtime 1.42 GiB + KV for 4096 tokens 0.38 GiB = 5.96 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl; GPU 1 has 1.60 GiB free of 15.99 GiB: 14.39 GiB reserved by citadel/mimo-vl-7b-rl
	// it would fit with one of:
	//   - if citadel/mimo-vl-7b-rl did not hold the GPUs, it would fit on one GPU (GPU 0)
}

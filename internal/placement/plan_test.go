package placement

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/perfmodel"
	"github.com/google/go-cmp/cmp"
)

func model(t testing.TB, name string) perfmodel.Model {
	t.Helper()
	m, err := perfmodel.LookupModel(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func inventory(t testing.TB, spec string) []GPU {
	t.Helper()
	inv, err := FakeInventory(spec)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// placement is a decision reduced to what a test compares.
type placement struct {
	Service string
	GPUs    [][]int
	TP      []int
	Util    []float64
}

func summarise(ds []Decision) []placement {
	var out []placement
	for _, d := range ds {
		if len(d.Replicas) == 0 {
			continue // refused: Plan's decisions are aligned with its requests
		}
		p := placement{Service: d.Service}
		for _, a := range d.Replicas {
			p.GPUs = append(p.GPUs, a.GPUs)
			p.TP = append(p.TP, a.TP)
			p.Util = append(p.Util, a.MemoryUtilization)
		}
		out = append(out, p)
	}
	return out
}

func refusals(t testing.TB, errs []error) map[string]*Refusal {
	t.Helper()
	out := map[string]*Refusal{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		var r *Refusal
		if !errors.As(err, &r) {
			t.Fatalf("error %v is not a *Refusal", err)
		}
		out[r.Service] = r
	}
	return out
}

func logPlan(t testing.TB, ds []Decision, errs []error) {
	t.Helper()
	for _, d := range ds {
		if len(d.Lines) > 0 {
			t.Logf("%s:\n  %s", d.Service, strings.Join(d.Lines, "\n  "))
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Log(err)
		}
	}
}

// nonNil are the errors of the refused or invalid requests.
func nonNil(errs []error) []error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// texts are the alternatives' texts.
func texts(alts []Alternative) []string {
	var out []string
	for _, a := range alts {
		out = append(out, a.Text)
	}
	return out
}

func containsAll(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("%s lack %q; got:\n%s", what, w, joined)
		}
	}
}

// The example of issue 5: MiMo-VL-7B in bf16 does not fit one 16 GB GPU; tensor parallel 2 or a
// 4-bit variant does.
func TestPlanMiMoOn4070TiSuper(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	mimo := model(t, "mimo-vl-7b")
	const tp1 = "tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): " +
		"weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 32768 tokens 4.50 GiB = 21.44 GiB > 14.39 GiB (0.9 × 15.99 GiB); " +
		"the weights alone do not fit in 15.99 GiB"
	tests := []struct {
		name      string
		req       Request
		want      []placement
		lines     []string // in the decision's or the refusal's lines
		alts      []string // in the refusal's alternatives, in this order
		kvTokens  int64
		weightsGB float64
	}{
		{
			name:  "bf16 on one GPU is refused with the arithmetic",
			req:   Request{Service: "lab/mimo", Model: mimo, MaxModelLen: 32768, TP: 1},
			lines: []string{tp1},
			alts: []string{
				"tensor parallel 2 over GPUs 0,1",
				"an 8-bit variant (fp8: weights 9.51 GiB) and --max-model-len 24576 on one GPU (GPU 0)",
				"a 4-bit variant (awq-int4: weights 6.64 GiB) on one GPU (GPU 0)",
			},
		},
		{
			name: "bf16 with the size left to the planner takes tensor parallel 2, saying why not 1",
			req:  Request{Service: "lab/mimo", Model: mimo, MaxModelLen: 32768},
			want: []placement{{Service: "lab/mimo", GPUs: [][]int{{0, 1}}, TP: []int{2}, Util: []float64{0.9}}},
			lines: []string{tp1,
				"tensor parallel 2 over GPUs 0,1: mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + " +
					"activations and runtime 1.31 GiB + KV for 32768 tokens 2.25 GiB = 11.29 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB); " +
					"the KV cache gets 5.35 GiB = 77936 tokens, 2.38 × 32768",
				"vllm: CUDA_VISIBLE_DEVICES=0,1 --tensor-parallel-size 2 --gpu-memory-utilization 0.9 --max-model-len 32768"},
			kvTokens: 77936,
		},
		{
			name: "awq-int4 fits one GPU",
			req:  Request{Service: "lab/mimo", Model: mimo, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 32768},
			want: []placement{{Service: "lab/mimo", GPUs: [][]int{{0}}, TP: []int{1}, Util: []float64{0.9}}},
			lines: []string{"on GPU 0: mimo-vl-7b awq-int4 on 1× rtx-4070-ti-super (15.99 GiB): weights 6.64 GiB + activations and runtime 1.48 GiB + " +
				"KV for 32768 tokens 4.50 GiB = 12.62 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)"},
			kvTokens: 45680,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, errs := Plan([]Request{tt.req}, inv)
			logPlan(t, ds, errs)
			if diff := cmp.Diff(tt.want, summarise(ds)); diff != "" {
				t.Errorf("placements (-want +got):\n%s", diff)
			}
			if tt.want == nil {
				r := refusals(t, errs)["lab/mimo"]
				if r == nil {
					t.Fatalf("errors %v, want a refusal of lab/mimo", errs)
				}
				containsAll(t, "refusal lines", r.Lines, tt.lines...)
				if diff := cmp.Diff(tt.alts, texts(r.Alternatives)); diff != "" {
					t.Errorf("alternatives (-want +got):\n%s", diff)
				}
				return
			}
			if len(nonNil(errs)) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			containsAll(t, "decision lines", ds[0].Lines, tt.lines...)
			// The assignment's plan is perf's own for those settings.
			a := ds[0].Replicas[0]
			want, err := perfmodel.NewPlan(inv[0].perfGPU(), mimo, perfmodel.Options{TP: a.TP, GPUMemoryUtilization: a.MemoryUtilization,
				MaxModelLen: 32768, Quant: tt.req.Quant})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, a.Plan); diff != "" {
				t.Errorf("plan differs from perfmodel.NewPlan (-want +got):\n%s", diff)
			}
			if a.Plan.KVTokens != tt.kvTokens {
				t.Errorf("KV tokens = %d, want %d", a.Plan.KVTokens, tt.kvTokens)
			}
		})
	}
}

func TestPlanReplicas(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	qwen := model(t, "qwen2.5-7b")
	awq := func(r Request) Request {
		r.Service, r.Model, r.Quant = "lab/qwen", qwen, perfmodel.QuantAWQInt4
		return r
	}
	tests := []struct {
		name  string
		req   Request
		want  []placement
		alts  []string
		lines []string
	}{
		{
			name: "one per GPU, two replicas on two GPUs",
			req:  awq(Request{Replicas: 2, OnePerGPU: true}),
			want: []placement{{Service: "lab/qwen", GPUs: [][]int{{0}, {1}}, TP: []int{1, 1}, Util: []float64{0.9, 0.9}}},
			lines: []string{"replica 1: vllm: CUDA_VISIBLE_DEVICES=0 --tensor-parallel-size 1 --gpu-memory-utilization 0.9",
				"replica 2: vllm: CUDA_VISIBLE_DEVICES=1 --tensor-parallel-size 1"},
		},
		{
			name: "the default utilisation leaves no room for a second replica on a GPU anyway",
			req:  awq(Request{Replicas: 2}),
			want: []placement{{Service: "lab/qwen", GPUs: [][]int{{0}, {1}}, TP: []int{1, 1}, Util: []float64{0.9, 0.9}}},
		},
		{
			name: "half the memory each: both replicas share GPU 0 (best fit), leaving GPU 1 whole",
			req:  awq(Request{Replicas: 2, GPUMemoryUtilization: 0.5, MaxModelLen: 8192}),
			want: []placement{{Service: "lab/qwen", GPUs: [][]int{{0}, {0}}, TP: []int{1, 1}, Util: []float64{0.5, 0.5}}},
		},
		{
			name: "half the memory each, one per GPU",
			req:  awq(Request{Replicas: 2, GPUMemoryUtilization: 0.5, MaxModelLen: 8192, OnePerGPU: true}),
			want: []placement{{Service: "lab/qwen", GPUs: [][]int{{0}, {1}}, TP: []int{1, 1}, Util: []float64{0.5, 0.5}}},
		},
		{
			name: "three replicas one per GPU on two GPUs: refused whole, two would fit",
			req:  awq(Request{Replicas: 3, OnePerGPU: true}),
			lines: []string{"replica 1: fits on GPU 0", "replica 2: fits on GPU 1",
				"replica 3: not enough GPUs for tensor parallel 1: 1 needed, 0 available (earlier replicas hold GPUs 0,1 and replicas need distinct GPUs)"},
			alts: []string{"2 replicas instead of 3, as 2 replicas: on GPU 0; on GPU 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, errs := Plan([]Request{tt.req}, inv)
			logPlan(t, ds, errs)
			if diff := cmp.Diff(tt.want, summarise(ds)); diff != "" {
				t.Errorf("placements (-want +got):\n%s", diff)
			}
			if tt.want != nil {
				if len(nonNil(errs)) > 0 {
					t.Fatalf("errors: %v", errs)
				}
				containsAll(t, "decision lines", ds[0].Lines, tt.lines...)
				return
			}
			r := refusals(t, errs)["lab/qwen"]
			if r == nil {
				t.Fatalf("errors %v, want a refusal", errs)
			}
			containsAll(t, "refusal lines", r.Lines, tt.lines...)
			if diff := cmp.Diff(tt.alts, texts(r.Alternatives)); diff != "" {
				t.Errorf("alternatives (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanPinning(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	qwen, mimo := model(t, "qwen2.5-7b"), model(t, "mimo-vl-7b")
	ds, errs := Plan([]Request{
		{Service: "lab/qwen", Model: qwen, Quant: perfmodel.QuantAWQInt4, Pinned: []int{1}},
		{Service: "lab/mimo", Model: mimo, MaxModelLen: 32768, Pinned: []int{0}},
		{Service: "lab/other", Model: qwen, Quant: perfmodel.QuantAWQInt4, Pinned: []int{1}},
	}, inv)
	logPlan(t, ds, errs)
	want := []placement{{Service: "lab/qwen", GPUs: [][]int{{1}}, TP: []int{1}, Util: []float64{0.9}}}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
	rs := refusals(t, errs)
	if r := rs["lab/mimo"]; r == nil {
		t.Error("lab/mimo pinned to one GPU was not refused")
	} else {
		// MiMo, the largest, is placed first, so its alternatives are weighed against an idle host.
		if diff := cmp.Diff([]string{
			"an 8-bit variant (fp8: weights 9.51 GiB) and --max-model-len 24576 on one GPU (GPU 0)",
			"a 4-bit variant (awq-int4: weights 6.64 GiB) on one GPU (GPU 0)",
			"without pinning, with tensor parallel 2 over GPUs 0,1",
		}, texts(r.Alternatives)); diff != "" {
			t.Errorf("lab/mimo alternatives (-want +got):\n%s", diff)
		}
	}
	if r := rs["lab/other"]; r == nil {
		t.Error("lab/other pinned to a taken GPU was not refused")
	} else {
		containsAll(t, "lab/other refusal", r.Lines, "GPU 1: 14.39 GiB reserved by lab/qwen (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB")
		if diff := cmp.Diff([]string{"without pinning, on one GPU (GPU 0)"}, texts(r.Alternatives)); diff != "" {
			t.Errorf("lab/other alternatives (-want +got):\n%s", diff)
		}
	}

	// Pinned to both GPUs, MiMo takes tensor parallel 2 over them.
	ds, errs = Plan([]Request{{Service: "lab/mimo", Model: mimo, MaxModelLen: 32768, Pinned: []int{1, 0}}}, inv)
	want = []placement{{Service: "lab/mimo", GPUs: [][]int{{0, 1}}, TP: []int{2}, Util: []float64{0.9}}}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" || len(nonNil(errs)) > 0 {
		t.Errorf("placements (-want +got):\n%s\nerrors: %v", diff, errs)
	}
}

// seed001 is the deployment of the seed issue on its host, 2× RTX 4070 Ti SUPER: MiMo-VL-7B-RL
// on vLLM beside three GGUF models of the Ollama server it was to replace.
func seed001(t testing.TB) []Request {
	return []Request{
		{Service: "citadel/mimo-vl-7b-rl", Model: model(t, "mimo-vl-7b"), MaxModelLen: 32768},
		{Service: "citadel/mixtral-8x7b", Model: model(t, "mixtral-8x7b"), Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "citadel/deepseek-r1-32b", Model: model(t, "deepseek-r1-distill-qwen-32b"), Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "citadel/deepcoder-14b", Model: model(t, "deepcoder-14b"), Quant: perfmodel.QuantQ4KM, Shared: true},
	}
}

func TestPlanSeed001(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")

	t.Run("vLLM and Ollama", func(t *testing.T) {
		t.Parallel()
		ds, errs := Plan(seed001(t), inv)
		logPlan(t, ds, errs)
		// MiMo on vLLM, exclusive, goes first and takes 0.9 of both GPUs: the 1.60 GiB left on
		// each is too little for Ollama to put even one layer of a GGUF model there.
		want := []placement{{Service: "citadel/mimo-vl-7b-rl", GPUs: [][]int{{0, 1}}, TP: []int{2}, Util: []float64{0.9}}}
		if diff := cmp.Diff(want, summarise(ds)); diff != "" {
			t.Errorf("placements (-want +got):\n%s", diff)
		}
		rs := refusals(t, errs)
		if len(rs) != 3 || errs[0] != nil {
			t.Fatalf("refusals %v, want the three GGUF models", errs)
		}
		for _, name := range []string{"citadel/mixtral-8x7b", "citadel/deepseek-r1-32b", "citadel/deepcoder-14b"} {
			r := rs[name]
			containsAll(t, name, r.Lines, "even with layers on the CPU it does not fit",
				"GPU 0: 14.39 GiB reserved by citadel/mimo-vl-7b-rl (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB")
			if len(r.Alternatives) != 1 || !slices.Equal(r.Alternatives[0].Stop, []string{"citadel/mimo-vl-7b-rl"}) {
				t.Errorf("%s: alternatives %+v, want one that stops citadel/mimo-vl-7b-rl", name, r.Alternatives)
			}
		}
	})

	t.Run("all on vLLM", func(t *testing.T) {
		t.Parallel()
		reqs := seed001(t)
		for i := range reqs {
			reqs[i].Shared = false
			if reqs[i].MaxModelLen == 0 {
				reqs[i].MaxModelLen = 4096
			}
		}
		ds, errs := Plan(reqs, inv)
		logPlan(t, ds, errs)
		// Mixtral goes first and misses by 0.29 GiB per GPU; MiMo then takes both GPUs.
		want := []placement{{Service: "citadel/mimo-vl-7b-rl", GPUs: [][]int{{0, 1}}, TP: []int{2}, Util: []float64{0.9}}}
		if diff := cmp.Diff(want, summarise(ds)); diff != "" {
			t.Errorf("placements (-want +got):\n%s", diff)
		}
		rs := refusals(t, errs)
		if len(rs) != 3 {
			t.Fatalf("refusals %v, want 3", errs)
		}
		containsAll(t, "mixtral", rs["citadel/mixtral-8x7b"].Lines, "= 14.68 GiB > 14.39 GiB (0.9 × 15.99 GiB)")
		containsAll(t, "mixtral", texts(rs["citadel/mixtral-8x7b"].Alternatives), "--gpu-memory-utilization 0.92 with tensor parallel 2 over GPUs 0,1")
		containsAll(t, "deepcoder", texts(rs["citadel/deepcoder-14b"].Alternatives),
			"if citadel/mimo-vl-7b-rl did not hold the GPUs, it would fit on one GPU (GPU 0)")
	})
}

func TestPlanShared(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	coder := model(t, "deepcoder-14b")
	qwen := model(t, "qwen2.5-7b")
	ds, errs := Plan([]Request{
		{Service: "ollama/deepcoder", Model: coder, Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "ollama/qwen", Model: qwen, Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "vllm/qwen", Model: qwen, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 8192},
	}, inv)
	logPlan(t, ds, errs)
	// vLLM, exclusive, is placed first, on GPU 0; the shared models share GPU 1 (Ollama swaps
	// them; the peak is deepcoder's 10.72 GiB).
	want := []placement{
		{Service: "ollama/deepcoder", GPUs: [][]int{{1}}, TP: []int{1}, Util: []float64{0}},
		{Service: "ollama/qwen", GPUs: [][]int{{1}}, TP: []int{1}, Util: []float64{0}},
		{Service: "vllm/qwen", GPUs: [][]int{{0}}, TP: []int{1}, Util: []float64{0.9}},
	}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
	if len(nonNil(errs)) > 0 {
		t.Fatal(errs)
	}
	p := ds[0].Replicas[0].Plan
	if p.KVTokens != 4096 || p.BudgetBytes != p.WeightBytes+p.ActivationBytes+p.KVBytes {
		t.Errorf("shared plan: KV %d tokens, budget %d = %d + %d + %d; want KV for num_ctx 4096 and the budget its need",
			p.KVTokens, p.BudgetBytes, p.WeightBytes, p.ActivationBytes, p.KVBytes)
	}
	containsAll(t, "shared lines", ds[0].Lines, "ollama: CUDA_VISIBLE_DEVICES=1 for this model, num_ctx 4096, OLLAMA_NUM_PARALLEL 1")

	// Two vLLM services at the default utilisation leave 1.60 GiB on each GPU: too little for
	// Ollama to put even one layer of deepcoder there (graph, minimum and two layers: 1.69 GiB).
	ds, errs = Plan([]Request{
		{Service: "ollama/deepcoder", Model: coder, Quant: perfmodel.QuantQ4KM, Shared: true},
		{Service: "vllm/big", Model: qwen, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 8192},
		{Service: "vllm/small", Model: qwen, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 1024},
	}, inv)
	logPlan(t, ds, errs)
	if len(nonNil(errs)) != 1 || errs[0] == nil || len(ds[0].Replicas) > 0 {
		t.Fatalf("errors %v, want ollama/deepcoder refused", errs)
	}
	r := refusals(t, errs)["ollama/deepcoder"]
	containsAll(t, "ollama/deepcoder", r.Lines,
		"GPU 0: 14.39 GiB reserved by vllm/big (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB",
		"GPU 1: 14.39 GiB reserved by vllm/small (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB",
		"even with layers on the CPU it does not fit", "(1.69 GiB in all), and GPU 0 has 1.60 GiB, GPU 1 has 1.60 GiB free")
	if len(r.Alternatives) != 1 || !slices.Equal(r.Alternatives[0].Stop, []string{"vllm/big", "vllm/small"}) {
		t.Errorf("alternatives %+v, want one that stops vllm/big and vllm/small", r.Alternatives)
	}
}

func TestPlanMemoryInUse(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	inv[0].MemoryUsed = 2 << 30 // a desktop
	inv[1].MemoryUsed = 3 << 30
	qwen := model(t, "qwen2.5-7b")

	// The default utilisation comes down to what is free.
	ds, errs := Plan([]Request{{Service: "lab/qwen", Model: qwen, Quant: perfmodel.QuantAWQInt4}}, inv)
	logPlan(t, ds, errs)
	want := []placement{{Service: "lab/qwen", GPUs: [][]int{{0}}, TP: []int{1}, Util: []float64{0.87}}}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" {
		t.Errorf("placements (-want +got):\n%s", diff)
	}
	containsAll(t, "lines", ds[0].Lines, "8.61 GiB ≤ 13.91 GiB (0.87 × 15.99 GiB, as much as is free)")

	// A utilisation set in the request is kept, and vLLM would not start.
	_, errs = Plan([]Request{{Service: "lab/qwen", Model: qwen, Quant: perfmodel.QuantAWQInt4, GPUMemoryUtilization: 0.9}}, inv)
	r := refusals(t, errs)["lab/qwen"]
	if r == nil {
		t.Fatalf("errors %v, want a refusal", errs)
	}
	containsAll(t, "refusal", r.Lines, "but GPU 0 has only 13.99 GiB free, and vLLM starts only when 14.39 GiB are")
	if diff := cmp.Diff([]string{"--gpu-memory-utilization 0.87 on one GPU (GPU 0)"}, texts(r.Alternatives)); diff != "" {
		t.Errorf("alternatives (-want +got):\n%s", diff)
	}
}

func TestPlanOrder(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "rtx-4090,a100-80g")
	qwen, ds32 := model(t, "qwen2.5-7b"), model(t, "deepseek-r1-distill-qwen-32b")
	reqs := []Request{
		{Service: "lab/qwen", Model: qwen},
		{Service: "lab/deepseek", Model: ds32, MaxModelLen: 8192},
	}
	ds, errs := Plan(reqs, inv)
	logPlan(t, ds, errs)
	// The larger model is placed first, on the only GPU it fits; results stay in request order.
	want := []placement{
		{Service: "lab/qwen", GPUs: [][]int{{0}}, TP: []int{1}, Util: []float64{0.9}},
		{Service: "lab/deepseek", GPUs: [][]int{{1}}, TP: []int{1}, Util: []float64{0.9}},
	}
	if diff := cmp.Diff(want, summarise(ds)); diff != "" || len(nonNil(errs)) > 0 {
		t.Errorf("placements (-want +got):\n%s\nerrors: %v", diff, errs)
	}
	for range 3 {
		again, _ := Plan(reqs, inv)
		if diff := cmp.Diff(ds, again); diff != "" {
			t.Fatalf("Plan is not deterministic (-first +again):\n%s", diff)
		}
	}
}

func TestPlanNoRoomAnywhere(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	_, errs := Plan([]Request{{Service: "lab/ds", Model: model(t, "deepseek-r1-distill-qwen-32b")}}, inv)
	r := refusals(t, errs)["lab/ds"]
	if r == nil {
		t.Fatalf("errors %v, want a refusal", errs)
	}
	containsAll(t, "lines", r.Lines, "KV cache 256 KiB per token × 131072 tokens (max-model-len 131072 × 1 sequence) = 32.00 GiB",
		"tensor parallel 2 does not fit", "= 48.14 GiB > 14.39 GiB")
	if diff := cmp.Diff([]string{"a 4-bit variant (awq-int4: weights 17.89 GiB) and --max-model-len 30720 with tensor parallel 2 over GPUs 0,1"},
		texts(r.Alternatives)); diff != "" {
		t.Errorf("alternatives (-want +got):\n%s", diff)
	}

	_, errs = Plan([]Request{{Service: "lab/qwen", Model: model(t, "qwen2.5-7b")}}, nil)
	r = refusals(t, errs)["lab/qwen"]
	if r == nil {
		t.Fatalf("errors %v, want a refusal", errs)
	}
	containsAll(t, "empty inventory", append(r.Lines, texts(r.Alternatives)...), "not enough GPUs for tensor parallel 1: 1 needed, the inventory has none",
		"GPUs of at least 19.59 GiB each: with tensor parallel 1 it needs 17.63 GiB per GPU, within 0.9 of a GPU's memory")
}

func TestPlanInvalid(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	ds32 := model(t, "deepseek-r1-distill-qwen-32b")
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"every problem at once", Request{Service: "lab/ds", Model: ds32, TP: 3, Concurrency: -1, Replicas: -2, Pinned: []int{5, 0, 0},
			MaxModelLen: 1 << 20, GPUMemoryUtilization: 1.5},
			[]string{"lab/ds: concurrency -1 is not in [1, 256]", "lab/ds: replicas -2 is not in [1, 1024]", "lab/ds: gpu memory utilization 1.5 is not in (0, 1]",
				"lab/ds: tensor parallel 3 does not divide deepseek-r1-distill-qwen-32b's 40 attention heads",
				"lab/ds: max model len 1048576 is more than deepseek-r1-distill-qwen-32b's context of 131072 tokens",
				"lab/ds: pinned GPU 5 is not in the inventory (GPUs 0, 1)", "lab/ds: pinned GPU 0 is listed twice"}},
		{"NaN utilisation, too many sequences", Request{Service: "lab/ds", Model: ds32, GPUMemoryUtilization: math.NaN(), Concurrency: 1000},
			[]string{"lab/ds: gpu memory utilization NaN is not in (0, 1]",
				"lab/ds: concurrency 1000 is not in [1, 256]: vLLM runs at most 256 sequences at once (max_num_seqs)"}},
		{"unknown weight format", Request{Service: "lab/ds", Model: ds32, Quant: "int3"}, []string{`lab/ds: planning`, `unknown weight format "int3"`}},
		{"incomplete model", Request{Service: "lab/x", Model: perfmodel.Model{Name: "x", MaxContext: 4096}}, []string{`"x" has an incomplete shape`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, errs := Plan([]Request{tt.req}, inv)
			if len(ds) != 1 || len(ds[0].Replicas) != 0 || len(nonNil(errs)) != 1 {
				t.Fatalf("Plan = %v, %v; want one error", ds, errs)
			}
			var r *Refusal
			if errors.As(errs[0], &r) {
				t.Errorf("an invalid request gave a refusal: %v", r)
			}
			containsAll(t, "error", []string{errs[0].Error()}, tt.want...)
		})
	}

	bad := inventory(t, "2xl4")
	bad[1].Index = 0
	bad[0].MemoryUsed = bad[0].MemoryTotal + 1
	reqs := []Request{{Service: "lab/a", Model: model(t, "qwen2.5-7b")}, {Service: "lab/b", Model: model(t, "qwen2.5-7b")}}
	ds, errs := Plan(reqs, bad)
	if len(ds) != 2 || len(nonNil(errs)) != 2 {
		t.Fatalf("Plan on a bad inventory: %d decisions and %d errors for 2 requests", len(ds), len(errs))
	}
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "GPU index 0 appears twice") || !strings.Contains(err.Error(), "want 0 ≤ used ≤ total") {
			t.Errorf("request %d on a bad inventory: %v", i, err)
		}
		if len(ds[i].Replicas) > 0 {
			t.Errorf("request %d on a bad inventory was placed: %+v", i, ds[i])
		}
	}
}

func TestCUDAVisibleDevices(t *testing.T) {
	t.Parallel()
	a := Assignment{GPUs: []int{0, 1}, TP: 2}
	if got := a.CUDAVisibleDevices(); got != "0,1" {
		t.Errorf("CUDAVisibleDevices = %q, want 0,1", got)
	}
}

func TestRefusalError(t *testing.T) {
	t.Parallel()
	r := &Refusal{Service: "lab/mimo", Lines: []string{"a > b"}, Alternatives: []Alternative{{Text: "x", Change: Change{TP: 2}}, {Text: "y", Stop: []string{"lab/qwen"}}}}
	want := "lab/mimo does not fit:\n  a > b\nit would fit with one of:\n  - x\n  - y"
	if got := r.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestPlanKeep(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "2xrtx-4070-ti-super")
	qwen := model(t, "qwen2.5-7b")
	awq := func(name string) Request {
		return Request{Service: name, Model: qwen, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 8192, GPUMemoryUtilization: 0.5}
	}
	// Running: lab/a on GPU 1. A new, larger service would be placed first on an idle host, but
	// lab/a stays where it runs and the newcomer takes what is left.
	running := Assignment{GPUs: []int{1}, TP: 1, MemoryUtilization: 0.5}
	big := Request{Service: "lab/big", Model: model(t, "mimo-vl-7b"), Quant: perfmodel.QuantAWQInt4, MaxModelLen: 8192, GPUMemoryUtilization: 0.45}
	a := awq("lab/a")
	a.Keep = []Assignment{running}
	ds, errs := Plan([]Request{big, a}, inv)
	logPlan(t, ds, errs)
	if len(nonNil(errs)) > 0 {
		t.Fatal(errs)
	}
	if got := ds[1].Replicas; len(got) != 1 || !got[0].Kept || got[0].CUDAVisibleDevices() != "1" {
		t.Errorf("lab/a replicas %+v, want the running one kept on GPU 1", got)
	}
	containsAll(t, "lab/a", ds[1].Lines, "kept on GPU 1 (running): reserves 8.00 GiB on GPU 1")

	// Its GPU is gone: the replica is placed afresh, and says why.
	ds, errs = Plan([]Request{a}, inv[:1])
	if errs[0] != nil || len(ds[0].Replicas) != 1 || ds[0].Replicas[0].Kept || ds[0].Replicas[0].CUDAVisibleDevices() != "0" {
		t.Fatalf("with GPU 1 gone: %+v, %v; want a fresh replica on GPU 0", ds[0], errs[0])
	}
	containsAll(t, "lab/a", ds[0].Lines, "the replica on GPU 1 is placed afresh: GPU 1 is gone from the inventory")

	// Each service carries only its own reason: two running services fill both GPUs, a third is
	// refused naming them, and the running ones have no error.
	b := awq("lab/b")
	b.Keep = []Assignment{{GPUs: []int{0}, TP: 1, MemoryUtilization: 0.9}}
	a.Keep = []Assignment{{GPUs: []int{1}, TP: 1, MemoryUtilization: 0.9}}
	ds, errs = Plan([]Request{a, b, awq("lab/c")}, inv)
	logPlan(t, ds, errs)
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || len(ds[2].Replicas) != 0 {
		t.Fatalf("errors %v, want only lab/c refused", errs)
	}
	r := refusals(t, errs)["lab/c"]
	containsAll(t, "lab/c", r.Lines, "GPU 0: 14.39 GiB reserved by lab/b (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB",
		"GPU 1: 14.39 GiB reserved by lab/a (vllm, utilisation 0.9), 1.60 GiB free of 15.99 GiB")
	if strings.Contains(errs[2].Error(), "lab/c does not fit") && (strings.Contains(fmt.Sprint(ds[0].Lines), "lab/c") || strings.Contains(fmt.Sprint(ds[1].Lines), "lab/c")) {
		t.Error("a running service's lines mention the refused one")
	}
}

func TestPlanUnusableGPUs(t *testing.T) {
	t.Parallel()
	inv, err := ParseNvidiaSMI([]byte("0, GPU-a, NVIDIA GB10, [N/A], [N/A], [N/A]\n1, GPU-b, NVIDIA A100-SXM4-80GB, 81920, 0, Enabled\n"))
	if err != nil {
		t.Fatal(err)
	}
	ds, errs := Plan([]Request{{Service: "lab/qwen", Model: model(t, "qwen2.5-7b")}}, inv)
	if len(ds[0].Replicas) != 0 || errs[0] == nil {
		t.Fatalf("placed on unusable GPUs: %+v", ds[0])
	}
	containsAll(t, "refusal", []string{errs[0].Error()}, "0 available",
		"GPU 0 cannot be used: the driver reports no dedicated memory", "GPU 1 cannot be used: MIG mode is on")
}

func TestPlanKVCacheDtype(t *testing.T) {
	t.Parallel()
	inv := inventory(t, "rtx-4090")
	ds32 := model(t, "deepseek-r1-distill-qwen-32b")
	req := Request{Service: "lab/ds", Model: ds32, Quant: perfmodel.QuantAWQInt4, MaxModelLen: 10240}
	_, errs := Plan([]Request{req}, inv)
	r := refusals(t, errs)["lab/ds"]
	if r == nil {
		t.Fatal("bf16 KV for 10240 tokens of a 32B model fit a 24 GiB GPU; want a refusal")
	}
	i := slices.IndexFunc(r.Alternatives, func(a Alternative) bool { return a.Change.KVCacheDtype == "fp8" })
	if i < 0 {
		t.Fatalf("alternatives %q lack --kv-cache-dtype fp8", texts(r.Alternatives))
	}
	req.KVCacheDtype = r.Alternatives[i].Change.KVCacheDtype
	ds, errs := Plan([]Request{req}, inv)
	logPlan(t, ds, errs)
	if errs[0] != nil {
		t.Fatalf("with the suggested --kv-cache-dtype fp8: %v", errs[0])
	}
	containsAll(t, "lines", ds[0].Lines, "KV cache fp8 128 KiB per token", "--kv-cache-dtype fp8")
}

package selection

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/examples"
	"citadel.dev/citadel/internal/config"
)

// loadFS decodes every YAML file of fsys.
func loadFS(t *testing.T, fsys fs.FS) []config.Item {
	t.Helper()
	names, _ := fs.Glob(fsys, "*.yaml")
	var items []config.Item
	for _, n := range names {
		f, err := fsys.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		its, errs := config.Decode(f, n)
		f.Close()
		if errs.Err() != nil {
			t.Fatal(errs)
		}
		items = append(items, its...)
	}
	return items
}

// builtIns are the shipped runtimes as citadel serve installs them.
func builtIns(t *testing.T) []Runtime {
	t.Helper()
	var out []Runtime
	for _, it := range loadFS(t, examples.Runtimes()) {
		r := it.Object.(*v1.ClusterServingRuntime)
		r.Annotations = map[string]string{v1.AnnotationBuiltIn: "true"}
		out = append(out, FromCluster(r))
	}
	return out
}

// seedModels are examples/seed-001's models as written (before the agent ran).
func seedModels(t *testing.T) map[string]Model {
	t.Helper()
	out := map[string]Model{}
	for _, it := range loadFS(t, examples.Seed001()) {
		if m, ok := it.Object.(*v1.ClusterBaseModel); ok {
			out[m.Name] = Model{Name: m.Name, Spec: m.Spec}
		}
	}
	return out
}

// agentFilled is what the model agent writes from the files.
func agentFilled(m Model, format, arch, quant, transformers, size string) Model {
	m.Spec.ModelFormat = v1.ModelFormat{Name: format, Version: ptr("1.0.0"), Weight: 1}
	m.Spec.ModelArchitecture = ptr(arch)
	if quant != "" {
		m.Spec.Quantization = ptr(quant)
	}
	if transformers != "" {
		m.Spec.ModelFramework = &v1.ModelFrameworkSpec{Name: "transformers", Version: ptr(transformers), Weight: 1}
	}
	m.Spec.ModelParameterSize = ptr(v1.ParameterSize(size))
	return m
}

// TestSeed001 pins what the seed-001 plan relies on: with nothing but the
// built-in runtimes, MiMo-VL goes to vllm and the three ollama:// models to
// ollama, before the agent has read their files (the Ollama ones) and after.
func TestSeed001(t *testing.T) {
	rts := builtIns(t)
	models := seedModels(t)
	if len(models) != 4 {
		t.Fatalf("seed-001 has %d models, want 4", len(models))
	}
	mimo := agentFilled(models["mimo-vl-7b-rl"], "safetensors", "Qwen2_5_VLForConditionalGeneration", "", "4.41.2", "8.29B")
	tests := []struct {
		name  string
		model Model
		want  string
	}{
		{"mimo-vl-7b-rl Ready", mimo, "vllm"},
		{"deepseek-r1-32b before Ready", models["deepseek-r1-32b"], "ollama"},
		{"deepcoder-14b before Ready", models["deepcoder-14b"], "ollama"},
		{"qwen2-5-7b before Ready", models["qwen2-5-7b"], "ollama"},
		{"deepseek-r1-32b Ready", agentFilled(models["deepseek-r1-32b"], "gguf", "qwen2", "q4_k_m", "", "32.8B"), "ollama"},
		{"deepcoder-14b Ready", agentFilled(models["deepcoder-14b"], "gguf", "qwen2", "q4_k_m", "", "14.8B"), "ollama"},
		{"qwen2-5-7b Ready", agentFilled(models["qwen2-5-7b"], "gguf", "qwen2", "q4_k_m", "", "7.6B"), "ollama"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Select(tt.model, rts, "")
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if res.Runtime.Name != tt.want {
				t.Errorf("selected %s, want %s; candidates %+v", res.Runtime.Name, tt.want, res.Candidates)
			}
			if len(res.Candidates) != len(rts) {
				t.Errorf("%d candidates, want every runtime (%d): %+v", len(res.Candidates), len(rts), res.Candidates)
			}
		})
	}
	// Before Ready MiMo's architecture is unknown: selection waits, it does not refuse.
	_, err := Select(models["mimo-vl-7b-rl"], rts, "")
	var se *Error
	if !errors.As(err, &se) || !se.MetadataPending || se.Fix != "" {
		t.Errorf("MiMo before Ready: %v; want a pending error with no fix but waiting", err)
	}
}

// TestBuiltInPreferences: which built-in serves what, and that a user's
// runtime comes first.
func TestBuiltInPreferences(t *testing.T) {
	rts := builtIns(t)
	hf := func(uri string) Model {
		return Model{Name: "m", Spec: v1.BaseModelSpec{Storage: &v1.StorageSpec{StorageURI: ptr(uri)}}}
	}
	gguf := agentFilled(hf("hf://Qwen/Qwen2.5-7B-Instruct-GGUF"), "gguf", "qwen2", "q4_k_m", "", "7.6B")
	llama := agentFilled(hf("hf://meta-llama/Llama-3.1-8B-Instruct"), "safetensors", "LlamaForCausalLM", "", "4.43.0.dev0", "8B")
	awq := agentFilled(hf("hf://Qwen/Qwen2.5-7B-Instruct-AWQ"), "safetensors", "Qwen2ForCausalLM", "awq", "4.41.2", "7.6B")
	exotic := agentFilled(hf("hf://org/exotic"), "safetensors", "ExoticForCausalLM", "", "4.50.0", "1B")
	mine := Runtime{Name: "my-llama", Spec: v1.ServingRuntimeSpec{Engine: &v1.EngineRef{Name: "vllm"},
		SupportedModelFormats: []v1.SupportedModelFormat{{ModelFormat: &v1.ModelFormat{Name: "safetensors"}, ModelArchitecture: ptr("LlamaForCausalLM"), AutoSelect: ptr(true)}}}}
	multi := Runtime{Name: "srt-deepseek-rdma", Spec: v1.ServingRuntimeSpec{
		EngineConfig:          &v1.EngineSpec{Leader: &v1.LeaderSpec{}, Worker: &v1.WorkerSpec{}},
		SupportedModelFormats: []v1.SupportedModelFormat{{ModelFormat: &v1.ModelFormat{Name: "safetensors"}, AutoSelect: ptr(true)}}}}

	tests := []struct {
		name     string
		model    Model
		runtimes []Runtime
		explicit string
		want     string
		msg      string // the error message, when Select fails
		reasons  map[string]string
	}{
		{name: "hf GGUF repo goes to llamacpp, never ollama", model: gguf, runtimes: rts, want: "llamacpp",
			reasons: map[string]string{"ollama": "engine ollama serves only models from an Ollama registry (storage.storageUri ollama://name:tag), and the model's is hf://Qwen/Qwen2.5-7B-Instruct-GGUF"}},
		{name: "safetensors goes to vllm before sglang", model: llama, runtimes: rts, want: "vllm"},
		{name: "a quantized checkpoint needs no quantized entry in a built-in", model: awq, runtimes: rts, want: "vllm"},
		{name: "sglang when named", model: llama, runtimes: rts, explicit: "sglang", want: "sglang"},
		{name: "a user's runtime before the built-ins, whatever the priority", model: llama, runtimes: append([]Runtime{mine}, rts...), want: "my-llama"},
		{name: "an architecture no built-in lists is refused with the field and the fix", model: exotic, runtimes: rts,
			msg: "no runtime can serve model m: llamacpp: modelFormat gguf ≠ safetensors; ollama: engine ollama serves only models from an Ollama registry (storage.storageUri ollama://name:tag), and the model's is hf://org/exotic; sglang: modelArchitecture ExoticForCausalLM is not one of the 48 architectures it lists for safetensors (BaichuanForCausalLM, CohereForCausalLM, DbrxForCausalLM, DeepseekForCausalLM, …); vllm: modelArchitecture ExoticForCausalLM is not one of the 116 architectures it lists for safetensors (AquilaForCausalLM, ArceeForCausalLM, BaichuanForCausalLM, BailingMoeForCausalLM, …) — fix: in ClusterServingRuntime sglang set `spec: {supportedModelFormats: [..., {modelFormat: {name: safetensors}, modelArchitecture: ExoticForCausalLM, autoSelect: true}]}`"},
		{name: "multi-node runtime named", model: llama, runtimes: append([]Runtime{multi}, rts...), explicit: "srt-deepseek-rdma",
			msg: "runtime srt-deepseek-rdma cannot serve model m: engineConfig.leader: multi-node serving (engineConfig.leader/worker) is not supported on one host — fix: name a runtime that can serve it in the InferenceService, `spec: {runtime: {name: vllm}}`, or remove spec.runtime (vllm is then selected automatically)"},
		{name: "a runtime too small for the model names the bound and the YAML to widen it", model: agentFilled(hf("hf://Qwen/QwQ-32B"), "safetensors", "Qwen2ForCausalLM", "", "4.43.1", "32.8B"),
			runtimes: []Runtime{sized(Runtime{Name: "vllm", Spec: rts[3].Spec}, "1B", "8B")}, explicit: "vllm",
			msg: "runtime vllm cannot serve model m: modelSizeRange.max 8B < model's modelParameterSize 32.8B — fix: in ClusterServingRuntime vllm set `spec: {modelSizeRange: {min: 1B, max: 32.8B}}`"},
	}
	if rts[3].Name != "vllm" {
		t.Fatalf("runtimes are not in file order: %v", rts)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Select(tt.model, tt.runtimes, tt.explicit)
			cands := res.Candidates
			if tt.msg != "" {
				var se *Error
				if !errors.As(err, &se) {
					t.Fatalf("Select = %s, %v; want an *Error", res.Runtime.Name, err)
				}
				if diff := cmp.Diff(tt.msg, se.Message); diff != "" {
					t.Errorf("message (-want +got):\n%s", diff)
				}
				if !strings.HasSuffix(se.Message, se.Fix) || se.Fix == "" {
					t.Errorf("Fix %q is not the end of the message", se.Fix)
				}
				return
			}
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if res.Runtime.Name != tt.want {
				t.Errorf("selected %s, want %s: %+v", res.Runtime.Name, tt.want, cands)
			}
			for _, c := range cands {
				if want, ok := tt.reasons[c.Runtime]; ok && c.Reason != want {
					t.Errorf("%s: reason %q, want %q", c.Runtime, c.Reason, want)
				}
				if c.BuiltIn != (c.Runtime != "my-llama") {
					t.Errorf("%s: BuiltIn = %v", c.Runtime, c.BuiltIn)
				}
			}
		})
	}
}

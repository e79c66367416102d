package serving

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/engine"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/selection"
)

// TestFixYAML: a refusal's suggestion is the exact edit, in the file and field where the
// setting lives, that a user can apply.
func TestFixYAML(t *testing.T) {
	svc := &v1.InferenceService{ObjectMeta: v1.ObjectMeta{Name: "mimo-vl-7b-rl", Namespace: "default"}}
	vllm := &intent{svc: svc, engine: engine.VLLM, ref: &v1.EngineRef{Name: "vllm"}, runtime: selection.Runtime{Name: "vllm"},
		extraArgs: []string{"--gpu-memory-utilization=0.6", "--max-model-len=8192"}}
	ollama := &intent{svc: svc, engine: engine.Ollama, ref: &v1.EngineRef{Name: "ollama"}, runtime: selection.Runtime{Name: "ollama"}}
	llama := &intent{svc: svc, engine: engine.LlamaCPP, ref: &v1.EngineRef{Name: "llamacpp"}, runtime: selection.Runtime{Name: "llamacpp"},
		extraArgs: []string{"-np", "2"}}
	llama.settings.Concurrency = 2
	tests := []struct {
		name string
		in   *intent
		ch   placement.Change
		want string
	}{
		{"vllm utilisation replaces the service's own flag", vllm, placement.Change{GPUMemoryUtilization: 0.61}, `    apiVersion: ome.io/v1beta1
    kind: InferenceService
    metadata: {name: mimo-vl-7b-rl, namespace: default}
    spec:
      engine:
        runner:
          args: ["--gpu-memory-utilization=0.61", "--max-model-len=8192"]`},
		{"vllm kv cache dtype is added", vllm, placement.Change{KVCacheDtype: "fp8"}, `    apiVersion: ome.io/v1beta1
    kind: InferenceService
    metadata: {name: mimo-vl-7b-rl, namespace: default}
    spec:
      engine:
        runner:
          args: ["--gpu-memory-utilization=0.6", "--max-model-len=8192", "--kv-cache-dtype=fp8"]`},
		{"replicas", vllm, placement.Change{Replicas: 1}, `    apiVersion: ome.io/v1beta1
    kind: InferenceService
    metadata: {name: mimo-vl-7b-rl, namespace: default}
    spec:
      engine:
        minReplicas: 1`},
		{"llama.cpp -c is the context times the slots", llama, placement.Change{MaxModelLen: 4096}, `    apiVersion: ome.io/v1beta1
    kind: InferenceService
    metadata: {name: mimo-vl-7b-rl, namespace: default}
    spec:
      engine:
        runner:
          args: ["-np", "2", "-c", "8192"]`},
		{"ollama settings are the shared server's env", ollama, placement.Change{MaxModelLen: 2048}, `    # ClusterServingRuntime ollama (every model of the shared ollama serve)
    spec:
      engine:
        name: ollama
        env:
          - {name: OLLAMA_CONTEXT_LENGTH, value: "2048"}`},
		{"a quantised variant is not a setting", vllm, placement.Change{Quant: "awq-int4"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, fixYAML(tc.in, tc.ch)); diff != "" {
				t.Errorf("fixYAML (-want +got):\n%s", diff)
			}
		})
	}
}

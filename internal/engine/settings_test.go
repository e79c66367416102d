package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestSettings: the planner's values come from the engine's own arguments, in each engine's
// spelling, wherever the user wrote them; later sources win.
func TestSettings(t *testing.T) {
	type read struct {
		args, env []string
		source    string
	}
	tests := []struct {
		name   string
		engine string
		reads  []read
		want   Settings
		lines  []string
	}{
		{"vllm runtime then service", VLLM, []read{
			{args: []string{"--max-model-len", "32k", "--gpu-memory-utilization=0.9", "-tp", "2"}, source: "runtime vllm engine.args"},
			{args: []string{"--gpu-memory-utilization=0.61", "--max-num-seqs", "64", "--kv-cache-dtype", "FP8"}, source: "InferenceService spec.engine.runner.args"},
		}, Settings{MaxModelLen: 32000, GPUMemoryUtilization: 0.61, TP: 2, MaxNumSeqs: 64, KVCacheDtype: "fp8", GPULayers: -1}, []string{
			"max-model-len 32k (from runtime vllm engine.args --max-model-len)",
			"tensor-parallel-size 2 (from runtime vllm engine.args -tp)",
			"gpu-memory-utilization 0.61 (from InferenceService spec.engine.runner.args --gpu-memory-utilization)",
			"max-num-seqs 64 (from InferenceService spec.engine.runner.args --max-num-seqs)",
			"kv-cache-dtype FP8 (from InferenceService spec.engine.runner.args --kv-cache-dtype)",
		}},
		{"sglang OME runner script", SGLang, []read{
			{args: []string{"/bin/bash", "-lc", "--", "python3 -m sglang.launch_server --host=0.0.0.0 --mem-frac=0.9 --context-length 8192 --tp-size=1"}, source: "runner"},
		}, Settings{MaxModelLen: 8192, GPUMemoryUtilization: 0.9, TP: 1, GPULayers: -1}, nil},
		{"llama.cpp splits -c over -np", LlamaCPP, []read{
			{args: []string{"-c", "16384", "-np", "4", "-ngl", "20"}, source: "runtime"},
		}, Settings{MaxModelLen: 4096, Concurrency: 4, GPULayers: 20}, nil},
		{"ollama environment", Ollama, []read{
			{env: []string{"OLLAMA_CONTEXT_LENGTH=8192", "OLLAMA_NUM_PARALLEL=2", "OLLAMA_KEEP_ALIVE=10m"}, source: "runtime ollama"},
		}, Settings{MaxModelLen: 8192, Concurrency: 2, GPULayers: -1}, []string{
			"max-model-len 8192 (from runtime ollama env OLLAMA_CONTEXT_LENGTH)",
			"concurrency 2 (from runtime ollama env OLLAMA_NUM_PARALLEL)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSettings()
			for _, r := range tc.reads {
				if err := s.Read(tc.engine, r.args, r.env, r.source); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.want, s, cmpopts.IgnoreUnexported(Settings{}), cmpopts.IgnoreFields(Settings{}, "From")); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
			if tc.lines != nil {
				if diff := cmp.Diff(tc.lines, s.Lines()); diff != "" {
					t.Errorf("lines (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSettingsBadValue(t *testing.T) {
	s := NewSettings()
	err := s.Read(VLLM, []string{"--gpu-memory-utilization", "90%"}, nil, "InferenceService spec.engine.runner.args")
	if err == nil || err.Error() != `InferenceService spec.engine.runner.args --gpu-memory-utilization: "90%" is not a fraction in (0, 1]` {
		t.Errorf("err = %v", err)
	}
}

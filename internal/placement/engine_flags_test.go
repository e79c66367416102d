package placement_test

import (
	"strings"
	"testing"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/placement"
)

// TestSGLangFlags: the plan of an SGLang engine, placed or refused, is worded in SGLang's
// flags, never vLLM's.
func TestSGLangFlags(t *testing.T) {
	t.Parallel()
	inv, err := placement.FakeInventory("2xrtx-4070-ti-super")
	if err != nil {
		t.Fatal(err)
	}
	model := func(name string) perfmodel.Model {
		m, err := perfmodel.LookupModel(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tt := range []struct {
		name string
		req  placement.Request
	}{
		{"placed", placement.Request{Service: "default/qwen", Model: model("qwen2.5-7b"), Engine: "sglang", MaxModelLen: 8192}},
		{"refused", placement.Request{Service: "default/r1", Model: model("deepseek-r1-distill-qwen-32b"), Engine: "sglang", MaxModelLen: 32768}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds, errs := placement.Plan([]placement.Request{tt.req}, inv)
			text := strings.Join(ds[0].Lines, "\n")
			if errs[0] != nil {
				text += "\n" + errs[0].Error()
			}
			if (tt.name == "refused") != (errs[0] != nil) {
				t.Fatalf("placed %v, want %s:\n%s", errs[0] == nil, tt.name, text)
			}
			for _, vllm := range []string{"--gpu-memory-utilization", "--max-model-len", "--tensor-parallel-size", "--max-num-seqs"} {
				if strings.Contains(text, vllm) {
					t.Errorf("SGLang's plan names vLLM's %s:\n%s", vllm, text)
				}
			}
			if !strings.Contains(text, "--mem-fraction-static") && !strings.Contains(text, "--context-length") {
				t.Errorf("SGLang's plan names none of SGLang's flags:\n%s", text)
			}
		})
	}
}

package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// TestDescribeServiceSections: describe isvc shows the runtimes considered, the placement
// arithmetic and the engines, with the shared Ollama marked — what status carries, readable.
func TestDescribeServiceSections(t *testing.T) {
	s := &v1.InferenceService{TypeMeta: v1.TypeMeta{APIVersion: v1.OMEGroupVersion, Kind: v1.KindInferenceService},
		ObjectMeta: v1.ObjectMeta{Name: "deepcoder-14b", Namespace: "default"},
		Spec:       v1.InferenceServiceSpec{Model: &v1.ModelRef{Name: "deepcoder-14b"}}}
	s.Status.Phase, s.Status.Reason = v1.ServiceReady, "EngineReady"
	s.Status.Runtimes = []v1.RuntimeCandidate{{Name: "ollama", Selected: true}, {Name: "vllm", Reason: "engine vllm does not serve GGUF"}}
	s.Status.Placement = []string{"concurrency 2 (from runtime ollama env OLLAMA_NUM_PARALLEL)", "on GPUs 0,1: 5.96 GiB each"}
	s.Status.Endpoints = []v1.Endpoint{{Replica: 0, Engine: "ollama", Address: "127.0.0.1:41000", GPUs: []int{0, 1}, PID: 4242,
		Phase: "Ready", Ready: true, Served: []string{"deepcoder:14b"}, Shared: "ollama (runtime ollama)"}}
	info, err := v1.LookupKind("isvc")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := describe(&b, info, s, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Runtimes considered:\n  ollama: selected\n  vllm: engine vllm does not serve GGUF\n",
		"Placement:\n  concurrency 2 (from runtime ollama env OLLAMA_NUM_PARALLEL)\n  on GPUs 0,1: 5.96 GiB each\n",
		"shared ollama (runtime ollama)", "127.0.0.1:41000", "0 1", "4242", "deepcoder:14b",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
}

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

// TestDescribeModelFailureFacts: describe model prints the facts of the last failure as a
// small table under the message, and describe isvc an engine's last exit.
func TestDescribeModelFailureFacts(t *testing.T) {
	m := &v1.ClusterBaseModel{TypeMeta: v1.TypeMeta{APIVersion: v1.OMEGroupVersion, Kind: v1.KindClusterBaseModel},
		ObjectMeta: v1.ObjectMeta{Name: "mimo-vl-7b-rl"}}
	m.Status.Phase, m.Status.Reason = v1.ModelFailed, v1.ReasonDownloadStalled
	m.Status.Message = "DownloadStalled: no bytes of model-00003-of-00004.safetensors for 1m0s (received 1073741824 of 4976698672 bytes)"
	m.Status.LastFailure = &v1.DownloadFailure{Reason: v1.ReasonDownloadStalled, File: "model-00003-of-00004.safetensors",
		FileBytesReceived: 1073741824, FileBytesTotal: 4976698672, IdleSeconds: 60, Endpoint: "https://huggingface.co", Attempt: 2,
		Secret: &v1.FailureSecret{Namespace: "ome", Name: "hf-token", Key: "token", Found: true, Keys: []string{"hf", "other"}}}
	info, err := v1.LookupKind("model")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := describe(&b, info, m, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Last Failure:", "DownloadStalled\n",
		"    File:", "model-00003-of-00004.safetensors\n",
		"    Received:", "1073741824 of 4976698672 bytes (1.1 GB of 5.0 GB)\n",
		"    Idle:", "60s\n",
		"    Endpoint:", "https://huggingface.co\n",
		"    Secret:", `ome/hf-token, key "token": no such key (it has: hf, other)` + "\n",
		"    Attempt:", "2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Message:") > strings.Index(out, "Last Failure:") {
		t.Errorf("the facts are not under the message:\n%s", out)
	}

	code := int32(137)
	var e bytes.Buffer
	if err := describeService(&e, nil, nil, []v1.Endpoint{{Replica: 0, Engine: "vllm", Address: "127.0.0.1:41000", Phase: "Restarting",
		LastExit: "signal: killed", ExitCode: &code, Signal: "killed"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.String(), "LAST EXIT") || !strings.Contains(e.String(), "signal killed") {
		t.Errorf("engines lack the last exit:\n%s", e.String())
	}
}

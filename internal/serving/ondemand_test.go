package serving_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

func onDemandModel(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(qwenConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: %[1]s}
spec:
  servingMode: [On-demand]
  modelArchitecture: Qwen2ForCausalLM
  modelFormat: {name: safetensors, version: "1.0.0"}
  modelFramework: {name: transformers, version: "4.41.2"}
  modelParameterSize: 7B
  storage: {storageUri: "hf://Qwen/Qwen2.5-7B-Instruct", path: %[2]s}
---
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: %[1]s}
spec:
  model: {name: %[1]s}
  runtime: {name: od-vllm}
  residency: {idleTimeout: 10m, maxWait: 60s}
  engine:
    runner:
      args: [--quantization=fp8, --max-model-len=8192]
`, name, dir)
}

// TestOnDemandVLLMOnOneGPU: two vLLM 7B services (fp8) that do not fit one 16 GiB GPU
// together are both placed on it as on-demand services; the first is loaded at start, and a
// request through the gateway for the second puts the first to sleep (its process stays,
// its memory goes) and starts the second; a request for the first wakes it again.
func TestOnDemandVLLMOnOneGPU(t *testing.T) {
	inv, err := placement.FakeInventory("1xrtx-4070-ti-super")
	if err != nil {
		t.Fatal(err)
	}
	cl := startWith(t, serving.Options{Inventory: inv, Simulate: &serving.Simulation{Citadel: simtest.Citadel(t), TimeScale: 0.2}})
	cl.apply(t, onDemandModel(t, "qwen-a")+"---\n"+onDemandModel(t, "qwen-b")+`---
apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: od-vllm}
spec:
  supportedModelFormats:
  - modelFormat: {name: safetensors, version: "1.0.0"}
    modelFramework: {name: transformers, version: "4.41.2"}
    modelArchitecture: Qwen2ForCausalLM
  engine: {name: vllm}
`)
	cl.markReady(t, "qwen-a")
	cl.markReady(t, "qwen-b")
	residencyOf := func(s *v1.InferenceService) string {
		if s.Status.Residency == nil {
			return ""
		}
		return s.Status.Residency.State
	}
	a := cl.waitFor(t, "default", "qwen-a", 60*time.Second, "loaded", func(s *v1.InferenceService) bool {
		return residencyOf(s) == "loaded" && len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].Ready
	})
	b := cl.waitFor(t, "default", "qwen-b", 10*time.Second, "on-demand and unloaded", func(s *v1.InferenceService) bool {
		return residencyOf(s) == "unloaded" && s.Status.Phase == v1.ServiceReady
	})
	// Its endpoint names what it serves, for the gateway, and runs nothing yet.
	if len(b.Status.Endpoints) != 1 || b.Status.Endpoints[0].Address != "" || b.Status.Endpoints[0].PID != 0 || b.Status.Endpoints[0].Served[0] != "qwen-b" {
		t.Errorf("qwen-b before any request: endpoints %+v, want one with its name and no engine", b.Status.Endpoints)
	}
	aAddr := a.Status.Endpoints[0].Address

	chat := func(model string) time.Duration {
		t.Helper()
		start := time.Now()
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":4}`, model)
		resp, err := http.Post(cl.gateway+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			var e any
			_ = json.NewDecoder(resp.Body).Decode(&e)
			t.Fatalf("%s: %s %v\nevents:\n%s", model, resp.Status, e, cl.events(t, "default", model))
		}
		return time.Since(start)
	}
	took := chat("qwen-b")
	t.Logf("qwen-b: first request answered after %s (qwen-a put to sleep, qwen-b started)", took.Round(time.Millisecond))
	a = cl.waitFor(t, "default", "qwen-a", 10*time.Second, "sleeping", func(s *v1.InferenceService) bool { return residencyOf(s) == "sleeping" })
	cl.waitFor(t, "default", "qwen-b", 10*time.Second, "loaded", func(s *v1.InferenceService) bool { return residencyOf(s) == "loaded" })
	st := simState(t, aAddr)
	if st.State != "sleeping" || st.GPUMemoryBytes != 512<<20 {
		t.Errorf("qwen-a's engine while qwen-b serves: %+v, want sleeping with 512 MiB", st)
	}
	if len(a.Status.Endpoints) != 1 || a.Status.Endpoints[0].Address != aAddr {
		t.Errorf("qwen-a's engine did not stay up while asleep: %+v", a.Status.Endpoints)
	}
	took = chat("qwen-a")
	t.Logf("qwen-a: request answered after %s (qwen-b asleep, qwen-a woken)", took.Round(time.Millisecond))
	if st := simState(t, aAddr); st.State != "awake" {
		t.Errorf("qwen-a's engine after its request: %+v", st)
	}
	evs := cl.events(t, "default", "qwen-a")
	for _, want := range []string{"Evicting: Pressure", "qwen-b needs", "Loaded: qwen-a loaded (vllm-wake)"} {
		if !strings.Contains(evs, want) {
			t.Errorf("qwen-a's events lack %q:\n%s", want, evs)
		}
	}
}

type engineState struct {
	State          string `json:"state"`
	GPUMemoryBytes int64  `json:"gpu_memory_bytes"`
}

func simState(t *testing.T, addr string) engineState {
	t.Helper()
	code, body := httpGet(t, "http://"+addr+"/sim/state")
	var s engineState
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil {
		t.Fatalf("/sim/state: %d %s", code, body)
	}
	return s
}

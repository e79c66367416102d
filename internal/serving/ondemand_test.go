package serving_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	cl.apply(t, onDemandModel(t, "qwen-a")+"---\n"+onDemandModel(t, "qwen-b")+"---\n"+odRuntime)
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
	// citadel get gpus counts the sleeping engine's context only.
	gl, err := cl.c.GPUs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range gl.Items[0].Holders {
		if h.Service == "default/qwen-a" && h.Bytes != 512<<20 {
			t.Errorf("get gpus: sleeping qwen-a holds %d bytes, want its 512 MiB context", h.Bytes)
		}
	}
	took = chat("qwen-a")
	t.Logf("qwen-a: request answered after %s (qwen-b asleep, qwen-a woken)", took.Round(time.Millisecond))
	if st := simState(t, aAddr); st.State != "awake" {
		t.Errorf("qwen-a's engine after its request: %+v", st)
	}
	// The manager's series are on citadel serve's /metrics.
	_, metrics := httpGet(t, cl.admin+"/metrics")
	for _, want := range []string{`citadel_residency_loads_total{mechanism="vllm-wake",model="qwen-a"} 1`,
		`citadel_residency_loads_total{mechanism="process-start",model="qwen-b"} 1`,
		`citadel_residency_evictions_total{model="qwen-a",reason="Pressure"} 1`,
		`citadel_residency_state{model="qwen-b",state="sleeping"} 1`, "citadel_residency_queue_wait_seconds_count"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Events are recorded just after the state changes.
	for _, want := range []string{"Evicting: Pressure", "qwen-b needs", "Loaded: qwen-a loaded (vllm-wake)"} {
		deadline := time.Now().Add(5 * time.Second)
		for evs := ""; !strings.Contains(evs, want); evs = cl.events(t, "default", "qwen-a") {
			if time.Now().After(deadline) {
				t.Errorf("qwen-a's events lack %q:\n%s", want, evs)
				break
			}
			time.Sleep(20 * time.Millisecond)
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

// TestOnDemandMixedOnOneGPU: on one simulated 16 GiB GPU, two vLLM 7B models and two Ollama
// models, all on-demand; bursts of interleaved requests (streamed and not) to all four
// through the gateway: none fails, every stream ends, each burst costs at most one load per
// model it touches, and no eviction happens with requests in flight (from the events).
func TestOnDemandMixedOnOneGPU(t *testing.T) {
	store, blobs := ollamaStore(t, "qwen2.5:7b", "deepcoder:14b")
	inv, err := placement.FakeInventory("1xrtx-4070-ti-super")
	if err != nil {
		t.Fatal(err)
	}
	cl := startWith(t, serving.Options{Inventory: inv, OllamaModels: store,
		Simulate: &serving.Simulation{Citadel: simtest.Citadel(t), TimeScale: 0.2}})
	ollama := func(name, uri string) string {
		return strings.Replace(ollamaModelYAML(name, uri), "  model: {name: "+name+"}\n", "  model: {name: "+name+"}\n  residency: {}\n  engine: {minReplicas: 0}\n", 1)
	}
	cl.apply(t, onDemandModel(t, "qwen-a")+"---\n"+onDemandModel(t, "qwen-b")+"---\n"+odRuntime+"---\n"+
		ollama("qwen2-5-7b", "ollama://qwen2.5:7b")+"---\n"+ollama("deepcoder-14b", "ollama://deepcoder:14b"))
	cl.markReady(t, "qwen-a")
	cl.markReady(t, "qwen-b")
	cl.markPulled(t, "qwen2-5-7b", blobs["qwen2.5:7b"], store, "qwen2.5:7b")
	cl.markPulled(t, "deepcoder-14b", blobs["deepcoder:14b"], store, "deepcoder:14b")
	names := []string{"qwen-a", "qwen-b", "qwen2-5-7b", "deepcoder-14b"}
	models := []string{"qwen-a", "qwen-b", "qwen2.5:7b", "deepcoder:14b"}
	for _, n := range names {
		cl.waitFor(t, "default", n, 60*time.Second, "Ready with a residency", func(s *v1.InferenceService) bool {
			return s.Status.Phase == v1.ServiceReady && s.Status.Residency != nil
		})
	}
	// The gateway knows every name once it has read the statuses.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := httpGet(t, cl.gateway+"/v1/models")
		known := 0
		for _, m := range models {
			if strings.Contains(body, `"id":"`+m+`"`) {
				known++
			}
		}
		if known == len(models) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway does not list all of %v after 30 s: %s", models, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	loads := func() int {
		n := 0
		for _, s := range names {
			n += strings.Count(cl.events(t, "default", s), "\nLoaded: ")
			if strings.HasPrefix(cl.events(t, "default", s), "Loaded: ") {
				n++
			}
		}
		return n
	}
	// qwen-a and qwen-b ask to be loaded at start (minReplicas 1): the first fits, the second
	// waits for a request. Count from once that load is recorded.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(cl.events(t, "default", "qwen-a"), "Loaded: qwen-a loaded") {
		if time.Now().After(deadline) {
			t.Fatalf("qwen-a was not loaded at start:\n%s", cl.events(t, "default", "qwen-a"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	const rounds, perModel = 3, 3
	before := loads()
	for r := range rounds {
		errs := make(chan error, 4*perModel)
		var wg sync.WaitGroup
		for i := range 4 * perModel {
			model := models[(i+r)%4] // interleaved, a different order each round
			stream := i%2 == 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- gatewayChat(cl.gateway, model, stream)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", r, err)
			}
		}
	}
	if t.Failed() {
		return
	}
	got := loads() - before
	if got > rounds*4 {
		t.Errorf("%d loads for %d bursts over 4 models: want at most one per model per burst (%d)", got, rounds, rounds*4)
	}
	t.Logf("%d loads for %d bursts of %d interleaved requests over 4 models", got, rounds, 4*perModel)
	evictions := 0
	for _, n := range names {
		evs := cl.events(t, "default", n)
		for _, l := range strings.Split(evs, "\n") {
			if !strings.HasPrefix(l, "Evicting: ") {
				continue
			}
			evictions++
			if !strings.HasSuffix(l, "; 0 requests in flight") {
				t.Errorf("%s evicted with requests in flight: %s", n, l)
			}
		}
	}
	if evictions < got-1 {
		t.Errorf("%d evictions for %d loads on a GPU that holds one model at a time", evictions, got)
	}
	// The client APIs show the states: one model resident, the others not.
	code, body := httpGet(t, cl.gateway+"/v1/models")
	if code != 200 || !strings.Contains(body, `"status":{"value":"loaded"`) || !strings.Contains(body, `"value":"sleeping"`) {
		t.Errorf("/v1/models: %d %s", code, body)
	}
	if code, body := httpGet(t, cl.gateway+"/api/ps"); code != 200 || !strings.Contains(body, "size_vram") {
		t.Errorf("/api/ps: %d %s", code, body)
	}
}

const odRuntime = `apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: od-vllm}
spec:
  supportedModelFormats:
  - modelFormat: {name: safetensors, version: "1.0.0"}
    modelFramework: {name: transformers, version: "4.41.2"}
    modelArchitecture: Qwen2ForCausalLM
  engine: {name: vllm}
`

// gatewayChat sends one chat request through the gateway; a stream must end with [DONE].
func gatewayChat(gateway, model string, stream bool) error {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":%v}`, model, stream)
	resp, err := http.Post(gateway+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s (stream %v): reading: %w", model, stream, err)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s (stream %v): %s %s", model, stream, resp.Status, b)
	}
	if stream && !strings.Contains(string(b), "data: [DONE]") {
		return fmt.Errorf("%s: the stream did not end: %s", model, b)
	}
	return nil
}

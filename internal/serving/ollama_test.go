package serving_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

// ollamaStore writes stand-ins of Ollama models into an Ollama store (OLLAMA_MODELS) and
// returns it, with the weights blob of each model by its Ollama name.
func ollamaStore(t *testing.T, names ...string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	var uris []string
	for _, n := range names {
		uris = append(uris, "ollama://"+n)
	}
	if _, err := mirror.Seed(dir, uris); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "ollama") // the mirror's Ollama half is a copy of an Ollama store
	blobs := map[string]string{}
	for _, n := range names {
		model, tag, _ := strings.Cut(n, ":")
		b, err := os.ReadFile(filepath.Join(store, "manifests", "registry.ollama.ai", "library", model, tag))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Layers []struct{ MediaType, Digest string }
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			if l.MediaType == "application/vnd.ollama.image.model" {
				blobs[n] = filepath.Join(store, "blobs", strings.Replace(l.Digest, ":", "-", 1))
			}
		}
		if blobs[n] == "" {
			t.Fatalf("manifest of %s has no model layer: %s", n, b)
		}
	}
	return store, blobs
}

// markPulled plays the model agent for an Ollama model: Ready, with where its files are.
func (cl *cluster) markPulled(t *testing.T, name, path, store, ollamaName string) {
	t.Helper()
	cl.setReady(t, name, "pulled (test)", []v1.NodeModelStatus{{Node: "test", Phase: v1.ModelReady, Path: path, Store: store, OllamaName: ollamaName}})
}

func ollamaModelYAML(name, uri string) string {
	return fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: %[1]s}
spec:
  storage: {storageUri: "%[2]s"}
---
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: %[1]s}
spec:
  model: {name: %[1]s}
`, name, uri)
}

// TestSharedOllama: ollama:// models with no runtime named and no storage.path are served by
// the built-in ollama runtime in ONE shared ollama serve reading Citadel's store, under their
// Ollama names with tags; a second model joins the running server, deleting one service leaves
// the server to the other, and the last one stops it.
func TestSharedOllama(t *testing.T) {
	store, blobs := ollamaStore(t, "qwen2.5:7b", "deepcoder:14b")
	// One GPU: a vLLM engine applied later needs what the Ollama model was placed on.
	inv, err := placement.FakeInventory("rtx-4090")
	if err != nil {
		t.Fatal(err)
	}
	cl := startWith(t, serving.Options{Inventory: inv, OllamaModels: store,
		Simulate: &serving.Simulation{Citadel: simtest.Citadel(t), TimeScale: 0}})

	cl.apply(t, ollamaModelYAML("qwen2-5-7b", "ollama://qwen2.5:7b"))
	cl.markPulled(t, "qwen2-5-7b", blobs["qwen2.5:7b"], store, "qwen2.5:7b")
	first := waitPhase(cl, t, "qwen2-5-7b", 60*time.Second, v1.ServiceReady)
	ep := first.Status.Endpoints[0]
	if ep.Engine != "ollama" || ep.Shared == "" || len(ep.Served) != 1 || ep.Served[0] != "qwen2.5:7b" {
		t.Fatalf("endpoint %+v: want the shared ollama serving qwen2.5:7b", ep)
	}
	if !strings.Contains(first.Status.Message, "qwen2.5:7b") || !strings.Contains(first.Status.Message, fmt.Sprint(ep.PID)) {
		t.Errorf("status message %q does not name the shared engine's PID and the model name it asks for", first.Status.Message)
	}
	if code, body := httpGet(t, "http://"+ep.Address+"/api/tags"); code != 200 || !strings.Contains(body, `"qwen2.5:7b"`) {
		t.Errorf("the shared ollama's /api/tags: %d %s", code, body)
	}

	// An exclusive engine applied after the Ollama model is placed first: the shared server
	// adapts (the planner puts Ollama's models in what vLLM leaves), and keeps running.
	cl.apply(t, qwen(t, "qwen-vllm", "vllm-rt", "  engine: {name: vllm, args: [--max-model-len, \"8192\", --gpu-memory-utilization, \"0.9\"]}"))
	cl.markReady(t, "qwen-vllm")
	waitPhase(cl, t, "qwen-vllm", 60*time.Second, v1.ServiceReady)
	if s := cl.service(t, "default", "qwen2-5-7b"); s.Status.Phase != v1.ServiceReady || s.Status.Endpoints[0].PID != ep.PID {
		t.Errorf("after placing a vLLM engine: %s %+v: want the Ollama model Ready on the same server (PID %d)", s.Status.Phase, s.Status.Endpoints, ep.PID)
	}

	cl.apply(t, ollamaModelYAML("deepcoder-14b", "ollama://deepcoder:14b"))
	cl.markPulled(t, "deepcoder-14b", blobs["deepcoder:14b"], store, "deepcoder:14b")
	second := waitPhase(cl, t, "deepcoder-14b", 60*time.Second, v1.ServiceReady)
	if ep2 := second.Status.Endpoints[0]; ep2.Address != ep.Address || ep2.PID != ep.PID {
		t.Errorf("the second model runs at %s (PID %d), the first at %s (PID %d): want one shared server, not restarted", ep2.Address, ep2.PID, ep.Address, ep.PID)
	}

	// The gateway reaches them by their Ollama names on both fronts, and by service name.
	for _, req := range []struct{ path, body string }{
		{"/api/chat", `{"model":"deepcoder:14b","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":3}}`},
		{"/v1/chat/completions", `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`},
		{"/v1/chat/completions", `{"model":"deepcoder-14b","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`},
	} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Post(cl.gateway+req.path, "application/json", strings.NewReader(req.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("gateway %s %s: %d %s", req.path, req.body, resp.StatusCode, b)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Deleting one service leaves the server to the other.
	if _, err := cl.c.Delete(t.Context(), v1.KindInferenceService, "default", "qwen2-5-7b", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if s := cl.service(t, "default", "deepcoder-14b"); s.Status.Phase != v1.ServiceReady || s.Status.Endpoints[0].PID != ep.PID {
		t.Errorf("after deleting the other Ollama service: %s %+v: want Ready on the same server (PID %d)", s.Status.Phase, s.Status.Endpoints, ep.PID)
	}
	if err := syscall.Kill(ep.PID, 0); err != nil {
		t.Errorf("the shared server (PID %d) stopped while a service uses it: %v", ep.PID, err)
	}
	// The last one stops it.
	if _, err := cl.c.Delete(t.Context(), v1.KindInferenceService, "default", "deepcoder-14b", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(ep.PID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the shared server (PID %d) still runs with no service left", ep.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

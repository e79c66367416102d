package serving_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

// Qwen2.5-7B-Instruct's config.json.
const qwenConfig = `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","transformers_version":"4.43.1",
"hidden_size":3584,"intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,"num_key_value_heads":4,
"vocab_size":152064,"max_position_embeddings":32768,"tie_word_embeddings":false}`

// qwen writes a Qwen2.5-7B model directory and returns YAML for a Ready-able model named
// name, a runtime named rt whose engine section is engineYAML (indented under spec), and a
// service named name in namespace default.
func qwen(t *testing.T, name, rt, engineYAML string) string {
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
  modelArchitecture: Qwen2ForCausalLM
  modelFormat: {name: safetensors, version: "1.0.0"}
  modelFramework: {name: transformers, version: "4.43.1"}
  modelParameterSize: 7B
  storage: {storageUri: "hf://Qwen/Qwen2.5-7B-Instruct", path: %[3]s}
---
apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: %[2]s}
spec:
  supportedModelFormats:
  - modelFormat: {name: safetensors, version: "1.0.0"}
    modelFramework: {name: transformers, version: "4.43.1"}
    modelArchitecture: Qwen2ForCausalLM
    autoSelect: true
%[4]s
---
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: %[1]s, namespace: default}
spec:
  model: {name: %[1]s}
  runtime: {name: %[2]s}
`, name, rt, dir, engineYAML)
}

func waitPhase(cl *cluster, t *testing.T, name string, within time.Duration, phases ...string) *v1.InferenceService {
	t.Helper()
	return cl.waitFor(t, "default", name, within, strings.Join(phases, " or "), func(s *v1.InferenceService) bool {
		for _, p := range phases {
			if s.Status.Phase == p {
				return true
			}
		}
		return false
	})
}

// TestVLLMAdapter: a runtime that names an engine gets the adapter's command line (run as
// citadel sim), and the engine answers on the endpoint the status lists. (Ollama's shared
// server: TestSharedOllama.)
func TestVLLMAdapter(t *testing.T) {
	cl := startServe(t, "2xrtx-4090")
	cl.apply(t, qwen(t, "qwen-vllm", "vllm-rt", "  engine: {name: vllm, args: [--max-model-len, \"8192\"]}"))
	cl.markReady(t, "qwen-vllm")
	s := waitPhase(cl, t, "qwen-vllm", 60*time.Second, v1.ServiceReady)
	ep := s.Status.Endpoints[0]
	if ep.Engine != "vllm" || ep.RunningMetric != "vllm:num_requests_running" {
		t.Errorf("vllm endpoint %+v", ep)
	}
	if code, body := httpGet(t, "http://"+ep.Address+"/v1/models"); code != 200 || !strings.Contains(body, `"max_model_len":8192`) || !strings.Contains(body, `"id":"qwen-vllm"`) {
		t.Errorf("vllm /v1/models: %d %s", code, body)
	}
	// The gateway routes to the service's engine by name.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Post(cl.gateway+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"qwen-vllm","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			if r := resp.Header.Get("X-Citadel-Route"); !strings.Contains(r, "default/qwen-vllm") {
				t.Errorf("x-citadel-route %q does not name the service", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway → qwen-vllm: %d %s", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// citadel logs: the engine's own output.
	var b strings.Builder
	if err := cl.c.Logs(t.Context(), "default", "qwen-vllm", 0, 50, false, &b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Starting vLLM API server") {
		t.Errorf("logs lack the engine's start-up line:\n%s", b.String())
	}
	if err := cl.c.Logs(t.Context(), "default", "nope", 0, 5, false, &b); err == nil || !strings.Contains(err.Error(), "no engine runs for InferenceService default/nope") {
		t.Errorf("logs of an unknown service: %v", err)
	}
}

// TestUnschedulableShowsArithmetic: MiMo-VL bf16 on one 16 GB GPU is refused with the numbers
// and the alternatives.
func TestUnschedulableShowsArithmetic(t *testing.T) {
	cl := startServe(t, "rtx-4070-ti-super")
	modelDir := filepath.Join(t.TempDir(), "MiMo-VL-7B-RL")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modelDir, "config.json"), []byte(mimoConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cl.apply(t, strings.Replace(readFixture(t, "models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"), "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL", modelDir, 1)+
		"  modelArchitecture: Qwen2_5_VLForConditionalGeneration\n  modelFormat: {name: safetensors, version: \"1.0.0\"}\n"+
		"  modelFramework: {name: transformers, version: \"4.41.2\"}\n  modelParameterSize: 7B\n---\n"+
		readFixture(t, "runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml")+"---\n"+readFixture(t, "samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml"))
	cl.markReady(t, "mimo-vl-7b-rl")
	s := cl.waitFor(t, "mimo-vl-7b-rl", "mimo-vl-7b-rl", 30*time.Second, "Unschedulable", func(s *v1.InferenceService) bool { return s.Status.Reason == "Unschedulable" })
	all := s.Status.Message + "\n" + strings.Join(s.Status.Placement, "\n")
	for _, want := range []string{"tensor parallel 1 does not fit", "weights 14.20 GiB + activations", "> 14.39 GiB (0.9 × 15.99 GiB)", "a 4-bit variant"} {
		if !strings.Contains(all, want) {
			t.Errorf("refusal lacks %q:\n%s", want, all)
		}
	}
	if s.Status.Phase != v1.ServiceScheduling {
		t.Errorf("phase %s, want Scheduling", s.Status.Phase)
	}
}

// TestEngineNotFound: without the simulator, a missing engine binary is named.
func TestEngineNotFound(t *testing.T) {
	inv, _ := placement.FakeInventory("rtx-4090")
	cl := startWith(t, serving.Options{Inventory: inv})
	t.Setenv("PATH", t.TempDir()) // no vllm anywhere
	cl.apply(t, qwen(t, "q", "vllm-rt", "  engine: {name: vllm}"))
	cl.markReady(t, "q")
	s := waitPhase(cl, t, "q", 30*time.Second, v1.ServiceFailed)
	if s.Status.Reason != "EngineNotFound" || !strings.Contains(s.Status.Message, "engine vllm not found: install vllm or set") {
		t.Errorf("status %s: %s", s.Status.Reason, s.Status.Message)
	}
}

// TestEngineFaults: an engine that exits at start crash-loops with its exit code and log
// tail; one that never becomes ready times out with its log tail; one that crashes under
// load is restarted.
func TestEngineFaults(t *testing.T) {
	cl := startServe(t, "2xrtx-4090")
	cl.apply(t, qwen(t, "oom", "oom-rt", "  engine: {name: vllm, args: [--oom-at-load]}"))
	cl.apply(t, qwen(t, "slow", "slow-rt", `  engineConfig:
    runner:
      command: [vllm, serve, $(MODEL_PATH), --startup-delay, 1h, --bind-after-startup]
      startupProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 1, failureThreshold: 3}`))
	cl.markReady(t, "oom")
	cl.markReady(t, "slow")
	s := cl.waitFor(t, "default", "oom", 60*time.Second, "crash-looping", func(s *v1.InferenceService) bool {
		return len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].Phase == "CrashLoopBackOff"
	})
	if !strings.Contains(s.Status.Message, "CUDA out of memory") || s.Status.Endpoints[0].LastExit != "exit status 1" {
		t.Errorf("crash loop status %s %q, endpoint %+v", s.Status.Phase, s.Status.Message, s.Status.Endpoints[0])
	}
	cl.waitFor(t, "default", "slow", 60*time.Second, "timed out at start-up", func(*v1.InferenceService) bool {
		return strings.Contains(cl.events(t, "default", "slow"), "StartupTimeout")
	})
	if evs := cl.events(t, "default", "slow"); !strings.Contains(evs, "vLLM API server version") {
		t.Errorf("start-up timeout event lacks the log tail:\n%s", evs)
	}
}

// TestCrashUnderLoadRestarts: an engine that exits mid-request is restarted and the events
// say how it ended.
func TestCrashUnderLoadRestarts(t *testing.T) {
	cl := startServe(t, "rtx-4090")
	cl.apply(t, qwen(t, "crashy", "crashy-rt", "  engine: {name: vllm, args: [--crash-after, \"2\", --max-model-len, \"4096\"]}"))
	cl.markReady(t, "crashy")
	s := waitPhase(cl, t, "crashy", 60*time.Second, v1.ServiceReady)
	addr := s.Status.Endpoints[0].Address
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"hi","max_tokens":2}`))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	cl.waitFor(t, "default", "crashy", 60*time.Second, "restarted and Ready", func(s *v1.InferenceService) bool {
		return s.Status.Phase == v1.ServiceReady && s.Status.Endpoints[0].Restarts >= 1
	})
	if evs := cl.events(t, "default", "crashy"); !strings.Contains(evs, "exit status 1") {
		t.Errorf("events do not say how the engine ended:\n%s", evs)
	}
}

// TestModelDeletedWhileServed: the engines stop and the service says its model is gone.
func TestModelDeletedWhileServed(t *testing.T) {
	cl := startServe(t, "rtx-4090")
	cl.apply(t, qwen(t, "q", "rt", "  engine: {name: vllm, args: [--max-model-len, \"4096\"]}"))
	cl.markReady(t, "q")
	s := waitPhase(cl, t, "q", 60*time.Second, v1.ServiceReady)
	pid := s.Status.Endpoints[0].PID
	if _, err := cl.c.Delete(t.Context(), v1.KindClusterBaseModel, "", "q", ""); err != nil {
		t.Fatal(err)
	}
	s = cl.waitFor(t, "default", "q", 30*time.Second, "ModelNotFound", func(s *v1.InferenceService) bool { return s.Status.Reason == "ModelNotFound" })
	waitGone(t, pid)
	if len(s.Status.Endpoints) != 0 {
		t.Errorf("endpoints %+v after the model was deleted", s.Status.Endpoints)
	}
}

// TestGPUDisappears: when a GPU leaves the inventory, the service on it is placed again or,
// when it no longer fits, stopped with the arithmetic.
func TestGPUDisappears(t *testing.T) {
	two, _ := placement.FakeInventory("2xrtx-4090")
	var mu sync.Mutex
	inv := two
	cl := startWith(t, serving.Options{Inventory: two, Simulate: &serving.Simulation{Citadel: simtest.Citadel(t), TimeScale: 0},
		Discover: func(context.Context) ([]placement.GPU, error) { mu.Lock(); defer mu.Unlock(); return inv, nil }})
	cl.apply(t, qwen(t, "q", "rt", "  engine: {name: vllm, args: [--max-model-len, \"4096\"]}"))
	cl.markReady(t, "q")
	s := waitPhase(cl, t, "q", 60*time.Second, v1.ServiceReady)
	gpu, pid := s.Status.Endpoints[0].GPUs[0], s.Status.Endpoints[0].PID
	mu.Lock()
	inv = nil
	for _, g := range two {
		if g.Index != gpu {
			inv = append(inv, g)
		}
	}
	mu.Unlock()
	s = cl.waitFor(t, "default", "q", 60*time.Second, "moved to the other GPU", func(s *v1.InferenceService) bool {
		return s.Status.Phase == v1.ServiceReady && s.Status.Endpoints[0].GPUs[0] != gpu
	})
	waitGone(t, pid)
	mu.Lock()
	inv = nil
	mu.Unlock()
	cl.waitFor(t, "default", "q", 60*time.Second, "Unschedulable", func(s *v1.InferenceService) bool { return s.Status.Reason == "Unschedulable" })
	waitGone(t, s.Status.Endpoints[0].PID)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("engine pid %d still runs", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

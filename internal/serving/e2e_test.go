package serving_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

// End to end: citadel serve's daemon with the serving controller, a fake inventory of two
// RTX 4070 Ti SUPER, and `citadel sim` in place of every engine, started through the
// engines' own command lines.

// MiMo-VL-7B-RL's config.json (Qwen2.5-VL layout with MiMo-7B's language model).
const mimoConfig = `{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl","torch_dtype":"bfloat16",
"transformers_version":"4.41.2","hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":36,"num_attention_heads":32,
"num_key_value_heads":8,"vocab_size":151680,"max_position_embeddings":32768,"tie_word_embeddings":false,
"vision_config":{"depth":32,"hidden_size":1280,"intermediate_size":3420,"num_heads":16,"out_hidden_size":4096,"patch_size":14,"spatial_merge_size":2}}`

type cluster struct {
	c       *client.Client
	gateway string // the gateway's base URL
	admin   string // the admin API's base URL
	dataDir string
	cancel  context.CancelFunc
	done    chan error
}

func startServe(t *testing.T, gpus string) *cluster {
	t.Helper()
	inv, err := placement.FakeInventory(gpus)
	if err != nil {
		t.Fatal(err)
	}
	return startWith(t, serving.Options{Inventory: inv, Simulate: &serving.Simulation{Citadel: simtest.Citadel(t), TimeScale: 0}})
}

// startWith runs the daemon with the serving controller configured by so.
func startWith(t *testing.T, so serving.Options) *cluster {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cl := &cluster{dataDir: dataDir, cancel: cancel, done: make(chan error, 1), gateway: "http://" + gln.Addr().String(),
		admin: "http://" + ln.Addr().String()}
	go func() {
		cl.done <- daemon.Run(ctx, daemon.Options{DataDir: dataDir, AdminListener: ln, Serving: &so,
			Gateway: &gateway.Options{HealthInterval: 100 * time.Millisecond}, GatewayListener: gln})
	}()
	cl.c, err = client.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.stop)
	return cl
}

func (cl *cluster) stop() {
	if cl.cancel != nil {
		cl.cancel()
		<-cl.done
		cl.cancel = nil
	}
}

func (cl *cluster) apply(t *testing.T, yaml string) {
	t.Helper()
	items, errs := config.Decode(strings.NewReader(yaml), "test.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	var req v1.ApplyRequest
	for _, it := range items {
		b, err := json.Marshal(it.Object)
		if err != nil {
			t.Fatal(err)
		}
		req.Items = append(req.Items, v1.ApplyItem{Source: it.Source, Object: b})
	}
	if _, err := cl.c.Apply(t.Context(), req); err != nil {
		t.Fatal(err)
	}
}

// markReady plays the model agent: the model's files are on disk, so it is Ready.
func (cl *cluster) markReady(t *testing.T, name string) {
	t.Helper()
	cl.setReady(t, name, "files in place (test)", nil)
}

// setReady writes a Ready status for the model, with nodes. The status reconciler may write
// the model's status in between (a conflict): read it again and retry.
func (cl *cluster) setReady(t *testing.T, name, msg string, nodes []v1.NodeModelStatus) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		o, err := cl.c.Get(t.Context(), v1.KindClusterBaseModel, "", name)
		if err != nil {
			t.Fatal(err)
		}
		m := o.(*v1.ClusterBaseModel)
		m.Status.Phase, m.Status.Reason, m.Status.Message = v1.ModelReady, "Ready", msg
		if nodes != nil {
			m.Status.Nodes = nodes
		}
		_, err = cl.c.UpdateStatus(t.Context(), m)
		if err == nil {
			return
		}
		if attempt == 20 || !strings.Contains(err.Error(), "modified") {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (cl *cluster) service(t *testing.T, ns, name string) *v1.InferenceService {
	t.Helper()
	o, err := cl.c.Get(t.Context(), v1.KindInferenceService, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*v1.InferenceService)
}

// waitFor polls the service until ok says so.
func (cl *cluster) waitFor(t *testing.T, ns, name string, within time.Duration, what string, ok func(*v1.InferenceService) bool) *v1.InferenceService {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := cl.service(t, ns, name)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s/%s: not %s after %s: phase %s (%s: %s), endpoints %+v", ns, name, what, within, s.Status.Phase, s.Status.Reason, s.Status.Message, s.Status.Endpoints)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cl *cluster) events(t *testing.T, ns, name string) string {
	evs, err := cl.c.Events(t.Context(), client.EventFilter{Kind: v1.KindInferenceService, Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Reason + ": " + e.Message + "\n")
	}
	return b.String()
}

func readFixture(t *testing.T, rel string) string {
	b, err := os.ReadFile(filepath.Join("../config/testdata/good/ome", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMiMoFixturesServeWithTensorParallel: the OME MiMo-VL fixtures (model, SGLang runtime,
// service) on 2× 16 GB: bf16 does not fit one GPU, so the planner spreads it over both and
// the runtime's --tp-size 1 becomes 2; killing the engine restarts it; deleting the service
// stops every process.
func TestMiMoFixturesServeWithTensorParallel(t *testing.T) {
	cl := startServe(t, "2xrtx-4070-ti-super")
	modelDir := filepath.Join(t.TempDir(), "MiMo-VL-7B-RL")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modelDir, "config.json"), []byte(mimoConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	// The model as the agent leaves it: the fixture, with the metadata it fills. The size is
	// given as OME's own fully specified models give it, by name ("7B"): the exact count,
	// 8.3B with the vision tower, is outside the fixture runtime's modelSizeRange [6B, 8B],
	// which OME (and so Citadel) rejects; TestMiMoExactSizeIsRejected pins that.
	model := strings.Replace(readFixture(t, "models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"), "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL", modelDir, 1) +
		"  modelArchitecture: Qwen2_5_VLForConditionalGeneration\n  modelFormat: {name: safetensors, version: \"1.0.0\"}\n" +
		"  modelFramework: {name: transformers, version: \"4.41.2\"}\n  modelParameterSize: 7B\n"
	cl.apply(t, model+"---\n"+readFixture(t, "runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml")+"---\n"+
		readFixture(t, "samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml"))
	ns, name := "mimo-vl-7b-rl", "mimo-vl-7b-rl"
	s := cl.waitFor(t, ns, name, 10*time.Second, "waiting for its model", func(s *v1.InferenceService) bool { return s.Status.Reason == "ModelNotReady" })
	if s.Status.Phase != v1.ServicePending || !strings.Contains(s.Status.Message, `waiting for ClusterBaseModel "mimo-vl-7b-rl" to be Ready`) {
		t.Errorf("before the model is Ready: %s %s", s.Status.Phase, s.Status.Message)
	}
	cl.markReady(t, "mimo-vl-7b-rl")
	s = cl.waitFor(t, ns, name, 60*time.Second, "Ready", func(s *v1.InferenceService) bool { return s.Status.Phase == v1.ServiceReady })
	if len(s.Status.Endpoints) != 1 || len(s.Status.Endpoints[0].GPUs) != 2 || s.Status.Endpoints[0].Engine != "sglang" {
		t.Fatalf("endpoints %+v, want one sglang replica on both GPUs", s.Status.Endpoints)
	}
	if s.Status.Runtime != "srt-mimo-vl-7b-rl" {
		t.Errorf("runtime %q", s.Status.Runtime)
	}
	plan := strings.Join(s.Status.Placement, "\n")
	if !strings.Contains(plan, "tensor parallel 2") && !strings.Contains(plan, "TP 2") && !strings.Contains(plan, "tp 2") {
		t.Errorf("placement does not say tensor parallel 2:\n%s", plan)
	}
	evs := cl.events(t, ns, name)
	if !strings.Contains(evs, "--tp-size 2") {
		t.Errorf("the start event does not show --tp-size 2:\n%s", evs)
	}
	// The engine answers through its endpoint.
	code, body := httpGet(t, "http://"+s.Status.Endpoints[0].Address+"/get_model_info")
	if code != 200 || !strings.Contains(body, "Qwen2_5_VLForConditionalGeneration") {
		t.Errorf("engine /get_model_info: %d %s", code, body)
	}

	// Kill the engine: the supervisor restarts it, and the events say why.
	pid := s.Status.Endpoints[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s = cl.waitFor(t, ns, name, 60*time.Second, "restarted and Ready", func(s *v1.InferenceService) bool {
		return s.Status.Phase == v1.ServiceReady && len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].Restarts >= 1 && s.Status.Endpoints[0].PID != pid
	})
	evs = cl.events(t, ns, name)
	if !strings.Contains(evs, "signal: killed") {
		t.Errorf("events do not say the engine was killed:\n%s", evs)
	}

	// Delete the service: every engine process goes away.
	newPID := s.Status.Endpoints[0].PID
	if _, err := cl.c.Delete(t.Context(), v1.KindInferenceService, ns, name, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for alive(newPID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(newPID) {
		out, _ := exec.Command("ps", "-o", "pid,pgid,stat,args", "-p", strconv.Itoa(newPID)).CombinedOutput()
		t.Errorf("engine pid %d still runs after the service was deleted:\n%s\nevents:\n%s", newPID, out, cl.events(t, ns, name))
	}
}

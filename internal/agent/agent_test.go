package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// The agent end to end: the OME MiMo-VL fixture, unchanged but for its
// storage.path (kept inside the test's directory), pulled from a mirror.

const fixture = "../config/testdata/good/ome/models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"

// safetensors builds a small valid safetensors file with one BF16 tensor.
func safetensors(rows, cols int) []byte {
	n := rows * cols * 2
	hdr, _ := json.Marshal(map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"w":            map[string]any{"dtype": "BF16", "shape": []int{rows, cols}, "data_offsets": []int{0, n}},
	})
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, make([]byte, n)...)
}

func repo(t *testing.T, dir, name string, weights []byte) {
	t.Helper()
	d := filepath.Join(dir, "hf", filepath.FromSlash(name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := `{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl","torch_dtype":"bfloat16","transformers_version":"4.41.2","max_position_embeddings":128000,"vision_config":{"depth":32}}`
	for f, b := range map[string][]byte{"config.json": []byte(cfg), "model.safetensors": weights} {
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type env struct {
	st       *store.Store
	mirror   *mirror.Server
	dir      string
	cancel   context.CancelFunc
	done     chan error
	endpoint string
}

func start(t *testing.T, stall time.Duration) *env {
	t.Helper()
	mdir := t.TempDir()
	repo(t, mdir, "XiaomiMiMo/MiMo-VL-7B-RL", safetensors(1024, 1024)) // 2 MiB of weights, 1 M parameters
	hostile := safetensors(4, 4)
	binary.LittleEndian.PutUint64(hostile, 1<<62) // header length beyond the file
	repo(t, mdir, "evil/model", hostile)
	m, endpoint := mirrortest.Start(t, mirror.Options{Dir: mdir}, nil)
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "state"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := pull.New(pull.Options{HFEndpoint: endpoint, HFCache: filepath.Join(dir, "hf", "hub"), StallTimeout: stall, ChunkSize: 256 << 10})
	a := New(Options{Store: st, Puller: p, RecordsDir: filepath.Join(dir, "agent"), Node: "gpu-1", RetryBase: time.Hour, StatusEvery: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{st: st, mirror: m, dir: dir, cancel: cancel, done: make(chan error, 1), endpoint: endpoint}
	go func() { e.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		e.cancel()
		<-e.done
		st.Close()
	})
	return e
}

// apply stores objects read from YAML, as the admin API would.
func (e *env) apply(t *testing.T, yaml string) {
	t.Helper()
	items, errs := config.Decode(strings.NewReader(yaml), "test.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	var objs []store.Object
	for _, it := range items {
		so, err := resource.ToStore(it.Object)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, so)
	}
	if _, err := e.st.Apply(t.Context(), objs, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) model(t *testing.T, name string) *v1.ClusterBaseModel {
	so, err := e.st.Get(t.Context(), v1.KindClusterBaseModel, "", name)
	if err != nil {
		t.Fatal(err)
	}
	o, err := resource.FromStore(so)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*v1.ClusterBaseModel)
}

// waitPhase waits for a terminal phase and returns the model.
func (e *env) waitPhase(t *testing.T, name string, within time.Duration, phases ...string) *v1.ClusterBaseModel {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := e.model(t, name)
		for _, p := range phases {
			if m.Status.Phase == p {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %s is %s (%s: %s) after %s, want %v", name, m.Status.Phase, m.Status.Reason, m.Status.Message, within, phases)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fixtureYAML(t *testing.T, path string) string {
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL", path, 1)
}

const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: hf-token, namespace: ome}\nstringData: {token: hf_test}\n"

func TestFixtureReachesReadyWithMetadata(t *testing.T) {
	e := start(t, 5*time.Second)
	path := filepath.Join(e.dir, "raid", "models", "MiMo")
	e.apply(t, secret+"---\n"+fixtureYAML(t, path))
	m := e.waitPhase(t, "mimo-vl-7b-rl", 20*time.Second, v1.ModelReady, v1.ModelFailed)
	if m.Status.Phase != v1.ModelReady {
		t.Fatalf("phase %s: %s", m.Status.Phase, m.Status.Message)
	}
	if m.Status.BytesDone != m.Status.BytesTotal || m.Status.BytesTotal == 0 || len(m.Status.Revision) != 40 {
		t.Errorf("progress fields: %+v", m.Status)
	}
	if m.Status.State != "Ready" || len(m.Status.NodesReady) != 1 {
		t.Errorf("OME state fields: %s %v", m.Status.State, m.Status.NodesReady)
	}
	if _, err := os.Stat(filepath.Join(path, "model.safetensors")); err != nil {
		t.Errorf("storage.path has no model: %v", err)
	}
	// Metadata fills the empty spec fields, as OME's agent does.
	deadline := time.Now().Add(10 * time.Second)
	for m.Spec.ModelArchitecture == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		m = e.model(t, "mimo-vl-7b-rl")
	}
	if m.Spec.ModelArchitecture == nil || *m.Spec.ModelArchitecture != "Qwen2_5_VLForConditionalGeneration" {
		t.Fatalf("modelArchitecture not filled: %+v", m.Spec)
	}
	if m.Spec.ModelParameterSize == nil || *m.Spec.ModelParameterSize != "1.05M" {
		t.Errorf("modelParameterSize = %v, want 1.05M (exact from the safetensors header)", m.Spec.ModelParameterSize)
	}
	if m.Spec.ModelFramework == nil || *m.Spec.ModelFramework.Version != "4.41.2" || m.Spec.MaxTokens == nil || *m.Spec.MaxTokens != 128000 {
		t.Errorf("framework / maxTokens: %+v %v", m.Spec.ModelFramework, m.Spec.MaxTokens)
	}
	if len(m.Spec.ModelCapabilities) != 1 || m.Spec.ModelCapabilities[0] != "IMAGE_TEXT_TO_TEXT" {
		t.Errorf("the user's capabilities were replaced: %v", m.Spec.ModelCapabilities)
	}
	// Events tell the story (the last is recorded just after the status).
	deadline = time.Now().Add(5 * time.Second)
	for {
		evs, _ := e.st.Events(t.Context(), store.EventFilter{Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl"})
		var reasons []string
		for _, ev := range evs {
			reasons = append(reasons, ev.Reason)
		}
		got := strings.Join(reasons, ",")
		if strings.Contains(got, "Resolving") && strings.Contains(got, "MetadataFilled") && strings.Contains(got, "Ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v lack Resolving, MetadataFilled or Ready", reasons)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStalledMirrorFails(t *testing.T) {
	e := start(t, 2*time.Second)
	e.mirror.SetFaults("XiaomiMiMo/MiMo-VL-7B-RL", mirror.Fault{Kind: mirror.FaultStall, Files: "model.safetensors", Bytes: 10 << 10})
	e.apply(t, secret+"---\n"+fixtureYAML(t, filepath.Join(e.dir, "m")))
	began := time.Now()
	m := e.waitPhase(t, "mimo-vl-7b-rl", 2*time.Second+10*time.Second, v1.ModelReady, v1.ModelFailed)
	t.Logf("after %s: %s %s: %s", time.Since(began).Round(time.Millisecond), m.Status.Phase, m.Status.Reason, m.Status.Message)
	if m.Status.Phase != v1.ModelFailed || m.Status.Reason != pull.ReasonDownloadStalled {
		t.Fatalf("phase %s reason %s, want Failed/DownloadStalled", m.Status.Phase, m.Status.Reason)
	}
	for _, s := range []string{"model.safetensors", "received", "bytes"} {
		if !strings.Contains(m.Status.Message, s) {
			t.Errorf("message %q lacks %q", m.Status.Message, s)
		}
	}
	if c := v1.FindCondition(m.Status.Conditions, v1.CondReady); c == nil || c.Reason != pull.ReasonDownloadStalled {
		t.Errorf("Ready condition: %+v", c)
	}
	// The facts behind the message, for readers that must not parse it.
	f := m.Status.LastFailure
	if f == nil || f.Reason != pull.ReasonDownloadStalled || f.File != "model.safetensors" || f.FileBytesTotal == 0 || f.FileBytesReceived > f.FileBytesTotal || f.Attempt != 1 {
		t.Errorf("lastFailure %+v, want DownloadStalled of model.safetensors with its bytes, attempt 1", f)
	}
	if len(m.Status.Nodes) != 1 || m.Status.Nodes[0].LastFailure == nil {
		t.Errorf("the node's status lacks the failure: %+v", m.Status.Nodes)
	}
}

func TestMissingSecretIsNeverAnonymous(t *testing.T) {
	e := start(t, 5*time.Second)
	e.apply(t, fixtureYAML(t, filepath.Join(e.dir, "m")))
	m := e.waitPhase(t, "mimo-vl-7b-rl", 5*time.Second, v1.ModelFailed, v1.ModelReady)
	if m.Status.Reason != pull.ReasonSecretNotFound || !strings.Contains(m.Status.Message, "citadel secret create hf-token -n ome") {
		t.Fatalf("%s %s: %s", m.Status.Phase, m.Status.Reason, m.Status.Message)
	}
	if f := m.Status.LastFailure; f == nil || f.Secret == nil || f.Secret.Namespace != "ome" || f.Secret.Name != "hf-token" || f.Secret.Key != "token" || f.Secret.Found {
		t.Errorf("lastFailure %+v, want the secret ome/hf-token, key token, not found", f)
	}
	if n := e.mirror.Requests(); len(n.Paths) != 0 {
		t.Fatalf("the agent contacted the hub without the named secret: %v", n.Paths)
	}
	// Creating the secret lets it proceed.
	e.apply(t, secret)
	if m := e.waitPhase(t, "mimo-vl-7b-rl", 20*time.Second, v1.ModelReady); m.Status.LastFailure != nil {
		t.Errorf("a Ready model keeps its last failure: %+v", m.Status.LastFailure)
	}
}

func TestHostileSafetensorsHeaderIsNotReady(t *testing.T) {
	e := start(t, 5*time.Second)
	e.apply(t, "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: evil}\nspec:\n  storage: {storageUri: hf://evil/model}\n")
	m := e.waitPhase(t, "evil", 20*time.Second, v1.ModelReady, v1.ModelFailed)
	if m.Status.Phase != v1.ModelFailed || m.Status.Reason != "InvalidModelFiles" || !strings.Contains(m.Status.Message, "model.safetensors") {
		t.Fatalf("%s %s: %s", m.Status.Phase, m.Status.Reason, m.Status.Message)
	}
}

func TestTruncatedFileIsFoundOnRestart(t *testing.T) {
	e := start(t, 5*time.Second)
	e.apply(t, secret+"---\n"+fixtureYAML(t, filepath.Join(e.dir, "m")))
	e.waitPhase(t, "mimo-vl-7b-rl", 20*time.Second, v1.ModelReady)
	// Stop the agent, truncate the weights blob, start a new agent.
	e.cancel()
	<-e.done
	blob, err := filepath.EvalSymlinks(filepath.Join(e.dir, "m", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blob, 1000); err != nil {
		t.Fatal(err)
	}
	e.mirror.ResetRequests()
	p := pull.New(pull.Options{HFEndpoint: e.endpoint, HFCache: filepath.Join(e.dir, "hf", "hub"), StallTimeout: 5 * time.Second})
	a := New(Options{Store: e.st, Puller: p, RecordsDir: filepath.Join(e.dir, "agent"), Node: "gpu-1", StatusEvery: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- a.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(blob); err == nil && st.Size() > 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the truncated blob was not fetched again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := e.waitPhase(t, "mimo-vl-7b-rl", 20*time.Second, v1.ModelReady)
	evs, _ := e.st.Events(t.Context(), store.EventFilter{Name: "mimo-vl-7b-rl"})
	found := false
	for _, ev := range evs {
		if ev.Reason == v1.ReasonModelFilesMissing && strings.Contains(ev.Message, "truncated") && strings.Contains(ev.Message, "model.safetensors") {
			found = true
		}
	}
	if !found || m.Status.Phase != v1.ModelReady {
		t.Errorf("no ModelFilesMissing event naming the truncated file: %+v", evs)
	}
}

func TestDeletedModelIsCollected(t *testing.T) {
	e := start(t, 5*time.Second)
	e.apply(t, secret+"---\n"+fixtureYAML(t, filepath.Join(e.dir, "m")))
	e.waitPhase(t, "mimo-vl-7b-rl", 20*time.Second, v1.ModelReady)
	blob, err := filepath.EvalSymlinks(filepath.Join(e.dir, "m", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Delete(t.Context(), v1.KindClusterBaseModel, "", "mimo-vl-7b-rl", 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(blob); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the blob of a deleted model is still there: %s", blob)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

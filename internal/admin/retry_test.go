package admin

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
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/store"
)

// writeRepo puts a small loadable model (config.json and one BF16
// safetensors tensor) at hf/org/name in a mirror directory.
func writeRepo(t *testing.T, mdir, name string) {
	t.Helper()
	d := filepath.Join(mdir, "hf", filepath.FromSlash(name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	hdr, _ := json.Marshal(map[string]any{"w": map[string]any{"dtype": "BF16", "shape": []int{64, 64}, "data_offsets": []int{0, 64 * 64 * 2}}})
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	st := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	st = append(append(st, hdr...), make([]byte, 64*64*2)...)
	cfg := `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","max_position_embeddings":4096}`
	for f, b := range map[string][]byte{"config.json": []byte(cfg), "model.safetensors": st} {
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// withAgent runs the admin API and the model agent over one store, with a
// mirror as the hub; the mirror directory is returned to add repositories.
func withAgent(t *testing.T) (*store.Store, *client.Client, string) {
	t.Helper()
	mdir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(mdir, "hf"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, endpoint := mirrortest.Start(t, mirror.Options{Dir: mdir}, nil)
	st, c := setup(t)
	dir := t.TempDir()
	p := pull.New(pull.Options{HFEndpoint: endpoint, HFCache: filepath.Join(dir, "hub"), StallTimeout: 5 * time.Second})
	a := agent.New(agent.Options{Store: st, Puller: p, RecordsDir: filepath.Join(dir, "records"), Node: "gpu-1", RetryBase: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return st, c, mdir
}

func waitModel(t *testing.T, c *client.Client, name, phase string) *v1.ClusterBaseModel {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := c.Get(t.Context(), v1.KindClusterBaseModel, "", name)
		if err != nil {
			t.Fatal(err)
		}
		m := o.(*v1.ClusterBaseModel)
		if m.Status.Phase == phase {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %s is %s (%s: %s), want %s", name, m.Status.Phase, m.Status.Reason, m.Status.Message, phase)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func applyOne(t *testing.T, c *client.Client, obj string) v1.ApplyResult {
	t.Helper()
	resp, err := c.Apply(t.Context(), v1.ApplyRequest{Items: []v1.ApplyItem{item(t, obj)}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Results[0]
}

// The failure message says "re-apply"; re-applying the unchanged file
// retries the model, and then it is Ready.
func TestReapplyingAFailedModelRetriesIt(t *testing.T) {
	_, c, mdir := withAgent(t)
	const obj = `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{"storage":{"storageUri":"hf://org/late"}}}`
	if got := applyOne(t, c, obj).Action; got != "created" {
		t.Fatalf("first apply: %s", got)
	}
	m := waitModel(t, c, "m", v1.ModelFailed)
	if m.Status.Reason != pull.ReasonRepoNotFound {
		t.Fatalf("reason %s: %s", m.Status.Reason, m.Status.Message)
	}
	for _, advice := range []string{"re-apply the model", "citadel retry clusterbasemodel m"} {
		if !strings.Contains(m.Status.Message, advice) {
			t.Errorf("failure message lacks the advice %q: %s", advice, m.Status.Message)
		}
	}
	writeRepo(t, mdir, "org/late") // the cause is fixed
	if got, want := applyOne(t, c, obj).Action, "retried (was Failed: RepoNotFound)"; got != want {
		t.Fatalf("re-apply answered %q, want %q", got, want)
	}
	m = waitModel(t, c, "m", v1.ModelReady)
	if m.Status.Nodes[0].Path == "" {
		t.Errorf("Ready without a path: %+v", m.Status.Nodes)
	}
	// Applying the file again changes nothing: the retry annotation the
	// server set is kept.
	if got := applyOne(t, c, obj).Action; got != "unchanged" {
		t.Errorf("apply of a Ready model: %s, want unchanged", got)
	}
}

// Without an agent: what citadel retry answers for each state, and that it
// bumps the annotation only when there is something to retry.
func TestRetryAnswers(t *testing.T) {
	st, c := setup(t)
	ctx := t.Context()
	if _, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{
		item(t, modelJSON),
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"svc","namespace":"default"},"spec":{"model":{"name":"m"}}}`),
	}}); err != nil {
		t.Fatal(err)
	}
	setStatus := func(phase, reason, msg string) {
		t.Helper()
		b, _ := json.Marshal(v1.ModelStatus{Status: v1.Status{Phase: phase, Reason: reason, Message: msg}})
		if _, err := st.UpdateStatus(ctx, v1.KindClusterBaseModel, "", "m", 0, b); err != nil {
			t.Fatal(err)
		}
	}
	annotation := func() string {
		so, err := st.Get(ctx, v1.KindClusterBaseModel, "", "m")
		if err != nil {
			t.Fatal(err)
		}
		return so.Annotations[agent.RetryAnnotation]
	}
	retry := func(kind, ns, name string) string {
		t.Helper()
		res, err := c.Retry(ctx, kind, ns, name)
		if err != nil {
			t.Fatalf("retry %s %s: %v", kind, name, err)
		}
		return res.Action
	}
	steps := []struct {
		phase, reason   string
		kind, name      string
		want, wantCount string
	}{
		{"", "", "model", "m", "unchanged (not started yet", ""},
		{v1.ModelDownloading, "Downloading", "cbm", "m", "unchanged (Downloading: Downloading, nothing to retry", ""},
		{v1.ModelFailed, pull.ReasonDownloadStalled, "clusterbasemodels", "m", "retried (was Failed: DownloadStalled)", "1"},
		{v1.ModelFailed, pull.ReasonDownloadStalled, "isvc", "svc", "retried its model clusterbasemodel/m, retried (was Failed: DownloadStalled); the service starts once the model is Ready", "2"},
		{v1.ModelReady, "Ready", "isvc", "svc", "unchanged (nothing to retry: the serving controller restarts", "2"},
		{v1.ModelReady, "Ready", "model", "m", "rechecked (Ready: its files are checked now", "3"},
	}
	for _, s := range steps {
		if s.phase != "" {
			setStatus(s.phase, s.reason, "details")
		}
		ns := ""
		if s.kind == "isvc" {
			ns = "default"
		}
		if got := retry(s.kind, ns, s.name); !strings.HasPrefix(got, s.want) {
			t.Errorf("%s %s: retry answered %q, want %q…", s.phase, s.kind, got, s.want)
		}
		if got := annotation(); got != s.wantCount {
			t.Errorf("%s %s: %s = %q, want %q", s.phase, s.kind, agent.RetryAnnotation, got, s.wantCount)
		}
	}
	// Re-applying the model keeps the server's annotation ("unchanged"),
	// and an unchanged re-apply of a model that is not Failed retries nothing.
	if got := applyOne(t, c, modelJSON).Action; got != "unchanged" {
		t.Errorf("re-apply of a Ready model: %s", got)
	}
	setStatus(v1.ModelFailed, pull.ReasonRepoNotFound, "no such repo")
	if got := applyOne(t, c, modelJSON).Action; got != "retried (was Failed: RepoNotFound)" {
		t.Errorf("re-apply of a Failed model: %s", got)
	}
	resp, err := c.Apply(ctx, v1.ApplyRequest{DryRun: true, Items: []v1.ApplyItem{item(t, modelJSON)}})
	if err != nil || resp.Results[0].Action != "unchanged" || annotation() != "4" {
		t.Errorf("a dry run retried: %+v %v, annotation %s", resp, err, annotation())
	}
	// Events say who asked.
	evs, _ := st.Events(ctx, store.EventFilter{Kind: v1.KindClusterBaseModel, Name: "m"})
	n := 0
	for _, ev := range evs {
		if ev.Reason == "RetryRequested" {
			n += max(int(ev.Count), 1)
		}
	}
	if n != 4 {
		t.Errorf("%d RetryRequested events, want 4", n)
	}
	// Kinds with nothing to retry, and unknown names.
	if _, err := c.Retry(ctx, "runtime", "", "x"); err == nil || !strings.Contains(err.Error(), "nothing to retry") {
		t.Errorf("retry of a runtime: %v", err)
	}
	if _, err := c.Retry(ctx, "model", "", "nope"); !client.IsNotFound(err) {
		t.Errorf("retry of a missing model: %v", err)
	}
}

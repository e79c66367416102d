package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
)

// A model Failed because its repository does not exist; once the mirror
// has it, `citadel retry` brings it to Ready without waiting for anything.
func TestRetryCommand(t *testing.T) {
	mdir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(mdir, "hf"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, endpoint := mirrortest.Start(t, mirror.Options{Dir: mdir}, nil)
	data := t.TempDir()
	hub := filepath.Join(data, "hf", "hub")
	p := pull.New(pull.Options{HFEndpoint: endpoint, HFCache: hub, StallTimeout: 5 * time.Second})
	srv := startServerWith(t, data, "", p)
	model := "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: late}\nspec:\n  storage: {storageUri: hf://org/late}\n"
	if r := citadel(t, srv.addr, model, "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %+v", r)
	}
	eventually(t, func() string {
		if d := mustRun(t, srv.addr, "describe", "model", "late"); !strings.Contains(d, "RepoNotFound") || !strings.Contains(d, "citadel retry clusterbasemodel late") {
			return "not Failed with RepoNotFound and the retry command:\n" + d
		}
		return ""
	})
	// Fix the cause: the repository appears on the mirror.
	repo := filepath.Join(mdir, "hf", "org", "late")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"config.json":       []byte(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","max_position_embeddings":8192}`),
		"model.safetensors": safetensorsFile(64, 64),
	} {
		if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := citadel(t, srv.addr, "", "retry", "model", "late")
	if r.code != 0 || r.stdout != "clusterbasemodel.ome.io/late retried (was Failed: RepoNotFound)\n" {
		t.Fatalf("retry: %+v", r)
	}
	eventually(t, func() string {
		d := mustRun(t, srv.addr, "describe", "model", "late")
		if !strings.Contains(d, "Phase:") || !strings.Contains(d, "Ready") || !strings.Contains(d, "Store:") {
			return "not Ready with its location:\n" + d
		}
		return ""
	})
	d := mustRun(t, srv.addr, "describe", "model", "late")
	for _, want := range []string{filepath.Join(hub, "models--org--late", "snapshots"), "Store:               " + hub, "RetryRequested"} {
		if !strings.Contains(d, want) {
			t.Errorf("describe lacks %q:\n%s", want, d)
		}
	}
	// A Ready model is checked again; other kinds and unknown names are errors.
	if r := citadel(t, srv.addr, "", "retry", "cbm", "late"); r.code != 0 || !strings.HasPrefix(r.stdout, "clusterbasemodel.ome.io/late rechecked (Ready") {
		t.Errorf("retry of a Ready model: %+v", r)
	}
	if r := citadel(t, srv.addr, "", "retry", "runtime", "x"); r.code != ExitUsage || !strings.Contains(r.stderr, "nothing to retry") {
		t.Errorf("retry of a runtime: %+v", r)
	}
	if r := citadel(t, srv.addr, "", "retry", "model", "nope"); r.code != ExitError || !strings.Contains(r.stderr, `ClusterBaseModel "nope" not found`) {
		t.Errorf("retry of a missing model: %+v", r)
	}
}

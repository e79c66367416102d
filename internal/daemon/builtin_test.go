package daemon

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

const builtInVLLM = `apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata:
  name: vllm
spec:
  engine: {name: vllm}
  supportedModelFormats:
    - {modelFormat: {name: safetensors}, modelArchitecture: LlamaForCausalLM, autoSelect: true, priority: 2}
`

// apply stores objects as citadel apply does.
func apply(t *testing.T, st *store.Store, yaml string) {
	t.Helper()
	items, errs := config.Decode(strings.NewReader(yaml), "user.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	for _, it := range items {
		so, err := resource.ToStore(it.Object)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(t.Context(), []store.Object{so}, store.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func runtime(t *testing.T, st *store.Store, name string) *v1.ClusterServingRuntime {
	t.Helper()
	so, err := st.Get(t.Context(), v1.KindClusterServingRuntime, "", name)
	if err != nil {
		t.Fatal(err)
	}
	o, err := resource.FromStore(so)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*v1.ClusterServingRuntime)
}

// TestInstallBuiltIns: a start installs the built-ins, a restart with the
// same files changes nothing, a newer file updates an untouched built-in,
// and a runtime the user applied or edited under a built-in's name is never
// overwritten.
func TestInstallBuiltIns(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	files := fstest.MapFS{
		"vllm.yaml":   {Data: []byte(builtInVLLM)},
		"ollama.yaml": {Data: []byte(strings.ReplaceAll(strings.ReplaceAll(builtInVLLM, "vllm", "ollama"), "safetensors}, modelArchitecture: LlamaForCausalLM", "gguf}"))},
		"sglang.yaml": {Data: []byte(strings.ReplaceAll(builtInVLLM, "vllm", "sglang"))},
	}
	// The user applied their own sglang runtime before the first start.
	apply(t, st, strings.ReplaceAll(strings.ReplaceAll(builtInVLLM, "vllm", "sglang"), "priority: 2", "priority: 7"))

	steps := []struct {
		name  string
		edit  func()
		want  map[string]builtInAction
		check func(t *testing.T)
	}{{
		name: "first start",
		want: map[string]builtInAction{"vllm": builtInCreated, "ollama": builtInCreated, "sglang": builtInUsers},
		check: func(t *testing.T) {
			r := runtime(t, st, "vllm")
			if !v1.IsBuiltIn(&r.ObjectMeta) || r.Annotations[v1.AnnotationBuiltInHash] == "" {
				t.Errorf("vllm annotations = %v, want built-in with a hash", r.Annotations)
			}
			if p := *runtime(t, st, "sglang").Spec.SupportedModelFormats[0].Priority; p != 7 || v1.IsBuiltIn(&runtime(t, st, "sglang").ObjectMeta) {
				t.Errorf("the user's sglang was overwritten: priority %d", p)
			}
		},
	}, {
		name: "restart, same files",
		want: map[string]builtInAction{"vllm": builtInUnchanged, "ollama": builtInUnchanged, "sglang": builtInUsers},
	}, {
		name: "newer Citadel ships a wider vllm",
		edit: func() {
			files["vllm.yaml"] = &fstest.MapFile{Data: []byte(builtInVLLM + "    - {modelFormat: {name: safetensors}, modelArchitecture: Qwen3ForCausalLM, autoSelect: true, priority: 2}\n")}
		},
		want: map[string]builtInAction{"vllm": builtInUpdated, "ollama": builtInUnchanged, "sglang": builtInUsers},
		check: func(t *testing.T) {
			if n := len(runtime(t, st, "vllm").Spec.SupportedModelFormats); n != 2 {
				t.Errorf("vllm has %d formats after the update, want 2", n)
			}
		},
	}, {
		name: "the user edits the built-in ollama (as citadel get -o yaml | edit | apply would)",
		edit: func() {
			r := runtime(t, st, "ollama")
			r.Spec.Disabled = new(true)
			r.ResourceVersion = ""
			so, err := resource.ToStore(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Apply(ctx, []store.Object{so}, store.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			files["ollama.yaml"] = &fstest.MapFile{Data: append([]byte(nil), files["ollama.yaml"].Data...)}
			files["ollama.yaml"].Data = []byte(strings.Replace(string(files["ollama.yaml"].Data), "priority: 2", "priority: 3", 1))
		},
		want: map[string]builtInAction{"vllm": builtInUnchanged, "ollama": builtInUsers, "sglang": builtInUsers},
		check: func(t *testing.T) {
			r := runtime(t, st, "ollama")
			if r.Spec.Disabled == nil || !*r.Spec.Disabled || *r.Spec.SupportedModelFormats[0].Priority != 2 {
				t.Errorf("the user's edit of ollama was overwritten: %+v", r.Spec)
			}
		},
	}}
	for _, s := range steps {
		if s.edit != nil {
			s.edit()
		}
		got, err := installBuiltIns(ctx, st, files, log)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s: actions (-want +got):\n%s", s.name, diff)
		}
		if s.check != nil {
			s.check(t)
		}
	}
}

// TestServeInstallsShippedRuntimes: after citadel serve starts, the four
// shipped runtimes are visible through the admin API, marked built-in.
func TestServeInstallsShippedRuntimes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: t.TempDir(), AdminListener: ln, Ready: func(string) { close(ready) }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not start")
	}
	c, err := client.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	objs, err := c.List(ctx, v1.KindClusterServingRuntime, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		r := o.(*v1.ClusterServingRuntime)
		engine := ""
		if r.Spec.Engine != nil && v1.IsBuiltIn(&r.ObjectMeta) {
			engine = r.Spec.Engine.Name
		}
		got[r.Name] = engine
	}
	want := map[string]string{"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "ollama": "ollama"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runtimes after start (-want +got):\n%s", diff)
	}
}

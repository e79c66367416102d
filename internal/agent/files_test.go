package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/store"
)

// Where a Ready model's files are, and what happens when they go missing:
// an hf:// model with and without storage.path and an ollama:// model,
// pulled from a mirror into temp dirs.

// tinyGGUF is a version-3 GGUF file with a little metadata and no tensors.
func tinyGGUF() []byte {
	var b bytes.Buffer
	u32 := func(v uint32) { _ = binary.Write(&b, binary.LittleEndian, v) }
	u64 := func(v uint64) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { u64(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	u32(3)
	u64(0) // tensors
	u64(3) // key/values
	str("general.architecture")
	u32(8)
	str("llama")
	str("general.name")
	u32(8)
	str("Tiny")
	str("llama.context_length")
	u32(4)
	u32(4096)
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	b.Write(make([]byte, 64<<10)) // some weight bytes to fetch
	return b.Bytes()
}

// ollamaRepo puts ollama://tiny:1b (registry.ollama.ai/library) into a mirror directory.
func ollamaRepo(t *testing.T, dir string) {
	t.Helper()
	weights := tinyGGUF()
	cfg := []byte(`{"model_format":"gguf","model_family":"llama"}`)
	wsum, csum := sha256.Sum256(weights), sha256.Sum256(cfg)
	blobs := filepath.Join(dir, "ollama", "blobs")
	mdir := filepath.Join(dir, "ollama", "manifests", "registry.ollama.ai", "library", "tiny")
	for _, d := range []string{blobs, mdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	man := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%d}]}`,
		hex.EncodeToString(csum[:]), len(cfg), hex.EncodeToString(wsum[:]), len(weights))
	for p, b := range map[string][]byte{
		filepath.Join(blobs, "sha256-"+hex.EncodeToString(wsum[:])): weights,
		filepath.Join(blobs, "sha256-"+hex.EncodeToString(csum[:])): cfg,
		filepath.Join(mdir, "1b"):                                   []byte(man),
	} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fenv is an agent that can be stopped and started again over one store,
// cache and mirror; the mirror can be taken down.
type fenv struct {
	*env
	mdir     string
	registry string
	down     atomic.Bool
	agent    *Agent
}

func startFiles(t *testing.T) *fenv {
	t.Helper()
	e := &fenv{mdir: t.TempDir()}
	repo(t, e.mdir, "org/tiny", safetensors(256, 256))
	ollamaRepo(t, e.mdir)
	m, endpoint := mirrortest.Start(t, mirror.Options{Dir: e.mdir}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e.down.Load() {
				http.Error(w, "mirror down for the test", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	e.registry = strings.TrimPrefix(endpoint, "http://")
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "state"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.env = &env{st: st, mirror: m, dir: dir, endpoint: endpoint}
	e.startAgent(t)
	t.Cleanup(func() {
		e.stopAgent()
		st.Close()
	})
	return e
}

func (e *fenv) hfCache() string   { return filepath.Join(e.dir, "hf", "hub") }
func (e *fenv) ollamaDir() string { return filepath.Join(e.dir, "ollama", "models") }

func (e *fenv) startAgent(t *testing.T) {
	t.Helper()
	p := pull.New(pull.Options{HFEndpoint: e.endpoint, HFCache: e.hfCache(), OllamaDir: e.ollamaDir(),
		OllamaRegistry: e.registry, OllamaInsecure: true, StallTimeout: 5 * time.Second})
	e.agent = New(Options{Store: e.st, Puller: p, RecordsDir: filepath.Join(e.dir, "agent"), Node: "gpu-1",
		RetryBase: time.Hour, StatusEvery: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	a := e.agent
	go func() { e.done <- a.Run(ctx) }()
}

func (e *fenv) stopAgent() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

// waitEvent waits for an event of the model whose reason is reason and
// whose message contains every one of want.
func (e *fenv) waitEvent(t *testing.T, name, reason string, want ...string) v1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, _ := e.st.Events(t.Context(), store.EventFilter{Kind: v1.KindClusterBaseModel, Name: name})
		for _, ev := range evs {
			ok := ev.Reason == reason
			for _, w := range want {
				ok = ok && strings.Contains(ev.Message, w)
			}
			if ok {
				return v1.Event{Type: ev.Type, Reason: ev.Reason, Message: ev.Message}
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Reason+": "+ev.Message)
			}
			t.Fatalf("no event %s with %q for %s; events:\n%s", reason, want, name, strings.Join(got, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cbm(name, uri, path string) string {
	y := fmt.Sprintf("apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: %s}\nspec:\n  storage:\n    storageUri: %s\n", name, uri)
	if path != "" {
		y += "    path: " + path + "\n"
	}
	return y
}

func TestReadyStatusSaysWhereTheFilesAre(t *testing.T) {
	e := startFiles(t)
	view := filepath.Join(e.dir, "models", "tiny")
	ollamaView := filepath.Join(e.dir, "models", "ollama-tiny")
	e.apply(t, cbm("cache", "hf://org/tiny", "")+"---\n"+cbm("view", "hf://org/tiny", view)+"---\n"+cbm("ollama", "ollama://tiny:1b", "")+
		"---\n"+cbm("ollama-path", "ollama://tiny:1b", ollamaView))
	got := map[string]v1.NodeModelStatus{}
	for _, name := range []string{"cache", "view", "ollama", "ollama-path"} {
		m := e.waitPhase(t, name, 20*time.Second, v1.ModelReady, v1.ModelFailed)
		if m.Status.Phase != v1.ModelReady || len(m.Status.Nodes) != 1 {
			t.Fatalf("%s: %s %s: %s (%d nodes)", name, m.Status.Phase, m.Status.Reason, m.Status.Message, len(m.Status.Nodes))
		}
		n := m.Status.Nodes[0]
		got[name] = v1.NodeModelStatus{Path: n.Path, Store: n.Store, OllamaName: n.OllamaName}
	}
	snap, err := filepath.Glob(filepath.Join(e.hfCache(), "models--org--tiny", "snapshots", "*"))
	if err != nil || len(snap) != 1 {
		t.Fatalf("snapshots: %v %v", snap, err)
	}
	blob, err := filepath.Glob(filepath.Join(e.ollamaDir(), "blobs", "sha256-*"))
	if err != nil || len(blob) != 2 {
		t.Fatalf("ollama blobs: %v %v", blob, err)
	}
	weights := ""
	for _, b := range blob {
		if st, _ := os.Stat(b); st.Size() > 1000 {
			weights = b
		}
	}
	want := map[string]v1.NodeModelStatus{
		"cache":       {Path: snap[0], Store: e.hfCache()},
		"view":        {Path: view, Store: e.hfCache()},
		"ollama":      {Path: weights, Store: e.ollamaDir(), OllamaName: "tiny:1b"},
		"ollama-path": {Path: weights, Store: e.ollamaDir(), OllamaName: "tiny:1b"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("status.nodes (-want +got):\n%s", d)
	}
	// storage.path of an ollama:// model: the files stay in the Ollama
	// store, the directory links to the weights, and the user is told.
	if target, err := os.Readlink(filepath.Join(ollamaView, "model.gguf")); err != nil || target != weights {
		t.Errorf("%s/model.gguf links to %q (%v), want the weights blob %s", ollamaView, target, err, weights)
	}
	e.waitEvent(t, "ollama-path", "StoragePathNotUsed", ollamaView, e.ollamaDir(), "one Ollama server reads one store")
	if m := e.model(t, "ollama-path"); !strings.Contains(m.Status.Message, "is not where an ollama:// model lives") {
		t.Errorf("the Ready message does not say what became of storage.path: %s", m.Status.Message)
	}
}

func TestMissingFilesAreFetchedAgain(t *testing.T) {
	type tc struct {
		name, uri, path string
		victim          func(e *fenv, m *v1.ClusterBaseModel) (path, file string) // what to delete, and its name in messages
	}
	cases := []tc{
		{name: "hf-cache", uri: "hf://org/tiny", victim: func(e *fenv, m *v1.ClusterBaseModel) (string, string) {
			b, _ := filepath.EvalSymlinks(filepath.Join(m.Status.Nodes[0].Path, "model.safetensors"))
			return b, "model.safetensors" // the blob: the snapshot link dangles
		}},
		{name: "hf-storage-path", uri: "hf://org/tiny", path: "view", victim: func(e *fenv, m *v1.ClusterBaseModel) (string, string) {
			return filepath.Join(m.Status.Nodes[0].Path, "config.json"), "config.json" // the view's link
		}},
		{name: "ollama", uri: "ollama://tiny:1b", victim: func(e *fenv, m *v1.ClusterBaseModel) (string, string) {
			return m.Status.Nodes[0].Path, filepath.Base(m.Status.Nodes[0].Path) // the GGUF blob
		}},
	}
	for _, c := range cases {
		for _, when := range []string{"recheck", "restart"} {
			t.Run(c.name+"/"+when, func(t *testing.T) {
				t.Parallel()
				e := startFiles(t)
				path := ""
				if c.path != "" {
					path = filepath.Join(e.dir, c.path)
				}
				e.apply(t, cbm("m", c.uri, path))
				m := e.waitPhase(t, "m", 20*time.Second, v1.ModelReady)
				victim, file := c.victim(e, m)
				if when == "restart" {
					e.stopAgent()
				}
				if err := os.Remove(victim); err != nil {
					t.Fatal(err)
				}
				if when == "restart" {
					e.startAgent(t)
				} else {
					e.agent.Recheck(v1.KindClusterBaseModel, "ignored", "m")
				}
				if ev := e.waitEvent(t, "m", v1.ReasonModelFilesMissing, file, "is missing", "fetching it again from "+c.uri); ev.Type != v1.EventWarning {
					t.Errorf("the ModelFilesMissing event is %s, want Warning", ev.Type)
				}
				m = e.waitPhase(t, "m", 20*time.Second, v1.ModelReady)
				if _, err := os.Stat(victim); err != nil {
					t.Fatalf("Ready again, but %s is still missing: %v", victim, err)
				}
				if m.Status.Nodes[0].Path == "" {
					t.Errorf("Ready again without a path: %+v", m.Status.Nodes[0])
				}
			})
		}
	}
}

func TestMissingFilesWithTheSourceDownFailThenRetry(t *testing.T) {
	e := startFiles(t)
	e.apply(t, cbm("m", "hf://org/tiny", ""))
	m := e.waitPhase(t, "m", 20*time.Second, v1.ModelReady)
	blob, err := filepath.EvalSymlinks(filepath.Join(m.Status.Nodes[0].Path, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	e.down.Store(true)
	if err := os.Remove(blob); err != nil {
		t.Fatal(err)
	}
	e.agent.Recheck(v1.KindClusterBaseModel, "", "m")
	m = e.waitPhase(t, "m", 20*time.Second, v1.ModelFailed)
	for _, want := range []string{"model.safetensors is missing", "fetching it again failed", "503", "citadel retry clusterbasemodel m"} {
		if !strings.Contains(m.Status.Message, want) {
			t.Errorf("message lacks %q: %s", want, m.Status.Message)
		}
	}
	if m.Status.Reason != v1.ReasonModelFilesMissing || len(m.Status.Nodes) != 1 || m.Status.Nodes[0].Path != "" {
		t.Errorf("Failed status: reason %s, nodes %+v", m.Status.Reason, m.Status.Nodes)
	}
	// The mirror is back; the retry annotation (what citadel retry bumps)
	// retries now, not in an hour.
	e.down.Store(false)
	so, err := e.st.Get(t.Context(), v1.KindClusterBaseModel, "", "m")
	if err != nil {
		t.Fatal(err)
	}
	so.Annotations = map[string]string{RetryAnnotation: "1"}
	if _, err := e.st.Apply(t.Context(), []store.Object{so}, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitEvent(t, "m", "RetryRequested", RetryAnnotation+"=1", "was Failed: ModelFilesMissing")
	m = e.waitPhase(t, "m", 20*time.Second, v1.ModelReady)
	if _, err := os.Stat(blob); err != nil || m.Status.Nodes[0].Path == "" {
		t.Fatalf("Ready, but the blob is missing (%v) or the status names no path: %+v", err, m.Status.Nodes)
	}
}

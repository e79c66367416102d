package ollamaapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/ollamaapi"
)

func TestLocalResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, body string
		want       string // "" when the request needs a backend
	}{
		{"chat", `{"model":"m","messages":[]}`, `{"model":"m:latest","message":{"role":"assistant","content":""},"done_reason":"load","done":true}`},
		{"chat", `{"model":"m","keep_alive":0}`, `{"model":"m:latest","message":{"role":"assistant","content":""},"done_reason":"unload","done":true}`},
		{"generate", `{"model":"m"}`, `{"model":"m:latest","response":"","done":true,"done_reason":"load"}`},
		{"generate", `{"model":"m","prompt":"","keep_alive":"0s"}`, `{"model":"m:latest","response":"","done":true,"done_reason":"unload"}`},
		{"embed", `{"model":"m","input":""}`, `{"model":"m:latest","embeddings":[]}`},
		{"embed", `{"model":"m","input":[]}`, `{"model":"m:latest","embeddings":[]}`},
		{"chat", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, ""},
		{"generate", `{"model":"m","prompt":"x"}`, ""},
		{"embed", `{"model":"m","input":"x"}`, ""},
	}
	for _, tt := range tests {
		got, ok := mustParse(t, tt.kind, tt.body).LocalResponse("m:latest")
		if ok != (tt.want != "") {
			t.Errorf("%s %s: ok = %v", tt.kind, tt.body, ok)
			continue
		}
		if !ok {
			continue
		}
		g := decodeJSON(t, got).(map[string]any)
		if _, err := time.Parse(time.RFC3339Nano, str(g["created_at"])); tt.kind != "embed" && err != nil {
			t.Errorf("%s: created_at: %v", tt.kind, err)
		}
		delete(g, "created_at")
		if diff := cmp.Diff(decodeJSON(t, []byte(tt.want)), any(g)); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tt.kind, tt.body, diff)
		}
	}
}

func TestListing(t *testing.T) {
	t.Parallel()
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	models := []ollamaapi.ModelInfo{
		{Name: "qwen2.5-7b", Family: "qwen2", ParameterSize: "7.6B", Quantization: "BF16", ContextLength: 32768,
			Capabilities: []string{"completion", "tools", "vision"}, Size: 15 << 30, ModifiedAt: mod},
		{Name: "llama3:8b"},
	}
	var tags struct {
		Models []struct {
			Name, Model, Digest string
			ModifiedAt          time.Time `json:"modified_at"`
			Size                int64
			Details             map[string]any
		}
	}
	if err := json.Unmarshal(ollamaapi.Tags(models), &tags); err != nil {
		t.Fatal(err)
	}
	if len(tags.Models) != 2 {
		t.Fatalf("tags has %d models, want 2", len(tags.Models))
	}
	m0, m1 := tags.Models[0], tags.Models[1]
	if m0.Name != "qwen2.5-7b:latest" || m0.Model != m0.Name || m1.Name != "llama3:8b" {
		t.Errorf("names %q/%q, %q; want qwen2.5-7b:latest twice, llama3:8b", m0.Name, m0.Model, m1.Name)
	}
	if len(m0.Digest) != 64 || m0.Digest == m1.Digest || !m0.ModifiedAt.Equal(mod) || m0.Size != 15<<30 {
		t.Errorf("model 0 = %+v, want a sha256 digest, the modified time and size", m0)
	}
	wantDetails := map[string]any{"parent_model": "", "format": "gguf", "family": "qwen2", "families": []any{"qwen2"},
		"parameter_size": "7.6B", "quantization_level": "BF16"}
	if diff := cmp.Diff(wantDetails, m0.Details); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	if got := string(ollamaapi.Tags(nil)); got != `{"models":[]}` {
		t.Errorf("ollamaapi.Tags(nil) = %s", got)
	}

	var show map[string]any
	if err := json.Unmarshal(ollamaapi.Show(models[0]), &show); err != nil {
		t.Fatal(err)
	}
	info, _ := show["model_info"].(map[string]any)
	if info["general.architecture"] != "qwen2" || info["qwen2.context_length"] != 32768.0 {
		t.Errorf("model_info = %v, want the architecture and qwen2.context_length", info)
	}
	if diff := cmp.Diff([]any{"completion", "tools", "vision"}, show["capabilities"]); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
	if !strings.Contains(str(show["modelfile"]), "FROM qwen2.5-7b:latest") {
		t.Errorf("modelfile = %q", show["modelfile"])
	}
	show = nil
	if err := json.Unmarshal(ollamaapi.Show(models[1]), &show); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"completion"}, show["capabilities"]); diff != "" {
		t.Errorf("default capabilities (-want +got):\n%s", diff)
	}
	if got := string(ollamaapi.Version("0.12.6")); got != `{"version":"0.12.6"}` {
		t.Errorf("OllamaVersion = %s", got)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"qwen2.5-7b": "qwen2.5-7b:latest", "llama3:8b": "llama3:8b", "x:latest": "x:latest",
		"registry:5000/ns/model": "registry:5000/ns/model:latest", "hf.co/org/repo:Q4_K_M": "hf.co/org/repo:Q4_K_M", "": "",
	} {
		if got := ollamaapi.Name(in); got != want {
			t.Errorf("ollamaapi.Name(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"x:latest": "x", "x": "x", "x:8b": "x:8b"} {
		if got := ollamaapi.StripLatest(in); got != want {
			t.Errorf("ollamaapi.StripLatest(%q) = %q, want %q", in, got, want)
		}
	}
}

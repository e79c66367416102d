package mirror_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/sim/simtest"
)

// realModels are the catalogue profiles of the real models each stand-in stands in for.
var realModels = map[string]string{
	"hf://XiaomiMiMo/MiMo-VL-7B-RL": "mimo-vl-7b",
	"ollama://deepseek-r1:32b":      "deepseek-r1-distill-qwen-32b",
	"ollama://deepcoder:14b":        "deepcoder-14b",
	"ollama://qwen2.5:7b":           "qwen2.5-7b",
}

// TestSeedPullSize generates the seed-001 stand-ins, downloads them from the mirror through the
// real pull path, and checks that modelinfo and the performance model size each as the real model
// while it is a few kilobytes on disk.
func TestSeedPullSize(t *testing.T) {
	dir := t.TempDir()
	res, err := mirror.Seed(dir, mirror.SeedExamples["seed-001"])
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range res {
		uris = append(uris, r.URI)
		if r.Bytes > 64<<10 {
			t.Errorf("%s: %d bytes written; a stand-in should be a few KB", r.URI, r.Bytes)
		}
	}
	if diff := cmp.Diff(mirror.SeedExamples["seed-001"], uris); diff != "" {
		t.Errorf("seeded (-want +got):\n%s", diff)
	}
	// Seeding again writes the same bytes (the manifests' digests do not change).
	again, err := mirror.Seed(dir, []string{"ollama://qwen2.5:7b"})
	if err != nil || !slices.Equal(again[0].Files, res[3].Files) {
		t.Errorf("reseeding: %v, files %v, want %v", err, again, res[3].Files)
	}
	if _, err := mirror.Seed(dir, []string{"ollama://nope:1b"}); err == nil || !strings.Contains(err.Error(), "ollama://qwen2.5:7b") {
		t.Errorf("unknown model: %v; want an error listing the known ones", err)
	}

	_, url := mirrortest.Start(t, mirror.Options{Dir: dir}, nil)
	store := t.TempDir()
	p := pull.New(pull.Options{HFEndpoint: url, HFCache: filepath.Join(store, "hf"), OllamaDir: filepath.Join(store, "ollama"),
		OllamaRegistry: strings.TrimPrefix(url, "http://"), OllamaInsecure: true})
	ignore := cmpopts.IgnoreFields(perfmodel.Model{}, "Name", "VisionParams", "EmbeddingParams", "Quant")
	// The catalogue rounds MiMo-VL's count (8.298e9); the stand-in declares the safetensors total.
	near := cmp.Comparer(func(a, b int64) bool { return a == b || float64(a) > 0.999*float64(b) && float64(a) < 1.001*float64(b) })
	for _, uri := range uris {
		t.Run(uri, func(t *testing.T) {
			r, err := p.Pull(t.Context(), pull.Request{URI: uri}, nil)
			if err != nil {
				t.Fatal(err)
			}
			path := r.Dir
			if r.ModelFile != "" {
				path = r.ModelFile // Ollama: the GGUF blob
			}
			info, cfg, err := modelinfo.Inspect(path)
			if err != nil {
				t.Fatal(err)
			}
			if !info.StandIn || info.SizeBytes > 4096 {
				t.Errorf("StandIn %v, %d bytes of weights; want a stand-in of a few hundred bytes", info.StandIn, info.SizeBytes)
			}
			got, err := perfmodel.ModelFromInfo(uri, cfg, info)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := perfmodel.LookupModel(realModels[uri])
			if diff := cmp.Diff(want, got, ignore, near); diff != "" {
				t.Errorf("sized unlike %s (-real +stand-in):\n%s", want.Name, diff)
			}
			wq := want.Quant
			if r.ModelFile != "" {
				wq = perfmodel.QuantQ4KM
			}
			if gb, wb := got.WeightBytes(got.Quant), want.WeightBytes(wq); got.Quant != wq || gb < wb*999/1000 || gb > wb*1001/1000 {
				t.Errorf("weights %s %d bytes; want %s %d", got.Quant, got.WeightBytes(got.Quant), wq, want.WeightBytes(wq))
			}
		})
	}

	// citadel sim --engine ollama with OLLAMA_MODELS at the pulled store.
	gpu, _ := perfmodel.LookupGPU("rtx-4070-ti-super")
	free := []int64{gpu.MemoryBytes} // one card: deepseek-r1:32b does not fit it
	models, skipped, err := sim.OllamaStoreModels(filepath.Join(store, "ollama"), gpu, perfmodel.Options{MaxModelLen: 4096, Parallel: 1}, free)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("store: %v, skipped %v", err, skipped)
	}
	srv, err := sim.NewOllama(sim.OllamaConfig{Models: models, GPUFree: free, TimeScale: 0})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := simtest.Serve(t, srv)
	var tags struct {
		Models []struct {
			Name    string
			Size    int64
			Details struct {
				Family            string `json:"family"`
				ParameterSize     string `json:"parameter_size"`
				QuantizationLevel string `json:"quantization_level"`
				Format            string `json:"format"`
			}
		}
	}
	getJSON(t, base+"/api/tags", &tags)
	var names, sizes []string
	for _, m := range tags.Models {
		names = append(names, m.Name)
		sizes = append(sizes, m.Name+" "+m.Details.Family+" "+m.Details.ParameterSize+" "+m.Details.QuantizationLevel+" "+m.Details.Format)
		if m.Size < 4<<30 {
			t.Errorf("%s lists %d bytes; a stand-in lists at the size of the weights it stands in for", m.Name, m.Size)
		}
	}
	slices.Sort(names)
	slices.Sort(sizes)
	if diff := cmp.Diff([]string{"deepcoder:14b qwen2 14.8B Q4_K_M gguf", "deepseek-r1:32b qwen2 32.8B Q4_K_M gguf", "qwen2.5:7b qwen2 7.6B Q4_K_M gguf"}, sizes); diff != "" {
		t.Errorf("/api/tags (-want +got):\n%s", diff)
	}
	code, body := postJSON(t, base+"/api/chat", `{"model":"deepcoder:14b","messages":[{"role":"user","content":"write a loop"}],"stream":false,"options":{"num_predict":5}}`)
	if code != 200 || !strings.Contains(body, `"model":"deepcoder:14b"`) || !strings.Contains(body, `"eval_count":5`) {
		t.Errorf("/api/chat deepcoder:14b: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/v1/chat/completions", `{"model":"qwen2.5:7b","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`)
	if code != 200 || !strings.Contains(body, `"model":"qwen2.5:7b"`) {
		t.Errorf("/v1/chat/completions qwen2.5:7b: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/api/generate", `{"model":"deepseek-r1","prompt":"hi"}`)
	if code != 404 || body != `{"error":"model 'deepseek-r1' not found"}` {
		t.Errorf("a name without its tag is :latest, which is not in the store: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/v1/chat/completions", `{"model":"llama3:8b","messages":[{"role":"user","content":"hi"}]}`)
	if code != 404 || !strings.Contains(body, `"message":"model 'llama3:8b' not found","type":"not_found_error"`) {
		t.Errorf("OpenAI front, unknown model: %d %s", code, body)
	}
	// deepcoder:14b and qwen2.5:7b fit the card together; deepseek-r1:32b (19.9 GB in Q4_K_M)
	// does not fit it at all: it fills the card, the rest of its layers on the CPU, which evicts
	// the two loaded models; size_vram is what is on the GPU.
	var ps struct {
		Models []struct {
			Name     string
			Size     int64
			SizeVRAM int64 `json:"size_vram"`
		}
	}
	getJSON(t, base+"/api/ps", &ps)
	if len(ps.Models) != 2 {
		t.Errorf("/api/ps: %+v; want deepcoder:14b and qwen2.5:7b loaded together", ps.Models)
	}
	postJSON(t, base+"/api/generate", `{"model":"deepseek-r1:32b","prompt":"think","stream":false,"options":{"num_predict":2}}`)
	getJSON(t, base+"/api/ps", &ps)
	if len(ps.Models) != 1 || ps.Models[0].Name != "deepseek-r1:32b" || ps.Models[0].SizeVRAM >= ps.Models[0].Size || ps.Models[0].SizeVRAM > gpu.MemoryBytes {
		t.Errorf("/api/ps after loading deepseek-r1:32b: %+v; want it alone (the others evicted), partly on the CPU", ps.Models)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func postJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

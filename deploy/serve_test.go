package deploy_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt() // the citadel binary serveMetrics built for the simulated engines
	os.Exit(code)
}

// A small Qwen2 model: its config and one tensor.
const textConfig = `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","transformers_version":"4.43.1",
"hidden_size":1024,"intermediate_size":2816,"num_hidden_layers":8,"num_attention_heads":16,"num_key_value_heads":4,
"vocab_size":32000,"max_position_embeddings":8192}`

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
	return append(append(out, hdr...), make([]byte, n)...)
}

// sample is one series of a scrape: its name, labels and value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseText reads the Prometheus text format's samples (comments left out).
func parseText(t *testing.T, text string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		head, val, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i > 0 {
			head, val, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		v, err := strconv.ParseFloat(strings.Fields(val + " x")[0], 64)
		if !ok || err != nil {
			t.Fatalf("scrape line %q: no value", line)
		}
		s := sample{labels: map[string]string{}, value: v}
		name, rest, _ := strings.Cut(head, "{")
		s.name = name
		rest = strings.TrimSuffix(rest, "}")
		for rest != "" {
			k, r, _ := strings.Cut(rest, `="`)
			var b strings.Builder
			i := 0
			for ; i < len(r) && r[i] != '"'; i++ {
				if r[i] == '\\' && i+1 < len(r) {
					i++
				}
				b.WriteByte(r[i])
			}
			s.labels[k] = b.String()
			rest = strings.TrimPrefix(r[min(i+1, len(r)):], ",")
		}
		out = append(out, s)
	}
	return out
}

// find returns the value of the series of name whose labels include want.
func find(samples []sample, name string, want map[string]string) (float64, bool) {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// serveMetrics runs citadel serve in-process (admin token, a simulated RTX 4090, simulated
// engines, a mirror it downloads from), applies a model and an InferenceService of it, waits
// until the service is Ready and returns its admin /metrics, scraped with the token as
// Prometheus sends it.
func serveMetrics(t *testing.T) []sample {
	t.Helper()
	bin := simtest.Citadel(t)
	mdir := t.TempDir()
	repo := filepath.Join(mdir, "hf", "org", "text")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": safetensors(512, 512)} {
		if err := os.WriteFile(filepath.Join(repo, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, hub := mirrortest.Start(t, mirror.Options{Dir: mdir}, nil)

	dir := t.TempDir()
	inv, err := placement.FakeInventory("rtx-4090")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "deploy-test-token"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{DataDir: filepath.Join(dir, "state"), AdminListener: ln, AdminToken: token,
			Version: v1.VersionInfo{Version: "deploy-test", GoVersion: "go"},
			Puller:  pull.New(pull.Options{HFEndpoint: hub, HFCache: filepath.Join(dir, "hf", "hub")}),
			Agent:   agent.Options{StatusEvery: 100 * time.Millisecond},
			Serving: &serving.Options{Inventory: inv, Simulate: &serving.Simulation{Citadel: bin, TimeScale: 0}}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("citadel serve: %v", err)
		}
	})
	c, err := client.New(ln.Addr().String(), client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	items, errs := config.Decode(strings.NewReader(fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: text}
spec:
  storage: {storageUri: "hf://org/text", path: %q}
---
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: text}
spec:
  model: {name: text}
`, filepath.Join(dir, "models", "text"))), "kit.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	var req v1.ApplyRequest
	for _, it := range items {
		b, _ := json.Marshal(it.Object)
		req.Items = append(req.Items, v1.ApplyItem{Object: b})
	}
	if _, err := c.Apply(t.Context(), req); err != nil {
		t.Fatal(err)
	}

	scrape := func(tok string) (int, string) {
		t.Helper()
		r, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+ln.Addr().String()+"/metrics", nil)
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("admin /metrics without the token: %d, want 401", code)
	}
	// The service is Ready in a few seconds (download, simulated engine start); 60 s bounds it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, text := scrape(token)
		if code != http.StatusOK {
			t.Fatalf("admin /metrics: %d %s", code, text)
		}
		samples := parseText(t, text)
		if v, _ := find(samples, "citadel_service_phase", map[string]string{"name": "text", "phase": "Ready"}); v == 1 {
			return samples
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service is not Ready after 60 s; model and service series:\n%s", grep(text, "citadel_model_phase", "citadel_service_phase"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// grep keeps the lines with one of the prefixes and value 1.
func grep(text string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) && strings.HasSuffix(l, " 1") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// checkServeValues checks what the scrape of a Ready service on a simulated RTX 4090 says:
// what an operator reads off the dashboard.
func checkServeValues(t *testing.T, s []sample) {
	t.Helper()
	model := map[string]string{"kind": "ClusterBaseModel", "namespace": "", "name": "text"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	size := float64(len(safetensors(512, 512)) + len(textConfig))
	svc := map[string]string{"namespace": "default", "name": "text"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		says   string
	}{
		{"citadel_model_phase", with(model, "phase", "Ready"), eq(1), "1"},
		{"citadel_model_phase", with(model, "phase", "Downloading"), eq(0), "0"},
		{"citadel_model_size_bytes", model, eq(size), fmt.Sprint(size)},
		{"citadel_model_download_bytes", model, eq(size), fmt.Sprint(size)},
		{"citadel_service_replicas_ready", svc, eq(1), "1"},
		{"citadel_service_replicas", svc, eq(1), "1"},
		{"citadel_gpu_memory_bytes", map[string]string{"gpu": "0", "kind": "citadel"}, func(v float64) bool { return v > 1<<30 }, "> 1 GiB (the engine's reservation)"},
		{"citadel_gpu_memory_bytes", map[string]string{"gpu": "0", "kind": "total"}, func(v float64) bool { return v > 20<<30 }, "> 20 GiB (an RTX 4090)"},
		{"citadel_gpu_engines", map[string]string{"gpu": "0"}, eq(1), "1"},
		{"citadel_agent_downloads_total", map[string]string{"result": "succeeded"}, eq(1), "1"},
		{"citadel_agent_fetched_bytes_total", nil, eq(size), fmt.Sprint(size)},
		{"citadel_store_objects", map[string]string{"kind": "InferenceService"}, eq(1), "1"},
		{"citadel_build_info", map[string]string{"version": "deploy-test"}, eq(1), "1"},
	} {
		v, ok := find(s, c.name, c.labels)
		if !ok || !c.want(v) {
			t.Errorf("%s%v = %v (found %t), want %s", c.name, c.labels, v, ok, c.says)
		}
	}
	planned, _ := find(s, "citadel_gpu_memory_bytes", map[string]string{"gpu": "0", "kind": "citadel"})
	total, _ := find(s, "citadel_gpu_memory_bytes", map[string]string{"gpu": "0", "kind": "total"})
	t.Logf("citadel serve: model text Ready (%.0f bytes), service text Ready, GPU 0: Citadel holds %.1f of %.1f GiB; %d series",
		size, planned/(1<<30), total/(1<<30), len(s))
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

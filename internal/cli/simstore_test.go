package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMirrorSeedAndSimStore seeds the seed-001 stand-ins, then runs citadel sim --engine ollama
// as the serving controller starts the shared Ollama (OLLAMA_MODELS, OLLAMA_HOST, keep-alive,
// parallel, --gpu-free-memory) on the mirror's Ollama directory, which is an Ollama store.
func TestMirrorSeedAndSimStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mirror")
	r := citadelEnv(t, nil, "", "mirror", "seed", dir, "--example", "seed-001")
	if r.code != ExitOK {
		t.Fatalf("mirror seed: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"hf://XiaomiMiMo/MiMo-VL-7B-RL", "stand-in for 8.29B parameters, bfloat16, 36 layers, context 32768",
		"ollama://deepseek-r1:32b", "stand-in for 32.8B parameters, Q4_K_M, 64 layers, context 131072",
		"citadel mirror serve --dir " + dir, "HF_ENDPOINT=http://127.0.0.1:8090 citadel serve --gpus 2xrtx-4070-ti-super --simulate-engines --ollama-registry 127.0.0.1:8090",
		"citadel apply -f examples/seed-001/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mirror seed output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := citadelEnv(t, nil, "", "mirror", "seed", dir); r.code != ExitUsage || !strings.Contains(r.stderr, "--example NAME or URIs") {
		t.Errorf("seed without models: exit %d %q", r.code, r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	env := map[string]string{"OLLAMA_MODELS": filepath.Join(dir, "ollama"), "OLLAMA_HOST": "127.0.0.1:" + strconv.Itoa(port),
		"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_NUM_PARALLEL": "2", "CUDA_VISIBLE_DEVICES": "0,1"}
	ctx, cancel := context.WithCancel(context.Background())
	stdout := &syncBuffer{}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"sim", "--engine", "ollama", "--gpu", "rtx-4070-ti-super", "--time-scale", "0", "--gpu-free-memory", "16GiB,16GiB"},
			strings.NewReader(""), stdout, &stderr, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("exit %d after cancel; stderr %q", code, stderr.String())
		}
	})
	re := regexp.MustCompile(`Listening on (\S+) `)
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
		}
	}
	if addr != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("listening on %q, want OLLAMA_HOST's 127.0.0.1:%d; stdout %q stderr %q", addr, port, stdout.String(), stderr.String())
	}
	for _, want := range []string{"model deepseek-r1:32b: 32.8B Q4_K_M (stand-in), 19.9 GB weights, context 4096 × 2 slots; 65/65 layers on 2× rtx-4070-ti-super",
		"model qwen2.5:7b: 7.6B Q4_K_M (stand-in)", "2 parallel"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("start-up lines lack %q:\n%s", want, stdout.String())
		}
	}
	base := "http://" + addr
	tags := func() []string {
		_, b := getBody(t, base+"/api/tags")
		return regexp.MustCompile(`"name":"([^"]+)"`).FindAllString(b, -1)
	}
	names := tags()
	if diff := cmp.Diff(3, len(names)); diff != "" || !strings.Contains(strings.Join(names, " "), `"name":"deepcoder:14b"`) {
		t.Errorf("/api/tags names %v; want the three Ollama models", names)
	}
	code, body := postBody(t, base+"/api/chat", `{"model":"deepcoder:14b","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"num_predict":3}}`)
	if code != 200 || !strings.Contains(body, `"eval_count":3`) {
		t.Errorf("/api/chat deepcoder:14b: %d %s", code, body)
	}
	// A model deleted while the server runs is gone; pulled again, it is back.
	man := filepath.Join(dir, "ollama", "manifests", "registry.ollama.ai", "library", "qwen2.5", "7b")
	if err := os.Rename(man, man+".away"); err != nil {
		t.Fatal(err)
	}
	if code, body := postBody(t, base+"/api/generate", `{"model":"qwen2.5:7b","prompt":"hi"}`); code != 404 || body != `{"error":"model 'qwen2.5:7b' not found"}` {
		t.Errorf("deleted model: %d %s", code, body)
	}
	if err := os.Rename(man+".away", man); err != nil {
		t.Fatal(err)
	}
	if code, body := postBody(t, base+"/api/generate", `{"model":"qwen2.5:7b","prompt":"hi","stream":false,"options":{"num_predict":2}}`); code != 200 {
		t.Errorf("model pulled while the server runs: %d %s", code, body)
	}
}

func postBody(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"17179869184": 17179869184, "16GiB": 16 << 30, "6.5GiB": 13 << 29,
		"512MiB": 512 << 20, "16GB": 16e9, "16 gib": 16 << 30, "0": -1, "-1GiB": -1, "16GiG": -1, "": -1} {
		got, err := parseByteSize(in)
		if want < 0 {
			if err == nil {
				t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseOllamaHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"127.0.0.1:11500": "127.0.0.1 11500", "http://0.0.0.0:8080": "0.0.0.0 8080",
		"localhost": "localhost 11434", "[::1]:9000": "::1 9000"} {
		h, p, err := parseOllamaHost(in)
		if got := h + " " + strconv.Itoa(p); err != nil || got != want {
			t.Errorf("parseOllamaHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

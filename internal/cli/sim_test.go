package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSimRefusesModelThatDoesNotFit(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "--engine", "vllm", "--gpu", "rtx-4070-ti-super", "--model", "XiaomiMiMo/MiMo-VL-7B-RL", "--port", "0"},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != ExitError {
		t.Errorf("exit %d, want %d", code, ExitError)
	}
	if !strings.Contains(stderr.String(), "mimo-vl-7b bf16 on 1× rtx-4070-ti-super: CUDA out of memory") {
		t.Errorf("stderr %q, want vLLM's out-of-memory refusal", stderr.String())
	}
}

func TestSimUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--engine", "tgi", "--gpu", "l4", "--model", "qwen2.5-7b"}, "unknown engine"},
		{[]string{"sim", "--engine", "vllm", "--gpu", "l4", "--model", "qwen2.5-7b", "--tp-size", "2"}, "--tp-size is a flag of sglang, not of vllm"},
		{[]string{"sim", "--engine", "sglang", "--gpu", "l4", "--model-path", "qwen2.5-7b", "--max-num-seqs", "8"}, "--max-num-seqs is a flag of vllm, not of sglang"},
		{[]string{"sim", "--engine", "llamacpp", "--gpu", "l4", "-m", "qwen2.5-7b.gguf", "--served-model-name", "q"}, "--served-model-name is a flag of vllm and sglang, not of llamacpp"},
		{[]string{"sim", "--engine", "llamacpp", "--gpu", "l4", "-m", "/m/qwen2.5-7b-instruct-q8_0.gguf", "--port", "0"}, "not q8_0"},
		{[]string{"sim", "--gpu", "l4", "qwen2.5-7b", "extra"}, "at most one model argument"},
		{[]string{"sim", "--gpu", "l4", "--model", "qwen2.5-7b", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"sim", "--model", "qwen2.5-7b"}, "--gpu is required"},
		{[]string{"sim", "--gpu", "l4", "--model", "gpt-5"}, "no built-in profile"},
		{[]string{"sim", "--gpu", "l4", "--model", "qwen2.5-7b", "--max-model-len", "lots"}, "--max-model-len"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
			if code != ExitUsage || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), ExitUsage, tt.want)
			}
		})
	}
}

func TestSimServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &syncBuffer{}
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"sim", "Qwen/Qwen2.5-7B-Instruct", "--gpu", "h100-sxm", "--host", "127.0.0.1", "--port", "0",
			"--max-model-len", "8K", "--time-scale", "0", "--trust-remote-code", "--api-key", "k"},
			strings.NewReader(""), stdout, &stderr, func(string) string { return "" })
	}()
	addr := regexp.MustCompile(`Starting vLLM API server on http://(\S+)`)
	var m []string
	for deadline := time.Now().Add(5 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		m = addr.FindStringSubmatch(stdout.String())
	}
	if m == nil {
		t.Fatalf("no start-up line; stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "Maximum concurrency for 8192 tokens per request") {
		t.Errorf("stdout lacks the plan: %q", stdout.String())
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+m[1]+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body.String(), `"id":"Qwen/Qwen2.5-7B-Instruct"`) || !strings.Contains(body.String(), `"max_model_len":8192`) {
		t.Errorf("/v1/models: %d %s", resp.StatusCode, body.String())
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Errorf("exit %d after cancel, want 0; stderr %q", code, stderr.String())
	}
}

// startSim runs citadel sim with args (plus --port 0 --host 127.0.0.1) until the test ends and
// returns the address from the start-up line that matches addrLine.
func startSim(t *testing.T, addrLine string, args ...string) (addr string, stdout *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout = &syncBuffer{}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append(append([]string{"sim"}, args...), "--host", "127.0.0.1", "--port", "0"),
			strings.NewReader(""), stdout, &stderr, func(string) string { return "" })
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("exit %d after cancel; stderr %q", code, stderr.String())
		}
	})
	re := regexp.MustCompile(addrLine)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stdout
		}
	}
	t.Fatalf("no start-up line matching %s; stdout %q stderr %q", addrLine, stdout.String(), stderr.String())
	return "", nil
}

func getBody(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestSimLlamaCPPFlags: llama-server's own command line, single-dash long options included.
func TestSimLlamaCPPFlags(t *testing.T) {
	addr, _ := startSim(t, `server is listening on http://(\S+)`, "--engine", "llamacpp", "--gpu", "rtx-4090",
		"-m", "/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf", "-c", "16384", "-np", "4", "-ngl", "99", "-fa", "on", "--metrics",
		"--jinja", "-a", "qwen", "--time-scale", "0")
	code, body := getBody(t, "http://"+addr+"/props")
	if code != 200 || !strings.Contains(body, `"total_slots":4`) || !strings.Contains(body, `"n_ctx":4096`) ||
		!strings.Contains(body, `"model_path":"/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf"`) {
		t.Errorf("/props: %d %s", code, body)
	}
	if code, body := getBody(t, "http://"+addr+"/metrics"); code != 200 || !strings.Contains(body, "llamacpp:requests_processing 0") {
		t.Errorf("/metrics with --metrics: %d %s", code, body)
	}
	if _, body := getBody(t, "http://"+addr+"/v1/models"); !strings.Contains(body, `"id":"qwen"`) {
		t.Errorf("/v1/models: -a qwen not reported: %s", body)
	}
}

// TestSimSGLangFlags: sglang.launch_server's flags, its default-off /metrics and its log line.
func TestSimSGLangFlags(t *testing.T) {
	addr, out := startSim(t, `Uvicorn running on http://(\S+)`, "--engine", "sglang", "--gpu", "h100-sxm",
		"--model-path", "Qwen/Qwen2.5-7B-Instruct", "--tp", "2", "--context-length", "8192", "--mem-fraction-static", "0.8",
		"--enable-metrics", "--trust-remote-code", "--time-scale", "0")
	if !strings.Contains(out.String(), "The server is fired up and ready to roll!") {
		t.Errorf("stdout lacks SGLang's ready line: %q", out.String())
	}
	if code, body := getBody(t, "http://"+addr+"/get_server_info"); code != 200 || !strings.Contains(body, `"tp_size":2`) ||
		!strings.Contains(body, `"context_length":8192`) || !strings.Contains(body, `"mem_fraction_static":0.8`) {
		t.Errorf("/get_server_info: %d %s", code, body)
	}
	if code, body := getBody(t, "http://"+addr+"/metrics"); code != 200 || !strings.Contains(body, "sglang:num_queue_reqs{") {
		t.Errorf("/metrics: %d %s", code, body)
	}
}

// TestSimFaultFlags: --oom-at-load exits 1 with CUDA's error; --bind-after-startup keeps the port
// closed while "loading".
func TestSimFaultFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"sim", "--gpu", "h100-sxm", "--model", "qwen2.5-7b", "--port", "0", "--oom-at-load"},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != ExitError || !strings.Contains(stderr.String(), "torch.OutOfMemoryError: CUDA out of memory") {
		t.Errorf("--oom-at-load: exit %d, stderr %q", code, stderr.String())
	}

	start := time.Now()
	addr, _ := startSim(t, `Starting vLLM API server on http://(\S+)`, "--gpu", "h100-sxm", "--model", "qwen2.5-7b",
		"--startup-delay", "300ms", "--bind-after-startup", "--time-scale", "0")
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("listening after %s, before the 300ms start-up delay", waited)
	}
	if code, _ := getBody(t, "http://"+addr+"/health"); code != 200 {
		t.Errorf("/health after start-up: %d", code)
	}
}

// TestSimModelDirectory: --model pointing at a model directory is costed from its config.json.
func TestSimModelDirectory(t *testing.T) {
	dir := t.TempDir()
	config := `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":896,"num_hidden_layers":24,
		"num_attention_heads":14,"num_key_value_heads":2,"intermediate_size":4864,"vocab_size":151936,
		"max_position_embeddings":32768,"tie_word_embeddings":true,"torch_dtype":"bfloat16"}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, out := startSim(t, `Starting vLLM API server on http://(\S+)`, "--gpu", "l4", "--model", dir, "--time-scale", "0")
	if !strings.Contains(out.String(), "Maximum concurrency for 32768 tokens per request") {
		t.Errorf("the directory's context length is not used: %q", out.String())
	}
	if code, body := getBody(t, "http://"+addr+"/v1/models"); code != 200 || !strings.Contains(body, `"max_model_len":32768`) {
		t.Errorf("/v1/models: %d %s", code, body)
	}
}

package cli

import (
	"bytes"
	"context"
	"net/http"
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
		{[]string{"sim", "--engine", "llamacpp", "--gpu", "l4", "--model", "qwen2.5-7b"}, "not yet available"},
		{[]string{"sim", "--engine", "tgi", "--gpu", "l4", "--model", "qwen2.5-7b"}, "unknown engine"},
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

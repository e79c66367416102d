package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMirrorUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"mirror", "serve"}, ExitUsage, "--dir is required"},
		{[]string{"mirror", "serve", "--dir", missing}, ExitError, "does not exist"},
		{[]string{"mirror", "serve", "--dir", file}, ExitError, "is not a directory"},
		{[]string{"mirror", "serve", "--dir", t.TempDir(), "--token", ""}, ExitUsage, "--token"},
		{[]string{"mirror", "serve", "--dir", t.TempDir(), "--addr", "256.0.0.1:1"}, ExitError, "cannot listen"},
		{[]string{"mirror", "hash"}, ExitUsage, "--dir is required"},
		{[]string{"mirror"}, ExitUsage, "subcommand"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, nil, &stdout, &stderr, func(string) string { return "" })
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}

func TestMirrorServeAndHash(t *testing.T) {
	dir := t.TempDir()
	for p, content := range map[string]string{
		"hf/acme/tiny/config.json":  "{}\n",
		"hf/acme/tiny/hello.txt":    "hello\n",
		"hf/acme/priv/.mirror.json": `{"private": true}`,
		"hf/acme/priv/a.txt":        "a\n",
	} {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	if code := run(context.Background(), []string{"mirror", "hash", "--dir", dir}, nil, &out, io.Discard, func(string) string { return "" }); code != 0 {
		t.Fatalf("mirror hash: exit %d", code)
	}
	if !strings.Contains(out.String(), "2 repos, 2 revisions, 3 files") || !strings.Contains(out.String(), "3 hashed, 0 from the cache") {
		t.Errorf("mirror hash printed %q", out.String())
	}
	out.Reset()
	run(context.Background(), []string{"mirror", "hash", "--dir", dir}, nil, &out, io.Discard, func(string) string { return "" })
	if !strings.Contains(out.String(), "0 hashed, 3 from the cache") {
		t.Errorf("second mirror hash printed %q", out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mirror", "serve", "--dir", dir, "--addr", "127.0.0.1:0", "--token", "alice=hf_alice"},
			nil, io.Discard, pw, func(k string) string {
				if k == "CITADEL_MIRROR_TOKENS" {
					return "ignored=hf_ignored" // flags win over the environment
				}
				return ""
			})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	re := regexp.MustCompile(`^citadel mirror: serving (\S+) on http://(\S+) \(HF_ENDPOINT=http://(\S+); Ollama registry at (\S+)\)$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			if m[2] != m[3] || m[2] != m[4] {
				t.Errorf("addresses differ: %q", sc.Text())
			}
			addr = m[2]
			break
		}
	}
	if addr == "" {
		t.Fatalf("no serving line (exit %d)", <-done)
	}
	go io.Copy(io.Discard, pr) // keep draining the logs

	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/acme/tiny/resolve/main/hello.txt", ""); code != 200 || body != "hello\n" {
		t.Errorf("resolve: %d %q", code, body)
	}
	if code, body := get("/api/whoami-v2", "hf_alice"); code != 200 || !strings.Contains(body, `"name":"alice"`) {
		t.Errorf("whoami: %d %s", code, body)
	}
	if code, _ := get("/acme/priv/resolve/main/a.txt", "hf_alice"); code != 200 {
		t.Errorf("private repo with token: %d", code)
	}
	if code, _ := get("/acme/priv/resolve/main/a.txt", "hf_ignored"); code != 401 {
		t.Errorf("private repo with the env token: %d, want 401", code)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("mirror serve exited %d after Ctrl-C", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mirror serve did not stop")
	}
}

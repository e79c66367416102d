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

	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
)

func TestMirrorCacheUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"mirror", "serve", "--upstream", "http://127.0.0.1:1"}, "need --cache"},
		{[]string{"mirror", "serve", "--cache", t.TempDir(), "--dir", t.TempDir()}, "not both"},
		{[]string{"mirror", "serve", "--cache", t.TempDir(), "--token", "hf_x"}, "--token is for --dir"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, nil, io.Discard, &stderr, func(string) string { return "" })
			if code != ExitUsage || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), ExitUsage, tt.stderr)
			}
		})
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"mirror", "serve", "--cache", t.TempDir(), "--upstream", "ftp://x"}, nil, io.Discard, &stderr, func(string) string { return "" })
	if code != ExitError || !strings.Contains(stderr.String(), "not an http(s) URL") {
		t.Errorf("bad upstream: exit %d, stderr %q", code, stderr.String())
	}
}

func TestMirrorServeCache(t *testing.T) {
	up := t.TempDir()
	p := filepath.Join(up, "hf", "acme", "tiny", "hello.txt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, upURL := mirrortest.Start(t, mirror.Options{Dir: up}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"mirror", "serve", "--cache", t.TempDir(), "--upstream", upURL, "--ollama-upstream", upURL, "--addr", "127.0.0.1:0"},
			nil, io.Discard, pw, func(string) string { return "" })
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	re := regexp.MustCompile(`^citadel mirror: caching (\S+) and (\S+) in (\S+) on http://(\S+) \(HF_ENDPOINT=`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[4]
			break
		}
	}
	if addr == "" {
		t.Fatalf("no serving line (exit %d)", <-done)
	}
	go io.Copy(io.Discard, pr)

	c := &http.Client{Timeout: 10 * time.Second}
	for range 2 {
		resp, err := c.Get("http://" + addr + "/acme/tiny/resolve/main/hello.txt")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hello\n" {
			t.Errorf("resolve through the cache: %d %q", resp.StatusCode, b)
		}
	}
	if n := m.Requests().Files["hf/acme/tiny/hello.txt"].Requests; n != 1 {
		t.Errorf("upstream served hello.txt %d times for two requests, want 1", n)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("mirror serve --cache exited %d after Ctrl-C", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mirror serve --cache did not stop")
	}
}

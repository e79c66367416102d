// Package e2e runs Citadel as a user does, from the shell: the citadel binary, the example
// files of the repository unchanged, a mirror seeded by citadel itself, and simulated engines.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt()
	os.Exit(code)
}

// freeAddr is a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// host is a sandbox for one user: a home, a state directory, and the processes it started.
type host struct {
	t   *testing.T
	bin string
	env []string
}

func newHost(t *testing.T) *host {
	home := t.TempDir()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, k := range []string{"HOME=", "XDG_STATE_HOME=", "HF_HOME=", "HF_ENDPOINT=", "OLLAMA_MODELS=", "CITADEL_"} {
			if strings.HasPrefix(kv, k) {
				return true
			}
		}
		return false
	})
	env = append(env, "HOME="+home, "XDG_STATE_HOME="+filepath.Join(home, "state"))
	return &host{t: t, bin: simtest.Citadel(t), env: env}
}

// run runs citadel to completion and returns its output; a failure fails the test.
func (h *host) run(args ...string) string {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("citadel %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs citadel in the background until the test ends; its output goes to the test log
// when the test fails.
func (h *host) start(extraEnv []string, args ...string) *exec.Cmd {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(slices.Clone(h.env), extraEnv...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if h.t.Failed() {
			h.t.Logf("citadel %s output:\n%s", args[0], out.String())
		}
	})
	return cmd
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitHTTP waits until url answers.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// services lists the InferenceServices by name.
func services(t *testing.T, c *client.Client) map[string]*v1.InferenceService {
	t.Helper()
	objs, err := c.List(t.Context(), v1.KindInferenceService, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1.InferenceService{}
	for _, o := range objs {
		s := o.(*v1.InferenceService)
		out[s.Name] = s
	}
	return out
}

// chat sends one request through the gateway and returns the status, the route header and
// the body.
func chat(ctx context.Context, url, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Citadel-Route"), string(b), err
}

func openAI(model, text string, image bool) string {
	content := any(text)
	if image {
		content = []any{map[string]any{"type": "text", "text": text},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="}}}
	}
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 8, "messages": []any{map[string]any{"role": "user", "content": content}}})
	return string(b)
}

func ollamaChat(model, text string) string {
	b, _ := json.Marshal(map[string]any{"model": model, "stream": false, "options": map[string]any{"num_predict": 8},
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return string(b)
}

// TestSeed001 is the newcomer's path: the stand-in mirror, citadel serve on simulated 2× RTX
// 4070 Ti SUPER, examples/seed-001 applied unchanged; every model pulled through the real
// download path, the Ollama models in one shared engine, requests routed by task on both
// fronts and by Ollama names, failover while the vLLM engine is killed, and a service that
// cannot fit refused without disturbing the running engines.
func TestSeed001(t *testing.T) {
	h := newHost(t)
	began := time.Now()
	mirrorDir := t.TempDir()
	h.run("mirror", "seed", mirrorDir, "--example", "seed-001")
	mirror := freeAddr(t)
	h.start(nil, "mirror", "serve", "--dir", mirrorDir, "--addr", mirror)
	waitHTTP(t, "http://"+mirror+"/api/models/XiaomiMiMo/MiMo-VL-7B-RL")

	admin, gw := freeAddr(t), freeAddr(t)
	h.start([]string{"HF_ENDPOINT=http://" + mirror}, "serve", "--data-dir", t.TempDir(), "--admin-addr", admin,
		"--gateway-addr", gw, "--gpus", "2xrtx-4070-ti-super", "--simulate-engines", "--sim-time-scale", "0.01",
		"--ollama-registry", "http://"+mirror)
	waitHTTP(t, "http://"+admin+"/healthz")
	out := h.run("apply", "-f", filepath.Join("..", "..", "examples", "seed-001"), "--server", "http://"+admin)
	t.Logf("apply:\n%s", out)

	c, err := client.New("http://" + admin)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"mimo-vl-7b-rl", "deepseek-r1-32b", "deepcoder-14b", "qwen2-5-7b"}
	deadline := time.Now().Add(4 * time.Minute)
	var svcs map[string]*v1.InferenceService
	for {
		svcs = services(t, c)
		ready := 0
		for _, n := range names {
			if s := svcs[n]; s != nil && s.Status.Phase == v1.ServiceReady {
				ready++
			}
		}
		if ready == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Log(h.run("get", "models", "--server", "http://"+admin))
			t.Log(h.run("get", "isvc", "-A", "-o", "wide", "--server", "http://"+admin))
			for _, n := range names {
				t.Log(h.run("describe", "isvc", n, "--server", "http://"+admin))
			}
			t.Fatalf("the seed-001 services were not all Ready within 4 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("clone to four Ready services: %s", time.Since(began).Round(time.Millisecond))
	// The route is Ready once the gateway's own table reaches a ready replica of every target
	// (a few tens of milliseconds after the services; citadel up waits for it too).
	for {
		o, err := c.Get(t.Context(), v1.KindRoute, "default", "seed-001")
		if err != nil {
			t.Fatal(err)
		}
		if r := o.(*v1.Route); r.Status.Phase == "Ready" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("route seed-001 is %s (%s: %s), not Ready", r.Status.Phase, r.Status.Reason, r.Status.Message)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every model came through the download path, recorded where it lies.
	for _, n := range []string{"mimo-vl-7b-rl", "deepseek-r1-32b", "deepcoder-14b", "qwen2-5-7b"} {
		o, err := c.Get(t.Context(), v1.KindClusterBaseModel, "", n)
		if err != nil {
			t.Fatal(err)
		}
		m := o.(*v1.ClusterBaseModel)
		if m.Status.Phase != v1.ModelReady || len(m.Status.Nodes) == 0 || m.Status.Nodes[0].Path == "" || m.Status.BytesDone == 0 {
			t.Errorf("model %s: phase %s, nodes %+v, %d bytes: want Ready with its path recorded after a download", n, m.Status.Phase, m.Status.Nodes, m.Status.BytesDone)
		}
	}

	// The three Ollama models run in one shared engine.
	ollama := map[string]int{}
	for _, n := range names[1:] {
		eps := svcs[n].Status.Endpoints
		if len(eps) != 1 || eps[0].Engine != "ollama" {
			t.Fatalf("service %s endpoints %+v: want one ollama endpoint", n, eps)
		}
		ollama[eps[0].Address]++
	}
	if len(ollama) != 1 {
		t.Errorf("the Ollama models run in %d engines (%v): want one shared ollama serve", len(ollama), ollama)
	}
	vllm := svcs["mimo-vl-7b-rl"].Status.Endpoints
	if len(vllm) != 1 || vllm[0].Engine != "vllm" || len(vllm[0].GPUs) != 2 {
		t.Fatalf("mimo-vl-7b-rl endpoints %+v: want one vllm engine on both GPUs (tensor parallel 2)", vllm)
	}

	// Routed by task, on both fronts, and by the Ollama names with tags.
	base := "http://" + gw
	cases := []struct {
		name, url, body, service string
	}{
		{"openai general", base + "/v1/chat/completions", openAI("auto", "Hello! Suggest a name for a friendly cat.", false), "mimo-vl-7b-rl"},
		{"openai image", base + "/v1/chat/completions", openAI("auto", "What is in this picture?", true), "mimo-vl-7b-rl"},
		{"openai code", base + "/v1/chat/completions", openAI("auto", "Why does this fail?\n```python\ndef f(x):\n    return x +\n```", false), "deepcoder-14b"},
		{"openai reasoning", base + "/v1/chat/completions", openAI("auto", "Prove step by step that the square root of 2 is irrational.", false), "deepseek-r1-32b"},
		{"ollama general", base + "/api/chat", ollamaChat("auto", "Hello! Suggest a name for a friendly cat."), "mimo-vl-7b-rl"},
		{"ollama code", base + "/api/chat", ollamaChat("auto", "```go\nfunc main() {}\n``` explain"), "deepcoder-14b"},
		{"ollama reasoning", base + "/api/chat", ollamaChat("auto", "Prove step by step that there are infinitely many primes."), "deepseek-r1-32b"},
		{"ollama name with tag", base + "/api/chat", ollamaChat("deepcoder:14b", "hi"), "deepcoder-14b"},
		{"openai ollama name with tag", base + "/v1/chat/completions", openAI("qwen2.5:7b", "hi", false), "qwen2-5-7b"},
		{"ollama name of a reasoning model", base + "/api/chat", ollamaChat("deepseek-r1:32b", "hi"), "deepseek-r1-32b"},
	}
	for _, tc := range cases {
		code, route, body, err := chat(t.Context(), tc.url, tc.body)
		if err != nil || code != http.StatusOK || !strings.Contains(route, "/"+tc.service+"/") {
			t.Errorf("%s: status %d, route %q, err %v, body %.300s: want 200 from %s", tc.name, code, route, err, body, tc.service)
		}
	}

	// Kill the vLLM engine while general requests run: the fallback (qwen2.5 on the shared
	// Ollama) takes them, none fails, and the engine comes back.
	pids := map[string]int{}
	for n, s := range svcs {
		for _, ep := range s.Status.Endpoints {
			pids[n] = ep.PID
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	routes := map[string]int{}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				code, route, body, err := chat(ctx, base+"/v1/chat/completions", openAI("auto", fmt.Sprintf("Hello %d/%d, tell me about the weather.", w, i), false))
				mu.Lock()
				if err != nil || code != http.StatusOK {
					failures = append(failures, fmt.Sprintf("status %d err %v body %.200s", code, err, body))
				}
				_, replica, _ := strings.Cut(route, "replica=")
				routes[replica]++
				mu.Unlock()
				if w == 0 && i == 5 {
					_ = syscall.Kill(pids["mimo-vl-7b-rl"], syscall.SIGKILL)
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of 100 requests failed while the vLLM engine was killed: %v", len(failures), failures[:min(3, len(failures))])
	}
	t.Logf("replicas that answered during the kill: %v", routes)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		s := services(t, c)["mimo-vl-7b-rl"]
		if s.Status.Phase == v1.ServiceReady && len(s.Status.Endpoints) == 1 && s.Status.Endpoints[0].PID != pids["mimo-vl-7b-rl"] {
			pids["mimo-vl-7b-rl"] = s.Status.Endpoints[0].PID
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed vLLM engine did not come back Ready: %+v", s.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// One more service that cannot fit is Unschedulable, names what holds the GPUs, and every
	// running engine keeps its PID.
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	if err := os.WriteFile(extra, []byte("apiVersion: ome.io/v1beta1\nkind: InferenceService\nmetadata: {name: mimo-vl-second}\nspec:\n  model: {name: mimo-vl-7b-rl}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.run("apply", "-f", extra, "--server", "http://"+admin)
	deadline = time.Now().Add(time.Minute)
	for {
		s := services(t, c)["mimo-vl-second"]
		if s != nil && s.Status.Reason == "Unschedulable" {
			if !strings.Contains(s.Status.Message, "mimo-vl-7b-rl") {
				t.Errorf("the refusal does not name what holds the GPUs:\n%s", s.Status.Message)
			}
			t.Logf("refusal:\n%s\n%s", s.Status.Message, strings.Join(s.Status.Placement, "\n"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mimo-vl-second never became Unschedulable: %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a pass that would move engines has run by now
	for n, s := range services(t, c) {
		if n == "mimo-vl-second" {
			continue
		}
		if len(s.Status.Endpoints) == 0 || s.Status.Endpoints[0].PID != pids[n] {
			t.Errorf("service %s: endpoints %+v: its engine (PID %d) was stopped or moved to place another service", n, s.Status.Endpoints, pids[n])
		}
		if s.Status.Reason == "Unschedulable" {
			t.Errorf("service %s carries another service's refusal: %s", n, s.Status.Message)
		}
	}
}

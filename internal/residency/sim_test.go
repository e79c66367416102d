package residency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/sim/simtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	simtest.RemoveBuilt()
	os.Exit(code)
}

// simVLLM starts `citadel sim` as vLLM with sleep mode on a simulated 16 GiB card and returns
// its base URL once it answers.
func simVLLM(t *testing.T, bin, name string) string {
	t.Helper()
	return simEngine(t, bin, name, "/health", "--engine", "vllm", "--gpu", "rtx-4070-ti-super", "--model", "qwen2.5-7b",
		"--quantization", "fp8", "--max-model-len", "8192", "--served-model-name", name, "--enable-sleep-mode", "--time-scale", "1")
}

// simEngine starts `citadel sim` with args on a free loopback port and returns its base URL
// once health answers 200.
func simEngine(t *testing.T, bin, name, health string, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"sim"}, args...), "--host", "127.0.0.1", "--port", fmt.Sprint(port))...)
	cmd.Env = append(os.Environ(), "VLLM_SERVER_DEV_MODE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", name, out.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %s in 30 s", name, health)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type simState struct {
	State           string `json:"state"`
	Level           int    `json:"level"`
	GPUMemoryBytes  int64  `json:"gpu_memory_bytes"`
	HostMemoryBytes int64  `json:"host_memory_bytes"`
	WeightsStale    bool   `json:"weights_stale"`
}

func state(t *testing.T, url string) simState {
	t.Helper()
	resp, err := http.Get(url + "/sim/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s simState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func chat(url, model string) error {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":8}`, model)
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", model, resp.Status)
	}
	return nil
}

// TestSimVLLMSleepWake: two vLLM 7B engines (fp8) with sleep mode on one simulated 16 GiB GPU,
// both started awake as vLLM starts. The manager puts one to sleep to fit the budget, then
// swaps them on requests through the real /sleep, /wake_up, /is_sleeping (and, at level 2,
// /collective_rpc reload_weights) endpoints; /sim/state shows the memory leave and return.
func TestSimVLLMSleepWake(t *testing.T) {
	bin := simtest.Citadel(t)
	urls := map[string]string{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range []string{"qwen-a", "qwen-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := simVLLM(t, bin, n)
			mu.Lock()
			urls[n] = u
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	awake := state(t, urls["qwen-a"]).GPUMemoryBytes
	const floor = 512 << 20
	var events []residency.Event
	var evMu sync.Mutex
	m := residency.New(residency.Config{Budget: map[int]int64{0: 16 << 30}, Tick: 20 * time.Millisecond,
		Events: func(e residency.Event) { evMu.Lock(); events = append(events, e); evMu.Unlock() }})
	levels := map[string]int{"qwen-a": 1, "qwen-b": 2}
	for _, n := range []string{"qwen-a", "qwen-b"} {
		m.Set(residency.Service{Name: "default/" + n, Model: n, GPUs: map[int]int64{0: awake}, Floor: floor, Resident: true,
			LoadTime: 2 * time.Second, Mechanism: &residency.VLLM{BaseURL: urls[n], Level: levels[n]}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Both started awake: 2 × 14.4 GiB is over the 16 GiB budget, so one goes to sleep.
	waitFor(t, "one engine asleep", func() bool {
		a, b := state(t, urls["qwen-a"]), state(t, urls["qwen-b"])
		return (a.State == "sleeping") != (b.State == "sleeping")
	})

	use := func(n string) time.Duration {
		t.Helper()
		start := time.Now()
		release, err := m.Acquire(context.Background(), "default/"+n, nil)
		if err != nil {
			t.Fatalf("acquire %s: %v", n, err)
		}
		defer release()
		took := time.Since(start)
		if err := chat(urls[n], n); err != nil {
			t.Fatalf("request to %s while loaded: %v", n, err)
		}
		return took
	}
	for _, n := range []string{"qwen-a", "qwen-b", "qwen-a"} {
		took := use(n)
		other := "qwen-b"
		if n == "qwen-b" {
			other = "qwen-a"
		}
		s, o := state(t, urls[n]), state(t, urls[other])
		if s.State != "awake" || s.GPUMemoryBytes != awake || s.WeightsStale {
			t.Errorf("%s after acquire: %+v, want awake with %d bytes and fresh weights", n, s, awake)
		}
		if o.State != "sleeping" || o.GPUMemoryBytes != floor {
			t.Errorf("%s while %s serves: %+v, want sleeping with %d bytes", other, n, o, floor)
		}
		if levels[other] == 1 && o.HostMemoryBytes == 0 {
			t.Errorf("%s asleep at level 1 holds no host memory: %+v", other, o)
		}
		t.Logf("%s: acquired after %s (sleep of %s + wake); GPU memory %.2f GiB, %s %.2f GiB", n, took.Round(time.Millisecond),
			other, float64(s.GPUMemoryBytes)/(1<<30), other, float64(o.GPUMemoryBytes)/(1<<30))
	}

	// Interleaved concurrent requests: every one is served, none during a swap of its engine.
	var errs []error
	var emu sync.Mutex
	var rw sync.WaitGroup
	for i := range 12 {
		n := []string{"qwen-a", "qwen-b"}[i%2]
		rw.Add(1)
		go func() {
			defer rw.Done()
			release, err := m.Acquire(context.Background(), "default/"+n, nil)
			if err == nil {
				err = chat(urls[n], n)
				release()
			}
			if err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	rw.Wait()
	if len(errs) > 0 {
		t.Errorf("failed requests: %v", errs)
	}
	evMu.Lock()
	defer evMu.Unlock()
	loads := 0
	for _, e := range events {
		if e.Reason == "Loaded" {
			loads++
			t.Logf("event %s: %s", e.Reason, e.Message)
		}
	}
	// 3 swaps above, then at most 2 for the burst (one per model it touches).
	if loads > 5 {
		t.Errorf("%d loads, want at most 5 (3 swaps, then one per model of the burst)", loads)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30 s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSimSGLangAndOllama: SGLang's memory saver and Ollama's keep_alive, through the real
// endpoints of the simulated engines.
func TestSimSGLangAndOllama(t *testing.T) {
	bin := simtest.Citadel(t)
	ctx := context.Background()
	t.Run("sglang", func(t *testing.T) {
		url := simEngine(t, bin, "sglang", "/health", "--engine", "sglang", "--gpu", "rtx-4070-ti-super",
			"--model-path", "Qwen/Qwen2.5-7B-Instruct", "--quantization", "fp8", "--enable-memory-saver", "--time-scale", "0.2")
		g := &residency.SGLang{BaseURL: url}
		awake := state(t, url).GPUMemoryBytes
		if st, err := g.Evict(ctx); err != nil || st != residency.StateSleeping {
			t.Fatalf("Evict: %s, %v", st, err)
		}
		if s := state(t, url); s.GPUMemoryBytes != 512<<20 {
			t.Errorf("released: %+v, want 512 MiB left", s)
		}
		if _, err := g.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if s := state(t, url); s.GPUMemoryBytes != awake || s.State != "awake" {
			t.Errorf("resumed: %+v, want awake with %d bytes", s, awake)
		}
		if err := chat(url, "qwen"); err != nil {
			t.Errorf("request after resume: %v", err)
		}
	})
	t.Run("ollama", func(t *testing.T) {
		url := simEngine(t, bin, "ollama", "/", "--engine", "ollama", "--gpu", "rtx-4070-ti-super", "--model", "qwen2.5:7b",
			"--quantization", "q4_k_m", "--time-scale", "0.2")
		o := &residency.Ollama{BaseURL: url, Model: "qwen2.5:7b"}
		if ok, err := o.Loaded(ctx); err != nil || ok {
			t.Fatalf("before loading: loaded %v, %v", ok, err)
		}
		if _, err := o.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, _ := o.Loaded(ctx); !ok {
			t.Error("/api/ps does not list the model after Load")
		}
		if st, err := o.Evict(ctx); err != nil || st != residency.StateUnloaded {
			t.Fatalf("Evict: %s, %v", st, err)
		}
		if ok, _ := o.Loaded(ctx); ok {
			t.Error("/api/ps lists the model after Evict")
		}
	})
}

package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"citadel.dev/citadel/internal/sim/simtest"
)

// The gateway benchmarks run real processes: `citadel sim --time-scale 0` engines and a
// `citadel gateway` in front of them, so that the gateway's CPU and RSS are its own. Run by
// hand:
//
//	go test -run '^$' -bench 'Gateway' -benchtime 1x ./internal/gateway/

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc starts the citadel binary with args and waits until url answers.
func proc(b *testing.B, url string, args ...string) *exec.Cmd {
	cmd := exec.Command(simtest.Citadel(b), args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			b.Fatalf("%v did not answer at %s", args, url)
		}
	}
}

func rssMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// gatewayOver starts sims and a gateway routing model "qwen" over them; extra is YAML added
// under the model (e.g. a balancing policy).
func gatewayOver(b *testing.B, sims []string, extra string) (gw string, cmd *exec.Cmd) {
	var targets []string
	for _, s := range sims {
		targets = append(targets, fmt.Sprintf("{url: %q}", s))
	}
	routes := filepath.Join(b.TempDir(), "routes.yaml")
	y := fmt.Sprintf("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: bench}\nspec:\n  models:\n  - name: qwen\n%s    targets: [%s]\n", extra, strings.Join(targets, ", "))
	if err := os.WriteFile(routes, []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	addr := freeAddr(b)
	cmd = proc(b, "http://"+addr+"/healthz", "gateway", "-f", routes, "--addr", addr)
	return "http://" + addr, cmd
}

func startSim(b *testing.B, scale string, extra ...string) string {
	return startSimOn(b, "h100-sxm", scale, extra...)
}

func startSimOn(b *testing.B, gpu, scale string, extra ...string) string {
	addr := freeAddr(b)
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"sim", "--engine", "vllm", "--gpu", gpu, "--model", "qwen2.5-7b", "--served-model-name", "qwen",
		"--host", host, "--port", port, "--time-scale", scale, "--max-model-len", "8192"}, extra...)
	proc(b, "http://"+addr+"/health", args...)
	return "http://" + addr
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxIdleConns: 1024}}

// openLoop sends n requests at rate per second (0: closed loop, one at a time) to url and
// returns their latencies (request to last byte).
func openLoop(b *testing.B, url, body string, rate, n int) []time.Duration {
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	start := time.Now()
	for i := range n {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
		}
		do := func(i int) {
			t0 := time.Now()
			resp, err := benchClient.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
			}
			lat[i] = time.Since(t0)
		}
		if interval == 0 {
			do(i)
			continue
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); do(i) }(i)
	}
	wg.Wait()
	return lat
}

// BenchmarkGatewayOverhead: the same requests direct to a `citadel sim --time-scale 0` and
// through `citadel gateway`, in the same run, at fixed rates; the difference of the
// percentiles is what the gateway adds.
func BenchmarkGatewayOverhead(b *testing.B) {
	sim := startSim(b, "0")
	gw, gcmd := gatewayOver(b, []string{sim}, "")
	idle := rssMB(gcmd.Process.Pid)
	body := `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	// Warm both paths' connections.
	openLoop(b, sim+"/v1/chat/completions", body, 0, 200)
	openLoop(b, gw+"/v1/chat/completions", body, 0, 200)
	var peak float64
	for _, rate := range []int{0, 200, 500, 1000, 2000} {
		name := fmt.Sprintf("rate=%d", rate)
		if rate == 0 {
			name = "sequential"
		}
		b.Run(name, func(b *testing.B) {
			n := max(1000, rate*3)
			var direct, via []time.Duration
			for range b.N {
				// Alternate halves so that drift hits both alike.
				direct = append(direct, openLoop(b, sim+"/v1/chat/completions", body, rate, n/2)...)
				via = append(via, openLoop(b, gw+"/v1/chat/completions", body, rate, n/2)...)
				direct = append(direct, openLoop(b, sim+"/v1/chat/completions", body, rate, n/2)...)
				via = append(via, openLoop(b, gw+"/v1/chat/completions", body, rate, n/2)...)
			}
			peak = max(peak, rssMB(gcmd.Process.Pid))
			ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
			b.ReportMetric(ms(quantile(direct, 0.5)), "direct-p50-ms")
			b.ReportMetric(ms(quantile(via, 0.5)), "gw-p50-ms")
			b.ReportMetric(ms(quantile(via, 0.5)-quantile(direct, 0.5)), "added-p50-ms")
			b.ReportMetric(ms(quantile(via, 0.99)-quantile(direct, 0.99)), "added-p99-ms")
		})
	}
	b.Logf("gateway RSS: %.1f MB idle, %.1f MB peak under load", idle, peak)
}

// BenchmarkGatewayStreaming: per-chunk delay added by the gateway to a 64-token stream.
func BenchmarkGatewayStreaming(b *testing.B) {
	sim := startSim(b, "0")
	gw, _ := gatewayOver(b, []string{sim}, "")
	body := `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":64,"ignore_eos":true,"stream":true}`
	offsets := func(url string) []time.Duration {
		t0 := time.Now()
		resp, err := benchClient.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var out []time.Duration
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				out = append(out, time.Since(t0))
			}
		}
		return out
	}
	var added []time.Duration
	for range max(b.N, 200) {
		d, v := offsets(sim), offsets(gw)
		for i := range min(len(d), len(v)) {
			added = append(added, v[i]-d[i])
		}
	}
	b.ReportMetric(float64(quantile(added, 0.5))/1e6, "added-per-chunk-p50-ms")
	b.ReportMetric(float64(quantile(added, 0.99))/1e6, "added-per-chunk-p99-ms")
}

// BenchmarkGatewayBalancing: four sim vLLM replicas (Qwen2.5-7B on an L4, max-num-seqs 4, so
// queues form) at about 85 % of their capacity (≈ 8.8 requests/s of 136 output tokens in
// simulated time at time scale 0.25); p99 TTFT with round-robin against load-aware balancing,
// and a shared-prefix workload (64 documents of ~1,000 tokens) with round-robin against prefix
// affinity. TTFT is reported in simulated seconds (wall ÷ 0.25).
func BenchmarkGatewayBalancing(b *testing.B) {
	// Capacity: 4 sequences × ≈ 16 tok/s per replica = 256 tok/s for 4 replicas ≈ 1.9
	// requests/s of 136 tokens (simulated) = 7.5 requests/s wall at scale 0.25; 85 % ≈ 6.4.
	const scale, rate, n = 0.25, 6.4, 300
	var sims []string
	for range 4 {
		// A KV cache of ≈ 25 documents per replica: prefix affinity keeps each replica's share
		// of the 64 documents cached, round-robin makes every replica cycle through all 64.
		sims = append(sims, startSimOn(b, "l4", fmt.Sprint(scale), "--max-num-seqs", "4", "--gpu-memory-utilization", "0.75"))
	}
	ttft := func(gw string, prompts func(i int) string, rate float64, n int) []time.Duration {
		out := make([]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range n {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) * float64(time.Second) / rate))))
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				t0 := time.Now()
				// Varying output lengths make replicas unevenly busy.
				mt := 16 + rand.IntN(240)
				body := fmt.Sprintf(`{"model":"qwen","messages":[{"role":"user","content":%q}],"max_tokens":%d,"ignore_eos":true,"stream":true}`, prompts(i), mt)
				resp, err := benchClient.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if strings.Contains(sc.Text(), `"content":"`) && !strings.Contains(sc.Text(), `"content":""`) {
						out[i] = time.Since(t0)
						break
					}
				}
				_, _ = io.Copy(io.Discard, resp.Body)
			}(i)
		}
		wg.Wait()
		return out
	}
	plain := func(i int) string { return fmt.Sprintf("request %d: write a story", i) }
	shared := func(i int) string {
		return strings.Repeat(fmt.Sprintf("shared document %d. ", i%64), 200) + fmt.Sprintf(" question %d", i)
	}
	for _, c := range []struct {
		name, policy string
		prompts      func(int) string
	}{
		{"round-robin", "round-robin", plain},
		{"load-aware", "load-aware", plain},
		{"shared-prefix/round-robin", "round-robin", shared},
		{"shared-prefix/prefix-affinity", "prefix-affinity", shared},
	} {
		b.Run(c.name, func(b *testing.B) {
			gw, _ := gatewayOver(b, sims, "    balancing: {policy: "+c.policy+"}\n")
			var all []time.Duration
			for range b.N {
				all = append(all, ttft(gw, c.prompts, rate, n)...)
			}
			b.ReportMetric(float64(quantile(all, 0.5))/1e9/scale, "ttft-p50-sim-s")
			b.ReportMetric(float64(quantile(all, 0.99))/1e9/scale, "ttft-p99-sim-s")
		})
	}
	_ = context.Background
}

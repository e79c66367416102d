package bench

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
)

// BenchmarkGenerator measures the load generator itself — can it drive a fast server without
// becoming the bottleneck (guidellm measured 6 % less than vllm bench serve at 1,000 requests,
// https://github.com/vllm-project/guidellm/issues/470)? Everything runs in one process on
// loopback: sim-vLLM (Qwen2.5-7B, H100) at time scale 0, Run at rate inf with
// --max-concurrency 64, and the client.
//
//   - requests: chat, max_tokens 1 (one token chunk, the usage chunk, [DONE]): requests/s.
//   - embeddings: /v1/embeddings, non-streaming: requests/s.
//   - sse: chat, max_tokens 256: SSE events/s (chunks with choices: TTFT + ITL samples).
//   - requests-raw, sse-raw: the same streams from a handcrafted server that writes
//     precomputed chunks, to separate the client's cost from the simulator's.
//
// Reported: req/s or events/s, the send lag p99 (ms) and the process's CPU µs per request or
// per event (getrusage; server and client together). Targets on the 2-core box: ≥ 10k req/s,
// ≥ 100k events/s.
//
// Run with: go test -run '^$' -bench BenchmarkGenerator -benchtime 1x ./internal/bench/
func BenchmarkGenerator(b *testing.B) {
	s, err := sim.NewOpenAI(sim.Config{Plan: clPlan(b, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096}),
		ServedModelNames: []string{"qwen"}, TimeScale: 0, NoPrefixCache: true})
	if err != nil {
		b.Fatal(err)
	}
	url := clServe(b, s)
	const conc = 64
	prompts := func(n, outLen int) []Request {
		rs := make([]Request, n)
		for i := range rs {
			rs[i] = Request{Prompt: fmt.Sprintf("request %d: %s", i, strings.Repeat("token ", 16)), PromptLen: 20, OutputLen: outLen}
		}
		return rs
	}
	b.Run("requests-max_tokens=1-c=64", func(b *testing.B) {
		genRun(b, NewClient(Target{BaseURL: url, Model: "qwen"}, conc), prompts(30000, 1), conc, false)
	})
	b.Run("requests-raw-max_tokens=1-c=64", func(b *testing.B) {
		const payload = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}` + "\n\n" +
			`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null}` + "\n\n" +
			`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[],"usage":{"prompt_tokens":20,"total_tokens":21,"completion_tokens":1,"prompt_tokens_details":null}}` + "\n\ndata: [DONE]\n\n"
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, payload)
		}))
		defer ts.Close()
		genRun(b, NewClient(Target{BaseURL: ts.URL, Model: "qwen"}, conc), prompts(30000, 1), conc, false)
	})
	b.Run("embeddings-c=64", func(b *testing.B) {
		genRun(b, NewClient(Target{BaseURL: url, Model: "qwen", API: APIEmbeddings}, conc), prompts(30000, 0), conc, false)
	})
	b.Run("sse-max_tokens=256-c=64", func(b *testing.B) {
		genRun(b, NewClient(Target{BaseURL: url, Model: "qwen"}, conc), prompts(2000, 256), conc, true)
	})
	b.Run("sse-raw-max_tokens=256-c=64", func(b *testing.B) {
		var body strings.Builder
		body.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}` + "\n\n")
		for i := range 256 {
			fmt.Fprintf(&body, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" word%d"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}`+"\n\n", i)
		}
		body.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[],"usage":{"prompt_tokens":20,"total_tokens":276,"completion_tokens":256,"prompt_tokens_details":null}}` + "\n\ndata: [DONE]\n\n")
		payload := body.String()
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			// In pieces of about 16 chunks, as a server flushing every few tokens would.
			f := w.(http.Flusher)
			for p := payload; len(p) > 0; {
				n := min(len(p), 16*240)
				io.WriteString(w, p[:n])
				f.Flush()
				p = p[n:]
			}
		}))
		defer ts.Close()
		genRun(b, NewClient(Target{BaseURL: ts.URL, Model: "qwen"}, conc), prompts(4000, 256), conc, true)
	})
}

func genRun(b *testing.B, c *Client, reqs []Request, conc int, events bool) {
	defer c.Close()
	// Warm the connections and the simulator.
	Run(b.Context(), c, reqs[:min(len(reqs), 4*conc)], LoadOptions{Rate: math.Inf(1), MaxConcurrency: conc})
	b.ResetTimer()
	var total, ev int
	var wall, lagMax time.Duration
	cpu0 := genCPU()
	for range b.N {
		outs, dur, lag := Run(b.Context(), c, reqs, LoadOptions{Rate: math.Inf(1), MaxConcurrency: conc})
		for _, o := range outs {
			if !o.Success {
				b.Fatalf("request failed: %s", o.Error)
			}
			if o.TTFT > 0 {
				ev += 1 + len(o.ITL)
			}
		}
		total += len(outs)
		wall += dur
		lagMax = max(lagMax, lag)
	}
	cpu := genCPU() - cpu0
	b.StopTimer()
	if events {
		b.ReportMetric(float64(ev)/wall.Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(ev), "cpu-µs/event")
	} else {
		b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/req")
	}
	b.ReportMetric(float64(total)/wall.Seconds(), "req/s")
	b.ReportMetric(float64(lagMax)/1e6, "send-lag-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// genCPU is the process's user + system CPU time.
func genCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package perfmodel

import (
	"fmt"
	"testing"
)

// BenchmarkSchedulerStep measures the simulator's own CPU cost with 2,000 concurrent streams:
// a closed loop on an H200 where each finished request is replaced at once.
func BenchmarkSchedulerStep(b *testing.B) {
	p := mustPlan(b, "h200", "qwen2.5-7b", Options{MaxModelLen: 4096, MaxNumSeqs: 2048, MaxNumBatchedTokens: 8192})
	s := mustScheduler(b, p, VLLM)
	next := 0
	add := func() {
		if err := s.Add(Request{ID: fmt.Sprint(next), PromptTokens: 64 + next%128, MaxOutputTokens: 200 + next%300}); err != nil {
			b.Fatal(err)
		}
		next++
	}
	for range 2000 {
		add()
	}
	step := func() int {
		_, ev := s.Step()
		n := 0
		for _, e := range ev {
			switch e.Kind {
			case FirstToken, Token:
				n++
			case Finished:
				add()
			}
		}
		return n
	}
	for range 300 { // reach steady state
		step()
	}
	tokens := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tokens += step()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(tokens), "ns/token")
	b.ReportMetric(float64(s.Running()), "running")
	b.ReportMetric(float64(tokens)/s.Now().Seconds(), "sim-tok/s")
}

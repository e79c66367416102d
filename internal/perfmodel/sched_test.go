package perfmodel

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustPlan(t testing.TB, gpu, model string, opts Options) Plan {
	t.Helper()
	p, err := NewPlan(mustGPU(t, gpu), mustModel(t, model), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustScheduler(t testing.TB, p Plan, mode Mode) *Scheduler {
	t.Helper()
	s, err := NewScheduler(p, mode)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain steps s until idle (at most limit steps) and returns every event.
func drain(t testing.TB, s *Scheduler, limit int) []Event {
	t.Helper()
	var all []Event
	for i := 0; !s.Idle(); i++ {
		if i == limit {
			t.Fatalf("not idle after %d steps: %d running, %d waiting", limit, s.Running(), s.Waiting())
		}
		_, ev := s.Step()
		all = append(all, ev...)
	}
	return all
}

func TestSchedulerEvents(t *testing.T) {
	t.Parallel()
	// A 20-token prompt with a 16-token chunk budget takes two prefill steps, then decodes.
	p := mustPlan(t, "h100-sxm", "qwen2.5-7b", Options{MaxModelLen: 4096, MaxNumBatchedTokens: 16})
	s := mustScheduler(t, p, VLLM)
	if err := s.Add(Request{ID: "a", PromptTokens: 20, MaxOutputTokens: 3}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for !s.Idle() {
		dt, ev := s.Step()
		if dt <= 0 {
			t.Fatalf("step took %v", dt)
		}
		line := fmt.Sprintf("run=%d", s.Running())
		for _, e := range ev {
			line += fmt.Sprintf(" %s:%s:%d", e.ID, e.Kind, e.Index)
			if e.At != s.Now() {
				t.Errorf("event at %v, now %v", e.At, s.Now())
			}
		}
		got = append(got, line)
	}
	want := []string{"run=1", "run=1 a:first-token:0", "run=1 a:token:1", "run=0 a:token:2 a:finished:3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if s.KVUsage() != 0 {
		t.Errorf("KV usage after the last request finished = %v, want 0", s.KVUsage())
	}
	if dt, ev := s.Step(); dt != 0 || len(ev) != 0 {
		t.Errorf("idle Step() = %v, %v; want 0, none", dt, ev)
	}
}

func TestSchedulerAddErrors(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, "h100-sxm", "qwen2.5-7b", Options{MaxModelLen: 1000})
	s := mustScheduler(t, p, VLLM)
	tests := []struct {
		req  Request
		want error
	}{
		{Request{ID: "long", PromptTokens: 900, MaxOutputTokens: 101}, ErrTooLong},
		{Request{ID: "image", PromptTokens: 10, VisionTokens: 256, MaxOutputTokens: 1}, ErrNoVision},
		{Request{ID: "empty", MaxOutputTokens: 1}, ErrInvalid},
		{Request{ID: "no-output", PromptTokens: 1}, ErrInvalid},
		{Request{ID: "ok", PromptTokens: 900, MaxOutputTokens: 100}, nil},
	}
	for _, tt := range tests {
		if err := s.Add(tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Add(%s) = %v, want %v", tt.req.ID, err, tt.want)
		}
	}
	if s.Waiting() != 1 {
		t.Errorf("Waiting() = %d, want 1 (only the valid request)", s.Waiting())
	}
}

func TestSchedulerVisionPrefillCost(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, "rtx-4090", "mimo-vl-7b", Options{Quant: QuantAWQInt4, MaxModelLen: 8192})
	ttft := func(vision int) time.Duration {
		s := mustScheduler(t, p, VLLM)
		if err := s.Add(Request{ID: "v", PromptTokens: 100, VisionTokens: vision, MaxOutputTokens: 1}); err != nil {
			t.Fatal(err)
		}
		drain(t, s, 100)
		return s.Now()
	}
	text, image := ttft(0), ttft(1024)
	if image < 3*text {
		t.Errorf("TTFT with a 1024-token image %v, text only %v; want the image to cost several times more", image, text)
	}
}

func TestSchedulerMaxNumSeqsAndFCFS(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, "h100-sxm", "qwen2.5-7b", Options{MaxModelLen: 4096, MaxNumSeqs: 4})
	s := mustScheduler(t, p, VLLM)
	for i := range 10 {
		if err := s.Add(Request{ID: fmt.Sprint(i), PromptTokens: 100, MaxOutputTokens: 10 + i}); err != nil {
			t.Fatal(err)
		}
	}
	var firsts []string
	for !s.Idle() {
		_, ev := s.Step()
		if s.Running() > 4 {
			t.Fatalf("%d running, max_num_seqs 4", s.Running())
		}
		for _, e := range ev {
			if e.Kind == FirstToken {
				firsts = append(firsts, e.ID)
			}
		}
	}
	if diff := cmp.Diff([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, firsts); diff != "" {
		t.Errorf("first-token order (-want +got):\n%s", diff)
	}
}

func TestSchedulerPreemption(t *testing.T) {
	t.Parallel()
	// A small KV cache: L4 with llama-3.1-8b at 0.85 holds ≈ 25k tokens. Sixteen requests that
	// each grow to 4,000 tokens cannot all stay: the newest are preempted and recomputed, and
	// every request still finishes with all its tokens, in order.
	p := mustPlan(t, "l4", "llama-3.1-8b", Options{MaxModelLen: 4096, GPUMemoryUtilization: 0.85})
	s := mustScheduler(t, p, VLLM)
	t.Log(p)
	const n = 16
	for i := range n {
		if err := s.Add(Request{ID: fmt.Sprint(i), PromptTokens: 1000, MaxOutputTokens: 3000}); err != nil {
			t.Fatal(err)
		}
	}
	next := map[string]int{}
	preempted, finished := 0, 0
	for steps := 0; !s.Idle(); steps++ {
		if steps > 100000 {
			t.Fatal("no progress")
		}
		_, ev := s.Step()
		if u := s.KVUsage(); u < 0 || u > 1 {
			t.Fatalf("KV usage %v out of range", u)
		}
		for _, e := range ev {
			switch e.Kind {
			case FirstToken, Token:
				if e.Index != next[e.ID] {
					t.Fatalf("%s: token %d, want %d", e.ID, e.Index, next[e.ID])
				}
				next[e.ID]++
			case Preempted:
				preempted++
			case Finished:
				finished++
				if e.Index != 3000 {
					t.Errorf("%s finished after %d tokens", e.ID, e.Index)
				}
			}
		}
	}
	if preempted == 0 || finished != n {
		t.Errorf("preempted %d times, finished %d; want some preemption and all %d finished", preempted, finished, n)
	}
	if s.KVUsage() != 0 {
		t.Errorf("KV usage at the end = %v, want 0", s.KVUsage())
	}
}

func TestSchedulerAbort(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, "h100-sxm", "qwen2.5-7b", Options{MaxModelLen: 4096, MaxNumSeqs: 1})
	s := mustScheduler(t, p, VLLM)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Add(Request{ID: id, PromptTokens: 100, MaxOutputTokens: 100}); err != nil {
			t.Fatal(err)
		}
	}
	s.Step()
	if !s.Abort("a") || !s.Abort("c") || s.Abort("zzz") {
		t.Fatal("Abort results wrong")
	}
	if s.KVUsage() != 0 || s.Running() != 0 || s.Waiting() != 1 {
		t.Errorf("after aborts: usage %v, running %d, waiting %d; want 0, 0, 1", s.KVUsage(), s.Running(), s.Waiting())
	}
	ev := drain(t, s, 1000)
	if last := ev[len(ev)-1]; last.ID != "b" || last.Kind != Finished {
		t.Errorf("last event %+v, want b finished", last)
	}
}

func TestOllamaSlots(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, "rtx-4090", "llama-3.1-8b", Options{Quant: QuantQ4KM, MaxModelLen: 4096, Parallel: 2})
	s := mustScheduler(t, p, Ollama)
	for i := range 5 {
		if err := s.Add(Request{ID: fmt.Sprint(i), PromptTokens: 50, MaxOutputTokens: 20}); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for !s.Idle() {
		_, ev := s.Step()
		if s.Running() > 2 {
			t.Fatalf("%d running with 2 slots", s.Running())
		}
		for _, e := range ev {
			if e.Kind == Finished {
				order = append(order, e.ID)
			}
		}
	}
	if diff := cmp.Diff([]string{"0", "1", "2", "3", "4"}, order); diff != "" {
		t.Errorf("finish order (-want +got):\n%s", diff)
	}

	// Slots pre-allocate their context: 64 slots × 32k tokens do not fit a 4090.
	big := mustPlan(t, "rtx-4090", "llama-3.1-8b", Options{Quant: QuantQ4KM, MaxModelLen: 32768, Parallel: 64})
	if _, err := NewScheduler(big, Ollama); err == nil {
		t.Error("64 slots of 32k context were accepted on a 24 GB GPU")
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Mode{"vllm": VLLM, "sglang": VLLM, "ollama": Ollama, "llamacpp": Ollama} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("tgi"); err == nil {
		t.Error("ParseMode(tgi) succeeded")
	}
}

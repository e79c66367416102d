package perfmodel

import (
	"errors"
	"fmt"
	"time"
)

// Mode is the engine's scheduling policy.
type Mode int

const (
	// VLLM is continuous batching: up to max_num_seqs sequences share each step, admitted first
	// come first served while KV blocks are free, with chunked prefill and preemption by
	// recompute when blocks run out.
	VLLM Mode = iota
	// Ollama is llama.cpp's server: Options.Parallel fixed slots, each with a pre-allocated
	// context of MaxModelLen tokens; requests beyond the slots wait FIFO.
	Ollama
)

func (m Mode) String() string {
	if m == Ollama {
		return "ollama"
	}
	return "vllm"
}

// ParseMode maps an --engine name to its scheduling policy: sglang behaves like vllm, llamacpp
// like ollama.
func ParseMode(engine string) (Mode, error) {
	switch engine {
	case "vllm", "sglang":
		return VLLM, nil
	case "ollama", "llamacpp", "llama.cpp":
		return Ollama, nil
	}
	return 0, fmt.Errorf("unknown engine %q: choose one of vllm, sglang, llamacpp, ollama", engine)
}

// ollamaBatch is llama.cpp's default n_batch: prompt tokens processed per step.
const ollamaBatch = 2048

// Request is one generation to simulate.
type Request struct {
	ID              string
	PromptTokens    int // text tokens of the prompt
	VisionTokens    int // image tokens; they are prompt tokens too and add vision-encoder work
	MaxOutputTokens int // tokens to generate (the simulator never stops early)
}

// EventKind says what happened to a request in a step.
type EventKind int

// Event kinds. A step emits at most one token event per request; the last token's event is
// followed by Finished in the same step.
const (
	FirstToken EventKind = iota // the first output token (TTFT)
	Token                       // a later output token
	Finished                    // all MaxOutputTokens generated; the request is gone
	Preempted                   // evicted to free KV blocks; it will recompute its prefix
)

func (k EventKind) String() string {
	return [...]string{"first-token", "token", "finished", "preempted"}[k]
}

// Event is something that happened to a request at simulated time At (the end of its step).
type Event struct {
	ID    string
	Kind  EventKind
	Index int // token events: 0-based output token index; Finished: tokens generated
	At    time.Duration
}

// Errors of Add.
var (
	ErrTooLong  = errors.New("request exceeds the maximum context length")
	ErrNoVision = errors.New("model does not accept images")
	ErrInvalid  = errors.New("invalid request")
)

type seq struct {
	Request
	prompt    int // prompt + vision tokens
	total     int // tokens known: prompt + generated
	computed  int // tokens whose KV is in the cache
	generated int
	blocks    int
}

// Scheduler simulates an engine's iterations. It is a pure state machine driven by Step: no
// goroutines, no clock; simulated time advances by each step's duration. It is not safe for
// concurrent use: its owner (one goroutine) calls Add, Abort and Step.
type Scheduler struct {
	plan *Plan
	mode Mode

	maxSeqs    int // concurrent sequences: max_num_seqs, or the slot count
	budget     int // tokens per step
	freeBlocks int
	watermark  int
	usedTokens int64 // Ollama: KV tokens in use (slots are pre-allocated)

	running []*seq // admission order
	waiting []*seq // FCFS; preempted requests go back to the front
	now     time.Duration

	sched  []int // per running index: tokens scheduled this step
	events []Event
}

// NewScheduler returns an idle scheduler for plan. In Ollama mode the slots' pre-allocated
// contexts (Parallel × MaxModelLen tokens) must fit the plan's KV cache.
func NewScheduler(plan Plan, mode Mode) (*Scheduler, error) {
	p := plan
	s := &Scheduler{plan: &p, mode: mode, freeBlocks: p.KVBlocks}
	switch mode {
	case VLLM:
		s.maxSeqs = p.Options.MaxNumSeqs
		s.budget = p.Options.MaxNumBatchedTokens
		s.watermark = p.KVBlocks / 100
	case Ollama:
		s.maxSeqs = p.Options.Parallel
		s.budget = ollamaBatch
		need := int64(p.Options.Parallel) * int64(p.Options.MaxModelLen)
		if need > p.KVTokens {
			return nil, fmt.Errorf("%d parallel slots × context %d = %d KV tokens (%.2f GiB) do not fit the %d tokens (%.2f GiB) left after the weights: lower OLLAMA_NUM_PARALLEL or num_ctx",
				p.Options.Parallel, p.Options.MaxModelLen, need, gibs(need*p.KVBytesPerToken), p.KVTokens, gibs(p.KVBytes))
		}
	default:
		return nil, fmt.Errorf("unknown scheduling mode %d", mode)
	}
	return s, nil
}

// Add queues a request. It fails, and nothing is queued, when the request is malformed, has
// image tokens for a text-only model, or (vLLM) prompt plus output exceed max_model_len /
// (Ollama) the prompt exceeds the slot context.
func (s *Scheduler) Add(r Request) error {
	if r.PromptTokens < 0 || r.VisionTokens < 0 || r.MaxOutputTokens < 1 || r.PromptTokens+r.VisionTokens < 1 {
		return fmt.Errorf("request %q: %w: needs at least one prompt token and MaxOutputTokens ≥ 1", r.ID, ErrInvalid)
	}
	if r.VisionTokens > 0 && !s.plan.Model.Vision {
		return fmt.Errorf("request %q: %w: %s is a text-only model", r.ID, ErrNoVision, s.plan.Model.Name)
	}
	prompt := r.PromptTokens + r.VisionTokens
	limit := s.plan.Options.MaxModelLen
	if s.mode == VLLM && prompt+r.MaxOutputTokens > limit {
		return fmt.Errorf("request %q: %w: this model's maximum context length is %d tokens, but %d prompt tokens and %d output tokens were requested",
			r.ID, ErrTooLong, limit, prompt, r.MaxOutputTokens)
	}
	if s.mode == Ollama && prompt > limit {
		return fmt.Errorf("request %q: %w: the prompt's %d tokens exceed the context of %d", r.ID, ErrTooLong, prompt, limit)
	}
	s.waiting = append(s.waiting, &seq{Request: r, prompt: prompt, total: prompt})
	return nil
}

// Abort removes a request (a client went away), freeing its KV blocks. It reports whether the
// request was known. Cost is linear in the number of requests.
func (s *Scheduler) Abort(id string) bool {
	for i, q := range s.running {
		if q.ID == id {
			s.release(q)
			s.running = append(s.running[:i], s.running[i+1:]...)
			return true
		}
	}
	for i, q := range s.waiting {
		if q.ID == id {
			s.waiting = append(s.waiting[:i], s.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// Running is the number of requests in the batch (vllm:num_requests_running).
func (s *Scheduler) Running() int { return len(s.running) }

// Waiting is the number of queued requests (vllm:num_requests_waiting).
func (s *Scheduler) Waiting() int { return len(s.waiting) }

// Idle reports that there is nothing to run.
func (s *Scheduler) Idle() bool { return len(s.running) == 0 && len(s.waiting) == 0 }

// Now is the simulated time: the sum of all step durations.
func (s *Scheduler) Now() time.Duration { return s.now }

// KVUsage is the fraction of KV cache in use, 0–1 (vllm:kv_cache_usage_perc). In Ollama mode it
// is the tokens held in the slots over the plan's capacity.
func (s *Scheduler) KVUsage() float64 {
	if s.plan.KVBlocks == 0 {
		return 0
	}
	if s.mode == Ollama {
		return float64(s.usedTokens) / float64(s.plan.KVTokens)
	}
	return float64(s.plan.KVBlocks-s.freeBlocks) / float64(s.plan.KVBlocks)
}

func blocksFor(tokens int) int { return (tokens + BlockSize - 1) / BlockSize }

// reserve makes q hold blocks for tokens; it reports false when too few blocks are free.
func (s *Scheduler) reserve(q *seq, tokens int, watermark int) bool {
	if s.mode == Ollama {
		s.usedTokens += int64(tokens - q.blocks) // blocks counts tokens in Ollama mode
		q.blocks = tokens
		return true
	}
	need := blocksFor(tokens) - q.blocks
	if need <= 0 {
		return true
	}
	if s.freeBlocks-need < watermark {
		return false
	}
	s.freeBlocks -= need
	q.blocks += need
	return true
}

func (s *Scheduler) release(q *seq) {
	if s.mode == Ollama {
		s.usedTokens -= int64(q.blocks)
	} else {
		s.freeBlocks += q.blocks
	}
	q.blocks = 0
}

// preemptLast evicts the most recently admitted running request back to the front of the queue.
func (s *Scheduler) preemptLast() {
	n := len(s.running) - 1
	q := s.running[n]
	s.running = s.running[:n]
	s.sched = s.sched[:min(len(s.sched), n)]
	s.release(q)
	q.computed = 0
	s.waiting = append(s.waiting, nil)
	copy(s.waiting[1:], s.waiting)
	s.waiting[0] = q
	s.events = append(s.events, Event{ID: q.ID, Kind: Preempted, Index: q.generated, At: s.now})
}

// Step runs one engine iteration: it schedules running requests (continuing prefills, one
// decode token each), preempting the newest when KV blocks run out, admits waiting requests
// while the token budget, max_num_seqs and free blocks allow, advances simulated time by the
// step's duration and returns it with the step's events. The events slice is reused by the next
// call. With nothing to run it returns 0 and no events.
func (s *Scheduler) Step() (time.Duration, []Event) {
	s.events = s.events[:0]
	s.sched = s.sched[:0]
	budget := s.budget
	var b Batch
	preempted := false

	schedule := func(q *seq, n int) {
		ctx := q.computed + n
		b.Tokens += n
		b.ContextTokens += int64(ctx)
		b.AttentionWork += float64(n) * (float64(q.computed) + float64(n+1)/2)
		if q.computed+n == q.total {
			b.Sampled++
		}
		if q.computed == 0 {
			b.VisionTokens += q.VisionTokens
		}
	}

	for i := 0; i < len(s.running) && budget > 0; i++ {
		q := s.running[i]
		n := min(q.total-q.computed, budget)
		// Ollama slots keep a full context; a context shift keeps generation going past it.
		for !s.reserve(q, min(q.computed+n, s.plan.Options.MaxModelLen), 0) {
			if len(s.running)-1 == i { // q is the newest: it yields its own blocks
				s.preemptLast()
				preempted = true
				break
			}
			s.preemptLast()
			preempted = true
		}
		if i >= len(s.running) {
			break
		}
		s.sched = append(s.sched, n)
		schedule(q, n)
		budget -= n
	}
	for len(s.sched) < len(s.running) {
		s.sched = append(s.sched, 0)
	}

	for !preempted && len(s.waiting) > 0 && len(s.running) < s.maxSeqs && budget > 0 {
		q := s.waiting[0]
		n := min(q.total, budget)
		wm := s.watermark
		if len(s.running) == 0 {
			wm = 0 // a lone request always fits: the plan guarantees max_model_len tokens
		}
		if !s.reserve(q, n, wm) {
			break
		}
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		s.running = append(s.running, q)
		s.sched = append(s.sched, n)
		schedule(q, n)
		budget -= n
	}

	dt := s.plan.StepTime(b)
	s.now += dt

	kept := s.running[:0]
	for i, q := range s.running {
		n := s.sched[i]
		if n > 0 {
			q.computed += n
			if q.computed == q.total {
				kind := Token
				if q.generated == 0 {
					kind = FirstToken
				}
				s.events = append(s.events, Event{ID: q.ID, Kind: kind, Index: q.generated, At: s.now})
				q.generated++
				q.total++
				if q.generated >= q.MaxOutputTokens {
					s.events = append(s.events, Event{ID: q.ID, Kind: Finished, Index: q.generated, At: s.now})
					s.release(q)
					continue
				}
			}
		}
		kept = append(kept, q)
	}
	clear(s.running[len(kept):])
	s.running = kept
	if len(s.waiting) == 0 {
		s.waiting = s.waiting[:0:0] // drop the consumed prefix of the backing array
	}
	return dt, s.events
}

package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// ErrStopped is the error of a request the engine could not finish because it shut down.
var ErrStopped = errors.New("engine stopped")

// ErrAborted is the error of a request aborted when the engine was put to sleep.
var ErrAborted = errors.New("request aborted: the engine was put to sleep")

// Engine drives a perfmodel.Scheduler in wall-clock time. Run owns the scheduler; Submit and the
// returned streams are safe for concurrent use.
type Engine struct {
	sched   *perfmodel.Scheduler
	scale   float64
	slow    float64 // Slowdown: every step takes this many times longer (1: as planned)
	metrics *metrics

	ops    chan op
	done   chan struct{} // closed when Run returns
	nextID atomic.Uint64

	// Owned by Run.
	choices map[string]choiceRef
	base    time.Time  // wall time of simulated time 0 (TimeScale > 0), re-anchored after idling
	busy    bool       // a step is in flight: the scheduler's clock is already at its end
	fixed   *fixedMode // fixed-latency mode (SetFixed); nil: the performance model

	gateMu sync.Mutex
	paused chan struct{} // closed by Resume; nil: requests go straight to the scheduler
}

type op struct {
	add      *stream
	abort    *stream
	abortAll chan struct{} // abort every live request; closed when done
}

type choiceRef struct {
	s *stream
	i int
}

// NewEngine returns an idle engine for plan with a scheduler in mode (perfmodel.VLLM batching or
// perfmodel.Ollama slots); timeScale multiplies simulated durations into wall time (0: no delay).
func NewEngine(plan perfmodel.Plan, mode perfmodel.Mode, timeScale float64, m *metrics) (*Engine, error) {
	if timeScale < 0 {
		return nil, fmt.Errorf("time scale %g: must be 0 or more", timeScale)
	}
	sched, err := perfmodel.NewScheduler(plan, mode)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = newMetrics(plan.Model.Name, "")
	}
	return &Engine{
		sched: sched, scale: timeScale, slow: 1, metrics: m,
		ops: make(chan op), done: make(chan struct{}),
		choices: make(map[string]choiceRef),
	}, nil
}

// newPersonalityEngine is the engine of a personality with its knobs applied: slowdown (0 means
// 1), fixed latencies (0: the performance model) and faults, checked.
func newPersonalityEngine(plan perfmodel.Plan, mode perfmodel.Mode, timeScale float64, m *metrics, slowdown float64, ttft, itl time.Duration, faults Faults) (*Engine, error) {
	eng, err := NewEngine(plan, mode, timeScale, m)
	if err != nil {
		return nil, err
	}
	if slowdown != 0 {
		if err := eng.SetSlowdown(slowdown); err != nil {
			return nil, err
		}
	}
	if err := eng.SetFixed(ttft, itl); err != nil {
		return nil, err
	}
	if err := faults.Validate(); err != nil {
		return nil, err
	}
	return eng, nil
}

// SetSlowdown multiplies every step's duration by f (> 0), in wall time and in the latency
// metrics alike, as a slower or throttled GPU would. Call it before Run.
func (e *Engine) SetSlowdown(f float64) error {
	if !(f > 0) {
		return fmt.Errorf("slowdown %g: must be more than 0", f)
	}
	e.slow = f
	return nil
}

// stream is one request's output as the driver produces it. The driver bumps produced and
// done under mu and does a non-blocking send on notify (capacity 1), so a slow reader never
// holds the engine back; the reader takes everything produced since its last look.
type stream struct {
	id     string
	reqs   []perfmodel.Request // one per choice
	finish []string            // finish_reason per choice, for metrics
	prompt int                 // prompt tokens counted once per request, for metrics
	notify chan struct{}

	mu       sync.Mutex
	produced []int
	finished []bool
	ttft     []time.Duration // simulated, from arrival: first token, per choice
	e2e      []time.Duration // simulated, from arrival: last token, per choice
	err      error

	// Owned by the driver.
	arrival time.Duration
	last    []time.Duration
	left    int
	counted bool
}

// snapshot copies the stream's progress into produced and finished and returns its error.
func (s *stream) snapshot(produced []int, finished []bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	copy(produced, s.produced)
	copy(finished, s.finished)
	return s.err
}

// timings returns choice i's simulated time to first token and to its end (0 until known).
func (s *stream) timings(i int) (ttft, e2e time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttft[i], s.e2e[i]
}

func (s *stream) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Submit queues one request with a choice per element of maxTokens (each choice's token
// count), each with promptTokens and visionTokens. finish is each choice's finish_reason, for
// the metrics. The stream is live until every choice finishes or ctx ends; the caller must
// call Abort when it stops reading early.
func (e *Engine) Submit(ctx context.Context, promptTokens, visionTokens int, maxTokens []int, finish []string) (*stream, error) {
	id := strconv.FormatUint(e.nextID.Add(1), 36)
	s := &stream{
		id: id, finish: finish, prompt: promptTokens + visionTokens,
		notify:   make(chan struct{}, 1),
		produced: make([]int, len(maxTokens)), finished: make([]bool, len(maxTokens)),
		ttft: make([]time.Duration, len(maxTokens)), e2e: make([]time.Duration, len(maxTokens)),
	}
	if err := e.waitAwake(ctx); err != nil {
		return nil, err
	}
	for i, n := range maxTokens {
		s.reqs = append(s.reqs, perfmodel.Request{ID: id + "/" + strconv.Itoa(i), PromptTokens: promptTokens, VisionTokens: visionTokens, MaxOutputTokens: n})
	}
	select {
	case e.ops <- op{add: s}:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.done:
		return nil, ErrStopped
	}
}

// Abort stops a stream's unfinished choices and frees their KV cache. It does not wait.
func (e *Engine) Abort(s *stream) {
	go func() {
		select {
		case e.ops <- op{abort: s}:
		case <-e.done:
		}
	}()
}

// Run drives the scheduler until ctx ends; then every live stream fails with ErrStopped.
func (e *Engine) Run(ctx context.Context) error {
	defer close(e.done)
	defer e.failAll()
	if e.fixed != nil {
		return e.runFixed(ctx)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if e.sched.Idle() {
			e.metrics.setGauges(0, 0, e.sched.KVUsage())
			select {
			case <-ctx.Done():
				return nil
			case o := <-e.ops:
				e.handle(o)
			}
			e.base = time.Now().Add(-e.wall(e.sched.Now()))
			continue
		}
	drain:
		for {
			select {
			case o := <-e.ops:
				e.handle(o)
			default:
				break drain
			}
		}
		if e.sched.Idle() {
			continue
		}
		running := e.sched.Running()
		_, events := e.sched.Step()
		e.busy = true
		e.metrics.step(max(running, e.sched.Running()))
		e.metrics.setGauges(e.sched.Running(), e.sched.Waiting(), e.sched.KVUsage())
		if e.scale > 0 {
			deadline := e.base.Add(e.wall(e.sched.Now()))
			for wait := time.Until(deadline); wait > 0; wait = time.Until(deadline) {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					return nil
				case o := <-e.ops:
					timer.Stop()
					e.handle(o) // Add and Abort leave this step's events alone
				case <-timer.C:
				}
			}
		}
		e.busy = false
		e.publish(events)
	}
}

func (e *Engine) wall(d time.Duration) time.Duration {
	return time.Duration(e.scale * float64(e.simTime(d)))
}

// simTime is scheduler time with the slowdown applied: what the metrics record.
func (e *Engine) simTime(d time.Duration) time.Duration { return time.Duration(e.slow * float64(d)) }

func (e *Engine) handle(o op) {
	if o.abortAll != nil {
		seen := map[*stream]bool{}
		for id, ref := range e.choices {
			e.sched.Abort(id)
			delete(e.choices, id)
			if !seen[ref.s] {
				seen[ref.s] = true
				e.metrics.finished("abort")
			}
			ref.s.mu.Lock()
			ref.s.err = ErrAborted
			ref.s.mu.Unlock()
			ref.s.wake()
		}
		close(o.abortAll)
		return
	}
	if s := o.add; s != nil {
		e.metrics.received()
		s.arrival = e.sched.Now()
		if e.busy && e.scale > 0 {
			// Mid-step: the request arrived at the wall clock's simulated time, before the
			// step's end where the scheduler's clock already is; its TTFT counts from then.
			if at := time.Duration(float64(time.Since(e.base)) / (e.scale * e.slow)); at < s.arrival {
				s.arrival = max(at, 0)
			}
		}
		s.last = make([]time.Duration, len(s.reqs))
		for i, r := range s.reqs {
			if err := e.sched.Add(r); err != nil {
				for _, q := range s.reqs[:i] {
					e.sched.Abort(q.ID)
					delete(e.choices, q.ID)
				}
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				s.wake()
				return
			}
			e.choices[r.ID] = choiceRef{s, i}
		}
		s.left = len(s.reqs)
		return
	}
	s := o.abort
	aborted := false
	for _, r := range s.reqs {
		if _, ok := e.choices[r.ID]; ok {
			e.sched.Abort(r.ID)
			delete(e.choices, r.ID)
			aborted = true
		}
	}
	if aborted {
		e.metrics.finished("abort")
	}
}

func (e *Engine) publish(events []perfmodel.Event) {
	for _, ev := range events {
		ref, ok := e.choices[ev.ID]
		if !ok {
			continue // aborted while the step ran
		}
		s, i := ref.s, ref.i
		switch ev.Kind {
		case perfmodel.FirstToken, perfmodel.Token:
			var ttft time.Duration
			if ev.Kind == perfmodel.FirstToken {
				if !s.counted {
					s.counted = true
					e.metrics.prompt(s.prompt)
				}
				ttft = e.simTime(ev.At - s.arrival)
				e.metrics.firstToken(ttft)
			} else {
				e.metrics.token(e.simTime(ev.At - s.last[i]))
			}
			s.last[i] = ev.At
			s.mu.Lock()
			s.produced[i] = ev.Index + 1
			if ttft > 0 {
				s.ttft[i] = ttft
			}
			s.mu.Unlock()
			s.wake()
		case perfmodel.Finished:
			delete(e.choices, ev.ID)
			e2e := e.simTime(ev.At - s.arrival)
			e.metrics.e2e(e2e)
			s.mu.Lock()
			s.finished[i] = true
			s.e2e[i] = e2e
			s.mu.Unlock()
			s.wake()
			if s.left--; s.left == 0 {
				e.metrics.finished(s.finish[0])
			}
		}
	}
}

func (e *Engine) failAll() {
	for id, ref := range e.choices {
		delete(e.choices, id)
		ref.s.mu.Lock()
		ref.s.err = ErrStopped
		ref.s.mu.Unlock()
		ref.s.wake()
	}
}

package sim

import (
	"context"
	"fmt"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// Fixed-latency mode (Engine.SetFixed, Config.FixedTTFT/FixedITL, citadel sim --ttft/--itl),
// like llm-d-inference-sim's time-to-first-token and inter-token-latency: every choice's first
// token comes exactly TTFT after its request arrived and each later token ITL after the
// previous one, whatever the load. There is no batching model, so a benchmark's measured TTFT
// and ITL can be checked against known values.
//
// The same single driver goroutine runs it: a min-heap of (next token time, stream, choice),
// one timer for the heap's earliest entry, and the performance-model path's publish, so streams,
// Abort and the metrics behave as they do there. The scheduler only validates requests (Add,
// then Abort at once); it never steps.

// fixedMode is the driver's state in fixed-latency mode. Run owns all of it.
type fixedMode struct {
	ttft, itl time.Duration // scheduler time: the slowdown multiplies them like step times

	heap   []*fixedItem          // ordered by (at, seq)
	items  map[string]*fixedItem // by choice ID (perfmodel.Request.ID), for Abort
	seq    uint64                // of the next item: FIFO among equal times
	now    time.Duration         // TimeScale 0: the virtual clock (the latest event's time)
	events []perfmodel.Event     // reused by each publish
}

// fixedItem is one live choice: its next token is number next, due at simulated time at.
type fixedItem struct {
	at   time.Duration
	seq  uint64
	s    *stream
	i    int // choice
	next int
	pos  int // index in fixedMode.heap
}

// SetFixed switches the engine to fixed latencies: each choice's first token ttft after its
// request arrives, each later token itl after the previous one, independent of load (both in
// simulated time, so TimeScale and the slowdown apply to them as to step times). Both 0 keeps
// the performance model. Call it before Run.
func (e *Engine) SetFixed(ttft, itl time.Duration) error {
	if ttft < 0 || itl < 0 {
		return fmt.Errorf("fixed latency: time to first token %v and inter-token latency %v must be 0 or more", ttft, itl)
	}
	if ttft == 0 && itl == 0 {
		e.fixed = nil
		return nil
	}
	e.fixed = &fixedMode{ttft: ttft, itl: itl, items: make(map[string]*fixedItem)}
	return nil
}

// Fixed returns the fixed latencies set by SetFixed; ok is false under the performance model.
func (e *Engine) Fixed() (ttft, itl time.Duration, ok bool) {
	if e.fixed == nil {
		return 0, 0, false
	}
	return e.fixed.ttft, e.fixed.itl, true
}

// runFixed is Run in fixed-latency mode: it publishes every token due by the wall clock (all
// due tokens at once when the driver wakes late), then sleeps until the next one or an op.
func (e *Engine) runFixed(ctx context.Context) error {
	f := e.fixed
	e.base = time.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		e.metrics.setGauges(len(e.choices), 0, 0)
		if len(f.heap) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case o := <-e.ops:
				e.handleFixed(o)
			}
			continue
		}
	drain:
		for {
			select {
			case o := <-e.ops:
				e.handleFixed(o)
			default:
				break drain
			}
		}
		if len(f.heap) == 0 {
			continue
		}
		at := f.heap[0].at
		now := at
		if e.scale > 0 {
			if wait := time.Until(e.base.Add(e.wall(at))); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					timer.Stop()
					return nil
				case o := <-e.ops:
					timer.Stop()
					e.handleFixed(o) // it may bring an earlier token: look again
					continue
				case <-timer.C:
				}
			}
			now = max(e.fixedNow(), at)
		} else {
			f.now = at
		}
		e.publishFixed(now)
	}
}

// fixedNow is the simulated time of an arrival: the wall clock's, or at TimeScale 0 the
// virtual clock's.
func (e *Engine) fixedNow() time.Duration {
	if e.scale > 0 {
		return time.Duration(float64(time.Since(e.base)) / (e.scale * e.slow))
	}
	return e.fixed.now
}

// handleFixed is handle in fixed-latency mode.
func (e *Engine) handleFixed(o op) {
	f := e.fixed
	s := o.add
	if s == nil {
		for _, r := range o.abort.reqs {
			if it, ok := f.items[r.ID]; ok {
				f.remove(it)
				delete(f.items, r.ID)
			}
		}
		e.handle(o) // forgets the choices and counts the abort
		return
	}
	e.metrics.received()
	s.arrival = e.fixedNow()
	s.last = make([]time.Duration, len(s.reqs))
	for _, r := range s.reqs {
		// The scheduler checks the request (context length, images) as it would queue it.
		if err := e.sched.Add(r); err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.wake()
			return
		}
		e.sched.Abort(r.ID)
	}
	for i, r := range s.reqs {
		e.choices[r.ID] = choiceRef{s, i}
		it := &fixedItem{at: s.arrival + f.ttft, seq: f.seq, s: s, i: i}
		f.seq++
		f.items[r.ID] = it
		f.push(it)
	}
	s.left = len(s.reqs)
}

// publishFixed publishes every token due by now, with Finished after a choice's last one.
func (e *Engine) publishFixed(now time.Duration) {
	f := e.fixed
	evs := f.events[:0]
	for len(f.heap) > 0 && f.heap[0].at <= now {
		it := f.heap[0]
		r := it.s.reqs[it.i]
		kind := perfmodel.Token
		if it.next == 0 {
			kind = perfmodel.FirstToken
		}
		evs = append(evs, perfmodel.Event{ID: r.ID, Kind: kind, Index: it.next, At: it.at})
		if it.next++; it.next == r.MaxOutputTokens {
			evs = append(evs, perfmodel.Event{ID: r.ID, Kind: perfmodel.Finished, Index: it.next, At: it.at})
			f.remove(it)
			delete(f.items, r.ID)
			continue
		}
		it.at += f.itl
		f.down(0)
	}
	e.metrics.step(len(e.choices))
	e.publish(evs)
	clear(evs) // drop the IDs' references until the next publish
	f.events = evs[:0]
}

// The heap: a binary min-heap of *fixedItem by (at, seq), each item knowing its position.

func (f *fixedMode) less(a, b *fixedItem) bool {
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

func (f *fixedMode) swap(i, j int) {
	h := f.heap
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}

func (f *fixedMode) push(it *fixedItem) {
	it.pos = len(f.heap)
	f.heap = append(f.heap, it)
	f.up(it.pos)
}

func (f *fixedMode) remove(it *fixedItem) {
	i, last := it.pos, len(f.heap)-1
	if i != last {
		f.swap(i, last)
	}
	f.heap[last] = nil
	f.heap = f.heap[:last]
	if i != last {
		f.down(i)
		f.up(i)
	}
	it.pos = -1
}

func (f *fixedMode) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !f.less(f.heap[i], f.heap[p]) {
			return
		}
		f.swap(i, p)
		i = p
	}
}

func (f *fixedMode) down(i int) {
	n := len(f.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && f.less(f.heap[c+1], f.heap[c]) {
			c++
		}
		if !f.less(f.heap[c], f.heap[i]) {
			return
		}
		f.swap(i, c)
		i = c
	}
}

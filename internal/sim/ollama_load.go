package sim

// The simulated Ollama's residency: keep_alive, loading, LRU eviction when the next model
// does not fit, unloading.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// keepAlive is keep_alive: a duration string ("5m", "0", "-1s") or a number of seconds.
type keepAlive struct {
	set bool
	d   time.Duration
}

func (k *keepAlive) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		k.set, k.d = true, time.Duration(f*float64(time.Second))
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("keep_alive: want a duration such as \"5m\" or a number of seconds")
	}
	if n, err := strconv.ParseFloat(str, 64); err == nil {
		k.set, k.d = true, time.Duration(n*float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("keep_alive: %w", err)
	}
	k.set, k.d = true, d
	return nil
}

func (s *Ollama) keepFor(k keepAlive) time.Duration {
	if k.set {
		return k.d
	}
	return s.cfg.KeepAlive
}

// acquire makes r resident, loading it if needed, and counts the caller as active. It returns
// the simulated load time the caller waited for (0 when the model was loaded), or an error: the
// context's when the client went away, an *ollamaError when the load fails.
func (s *Ollama) acquire(ctx context.Context, r *ollamaRunner) (time.Duration, error) {
	if s.cfg.OOMAtLoad {
		return 0, r.oomError()
	}
	for {
		s.mu.Lock()
		s.expireLocked()
		l := r.cur
		if l != nil && isDone(l) {
			r.active++
			r.lastUsed = s.cfg.Now()
			s.mu.Unlock()
			return 0, nil
		}
		loader := l == nil
		if loader && !s.makeRoomLocked(r) {
			// Every model that would have to go is busy: wait for one to be released.
			wait := s.changed
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if loader {
			l = &modelLoad{done: make(chan struct{})}
			r.cur = l
			s.hold(r, 1)
		}
		r.active++
		r.lastUsed = s.cfg.Now()
		s.mu.Unlock()
		if loader {
			s.load(ctx, r, l)
		} else {
			select {
			case <-l.done:
			case <-ctx.Done():
				s.mu.Lock()
				r.active--
				s.mu.Unlock()
				return 0, ctx.Err()
			}
		}
		if l.err == nil {
			return max(r.load, 0), nil
		}
		s.mu.Lock()
		r.active--
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// hold adds (sign 1) or returns (sign -1) r's VRAM footprint to the GPUs' accounting.
func (s *Ollama) hold(r *ollamaRunner, sign int64) {
	for i, b := range r.Offload.GPUBytes {
		if i < len(s.used) {
			s.used[i] += sign * b
		}
	}
}

// fitsLocked reports whether r's footprint fits beside the loaded models.
func (s *Ollama) fitsLocked(r *ollamaRunner) bool {
	for i, b := range r.Offload.GPUBytes {
		if i < len(s.cfg.GPUFree) && s.used[i]+b > s.cfg.GPUFree[i] {
			return false
		}
	}
	return true
}

// makeRoomLocked evicts idle loaded models, least recently used first, until r fits; it reports
// false, evicting nothing, when even evicting every idle model would not make room.
func (s *Ollama) makeRoomLocked(r *ollamaRunner) bool {
	if s.fitsLocked(r) {
		return true
	}
	var idle []*ollamaRunner
	for _, o := range s.runners {
		if o != r && o.cur != nil && o.active == 0 && isDone(o.cur) {
			idle = append(idle, o)
		}
	}
	slices.SortFunc(idle, func(a, b *ollamaRunner) int { return a.lastUsed.Compare(b.lastUsed) })
	// Check first that evicting them all would be enough; then evict only as many as needed.
	for _, o := range idle {
		s.hold(o, -1)
	}
	ok := s.fitsLocked(r)
	for _, o := range idle {
		s.hold(o, 1)
	}
	if !ok {
		return false
	}
	for _, o := range idle {
		if s.fitsLocked(r) {
			break
		}
		s.cfg.Logger.Info("evicting model to make room", "model", o.name, "for", r.name)
		s.unloadLocked(o)
	}
	return true
}

// expireLocked unloads idle models whose keep_alive has passed.
func (s *Ollama) expireLocked() {
	now := s.cfg.Now()
	for _, r := range s.runners {
		if r.cur != nil && r.active == 0 && r.keep >= 0 && !now.Before(r.expires) && isDone(r.cur) {
			s.unloadLocked(r)
		}
	}
}

// unloadLocked drops r from memory and wakes loaders waiting for room.
func (s *Ollama) unloadLocked(r *ollamaRunner) {
	if r.cur == nil {
		return
	}
	r.cur = nil
	s.hold(r, -1)
	s.signalLocked()
}

func (s *Ollama) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// oomError is Ollama's refusal to load a model that does not fit (llm/memory.go), with the
// weights as the requirement and the GPUs' memory as what is available.
func (r *ollamaRunner) oomError() *ollamaError {
	avail := r.Plan.GPU.MemoryBytes * int64(r.Plan.Options.TP)
	return &ollamaError{http.StatusInternalServerError, fmt.Sprintf("model requires more system memory (%.1f GiB) than is available (%.1f GiB)",
		float64(r.weightBytes())/(1<<30), float64(avail)/(1<<30))}
}

func isDone(l *modelLoad) bool {
	select {
	case <-l.done:
		return l.err == nil
	default:
		return false
	}
}

// load waits out r's scaled load time; a cancelled loader abandons the load so that a waiter
// starts another.
func (s *Ollama) load(ctx context.Context, r *ollamaRunner, l *modelLoad) {
	defer close(l.done)
	wait := time.Duration(s.cfg.TimeScale * float64(max(r.load, 0)))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		s.mu.Lock()
		l.err = ctx.Err()
		if r.cur == l {
			s.unloadLocked(r)
		}
		s.mu.Unlock()
	}
}

// release ends one request's use of r with its keep_alive: 0 unloads when nothing else runs, a
// negative value keeps the model forever.
func (s *Ollama) release(r *ollamaRunner, keep time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.active--
	r.keep = keep
	r.expires = s.cfg.Now().Add(keep)
	r.lastUsed = s.cfg.Now()
	switch {
	case keep == 0 && r.active == 0:
		s.unloadLocked(r)
	case r.active == 0:
		s.signalLocked() // r may now be evicted for a waiting load
	}
}

// unload is keep_alive 0 with an empty prompt.
func (s *Ollama) unload(r *ollamaRunner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.active == 0 {
		s.unloadLocked(r)
	}
}

// resident reports whether r is loaded and when it expires.
func (s *Ollama) resident(r *ollamaRunner) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if r.cur == nil || !isDone(r.cur) {
		return false, time.Time{}
	}
	switch {
	case r.keep < 0:
		return true, now.AddDate(100, 0, 0) // "forever", as far as a client can tell
	case r.active > 0:
		return true, now.Add(r.keep)
	case !now.Before(r.expires):
		return false, time.Time{}
	}
	return true, r.expires
}

// Model metadata.

// Package netclasstest helps tests of clients that retry with netclass.Retry.
package netclasstest

import (
	"context"
	"sync"
	"time"
)

// Waits records the waits of a netclass.Retry instead of sleeping: pass its Sleep as
// Retry.Sleep, then read All. Tests count tries and waits rather than measuring time.
type Waits struct {
	mu sync.Mutex
	d  []time.Duration
}

// Sleep records d and returns at once (ctx's error if it is done).
func (w *Waits) Sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

// All returns the waits so far, in order.
func (w *Waits) All() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

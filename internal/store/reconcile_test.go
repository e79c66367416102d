package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestReconcile: one pass at the start, one after a change that passes the filter, none for a
// change it rejects, one per kick, and a failed pass is retried.
func TestReconcile(t *testing.T) {
	s := openStore(t, "", Options{})
	var passes atomic.Int64
	fail := atomic.Bool{}
	kick := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Reconcile(ctx, ReconcileOptions{Debounce: 10 * time.Millisecond, Kick: kick,
			Filter: func(ev WatchEvent) bool { return ev.Object.Kind == "InferenceService" }},
			func(context.Context) error {
				passes.Add(1)
				if fail.Swap(false) {
					return errors.New("transient")
				}
				return nil
			})
	}()
	waitFor := func(n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for passes.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d passes, want %d", what, passes.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(1, "start")
	apply(t, s, model("m", `{}`)) // filtered out
	time.Sleep(100 * time.Millisecond)
	if n := passes.Load(); n != 1 {
		t.Errorf("a filtered-out change ran a pass: %d passes", n)
	}
	apply(t, s, service("ns", "svc", `{}`))
	waitFor(2, "change")
	kick <- struct{}{}
	waitFor(3, "kick")
	fail.Store(true)
	kick <- struct{}{}
	waitFor(5, "retry after a failed pass")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Reconcile returned %v after cancel", err)
	}
}

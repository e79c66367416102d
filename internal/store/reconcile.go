package store

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ReconcileOptions pace Store.Reconcile.
type ReconcileOptions struct {
	// Name labels the log lines ("status reconciler", "gateway", …).
	Name   string
	Logger *slog.Logger
	// Debounce is the wait after a change before the pass runs (changes within it share a pass).
	Debounce time.Duration
	// Resync, when > 0, runs a pass this often even without changes (for state outside the
	// store: processes, GPUs).
	Resync time.Duration
	// Kick, when set, asks for a pass (debounced) from outside the store.
	Kick <-chan struct{}
	// Filter, when set, picks the events that ask for a pass; nil: every event.
	Filter func(WatchEvent) bool
}

// Reconcile runs pass once at the start and again after every change (debounced) until ctx
// ends or the store closes: the level-triggered loop of every controller. A pass that fails is
// retried after a second; a watch that ends (overflow, error) is opened again after a second.
func (s *Store) Reconcile(ctx context.Context, o ReconcileOptions, pass func(context.Context) error) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for {
		err := s.reconcileOnce(ctx, o, pass)
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return nil
		}
		o.Logger.Warn(o.Name+" watch ended; restarting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) reconcileOnce(ctx context.Context, o ReconcileOptions, pass func(context.Context) error) error {
	w, err := s.Watch(ctx, WatchOptions{SendInitial: true})
	if err != nil {
		return err
	}
	defer w.Stop()
	timer := time.NewTimer(0) // the first pass at once
	defer timer.Stop()
	var resync <-chan time.Time
	if o.Resync > 0 {
		t := time.NewTicker(o.Resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
			if o.Filter == nil || o.Filter(ev) {
				timer.Reset(o.Debounce)
			}
		case <-o.Kick:
			timer.Reset(o.Debounce)
		case <-resync:
			timer.Reset(0)
		case <-timer.C:
			if err := pass(ctx); err != nil && ctx.Err() == nil {
				o.Logger.Warn(o.Name+" pass failed; retrying", "err", err)
				timer.Reset(time.Second)
			}
		}
	}
}

package store

import (
	"context"
	"fmt"
	"sync"
)

// EventType says what happened to the object in a WatchEvent.
type EventType string

// Watch event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// WatchEvent is one change. For Deleted, Object is the last state with the deletion's ResourceVersion.
type WatchEvent struct {
	Type   EventType
	Object Object
}

// WatchOptions filter a watch.
type WatchOptions struct {
	Kind        string // "" = all kinds
	Namespace   string // "" = all namespaces
	SendInitial bool   // first send one Added event per existing matching object
}

func (o WatchOptions) matches(obj Object) bool {
	return (o.Kind == "" || o.Kind == obj.Kind) && (o.Namespace == "" || o.Namespace == obj.Namespace)
}

// Watcher is a stream of changes. It is owned by one goroutine that the store starts and that ends when the
// watch ends for any reason; the channel from Events is closed then, and Err says why.
type Watcher struct {
	opts   WatchOptions
	in     chan WatchEvent // filled by writers, never blocking; its capacity is Options.WatchBuffer
	out    chan WatchEvent
	cancel context.CancelFunc
	exited chan struct{}

	mu       sync.Mutex
	finished bool
	err      error
}

// Watch streams the changes to objects matching opts, in ResourceVersion order, until ctx is cancelled, Stop
// is called, the store closes, or the consumer falls more than Options.WatchBuffer events behind.
//
// With SendInitial the stream starts with one Added event per matching object (a consistent snapshot taken
// before Watch returns, sorted by namespace and name) and continues with every later change, with no gap and
// no duplicate.
func (s *Store) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		opts:   opts,
		in:     make(chan WatchEvent, s.opts.WatchBuffer),
		out:    make(chan WatchEvent),
		cancel: cancel,
		exited: make(chan struct{}),
	}
	// Subscribe before taking the snapshot, so that nothing committed after the snapshot can be missed.
	s.watchMu.Lock()
	if s.closed.Load() {
		s.watchMu.Unlock()
		cancel()
		return nil, ErrClosed
	}
	s.watchers[w] = struct{}{}
	s.watchMu.Unlock()

	var (
		initial  []Object
		snapshot int64 // changes up to this resourceVersion are in initial
	)
	if opts.SendInitial {
		var err error
		initial, snapshot, err = s.List(ctx, opts.Kind, ListOptions{Namespace: opts.Namespace})
		if err != nil {
			s.unsubscribe(w)
			cancel()
			return nil, fmt.Errorf("watching: %w", err)
		}
	}

	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	w.mu.Lock()
	finished, err := w.finished, w.err
	w.mu.Unlock()
	if finished { // the store closed or the watch overflowed while we listed
		delete(s.watchers, w)
		cancel()
		return nil, err
	}
	s.watchWG.Add(1)
	go s.runWatch(ctx, w, initial, snapshot)
	return w, nil
}

// Events returns the stream. It is closed when the watch ends.
func (w *Watcher) Events() <-chan WatchEvent { return w.out }

// Err says why the watch ended: nil while it runs or after ctx cancellation or Stop, ErrWatchOverflow if
// the consumer fell behind, ErrClosed if the store closed.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch and waits until the channel is closed. Events not yet received are dropped.
func (w *Watcher) Stop() {
	w.finish(nil)
	<-w.exited
}

// finish records why the watch ends (the first reason wins) and tells the goroutine to stop.
func (w *Watcher) finish(err error) {
	w.mu.Lock()
	if !w.finished {
		w.finished, w.err = true, err
	}
	w.mu.Unlock()
	w.cancel()
}

// runWatch is the watcher's goroutine: it sends the snapshot, then relays queued changes to the consumer.
func (s *Store) runWatch(ctx context.Context, w *Watcher, initial []Object, snapshot int64) {
	defer s.watchWG.Done()
	defer close(w.exited)
	defer close(w.out)
	defer s.unsubscribe(w)
	defer w.finish(nil) // cancellation by the caller's ctx, or a no-op

	send := func(ev WatchEvent) bool {
		select {
		case w.out <- WatchEvent{Type: ev.Type, Object: ev.Object.clone()}:
			return true
		case <-ctx.Done():
			return false
		}
	}

	for _, o := range initial {
		if !send(WatchEvent{Type: Added, Object: o}) {
			return
		}
	}
	for {
		select {
		case ev := <-w.in:
			if ev.Object.ResourceVersion > snapshot && !send(ev) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *Store) unsubscribe(w *Watcher) {
	s.watchMu.Lock()
	delete(s.watchers, w)
	s.watchMu.Unlock()
}

// publish hands committed changes to the watchers. It is called with the writer lock held, so events arrive
// in ResourceVersion order; it never blocks: a watcher whose queue is full is closed with ErrWatchOverflow.
func (s *Store) publish(events []WatchEvent) {
	if len(events) == 0 {
		return
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for w := range s.watchers {
		for _, ev := range events {
			if !w.opts.matches(ev.Object) {
				continue
			}
			select {
			case w.in <- ev:
				continue
			default:
			}
			w.finish(ErrWatchOverflow)
			delete(s.watchers, w)
			break
		}
	}
}

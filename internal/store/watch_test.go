package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"
)

// describeEvent renders a watch event compactly for diffs.
func describeEvent(ev WatchEvent) string {
	o := ev.Object
	return fmt.Sprintf("%s %s %s/%s rv=%d", ev.Type, o.Kind, o.Namespace, o.Name, o.ResourceVersion)
}

// collect receives events until one described as last arrives (inclusive).
func collect(t *testing.T, w *Watcher, last string) []string {
	t.Helper()
	var got []string
	for ev := range w.Events() {
		got = append(got, describeEvent(ev))
		if got[len(got)-1] == last {
			return got
		}
	}
	t.Fatalf("watch ended (err %v) before %q; got %q", w.Err(), last, got)
	return nil
}

func TestWatchSnapshotAndChanges(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s, model("a", `{}`), model("b", `{}`), service("ns1", "x", `{}`), service("ns2", "y", `{}`)) // rv 1-4

	watch := func(opts WatchOptions) *Watcher {
		w, err := s.Watch(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	all := watch(WatchOptions{SendInitial: true})
	ns1 := watch(WatchOptions{Kind: "InferenceService", Namespace: "ns1", SendInitial: true})
	models := watch(WatchOptions{Kind: "ClusterBaseModel"})

	apply(t, s, model("a", `{"v":2}`))                                                                                // rv 5
	apply(t, s, service("ns1", "z", `{}`))                                                                            // rv 6
	if _, err := s.UpdateStatus(ctx, "InferenceService", "ns2", "y", 0, json.RawMessage(`{"ok":true}`)); err != nil { // rv 7
		t.Fatal(err)
	}
	apply(t, s, model("a", `{"v":2}`))                                       // unchanged: no event
	if _, err := s.Delete(ctx, "ClusterBaseModel", "", "b", 0); err != nil { // rv 8
		t.Fatal(err)
	}
	// Sentinels, written last: an event after them would be out of order, and one missing before them is lost.
	apply(t, s, model("zz-end", `{}`), service("ns1", "zz-end", `{}`)) // rv 9, 10

	tests := []struct {
		name string
		w    *Watcher
		want []string
	}{
		{"everything with snapshot", all, []string{
			"ADDED ClusterBaseModel /a rv=1",
			"ADDED ClusterBaseModel /b rv=2",
			"ADDED InferenceService ns1/x rv=3",
			"ADDED InferenceService ns2/y rv=4",
			"MODIFIED ClusterBaseModel /a rv=5",
			"ADDED InferenceService ns1/z rv=6",
			"MODIFIED InferenceService ns2/y rv=7",
			"DELETED ClusterBaseModel /b rv=8",
			"ADDED ClusterBaseModel /zz-end rv=9",
			"ADDED InferenceService ns1/zz-end rv=10",
		}},
		{"one kind and namespace with snapshot", ns1, []string{
			"ADDED InferenceService ns1/x rv=3",
			"ADDED InferenceService ns1/z rv=6",
			"ADDED InferenceService ns1/zz-end rv=10",
		}},
		{"one kind without snapshot", models, []string{
			"MODIFIED ClusterBaseModel /a rv=5",
			"DELETED ClusterBaseModel /b rv=8",
			"ADDED ClusterBaseModel /zz-end rv=9",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(t, tt.w, tt.want[len(tt.want)-1])
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchNoGapNoDuplicate starts watchers while a writer keeps changing an object and checks that each
// sees a snapshot followed by every later version exactly once.
func TestWatchNoGapNoDuplicate(t *testing.T) {
	const writes, watchers = 300, 8
	s := openStore(t, "", Options{WatchBuffer: writes + 10})
	ctx := t.Context()
	apply(t, s, model("counter", `{"n":0}`))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for i := 1; i <= writes; i++ {
			if _, err := s.Apply(gctx, []Object{model("counter", `{"n":`+strconv.Itoa(i)+`}`)}, ApplyOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	for range watchers {
		w, err := s.Watch(ctx, WatchOptions{Kind: "ClusterBaseModel", SendInitial: true})
		if err != nil {
			t.Fatal(err)
		}
		g.Go(func() error {
			defer w.Stop()
			want, first := 0, true
			for ev := range w.Events() {
				var spec struct{ N int }
				if err := json.Unmarshal(ev.Object.Spec, &spec); err != nil {
					return err
				}
				switch {
				case first && ev.Type != Added:
					return fmt.Errorf("first event is %s, want ADDED from the snapshot", ev.Type)
				case first:
					want, first = spec.N, false
				case ev.Type != Modified || spec.N != want:
					return fmt.Errorf("got %s n=%d, want MODIFIED n=%d", ev.Type, spec.N, want)
				}
				if want == writes {
					return nil
				}
				want++
			}
			return fmt.Errorf("watch ended early: %v", w.Err())
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestWatchOverflow(t *testing.T) {
	const buffer = 4
	s := openStore(t, "", Options{WatchBuffer: buffer})
	ctx := t.Context()
	slow, err := s.Watch(ctx, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Stop()
	other, err := s.Watch(ctx, WatchOptions{Kind: "Other"}) // sees none of the writes, so never overflows
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()

	// Nobody reads slow; if writers blocked on it this loop would never finish.
	for i := range 3 * buffer {
		apply(t, s, model("m", fmt.Sprintf(`{"n":%d}`, i)))
	}
	received := 0
	for range slow.Events() { // closed by the overflow
		received++
	}
	if !errors.Is(slow.Err(), ErrWatchOverflow) {
		t.Errorf("slow watcher Err() = %v, want ErrWatchOverflow", slow.Err())
	}
	if received > buffer+1 {
		t.Errorf("slow watcher received %d events, more than its buffer of %d (+1 in flight)", received, buffer)
	}
	apply(t, s, Object{Kind: "Other", Name: "o"})
	if ev := <-other.Events(); ev.Object.Kind != "Other" || other.Err() != nil {
		t.Errorf("other watcher: got %s, err %v; want its event and no error", describeEvent(ev), other.Err())
	}
}

func TestWatchEnds(t *testing.T) {
	tests := []struct {
		name    string
		end     func(cancel context.CancelFunc, s *Store, w *Watcher)
		wantErr error
	}{
		{"ctx cancelled", func(cancel context.CancelFunc, _ *Store, _ *Watcher) { cancel() }, nil},
		{"Stop", func(_ context.CancelFunc, _ *Store, w *Watcher) { w.Stop() }, nil},
		{"store closed", func(_ context.CancelFunc, s *Store, _ *Watcher) {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		}, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "", Options{})
			apply(t, s, model("m", `{}`))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w, err := s.Watch(ctx, WatchOptions{SendInitial: true})
			if err != nil {
				t.Fatal(err)
			}
			if ev := <-w.Events(); ev.Type != Added {
				t.Fatalf("first event %s, want ADDED", describeEvent(ev))
			}
			tt.end(cancel, s, w)
			for ev := range w.Events() {
				t.Errorf("unexpected event after the end: %s", describeEvent(ev))
			}
			if !errors.Is(w.Err(), tt.wantErr) || (tt.wantErr == nil && w.Err() != nil) {
				t.Errorf("Err() = %v, want %v", w.Err(), tt.wantErr)
			}
			w.Stop() // harmless after the end
		})
	}
}

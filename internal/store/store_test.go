package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock ticks one second per call, so that timestamps are predictable and distinct.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// openStore opens a store in dir (a fresh temporary one if ""), closed when the test ends.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func model(name, spec string) Object {
	return Object{Kind: "ClusterBaseModel", Name: name, Spec: json.RawMessage(spec)}
}

func service(ns, name, spec string) Object {
	return Object{Kind: "InferenceService", Namespace: ns, Name: name, Spec: json.RawMessage(spec)}
}

func apply(t testing.TB, s *Store, objs ...Object) []Result {
	t.Helper()
	res, err := s.Apply(context.Background(), objs, ApplyOptions{})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// storeRV returns the store's current resourceVersion.
func storeRV(t testing.TB, s *Store) int64 {
	t.Helper()
	_, rv, err := s.List(context.Background(), "", ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return rv
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ignoreUID compares objects without their random UID.
var ignoreUID = cmpopts.IgnoreFields(Object{}, "UID")

func TestApplyGenerationSemantics(t *testing.T) {
	clock := newClock()
	s := openStore(t, "", Options{Now: clock.Now})
	ctx := t.Context()
	created := clock.now.Add(time.Second) // the first clock reading is the creation time

	// Each step applies one version of the same object; the store carries over from step to step.
	steps := []struct {
		name       string
		in         Object
		wantAction Action
		wantGen    int64
		wantRV     int64
	}{
		{"create", model("m", `{"size": 1}`), ActionCreated, 1, 1},
		{"same spec, different formatting", model("m", "{ \"size\" :\n 1 }"), ActionUnchanged, 1, 1},
		{"labels only", withLabels(model("m", `{"size":1}`), map[string]string{"team": "a"}), ActionConfigured, 1, 2},
		{"spec change", withLabels(model("m", `{"size":2}`), map[string]string{"team": "a"}), ActionConfigured, 2, 3},
		{"annotations only", withAnnotations(withLabels(model("m", `{"size":2}`), map[string]string{"team": "a"}),
			map[string]string{"note": "x"}), ActionConfigured, 2, 4},
		{"input status is ignored", withStatus(withAnnotations(withLabels(model("m", `{"size":2}`),
			map[string]string{"team": "a"}), map[string]string{"note": "x"}), `{"ready":true}`), ActionUnchanged, 2, 4},
		{"labels removed", model("m", `{"size":2}`), ActionConfigured, 2, 5},
		{"matching resourceVersion precondition", withRV(model("m", `{"size":3}`), 5), ActionConfigured, 3, 6},
	}
	var uid string
	for _, step := range steps {
		res := apply(t, s, step.in)
		got := res[0]
		want := Result{Action: step.wantAction, Object: Object{
			Kind: step.in.Kind, Name: step.in.Name, Generation: step.wantGen, ResourceVersion: step.wantRV,
			CreationTimestamp: created, Labels: step.in.Labels, Annotations: step.in.Annotations,
			Spec: compact(t, step.in.Spec),
		}}
		if diff := cmp.Diff(want, got, ignoreUID); diff != "" {
			t.Fatalf("step %q: Apply result mismatch (-want +got):\n%s", step.name, diff)
		}
		if uid == "" {
			uid = got.Object.UID
			if !uuidV4.MatchString(uid) {
				t.Fatalf("UID %q is not a version 4 UUID", uid)
			}
		} else if got.Object.UID != uid {
			t.Fatalf("step %q: UID changed from %s to %s", step.name, uid, got.Object.UID)
		}
		stored, err := s.Get(ctx, "ClusterBaseModel", "", "m")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got.Object, stored); diff != "" {
			t.Fatalf("step %q: Get differs from Apply result (-apply +get):\n%s", step.name, diff)
		}
	}
}

func TestApplyPreservesStatus(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s, model("m", `{"size":1}`))
	if _, err := s.UpdateStatus(ctx, "ClusterBaseModel", "", "m", 0, json.RawMessage(`{"phase": "Ready"}`)); err != nil {
		t.Fatal(err)
	}
	res := apply(t, s, model("m", `{"size":2}`))
	if got, want := string(res[0].Object.Status), `{"phase":"Ready"}`; got != want {
		t.Errorf("status after spec change = %s, want %s", got, want)
	}
}

func TestUpdateStatus(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s, model("m", `{}`)) // rv 1

	got, err := s.UpdateStatus(ctx, "ClusterBaseModel", "", "m", 1, json.RawMessage(`{"phase": "Pulling"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != 2 || got.Generation != 1 || string(got.Status) != `{"phase":"Pulling"}` {
		t.Errorf("after status update: rv %d, generation %d, status %s; want 2, 1, {\"phase\":\"Pulling\"}",
			got.ResourceVersion, got.Generation, got.Status)
	}
	// The same status, formatted differently, is a no-op.
	same, err := s.UpdateStatus(ctx, "ClusterBaseModel", "", "m", 0, json.RawMessage("{\n  \"phase\": \"Pulling\"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, same); diff != "" {
		t.Errorf("identical status changed the object (-want +got):\n%s", diff)
	}
	if rv := storeRV(t, s); rv != 2 {
		t.Errorf("store resourceVersion after no-op status update = %d, want 2", rv)
	}

	_, err = s.UpdateStatus(ctx, "ClusterBaseModel", "", "missing", 0, json.RawMessage(`{}`))
	var nf *NotFoundError
	if !errors.As(err, &nf) || err.Error() != `ClusterBaseModel "missing" not found` {
		t.Errorf("UpdateStatus of a missing object: got %v, want a *NotFoundError", err)
	}
	if _, err := s.UpdateStatus(ctx, "ClusterBaseModel", "", "m", 0, json.RawMessage(`{`)); err == nil {
		t.Error("UpdateStatus accepted invalid JSON")
	}
}

func TestStaleResourceVersion(t *testing.T) {
	tests := []struct {
		name string
		op   func(ctx context.Context, s *Store) error
	}{
		{"Apply", func(ctx context.Context, s *Store) error {
			_, err := s.Apply(ctx, []Object{withRV(service("prod", "llm", `{"replicas":3}`), 1)}, ApplyOptions{})
			return err
		}},
		{"UpdateStatus", func(ctx context.Context, s *Store) error {
			_, err := s.UpdateStatus(ctx, "InferenceService", "prod", "llm", 1, json.RawMessage(`{"ready":1}`))
			return err
		}},
		{"Delete", func(ctx context.Context, s *Store) error {
			_, err := s.Delete(ctx, "InferenceService", "prod", "llm", 1)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "", Options{})
			apply(t, s, service("prod", "llm", `{"replicas":1}`)) // rv 1
			apply(t, s, model("other", `{}`))                     // rv 2
			apply(t, s, service("prod", "llm", `{"replicas":2}`)) // rv 3
			before, _, err := s.List(t.Context(), "", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}

			err = tt.op(t.Context(), s)
			var conflict *ConflictError
			if !errors.As(err, &conflict) {
				t.Fatalf("got %v, want a *ConflictError", err)
			}
			want := &ConflictError{Kind: "InferenceService", Namespace: "prod", Name: "llm", Want: 1, Have: 3}
			if diff := cmp.Diff(want, conflict); diff != "" {
				t.Errorf("conflict mismatch (-want +got):\n%s", diff)
			}
			const msg = `InferenceService "prod/llm": the object has been modified (resourceVersion 1 is stale, ` +
				`current is 3): get it again and re-apply your change`
			if err.Error() != msg {
				t.Errorf("message:\n got %s\nwant %s", err, msg)
			}
			after, _, err := s.List(t.Context(), "", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("a conflicting %s changed the store (-before +after):\n%s", tt.name, diff)
			}
		})
	}
}

func TestApplyPreconditionOnMissingObject(t *testing.T) {
	s := openStore(t, "", Options{})
	_, err := s.Apply(t.Context(), []Object{withRV(model("gone", `{}`), 7)}, ApplyOptions{})
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Have != 0 || !strings.Contains(err.Error(), "has been deleted") {
		t.Fatalf("got %v, want a *ConflictError saying the object has been deleted", err)
	}
	if _, err := s.Get(t.Context(), "ClusterBaseModel", "", "gone"); err == nil {
		t.Error("the object was created despite the failed precondition")
	}
}

func TestApplyBatchIsAtomic(t *testing.T) {
	tests := []struct {
		name    string
		batch   []Object
		wantErr string
	}{
		{
			name:    "one stale object",
			batch:   []Object{model("new1", `{}`), withRV(model("existing", `{"v":2}`), 99), model("new2", `{}`)},
			wantErr: "resourceVersion 99 is stale",
		},
		{
			name:    "duplicate in batch",
			batch:   []Object{model("new1", `{}`), model("existing", `{"v":2}`), model("new1", `{"v":1}`)},
			wantErr: `objects[2]: ClusterBaseModel "new1" appears twice in the batch (also objects[0])`,
		},
		{
			name:    "invalid spec",
			batch:   []Object{model("new1", `{}`), model("new2", `{"v":`)},
			wantErr: `objects[1]: spec of ClusterBaseModel "new2" is not valid JSON`,
		},
		{
			name:    "missing name",
			batch:   []Object{model("new1", `{}`), {Kind: "ClusterBaseModel"}},
			wantErr: "kind and name are required",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "", Options{})
			ctx := t.Context()
			apply(t, s, model("existing", `{"v":1}`))
			w, err := s.Watch(ctx, WatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()

			_, err = s.Apply(ctx, tt.batch, ApplyOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Apply error = %v, want one containing %q", err, tt.wantErr)
			}
			objs, rv, err := s.List(ctx, "", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 1 || string(objs[0].Spec) != `{"v":1}` || rv != 1 {
				t.Errorf("after the failed batch: %d objects, spec %s, store rv %d; want only the original at rv 1",
					len(objs), objs[0].Spec, rv)
			}
			// The failed batch published nothing: the next event the watcher sees is the next write.
			apply(t, s, model("next", `{}`))
			if ev := <-w.Events(); ev.Object.Name != "next" || ev.Object.ResourceVersion != 2 {
				t.Errorf("first watch event after the failed batch = %s %s rv %d, want ADDED next rv 2",
					ev.Type, ev.Object.Name, ev.Object.ResourceVersion)
			}
		})
	}
}

func TestApplyDryRun(t *testing.T) {
	clock := newClock()
	s := openStore(t, "", Options{Now: clock.Now})
	ctx := t.Context()
	existing := apply(t, s, model("existing", `{"v":1}`))[0].Object

	got, err := s.Apply(ctx, []Object{model("existing", `{"v":2}`), model("new", `{"v":1}`), model("same", `{}`)},
		ApplyOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	updated := existing
	updated.Spec, updated.Generation = json.RawMessage(`{"v":2}`), 2
	want := []Result{
		{ActionConfigured, updated},
		{ActionCreated, Object{Kind: "ClusterBaseModel", Name: "new", Generation: 1,
			CreationTimestamp: clock.now.Add(-time.Second), Spec: json.RawMessage(`{"v":1}`)}},
		{ActionCreated, Object{Kind: "ClusterBaseModel", Name: "same", Generation: 1,
			CreationTimestamp: clock.now, Spec: json.RawMessage(`{}`)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dry-run results (-want +got):\n%s", diff)
	}
	objs, rv, err := s.List(ctx, "", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Object{existing}, objs); diff != "" || rv != 1 {
		t.Errorf("dry run changed the store (store rv %d, want 1) (-want +got):\n%s", rv, diff)
	}
	// A failing dry run reports the same error a real apply would.
	_, err = s.Apply(ctx, []Object{withRV(model("existing", `{}`), 5)}, ApplyOptions{DryRun: true})
	if !errors.As(err, new(*ConflictError)) {
		t.Errorf("dry run with a stale resourceVersion: got %v, want a *ConflictError", err)
	}
}

func TestGetAndList(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s,
		withLabels(service("prod", "b", `{}`), map[string]string{"tier": "gpu"}),
		withLabels(service("dev", "a", `{}`), map[string]string{"tier": "cpu"}),
		withLabels(service("prod", "a", `{}`), map[string]string{"tier": "gpu", "canary": "true"}),
		model("a", `{}`),
	)
	tests := []struct {
		name, kind, ns, selector string
		want                     []string
	}{
		{"all services", "InferenceService", "", "", []string{"dev/a", "prod/a", "prod/b"}},
		{"one namespace", "InferenceService", "prod", "", []string{"prod/a", "prod/b"}},
		{"selector", "InferenceService", "", "tier=gpu,!canary", []string{"prod/b"}},
		{"cluster-scoped", "ClusterBaseModel", "", "", []string{"/a"}},
		{"every kind", "", "", "", []string{"/a", "dev/a", "prod/a", "prod/b"}},
		{"no match", "Nope", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := ParseSelector(tt.selector)
			if err != nil {
				t.Fatal(err)
			}
			objs, rv, err := s.List(ctx, tt.kind, ListOptions{Namespace: tt.ns, Selector: sel})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Namespace+"/"+o.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || rv != 4 {
				t.Errorf("List rv = %d, want 4; objects (-want +got):\n%s", rv, diff)
			}
		})
	}

	_, err := s.Get(ctx, "InferenceService", "prod", "missing")
	var nf *NotFoundError
	if !errors.As(err, &nf) || err.Error() != `InferenceService "prod/missing" not found` {
		t.Errorf("Get of a missing object: got %v", err)
	}
	// Returned objects are copies.
	o, err := s.Get(ctx, "InferenceService", "prod", "a")
	if err != nil {
		t.Fatal(err)
	}
	o.Labels["tier"] = "changed"
	if o, _ := s.Get(ctx, "InferenceService", "prod", "a"); o.Labels["tier"] != "gpu" {
		t.Error("modifying a returned object changed the store")
	}
}

func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, s, withLabels(service("prod", "llm", `{"replicas":1}`), map[string]string{"a": "b"}), model("m", `{}`))
	if _, err := s.UpdateStatus(ctx, "InferenceService", "prod", "llm", 0, json.RawMessage(`{"ready":true}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, Event{Kind: "ClusterBaseModel", Name: "m", Reason: "Pulled", Message: "done"}); err != nil {
		t.Fatal(err)
	}
	before, rv, err := s.List(ctx, "", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := s.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{})
	after, rvAfter, err := s.List(ctx, "", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" || rvAfter != rv {
		t.Errorf("after restart: rv %d, want %d; objects (-before +after):\n%s", rvAfter, rv, diff)
	}
	eventsAfter, err := s.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(events, eventsAfter); diff != "" {
		t.Errorf("events after restart (-before +after):\n%s", diff)
	}
	res := apply(t, s, model("m", `{"v":2}`))
	if res[0].Object.ResourceVersion != rv+1 {
		t.Errorf("first write after restart got rv %d, want %d", res[0].Object.ResourceVersion, rv+1)
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description, so a second Open in this process is refused exactly
	// as one from another process would be.
	_, err = Open(t.Context(), dir, Options{})
	want := fmt.Sprintf("data directory %s is in use by another citadel process (pid %d): "+
		"stop it or pass a different --data-dir", dir, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second Open:\n got %v\nwant %s", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir, Options{}) // Close released the lock
}

func TestConcurrentWriters(t *testing.T) {
	const writers, updates = 8, 50
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s, model("counter", `{"n":0}`))

	var conflicts sync.Map // only to show that the test did exercise conflicts
	g, ctx := errgroup.WithContext(ctx)
	for w := range writers {
		g.Go(func() error {
			for range updates {
				for {
					o, err := s.Get(ctx, "ClusterBaseModel", "", "counter")
					if err != nil {
						return err
					}
					var spec struct{ N int }
					if err := json.Unmarshal(o.Spec, &spec); err != nil {
						return err
					}
					o.Spec = json.RawMessage(`{"n":` + strconv.Itoa(spec.N+1) + `}`)
					_, err = s.Apply(ctx, []Object{o}, ApplyOptions{})
					if errors.As(err, new(*ConflictError)) {
						conflicts.Store(w, true)
						continue // someone else won: read again
					}
					if err != nil {
						return err
					}
					break
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(t.Context(), "ClusterBaseModel", "", "counter")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"n":%d}`, writers*updates)
	if string(o.Spec) != want || o.Generation != writers*updates+1 {
		t.Errorf("counter = %s generation %d, want %s generation %d", o.Spec, o.Generation, want, writers*updates+1)
	}
	n := 0
	conflicts.Range(func(any, any) bool { n++; return true })
	t.Logf("%d of %d writers retried after a conflict", n, writers)
}

func TestDeleteHooks(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	apply(t, s, service("prod", "llm", `{}`), model("m", `{}`)) // rv 1, 2

	var calls []string
	s.OnDelete("InferenceService", func(ctx context.Context, o Object) error {
		calls = append(calls, "service hook: "+o.Name)
		// Hooks run outside the write lock, so they may use the store.
		return s.RecordEvent(ctx, Event{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, UID: o.UID,
			Reason: "Deleting", Message: "cleaning up"})
	})
	refuse := errors.New("model files are still in use by InferenceService prod/llm: delete it first")
	s.OnDelete("", func(_ context.Context, o Object) error {
		calls = append(calls, "global hook: "+o.Name)
		if o.Kind == "ClusterBaseModel" {
			return refuse
		}
		return nil
	})

	// A refusing hook aborts the delete.
	_, err := s.Delete(ctx, "ClusterBaseModel", "", "m", 0)
	var blocked *DeleteBlockedError
	if !errors.Is(err, refuse) || !errors.As(err, &blocked) || !strings.HasPrefix(err.Error(), `ClusterBaseModel "m" was not deleted: `) {
		t.Fatalf("Delete with a refusing hook: got %v, want the hook's error wrapped", err)
	}
	if _, err := s.Get(ctx, "ClusterBaseModel", "", "m"); err != nil {
		t.Errorf("object gone after an aborted delete: %v", err)
	}

	deleted, err := s.Delete(ctx, "InferenceService", "prod", "llm", 1)
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Name != "llm" || deleted.ResourceVersion != 3 {
		t.Errorf("Delete returned %s rv %d, want llm rv 3", deleted.Name, deleted.ResourceVersion)
	}
	wantCalls := []string{"global hook: m", "service hook: llm", "global hook: llm"}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("hook calls (-want +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, "InferenceService", "prod", "llm"); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("Get after Delete: got %v, want a *NotFoundError", err)
	}
	events, err := s.Events(ctx, EventFilter{Name: "llm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Reason != "Deleting" {
		t.Errorf("events of the deleted object: %+v, want the one recorded by the hook", events)
	}
	if _, err := s.Delete(ctx, "InferenceService", "prod", "llm", 0); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("second Delete: got %v, want a *NotFoundError", err)
	}
}

func TestDeleteRerunsHooksWhenObjectChanges(t *testing.T) {
	tests := []struct {
		name      string
		rv        int64
		wantCalls int
		wantErr   bool
	}{
		{"unconditional delete reruns the hooks on the new version", 0, 2, false},
		{"conditional delete reports the conflict", 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, "", Options{})
			apply(t, s, model("m", `{}`))
			var seen []int64
			s.OnDelete("", func(ctx context.Context, o Object) error {
				seen = append(seen, o.ResourceVersion)
				if len(seen) == 1 { // a controller writes while the first hook runs
					_, err := s.UpdateStatus(ctx, o.Kind, o.Namespace, o.Name, 0, json.RawMessage(`{"x":1}`))
					return err
				}
				return nil
			})
			_, err := s.Delete(t.Context(), "ClusterBaseModel", "", "m", tt.rv)
			if (err != nil) != tt.wantErr || (err != nil && !errors.As(err, new(*ConflictError))) {
				t.Fatalf("Delete error = %v, want conflict: %v", err, tt.wantErr)
			}
			if len(seen) != tt.wantCalls {
				t.Errorf("hook saw versions %v, want %d calls", seen, tt.wantCalls)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := t.Context()
	ops := map[string]func() error{
		"Apply": func() error { _, err := s.Apply(ctx, []Object{model("m", `{}`)}, ApplyOptions{}); return err },
		"Get":   func() error { _, err := s.Get(ctx, "K", "", "n"); return err },
		"List":  func() error { _, _, err := s.List(ctx, "K", ListOptions{}); return err },
		"UpdateStatus": func() error {
			_, err := s.UpdateStatus(ctx, "K", "", "n", 0, nil)
			return err
		},
		"Delete":      func() error { _, err := s.Delete(ctx, "K", "", "n", 0); return err },
		"RecordEvent": func() error { return s.RecordEvent(ctx, Event{Kind: "K", Name: "n", Reason: "R"}) },
		"Events":      func() error { _, err := s.Events(ctx, EventFilter{}); return err },
		"Watch":       func() error { _, err := s.Watch(ctx, WatchOptions{}); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestMigrateFromOlderSchema(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	// A data directory written by a binary that knew only the first migration, holding one object.
	db, err := sql.Open("sqlite", filepath.Join(dir, "citadel.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migrations[:1], time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO objects (kind, namespace, name, uid, generation,
		resource_version, created, spec) VALUES ('ClusterBaseModel', '', 'old', 'u-1', 3, 7, 0, '{"v":1}');
		UPDATE meta SET value = 7 WHERE key = 'resource_version'`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, dir, Options{})
	o, err := s.Get(ctx, "ClusterBaseModel", "", "old")
	if err != nil {
		t.Fatalf("object written before the migration: %v", err)
	}
	if o.Generation != 3 || o.ResourceVersion != 7 || string(o.Spec) != `{"v":1}` {
		t.Errorf("object after migration: %+v", o)
	}
	// Migration 2 added events.
	if err := s.RecordEvent(ctx, Event{Kind: "ClusterBaseModel", Name: "old", Reason: "Migrated"}); err != nil {
		t.Errorf("RecordEvent after migration: %v", err)
	}
	var versions []int
	rows, err := s.rdb.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if diff := cmp.Diff([]int{1, 2}, versions); diff != "" {
		t.Errorf("applied migrations (-want +got):\n%s", diff)
	}
	if res := apply(t, s, model("new", `{}`)); res[0].Object.ResourceVersion != 8 {
		t.Errorf("first write after migration got rv %d, want 8", res[0].Object.ResourceVersion)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "citadel.db"))
	if err != nil {
		t.Fatal(err)
	}
	newer := len(migrations) + 3
	if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations VALUES (?, 'later')`, newer); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = Open(t.Context(), dir, Options{})
	want := fmt.Sprintf("data directory was written by a newer citadel (schema %d, this binary knows %d): upgrade citadel",
		newer, len(migrations))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer data directory: got %v, want an error containing %q", err, want)
	}
	// The failed Open released the lock: trying again gives the same error, not "in use".
	if _, err := Open(t.Context(), dir, Options{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open of a newer data directory: got %v, want an error containing %q", err, want)
	}
}

func withLabels(o Object, l map[string]string) Object      { o.Labels = l; return o }
func withAnnotations(o Object, a map[string]string) Object { o.Annotations = a; return o }
func withStatus(o Object, st string) Object                { o.Status = json.RawMessage(st); return o }
func withRV(o Object, rv int64) Object                     { o.ResourceVersion = rv; return o }

func compact(t testing.TB, raw json.RawMessage) json.RawMessage {
	t.Helper()
	c, err := compactJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

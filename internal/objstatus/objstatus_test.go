package objstatus

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestWrite walks one object through the cases every owner meets: a first status, the same
// status again, a moved message, a moved reason within a progress phase, a failure, and a
// stale resource version.
func TestWrite(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	_, err := st.Apply(ctx, []store.Object{{Kind: v1.KindInferenceService, Namespace: "default", Name: "s", Spec: json.RawMessage(`{}`)}}, store.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := Writer{Store: st}
	get := func() store.Object {
		so, err := st.Get(ctx, v1.KindInferenceService, "default", "s")
		if err != nil {
			t.Fatal(err)
		}
		return so
	}
	events := func() []string {
		evs, err := st.Events(ctx, store.EventFilter{Name: "s"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			if e.Reason != "Created" {
				out = append(out, e.Type+" "+e.Reason+" "+e.Message)
			}
		}
		return out
	}
	steps := []struct {
		name     string
		status   v1.Status
		progress bool
		want     Result
		event    string // the newest event after the step, "" for none so far
	}{
		{"first", v1.Status{Phase: "Pending", Reason: v1.ReasonModelNotReady, Message: "waiting"}, false,
			Result{Written: true, Event: true}, "Normal ModelNotReady Pending: waiting"},
		{"same again", v1.Status{Phase: "Pending", Reason: v1.ReasonModelNotReady, Message: "waiting"}, false,
			Result{}, "Normal ModelNotReady Pending: waiting"},
		{"message moved", v1.Status{Phase: "Pending", Reason: v1.ReasonModelNotReady, Message: "still waiting"}, false,
			Result{Written: true}, "Normal ModelNotReady Pending: waiting"},
		{"progress reason", v1.Status{Phase: "Pending", Reason: v1.ReasonDownloading, Message: "1 of 2"}, true,
			Result{Written: true}, "Normal ModelNotReady Pending: waiting"},
		{"failed", v1.Status{Phase: v1.ServiceFailed, Reason: v1.ReasonEngineNotFound, Message: "no vllm"}, false,
			Result{Written: true, Event: true}, "Warning EngineNotFound Failed: no vllm"},
		{"no reason", v1.Status{Phase: "Available"}, false,
			Result{Written: true, Event: true}, "Normal Available Available"},
	}
	for _, s := range steps {
		got, err := w.Write(ctx, Update{Object: get(), Status: s.status, ReasonIsProgress: s.progress})
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: %+v, want %+v", s.name, got, s.want)
		}
		evs := events()
		last := ""
		if len(evs) > 0 {
			last = evs[len(evs)-1]
		}
		if last != s.event {
			t.Errorf("%s: newest event %q, want %q (all: %q)", s.name, last, s.event, evs)
		}
	}
	// An owner that read an older version writes nothing and is told so.
	old := get()
	old.ResourceVersion--
	got, err := w.Write(ctx, Update{Object: old, Status: v1.Status{Phase: "Pending"}})
	if err != nil || got != (Result{Stale: true}) {
		t.Errorf("stale write: %+v, %v", got, err)
	}
	if so := get(); !strings.Contains(string(so.Status), "Available") {
		t.Errorf("a stale write changed the status: %s", so.Status)
	}
	// A deleted object is stale too.
	got, err = w.Write(ctx, Update{Object: store.Object{Kind: v1.KindRoute, Namespace: "default", Name: "gone"}, Status: v1.Status{Phase: "Ready"}})
	if err != nil || got != (Result{Stale: true}) {
		t.Errorf("write to a missing object: %+v, %v", got, err)
	}
}

func TestWarning(t *testing.T) {
	for _, c := range []struct {
		phase, reason string
		want          bool
	}{
		{v1.ModelFailed, v1.ReasonChecksumMismatch, true},
		{v1.ServiceDegraded, v1.ReasonExited, true},
		{"Degraded", v1.ReasonNoReadyTargets, true}, // a Route's
		{v1.ServicePending, v1.ReasonModelNotFound, true},
		{v1.ServicePending, v1.ReasonUnschedulable, true},
		{v1.ModelPending, v1.ReasonModelFilesMissing, true},
		{v1.ModelPending, v1.ReasonAwaitingAgent, false},
		{v1.ServicePending, v1.ReasonModelNotReady, false},
		{v1.ModelPending, v1.ReasonModelDisabled, false},
		{"Pending", v1.ReasonNoGateway, false},
		{"Ready", v1.ReasonServing, false},
		{"Disabled", v1.ReasonRuntimeDisabled, false},
	} {
		if got := Warning(c.phase, c.reason); got != c.want {
			t.Errorf("Warning(%s, %s) = %v, want %v", c.phase, c.reason, got, c.want)
		}
	}
}

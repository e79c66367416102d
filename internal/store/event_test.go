package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEventsDedupeAndOrder(t *testing.T) {
	clock := newClock()
	s := openStore(t, "", Options{Now: clock.Now})
	ctx := t.Context()
	base := clock.Now()
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

	record := []Event{
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Reason: "Pulling", Message: "pulling weights"},                        // t1
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Reason: "Pulling", Message: "pulling weights"},                        // t2: count 2
		{Kind: "InferenceService", Namespace: "prod", Name: "llm", Type: "Warning", Reason: "NoGPU", Message: "0/1 GPUs free"}, // t3
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Reason: "Pulling", Message: "pulling weights"},                        // t4: count 3
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Reason: "Pulled", Message: "done"},                                    // t5
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Reason: "Pulling", Message: "pulling weights"},                        // t6: not the latest, new row
		{Kind: "ClusterBaseModel", Name: "m", UID: "u2", Reason: "Pulling", Message: "pulling weights"},                        // t7: other UID, new row
	}
	for _, e := range record {
		if err := s.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Kind: "InferenceService", Namespace: "prod", Name: "llm", Type: "Warning", Reason: "NoGPU", Message: "0/1 GPUs free",
			Count: 1, FirstTimestamp: at(3), LastTimestamp: at(3)},
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Type: "Normal", Reason: "Pulling", Message: "pulling weights",
			Count: 3, FirstTimestamp: at(1), LastTimestamp: at(4)},
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Type: "Normal", Reason: "Pulled", Message: "done",
			Count: 1, FirstTimestamp: at(5), LastTimestamp: at(5)},
		{Kind: "ClusterBaseModel", Name: "m", UID: "u1", Type: "Normal", Reason: "Pulling", Message: "pulling weights",
			Count: 1, FirstTimestamp: at(6), LastTimestamp: at(6)},
		{Kind: "ClusterBaseModel", Name: "m", UID: "u2", Type: "Normal", Reason: "Pulling", Message: "pulling weights",
			Count: 1, FirstTimestamp: at(7), LastTimestamp: at(7)},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Event{}, "ID")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	filters := []struct {
		name string
		f    EventFilter
		want []string // reasons
	}{
		{"by kind", EventFilter{Kind: "InferenceService"}, []string{"NoGPU"}},
		{"by namespace", EventFilter{Namespace: "prod"}, []string{"NoGPU"}},
		{"by name", EventFilter{Kind: "ClusterBaseModel", Name: "m"}, []string{"Pulling", "Pulled", "Pulling", "Pulling"}},
		{"limit keeps the newest", EventFilter{Limit: 2}, []string{"Pulling", "Pulling"}},
		{"limit keeps the newest, by last timestamp", EventFilter{Limit: 4}, []string{"Pulling", "Pulled", "Pulling", "Pulling"}},
		{"no match", EventFilter{Name: "nope"}, nil},
	}
	for _, tt := range filters {
		t.Run(tt.name, func(t *testing.T) {
			events, err := s.Events(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range events {
				got = append(got, e.Reason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventsBoundedPerObject(t *testing.T) {
	s := openStore(t, "", Options{EventsPerObject: 3})
	ctx := t.Context()
	if err := s.RecordEvent(ctx, Event{Kind: "K", Name: "other", Reason: "Kept"}); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"1", "2", "3", "4", "5"} {
		if err := s.RecordEvent(ctx, Event{Kind: "K", Name: "busy", Reason: "Step", Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Name+":"+e.Message)
	}
	if diff := cmp.Diff([]string{"other:", "busy:3", "busy:4", "busy:5"}, got); diff != "" {
		t.Errorf("events kept (-want +got):\n%s", diff)
	}
}

func TestRecordEventValidation(t *testing.T) {
	s := openStore(t, "", Options{})
	tests := []struct {
		name    string
		e       Event
		wantErr string
	}{
		{"no object", Event{Reason: "R"}, "kind and name of the involved object are required"},
		{"bad type", Event{Kind: "K", Name: "n", Type: "Error", Reason: "R"}, `type "Error" is neither "Normal" nor "Warning"`},
		{"no reason", Event{Kind: "K", Name: "n"}, "reason is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.RecordEvent(t.Context(), tt.e)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestEventsByUID: a filter by UID returns the events of one incarnation of a name only.
func TestEventsByUID(t *testing.T) {
	s := openStore(t, "", Options{})
	ctx := t.Context()
	for _, e := range []Event{
		{Kind: "InferenceService", Namespace: "default", Name: "llm", UID: "old", Type: EventWarning, Reason: "Unschedulable", Message: "no GPU"},
		{Kind: "InferenceService", Namespace: "default", Name: "llm", UID: "new", Reason: "Created", Message: "created"},
	} {
		if err := s.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Events(ctx, EventFilter{Kind: "InferenceService", Namespace: "default", Name: "llm", UID: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != "Created" {
		t.Errorf("events of uid new: %+v, want only Created", got)
	}
	all, _ := s.Events(ctx, EventFilter{Kind: "InferenceService", Namespace: "default", Name: "llm"})
	if len(all) != 2 {
		t.Errorf("events of the name: %d, want both incarnations' 2", len(all))
	}
}

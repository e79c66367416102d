package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/store"
)

func setup(t *testing.T) (*store.Store, *client.Client) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, Options{Version: v1.VersionInfo{Version: "test"}}).Handler())
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

func item(t *testing.T, yamlOrJSON string) v1.ApplyItem {
	t.Helper()
	return v1.ApplyItem{Source: v1.Source{File: "test.yaml", Document: 1}, Object: json.RawMessage(yamlOrJSON)}
}

const modelJSON = `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m","labels":{"team":"lab"}},"spec":{"storage":{"storageUri":"hf://org/m"}}}`

func TestWatchStreamsChanges(t *testing.T) {
	_, c := setup(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{item(t, modelJSON)}}); err != nil {
		t.Fatal(err)
	}
	events := make(chan v1.WatchEvent, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, "models", "", func(ev v1.WatchEvent) error {
			events <- ev
			return nil
		})
	}()
	next := func() (string, v1.Object) {
		t.Helper()
		select {
		case ev := <-events:
			o, err := client.DecodeObject(ev.Object)
			if err != nil {
				t.Fatal(err)
			}
			return ev.Type, o
		case <-ctx.Done():
			t.Fatal("no watch event")
		}
		return "", nil
	}
	if typ, o := next(); typ != "ADDED" || o.GetObjectMeta().Name != "m" {
		t.Fatalf("first event %s %s, want the existing object as ADDED", typ, o.GetObjectMeta().Name)
	}
	// A status update from a controller arrives as MODIFIED.
	obj, err := c.Get(ctx, "models", "", "m")
	if err != nil {
		t.Fatal(err)
	}
	m := obj.(*v1.ClusterBaseModel)
	m.Status.Phase, m.Status.Reason, m.Status.BytesDone, m.Status.BytesTotal = v1.ModelDownloading, "Downloading", 5, 10
	if _, err := c.UpdateStatus(ctx, m); err != nil {
		t.Fatal(err)
	}
	typ, o := next()
	if got := o.(*v1.ClusterBaseModel).Status; typ != "MODIFIED" || got.BytesDone != 5 || got.Phase != v1.ModelDownloading {
		t.Fatalf("after status update: %s %+v", typ, got)
	}
	// The same write again is stale.
	if _, err := c.UpdateStatus(ctx, m); !client.IsConflict(err) || !strings.Contains(err.Error(), "is stale") {
		t.Fatalf("stale status update: %v", err)
	}
	if _, err := c.Delete(ctx, "models", "", "m", ""); err != nil {
		t.Fatal(err)
	}
	if typ, _ := next(); typ != "DELETED" {
		t.Fatalf("after delete: %s", typ)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

func TestAPIErrors(t *testing.T) {
	st, c := setup(t)
	ctx := t.Context()
	if _, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{item(t, modelJSON)}}); err != nil {
		t.Fatal(err)
	}
	// Duplicates within one request are refused before anything is written.
	_, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{item(t, modelJSON), item(t, modelJSON)}})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusUnprocessableEntity || len(ae.Problems) != 1 || !strings.Contains(ae.Problems[0].Message, "duplicate") {
		t.Fatalf("duplicate apply: %v", err)
	}
	// Bad label selectors name the offset.
	if _, err := c.List(ctx, "models", client.ListOptions{LabelSelector: "team in lab"}); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("bad selector: %v", err)
	}
	if objs, err := c.List(ctx, "models", client.ListOptions{LabelSelector: "team in (lab,prod)"}); err != nil || len(objs) != 1 {
		t.Fatalf("selector: %d objects, %v", len(objs), err)
	}
	if objs, err := c.List(ctx, "models", client.ListOptions{LabelSelector: "team!=lab"}); err != nil || len(objs) != 0 {
		t.Fatalf("negative selector: %d objects, %v", len(objs), err)
	}
	// A refusing cleanup hook blocks the delete and says why.
	st.OnDelete(v1.KindClusterBaseModel, func(context.Context, store.Object) error {
		return errors.New("files still in use by InferenceService prod/llm")
	})
	_, err = c.Delete(ctx, "models", "", "m", "")
	if !errors.As(err, &ae) || ae.Reason != v1.ReasonDeleteBlocked || !strings.Contains(err.Error(), "in use by InferenceService prod/llm") {
		t.Fatalf("blocked delete: %v", err)
	}
	if _, err := c.Get(ctx, "models", "", "m"); err != nil {
		t.Fatalf("blocked delete removed the object: %v", err)
	}
	// Unknown routes and kinds.
	if _, err := c.Get(ctx, "gizmos", "", "x"); err == nil || !strings.Contains(err.Error(), "unknown resource type") {
		t.Fatalf("unknown kind: %v", err)
	}
	if _, err := c.Get(ctx, "isvc", "nope", "x"); !client.IsNotFound(err) || !strings.Contains(err.Error(), `InferenceService "nope/x" not found`) {
		t.Fatalf("missing object: %v", err)
	}
}

func TestAuth(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(New(st, Options{Token: "t0ken"}).Handler())
	defer srv.Close()
	for _, tc := range []struct {
		token string
		path  string
		want  int
	}{
		{"", "/api/v1/models", http.StatusUnauthorized},
		{"wrong", "/api/v1/models", http.StatusUnauthorized},
		{"t0ken", "/api/v1/models", http.StatusOK},
		{"", "/healthz", http.StatusOK}, // probes need no token
		{"", "/version", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with token %q: %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
}

// TestEventsOfARecreatedObject: a deleted object's events do not show on a new object of the
// same name (describe and `citadel events --for` read this query); once the name is gone,
// its history stays readable.
func TestEventsOfARecreatedObject(t *testing.T) {
	st, c := setup(t)
	ctx := t.Context()
	apply := func() {
		t.Helper()
		if _, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{item(t, modelJSON)}}); err != nil {
			t.Fatal(err)
		}
		o, err := st.Get(ctx, v1.KindClusterBaseModel, "", "m")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RecordEvent(ctx, store.Event{Kind: o.Kind, Name: o.Name, UID: o.UID, Type: v1.EventWarning, Reason: "RepoNotFound", Message: "uid " + o.UID}); err != nil {
			t.Fatal(err)
		}
	}
	apply()
	if _, err := c.Delete(ctx, v1.KindClusterBaseModel, "", "m", ""); err != nil {
		t.Fatal(err)
	}
	apply()
	now, _ := st.Get(ctx, v1.KindClusterBaseModel, "", "m")
	f := client.EventFilter{Kind: v1.KindClusterBaseModel, Name: "m"}
	evs, err := c.Events(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Reason == "RepoNotFound" && e.Message != "uid "+now.UID {
			t.Errorf("the new object shows the deleted one's event %q", e.Message)
		}
	}
	if len(evs) == 0 {
		t.Error("the new object's own events are missing")
	}
	if _, err := c.Delete(ctx, v1.KindClusterBaseModel, "", "m", ""); err != nil {
		t.Fatal(err)
	}
	if evs, _ := c.Events(ctx, f); len(evs) < 2 {
		t.Errorf("after the delete %d events by name, want both incarnations'", len(evs))
	}
}

// notFoundError stands for the serving controller's NoEngineError: admin knows it only by its
// NotFound method.
type notFoundError struct{}

func (notFoundError) Error() string  { return "no engine runs for InferenceService prod/llm replica 1" }
func (notFoundError) NotFound() bool { return true }

// TestLogsErrors: a Logs error that says NotFound is answered 404 with its message, any other
// error 500; lines already sent are not followed by an error answer.
func TestLogsErrors(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := func(_ context.Context, _, name string, _, _ int, _ bool, w io.Writer) error {
		switch name {
		case "gone":
			return fmt.Errorf("reading logs: %w", notFoundError{})
		case "broken":
			return errors.New("disk on fire")
		}
		fmt.Fprintln(w, "line 1")
		return notFoundError{} // after the first line: the answer has started
	}
	srv := httptest.NewServer(New(st, Options{Logs: logs}).Handler())
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	err = c.Logs(t.Context(), "prod", "gone", 1, 10, false, &b)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusNotFound || ae.Reason != v1.ReasonNotFound ||
		ae.Message != "reading logs: no engine runs for InferenceService prod/llm replica 1" {
		t.Errorf("no engine: %#v", err)
	}
	if err := c.Logs(t.Context(), "prod", "broken", 0, 10, false, &b); !errors.As(err, &ae) || ae.Code != http.StatusInternalServerError {
		t.Errorf("failing logs: %v", err)
	}
	b.Reset()
	if err := c.Logs(t.Context(), "prod", "llm", 0, 10, false, &b); err != nil || b.String() != "line 1\n" {
		t.Errorf("logs = %q, %v", b.String(), err)
	}
}

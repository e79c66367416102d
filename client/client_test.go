package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/admin"
	"citadel.dev/citadel/internal/daemon"
)

// serve runs citadel serve in-process on a loopback port, with neither a model agent, nor a
// serving controller, nor a gateway, and returns its address. It stops when stop is called.
func serve(dataDir, token string) (addr string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			DataDir: dataDir, AdminListener: ln, AdminToken: token,
			Version: v1.VersionInfo{Version: "v0.0.0-test", GoVersion: "go"},
			Logger:  slog.New(slog.DiscardHandler),
			Ready:   func(string) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return "", nil, fmt.Errorf("serve: %w", err)
	case <-time.After(10 * time.Second):
		cancel()
		return "", nil, errors.New("serve did not start in 10s")
	}
	return ln.Addr().String(), func() error { cancel(); return <-done }, nil
}

// start serves in a temporary directory for one test and returns a client of it.
func start(t *testing.T, token string, opts ...client.Option) (*client.Client, string) {
	t.Helper()
	addr, stop, err := serve(t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, addr
}

func item(file string, doc int, obj string) v1.ApplyItem {
	return v1.ApplyItem{Source: v1.Source{File: file, Document: doc}, Object: json.RawMessage(obj)}
}

func model(name, uri string) string {
	return fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":%q,"labels":{"team":"lab"}},"spec":{"storage":{"storageUri":%q}}}`, name, uri)
}

func nsModel(namespace, name string) string {
	return fmt.Sprintf(`{"apiVersion":"ome.io/v1beta1","kind":"BaseModel","metadata":{"name":%q,"namespace":%q},"spec":{"storage":{"storageUri":"hf://org/%s"}}}`, name, namespace, name)
}

func apply(t *testing.T, c *client.Client, req v1.ApplyRequest) *v1.ApplyResponse {
	t.Helper()
	resp, err := c.Apply(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestNewParsesTheAddress(t *testing.T) {
	for _, tc := range []struct{ in, host, err string }{
		{"", client.DefaultAddress, ""},
		{"127.0.0.1:9", "127.0.0.1:9", ""},
		{"http://citadel.example:8081/", "citadel.example:8081", ""},
		{"https://citadel.example", "citadel.example", ""},
		{"ftp://citadel.example", "", "is not host:port or an http(s) URL"},
		{"http://", "", "is not host:port or an http(s) URL"},
	} {
		c, err := client.New(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("New(%q): %v, want an error with %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("New(%q): %v", tc.in, err)
		case tc.err == "" && c.Address() != tc.host:
			t.Errorf("New(%q).Address() = %q, want %q", tc.in, c.Address(), tc.host)
		}
	}
}

// TestApplyGetListDelete walks one object through its life: a dry run stores nothing, apply
// creates it, applying it again changes nothing, it is read by any of its kind's names, listed
// by label and namespace, and deleted (a stale resourceVersion is refused).
func TestApplyGetListDelete(t *testing.T) {
	c, _ := start(t, "")
	ctx := t.Context()
	req := v1.ApplyRequest{Items: []v1.ApplyItem{item("models.yaml", 1, model("m", "hf://org/m"))}, DryRun: true}

	dry := apply(t, c, req)
	if !dry.DryRun || len(dry.Results) != 1 || dry.Results[0].Action != "created" {
		t.Fatalf("dry run: %+v", dry)
	}
	if _, err := c.Get(ctx, "models", "", "m"); !client.IsNotFound(err) {
		t.Fatalf("after a dry run Get = %v, want NotFound: a dry run stores nothing", err)
	}

	req.DryRun = false
	res := apply(t, c, req).Results
	if len(res) != 1 || res[0].Action != "created" || res[0].Kind != v1.KindClusterBaseModel || res[0].Generation != 1 || res[0].ResourceVersion == "" {
		t.Fatalf("apply: %+v", res)
	}
	if again := apply(t, c, req).Results; again[0].Action != "unchanged" || again[0].Generation != 1 {
		t.Fatalf("apply again: %+v, want unchanged at generation 1", again)
	}

	for _, kind := range []string{"models", "cbm", "ClusterBaseModel", "clusterbasemodel"} {
		o, err := c.Get(ctx, kind, "", "m")
		if err != nil {
			t.Fatalf("Get(%q): %v", kind, err)
		}
		m, ok := o.(*v1.ClusterBaseModel)
		if !ok || m.Spec.Storage.StorageURI == nil || *m.Spec.Storage.StorageURI != "hf://org/m" || m.Name != "m" {
			t.Fatalf("Get(%q) = %#v", kind, o)
		}
	}

	apply(t, c, v1.ApplyRequest{Items: []v1.ApplyItem{
		item("ns.yaml", 1, nsModel("team-a", "a")),
		item("ns.yaml", 2, nsModel("team-b", "b")),
	}})
	names := func(kind string, opts client.ListOptions) string {
		t.Helper()
		objs, err := c.List(ctx, kind, opts)
		if err != nil {
			t.Fatalf("List(%s, %+v): %v", kind, opts, err)
		}
		var out []string
		for _, o := range objs {
			m := o.GetObjectMeta()
			out = append(out, strings.TrimPrefix(m.Namespace+"/"+m.Name, "/"))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		kind string
		opts client.ListOptions
		want string
	}{
		{"models", client.ListOptions{}, "m"},
		{"models", client.ListOptions{LabelSelector: "team=lab"}, "m"},
		{"models", client.ListOptions{LabelSelector: "team!=lab"}, ""},
		{"bm", client.ListOptions{}, "team-a/a team-b/b"},
		{"bm", client.ListOptions{Namespace: "team-b"}, "team-b/b"},
	} {
		if got := names(tc.kind, tc.opts); got != tc.want {
			t.Errorf("List(%s, %+v) = %q, want %q", tc.kind, tc.opts, got, tc.want)
		}
	}

	if _, err := c.Delete(ctx, "models", "", "m", "1"); !client.IsConflict(err) {
		t.Fatalf("Delete with a stale resourceVersion: %v, want Conflict", err)
	}
	// The daemon writes the model's status meanwhile: read, delete at that version, and read
	// again when the version went stale in between.
	var gone v1.Object
	for attempt := 0; ; attempt++ {
		cur, err := c.Get(ctx, "models", "", "m")
		if err != nil {
			t.Fatal(err)
		}
		gone, err = c.Delete(ctx, "models", "", "m", cur.GetObjectMeta().ResourceVersion)
		if client.IsConflict(err) && attempt < 50 {
			continue
		}
		if err != nil || gone.GetObjectMeta().Name != "m" {
			t.Fatalf("Delete: %v", err)
		}
		break
	}
	if _, err := c.Get(ctx, "models", "", "m"); !client.IsNotFound(err) {
		t.Fatalf("Get after Delete: %v, want NotFound", err)
	}
	if _, err := c.Delete(ctx, "bm", "team-a", "a", ""); err != nil {
		t.Fatal(err)
	}
	if got := names("bm", client.ListOptions{}); got != "team-b/b" {
		t.Errorf("after deleting team-a/a: %q", got)
	}
}

// TestErrors: each way a call fails has its own error, which says what to do.
func TestErrors(t *testing.T) {
	c, addr := start(t, "s3cret", client.WithToken("s3cret"))
	ctx := t.Context()
	apply(t, c, v1.ApplyRequest{Items: []v1.ApplyItem{item("m.yaml", 1, model("m", "hf://org/m"))}})

	t.Run("not found", func(t *testing.T) {
		_, err := c.Get(ctx, "isvc", "prod", "nope")
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusNotFound || ae.Reason != v1.ReasonNotFound || !client.IsNotFound(err) || client.IsConflict(err) {
			t.Fatalf("Get of a missing object: %#v", err)
		}
		if !strings.Contains(err.Error(), `InferenceService "prod/nope" not found`) {
			t.Errorf("message %q does not name the object", err)
		}
	})

	t.Run("unknown kind", func(t *testing.T) {
		_, err := c.List(ctx, "gizmos", client.ListOptions{})
		var ae *client.APIError
		if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "unknown resource type \"gizmos\"") {
			t.Fatalf("List of an unknown kind: %v, want a local error listing the kinds", err)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		// The daemon writes this status too: the first write is retried until it lands.
		var m *v1.ClusterBaseModel
		for attempt := 0; ; attempt++ {
			o, err := c.Get(ctx, "models", "", "m")
			if err != nil {
				t.Fatal(err)
			}
			m = o.(*v1.ClusterBaseModel)
			m.Status.Message = "first"
			_, err = c.UpdateStatus(ctx, m)
			if client.IsConflict(err) && attempt < 50 {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		m.Status.Message = "second, from the same stale copy"
		_, err := c.UpdateStatus(ctx, m)
		if !client.IsConflict(err) || client.IsNotFound(err) {
			t.Fatalf("stale UpdateStatus: %v, want Conflict", err)
		}
	})

	t.Run("invalid apply", func(t *testing.T) {
		_, err := c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{
			item("two.yaml", 1, model("dup", "hf://org/dup")),
			item("two.yaml", 2, model("dup", "hf://org/dup")),
		}})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Reason != v1.ReasonInvalid || ae.Code != http.StatusUnprocessableEntity || len(ae.Problems) != 1 {
			t.Fatalf("apply with a duplicate: %#v", err)
		}
		if p := ae.Problems[0]; p.File != "two.yaml" || !strings.Contains(p.Message, "duplicate") {
			t.Errorf("problem %+v does not point at the duplicate", p)
		}
		if lines := strings.Split(err.Error(), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "two.yaml") {
			t.Errorf("Error() = %q, want the message then one line per problem", err)
		}
		if _, err := c.Get(ctx, "models", "", "dup"); !client.IsNotFound(err) {
			t.Errorf("a refused apply stored an object: %v", err)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		for _, opts := range [][]client.Option{nil, {client.WithToken("wrong")}} {
			bad, err := client.New(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = bad.Version(ctx)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized || ae.Reason != v1.ReasonUnauthorized || !strings.Contains(err.Error(), "CITADEL_TOKEN") {
				t.Errorf("Version with %d options: %v, want Unauthorized naming CITADEL_TOKEN", len(opts), err)
			}
			if err := bad.Health(ctx); err != nil {
				t.Errorf("Health needs no token: %v", err)
			}
			bad.Close()
		}
	})

	t.Run("no server", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		free := ln.Addr().String()
		ln.Close()
		none, err := client.New(free)
		if err != nil {
			t.Fatal(err)
		}
		err = none.Health(ctx)
		var ue *client.UnreachableError
		if !errors.As(err, &ue) || ue.Address != free || !strings.Contains(err.Error(), "citadel serve") || errors.Unwrap(err) == nil {
			t.Fatalf("Health with no server: %v, want an UnreachableError that says to start citadel serve", err)
		}
		var ae *client.APIError
		if errors.As(err, &ae) || client.IsNotFound(err) {
			t.Errorf("no server is not an API answer: %v", err)
		}
	})

	t.Run("not an API answer", func(t *testing.T) {
		// A proxy in front of the server answers in plain text: the error still carries the
		// status, and the body as its message.
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upstream connect error", http.StatusBadGateway)
		}))
		defer proxy.Close()
		pc, err := client.New(proxy.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pc.Get(ctx, "models", "", "m")
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusBadGateway || ae.Reason != "Bad Gateway" ||
			!strings.Contains(ae.Message, "GET /api/v1/clusterbasemodels/m: 502 Bad Gateway: upstream connect error") {
			t.Fatalf("plain-text 502: %#v", err)
		}
	})
}

// TestWithoutControllers: a server started without a serving controller or a gateway answers
// the calls that need them with NotFound and a message that says why.
func TestWithoutControllers(t *testing.T) {
	c, _ := start(t, "")
	ctx := t.Context()
	_, err := c.GPUs(ctx)
	if !client.IsNotFound(err) || !strings.Contains(err.Error(), admin.NoGPUInventory) {
		t.Errorf("GPUs: %v", err)
	}
	isvc := &v1.InferenceService{Spec: v1.InferenceServiceSpec{Model: &v1.ModelRef{Name: "m"}}}
	if _, err := c.Fit(ctx, isvc); !client.IsNotFound(err) || !strings.Contains(err.Error(), admin.NoGPUInventory) {
		t.Errorf("Fit: %v", err)
	}
	body := json.RawMessage(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if _, err := c.Explain(ctx, body, "openai"); !client.IsNotFound(err) || !strings.Contains(err.Error(), admin.NoGateway) {
		t.Errorf("Explain: %v", err)
	}
	if err := c.Logs(ctx, "default", "llm", 0, 10, false, io.Discard); !client.IsNotFound(err) || !strings.Contains(err.Error(), "no serving controller") {
		t.Errorf("Logs: %v", err)
	}
}

func TestVersionHealthEventsRetry(t *testing.T) {
	c, _ := start(t, "")
	ctx := t.Context()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := c.Version(ctx)
	if err != nil || v.Version != "v0.0.0-test" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	apply(t, c, v1.ApplyRequest{Items: []v1.ApplyItem{item("m.yaml", 1, model("m", "hf://org/m"))}})
	evs, err := c.Events(ctx, client.EventFilter{Kind: v1.KindClusterBaseModel, Name: "m", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	created := false
	for _, e := range evs {
		created = created || e.Reason == "Created"
	}
	if !created {
		t.Errorf("events of a new model: %+v, want Created", evs)
	}
	if evs, err := c.Events(ctx, client.EventFilter{Name: "nobody"}); err != nil || len(evs) != 0 {
		t.Errorf("events of nobody: %+v, %v", evs, err)
	}
	res, err := c.Retry(ctx, "models", "", "m")
	if err != nil || res.Name != "m" || !strings.HasPrefix(res.Action, "unchanged") {
		t.Errorf("Retry of a model that has not failed: %+v, %v, want unchanged", res, err)
	}
	if _, err := c.Retry(ctx, "models", "", "nope"); !client.IsNotFound(err) {
		t.Errorf("Retry of a missing model: %v", err)
	}
}

// TestWatch: a watch starts with the objects that exist, then sees each change; it ends with
// ctx's error when cancelled and with fn's error when fn fails.
func TestWatch(t *testing.T) {
	c, _ := start(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	apply(t, c, v1.ApplyRequest{Items: []v1.ApplyItem{item("m.yaml", 1, model("old", "hf://org/old"))}})

	type change struct{ typ, name string }
	changes := make(chan change, 100)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, "models", "", func(ev v1.WatchEvent) error {
			o, err := client.DecodeObject(ev.Object)
			if err != nil {
				return err
			}
			changes <- change{ev.Type, o.GetObjectMeta().Name}
			return nil
		})
	}()
	// next skips MODIFIED events: the daemon writes the models' statuses as it goes.
	next := func() change {
		t.Helper()
		for {
			select {
			case ch := <-changes:
				if ch.typ != "MODIFIED" {
					return ch
				}
			case err := <-done:
				t.Fatalf("watch ended: %v", err)
			case <-ctx.Done():
				t.Fatal("no watch event in time")
			}
		}
	}
	if got := next(); got != (change{"ADDED", "old"}) {
		t.Fatalf("first event %+v, want the existing object as ADDED", got)
	}
	apply(t, c, v1.ApplyRequest{Items: []v1.ApplyItem{item("m.yaml", 2, model("new", "hf://org/new"))}})
	if got := next(); got != (change{"ADDED", "new"}) {
		t.Fatalf("after apply: %+v", got)
	}
	if _, err := c.Delete(ctx, "models", "", "old", ""); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != (change{"DELETED", "old"}) {
		t.Fatalf("after delete: %+v", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled watch ended with %v", err)
	}

	stopErr := errors.New("seen enough")
	err := c.Watch(t.Context(), "", "", func(v1.WatchEvent) error { return stopErr })
	if !errors.Is(err, stopErr) {
		t.Fatalf("watch whose fn fails ended with %v", err)
	}
	if err := c.Watch(t.Context(), "gizmos", "", nil); err == nil || !strings.Contains(err.Error(), "unknown resource type") {
		t.Fatalf("watch of an unknown kind: %v", err)
	}
}

func TestDecodeObject(t *testing.T) {
	o, err := client.DecodeObject([]byte(model("m", "hf://org/m")))
	if m, ok := o.(*v1.ClusterBaseModel); err != nil || !ok || m.Spec.Storage.StorageURI == nil || *m.Spec.Storage.StorageURI != "hf://org/m" {
		t.Fatalf("DecodeObject = %#v, %v", o, err)
	}
	for _, bad := range []string{`{"kind":"Gizmo"}`, `not json`, `{"kind":"ClusterBaseModel","spec":[]}`} {
		if o, err := client.DecodeObject([]byte(bad)); err == nil {
			t.Errorf("DecodeObject(%s) = %#v, want an error", bad, o)
		}
	}
}

// Package admin serves Citadel's admin API: server-side apply (atomic,
// idempotent, with dry run), get, list, delete, status updates, events,
// a server-sent-events watch stream, health and version. It is an
// http.Handler over the store; secrets never leave it unredacted.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Server.
type Options struct {
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every call but /healthz.
	Token   string
	Version v1.VersionInfo
	Logger  *slog.Logger
	// MaxBodyBytes bounds an apply request; default 32 MiB.
	MaxBodyBytes int64
	// Logs, when set, writes an InferenceService replica's engine log: the
	// last tail lines, then (follow) new lines until ctx ends. When there is
	// no such service or replica it returns an error with a method
	// NotFound() bool that reports true (the serving controller's
	// *serving.NoEngineError), which is answered with 404 NotFound.
	Logs func(ctx context.Context, namespace, name string, replica, tail int, follow bool, w io.Writer) error
	// GPUs, when set, returns the GPU inventory and who holds each GPU (GET /api/v1/gpus).
	GPUs func(ctx context.Context) (v1.GPUList, error)
	// Fit, when set, says whether an InferenceService would be placed now beside the running
	// services, without applying it (POST /api/v1/fit).
	Fit func(ctx context.Context, s *v1.InferenceService) (v1.FitResult, error)
	// Explain, when set, routes a chat request body without sending it (POST
	// /api/v1/explain): the gateway's decision and its reasons. api is openai or ollama.
	Explain func(body []byte, api string) (v1.RouteExplanation, error)
	// Metrics, when set, serves GET /metrics (Prometheus). It needs the token like every
	// other call unless MetricsOpen is set.
	Metrics     http.Handler
	MetricsOpen bool
	// GatewayMetrics, when set, returns the gateway's Prometheus registry (nil until the
	// gateway runs), which Run samples for the dashboard's charts, traffic and objectives.
	GatewayMetrics func() prometheus.Gatherer
	// GatewayAddr, when set, is the gateway's listen address, which the dashboard's
	// playground sends its requests to (over loopback when it listens on every address).
	GatewayAddr string
}

// Server is the admin API.
type Server struct {
	st      *store.Store
	opts    Options
	log     *slog.Logger
	sampler *sampler // nil without GatewayMetrics
}

// New returns a Server over st.
func New(st *store.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	s := &Server{st: st, opts: opts, log: opts.Logger}
	if opts.GatewayMetrics != nil {
		s.sampler = newSampler(opts.GatewayMetrics)
	}
	return s
}

// Run samples the gateway's metrics for the dashboard (with GatewayMetrics set) until ctx
// ends.
func (s *Server) Run(ctx context.Context) error {
	if s.sampler != nil {
		s.sampler.run(ctx)
	}
	return nil
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /version", s.version)
	mux.HandleFunc("POST /api/v1/apply", s.apply)
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("GET /api/v1/watch", s.watch)
	mux.HandleFunc("GET /api/v1/{plural}", s.list)
	mux.HandleFunc("GET /api/v1/{plural}/{name}", s.get)
	mux.HandleFunc("DELETE /api/v1/{plural}/{name}", s.delete)
	mux.HandleFunc("PUT /api/v1/{plural}/{name}/status", s.putStatus)
	mux.HandleFunc("POST /api/v1/{plural}/{name}/retry", s.retryHandler)
	mux.HandleFunc("GET /api/v1/inferenceservices/{name}/logs", s.logs)
	mux.HandleFunc("GET /api/v1/gpus", s.gpus)
	mux.HandleFunc("POST /api/v1/fit", s.fit)
	mux.HandleFunc("POST /api/v1/explain", s.explain)
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /{$}", s.dashboard)
	mux.HandleFunc("GET /api/v1/dashboard", s.dashboardJSON)
	mux.HandleFunc("POST /api/v1/playground", s.playground)
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("GET /favicon.ico", favicon)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, fmt.Sprintf("no admin API route %s %s", r.Method, r.URL.Path), nil)
	})
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" && !(r.URL.Path == "/metrics" && s.opts.MetricsOpen) && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			// The dashboard (GET / and its static files) also takes its cookie, or ?token= once.
			if handled, ok := s.dashboardAuth(w, r); handled || ok {
				if !handled {
					next.ServeHTTP(w, r)
				}
				return
			}
			writeError(w, http.StatusUnauthorized, v1.ReasonUnauthorized, "missing or wrong admin token: pass --token or set CITADEL_TOKEN to the token citadel serve was started with", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, _, err := s.st.List(r.Context(), v1.KindSecret, store.ListOptions{}); err != nil {
		writeError(w, http.StatusServiceUnavailable, v1.ReasonUnavailable, "store unavailable: "+err.Error(), nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// metrics is GET /metrics: the server's state for Prometheus.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, "this server exports no metrics on its admin port", nil)
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.opts.Version)
}

// apply decodes, validates, checks references and writes a batch atomically.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	var req v1.ApplyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "decoding apply request: "+err.Error(), nil)
		return
	}
	if q := r.URL.Query().Get("dryRun"); q == "true" || q == "All" {
		req.DryRun = true
	}
	var items []config.Item
	var problems config.Errors
	for _, ai := range req.Items {
		it, errs := config.DecodeItem(ai.Object, ai.Source)
		problems = append(problems, errs...)
		if it != nil {
			items = append(items, *it)
		}
	}
	problems = append(problems, config.Duplicates(items)...)
	problems = append(problems, config.Check(items, &lookup{ctx: r.Context(), st: s.st})...)
	if fatal := problems.Fatal(); len(fatal) > 0 {
		writeError(w, http.StatusUnprocessableEntity, v1.ReasonInvalid,
			fmt.Sprintf("%d problem(s) found; nothing was applied", len(fatal)), toProblems(problems))
		return
	}
	objs := make([]store.Object, len(items))
	for i, it := range items {
		obj := it.Object
		if k := obj.GetTypeMeta().Kind; k == v1.KindClusterBaseModel || k == v1.KindBaseModel {
			m := obj.GetObjectMeta()
			if cur, err := s.st.Get(r.Context(), k, m.Namespace, m.Name); err == nil {
				if stored, err := resource.FromStore(cur); err == nil {
					if merged, err := resource.KeepFilled(obj, stored); err == nil {
						obj = merged
					}
				}
				keepRetry(obj, cur)
			}
		}
		so, err := resource.ToStore(obj)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, v1.ReasonInvalid, err.Error(), nil)
			return
		}
		objs[i] = so
	}
	results, err := s.st.Apply(r.Context(), objs, store.ApplyOptions{DryRun: req.DryRun})
	if err != nil {
		s.storeError(w, err)
		return
	}
	resp := v1.ApplyResponse{DryRun: req.DryRun, Warnings: toProblems(problems.Warnings())}
	for _, res := range results {
		o := res.Object
		ar := v1.ApplyResult{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Action: string(res.Action), Generation: o.Generation}
		if o.ResourceVersion > 0 {
			ar.ResourceVersion = strconv.FormatInt(o.ResourceVersion, 10)
		}
		if !req.DryRun && res.Action == store.ActionUnchanged && (o.Kind == v1.KindClusterBaseModel || o.Kind == v1.KindBaseModel) &&
			modelStatus(o).Phase == v1.ModelFailed {
			// Re-applying a Failed model unchanged retries it, as its
			// failure message says.
			if rr, err := s.retryModel(r.Context(), o.Kind, o.Namespace, o.Name, false); err == nil {
				ar.Action, ar.ResourceVersion = rr.Action, rr.ResourceVersion
			}
		}
		resp.Results = append(resp.Results, ar)
		if req.DryRun || res.Action == store.ActionUnchanged {
			continue
		}
		reason, msg := "Created", fmt.Sprintf("created (generation %d)", o.Generation)
		if res.Action == store.ActionConfigured {
			reason, msg = "Updated", fmt.Sprintf("updated (generation %d)", o.Generation)
		}
		s.event(r.Context(), o, v1.EventNormal, reason, msg)
		s.log.Info("applied", "kind", o.Kind, "namespace", o.Namespace, "name", o.Name, "action", res.Action, "generation", o.Generation)
	}
	writeJSON(w, http.StatusOK, resp)
}

func toProblems(errs config.Errors) []v1.Problem {
	out := make([]v1.Problem, len(errs))
	for i, e := range errs {
		out[i] = *e
	}
	return out
}

// lookup answers config.Check from the store.
type lookup struct {
	ctx context.Context //nolint:containedctx // lives for one request
	st  *store.Store
}

func (l *lookup) Exists(kind, namespace, name string) bool {
	_, err := l.st.Get(l.ctx, kind, namespace, name)
	return err == nil
}

func (l *lookup) Routes() []*v1.Route {
	objs, _, err := l.st.List(l.ctx, v1.KindRoute, store.ListOptions{})
	if err != nil {
		return nil
	}
	var out []*v1.Route
	for _, so := range objs {
		if o, err := resource.FromStore(so); err == nil {
			out = append(out, o.(*v1.Route))
		}
	}
	return out
}

// target resolves {plural} and ?namespace= to a kind and namespace.
func target(w http.ResponseWriter, r *http.Request) (v1.KindInfo, string, bool) {
	info, err := v1.LookupKind(r.PathValue("plural"))
	if err != nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, err.Error(), nil)
		return info, "", false
	}
	ns := r.URL.Query().Get("namespace")
	if !info.Namespaced {
		ns = ""
	} else if ns == "" && r.PathValue("name") != "" {
		ns = v1.DefaultNamespace
	}
	return info, ns, true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	info, ns, ok := target(w, r)
	if !ok {
		return
	}
	sel, err := store.ParseSelector(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, err.Error(), nil)
		return
	}
	objs, rv, err := s.st.List(r.Context(), info.Kind, store.ListOptions{Namespace: ns, Selector: sel})
	if err != nil {
		s.storeError(w, err)
		return
	}
	list := v1.List{APIVersion: "v1", Kind: "List", ResourceVersion: strconv.FormatInt(rv, 10), Items: []json.RawMessage{}}
	for _, so := range objs {
		b, err := encode(so)
		if err != nil {
			writeError(w, http.StatusInternalServerError, v1.ReasonInternal, err.Error(), nil)
			return
		}
		list.Items = append(list.Items, b)
	}
	writeJSON(w, http.StatusOK, list)
}

func encode(so store.Object) (json.RawMessage, error) {
	o, err := resource.FromStore(so)
	if err != nil {
		return nil, err
	}
	return json.Marshal(resource.Redact(o))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	info, ns, ok := target(w, r)
	if !ok {
		return
	}
	so, err := s.st.Get(r.Context(), info.Kind, ns, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.writeObject(w, so)
}

func (s *Server) writeObject(w http.ResponseWriter, so store.Object) {
	b, err := encode(so)
	if err != nil {
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, err.Error(), nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	info, ns, ok := target(w, r)
	if !ok {
		return
	}
	rv, ok := rvParam(w, r)
	if !ok {
		return
	}
	so, err := s.st.Delete(r.Context(), info.Kind, ns, r.PathValue("name"), rv)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.event(r.Context(), so, v1.EventNormal, "Deleted", "deleted")
	s.log.Info("deleted", "kind", so.Kind, "namespace", so.Namespace, "name", so.Name)
	s.writeObject(w, so)
}

func rvParam(w http.ResponseWriter, r *http.Request) (int64, bool) {
	q := r.URL.Query().Get("resourceVersion")
	if q == "" {
		return 0, true
	}
	rv, err := strconv.ParseInt(q, 10, 64)
	if err != nil || rv <= 0 {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, fmt.Sprintf("resourceVersion %q is not a resource version", q), nil)
		return 0, false
	}
	return rv, true
}

// putStatus replaces an object's status (for controllers and agents). The
// body is the object; only its status and metadata.resourceVersion are read.
func (s *Server) putStatus(w http.ResponseWriter, r *http.Request) {
	info, ns, ok := target(w, r)
	if !ok {
		return
	}
	o := info.New()
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)).Decode(o); err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "decoding object: "+err.Error(), nil)
		return
	}
	var rv int64
	if v := o.GetObjectMeta().ResourceVersion; v != "" {
		var err error
		if rv, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, fmt.Sprintf("metadata.resourceVersion %q is not a resource version", v), nil)
			return
		}
	}
	status, err := resource.StatusJSON(o)
	if err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, err.Error(), nil)
		return
	}
	so, err := s.st.UpdateStatus(r.Context(), info.Kind, ns, r.PathValue("name"), rv, status)
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.writeObject(w, so)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{Namespace: q.Get("namespace"), Name: q.Get("name")}
	if k := q.Get("kind"); k != "" {
		info, err := v1.LookupKind(k)
		if err != nil {
			writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, err.Error(), nil)
			return
		}
		f.Kind = info.Kind
		if !info.Namespaced {
			f.Namespace = ""
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, fmt.Sprintf("limit %q is not a count", l), nil)
			return
		}
		f.Limit = n
	}
	// The events of one object are those of the object that has the name now: a deleted
	// object's events do not show on a new one of the same name (uid=… picks another
	// incarnation; once the object is gone, its name shows every incarnation's events).
	f.UID = q.Get("uid")
	if f.UID == "" && f.Kind != "" && f.Name != "" {
		if o, err := s.st.Get(r.Context(), f.Kind, f.Namespace, f.Name); err == nil {
			f.UID = o.UID
		}
	}
	evs, err := s.st.Events(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	list := v1.EventList{Items: []v1.Event{}}
	for _, e := range evs {
		list.Items = append(list.Items, ToAPIEvent(e))
	}
	writeJSON(w, http.StatusOK, list)
}

// ToAPIEvent converts a stored event to its wire form.
func ToAPIEvent(e store.Event) v1.Event {
	return v1.Event{Type: e.Type, Reason: e.Reason, Message: e.Message, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name,
		Count: e.Count, FirstTimestamp: v1.NewTime(e.FirstTimestamp), LastTimestamp: v1.NewTime(e.LastTimestamp)}
}

// watch streams changes as server-sent events, one JSON WatchEvent per
// "data:" line, flushed per event. A heartbeat comment every 15 s keeps
// idle connections alive through proxies.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := store.WatchOptions{Namespace: q.Get("namespace"), SendInitial: q.Get("initial") != "false"}
	if k := q.Get("kind"); k != "" {
		info, err := v1.LookupKind(k)
		if err != nil {
			writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, err.Error(), nil)
			return
		}
		opts.Kind = info.Kind
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, "streaming unsupported", nil)
		return
	}
	wt, err := s.st.Watch(r.Context(), opts)
	if err != nil {
		s.storeError(w, err)
		return
	}
	defer wt.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	send := func(ev v1.WatchEvent) bool {
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case ev, ok := <-wt.Events():
			if !ok {
				if err := wt.Err(); err != nil {
					send(v1.WatchEvent{Type: "ERROR", Message: "watch ended: " + err.Error() + "; list again and re-watch"})
				}
				return
			}
			b, err := encode(ev.Object)
			if err != nil {
				send(v1.WatchEvent{Type: "ERROR", Message: err.Error()})
				return
			}
			if !send(v1.WatchEvent{Type: string(ev.Type), Object: b}) {
				return
			}
		}
	}
}

func (s *Server) event(ctx context.Context, o store.Object, typ, reason, msg string) {
	err := s.st.RecordEvent(ctx, store.Event{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, UID: o.UID, Type: typ, Reason: reason, Message: msg})
	if err != nil {
		s.log.Warn("recording event", "kind", o.Kind, "name", o.Name, "err", err)
	}
}

// storeError maps store errors to HTTP, in one place.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	var nf *store.NotFoundError
	var cf *store.ConflictError
	var db *store.DeleteBlockedError
	switch {
	case errors.As(err, &db):
		writeError(w, http.StatusConflict, v1.ReasonDeleteBlocked, err.Error(), nil)
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, err.Error(), nil)
	case errors.As(err, &cf):
		writeError(w, http.StatusConflict, v1.ReasonConflict, err.Error(), nil)
	case errors.Is(err, context.Canceled):
		writeError(w, 499, v1.ReasonBadRequest, "request cancelled", nil)
	default:
		s.log.Error("store", "err", err)
		if strings.Contains(err.Error(), "duplicate") {
			writeError(w, http.StatusUnprocessableEntity, v1.ReasonInvalid, err.Error(), nil)
			return
		}
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, err.Error(), nil)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, reason, msg string, problems []v1.Problem) {
	writeJSON(w, code, v1.ErrorResponse{Code: code, Reason: reason, Message: msg, Problems: problems})
}

// logs streams an engine's log as plain text: GET
// /api/v1/inferenceservices/NAME/logs?namespace=NS&replica=N&tail=N&follow=true.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	if s.opts.Logs == nil {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, "this server runs no engines (no serving controller), so there are no engine logs", nil)
		return
	}
	q := r.URL.Query()
	ns := q.Get("namespace")
	if ns == "" {
		ns = v1.DefaultNamespace
	}
	num := func(name string, def int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, fmt.Sprintf("%s=%q: want a number of 0 or more", name, v), nil)
			return 0, false
		}
		return n, true
	}
	replica, ok := num("replica", 0)
	if !ok {
		return
	}
	tail, ok := num("tail", 100)
	if !ok {
		return
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	fw := &flushWriter{w: w, rc: http.NewResponseController(w)}
	err := s.opts.Logs(r.Context(), ns, r.PathValue("name"), replica, tail, follow, fw)
	var nf interface{ NotFound() bool }
	switch {
	case errors.As(err, &nf) && nf.NotFound() && !fw.started:
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, err.Error(), nil)
	case err != nil && !fw.started:
		writeError(w, http.StatusInternalServerError, v1.ReasonInternal, err.Error(), nil)
	}
}

// flushWriter sends each write at once, starting a text/plain response.
type flushWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		f.w.WriteHeader(http.StatusOK)
	}
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

package gateway

// On-demand services (docs/design/0006-residency.md): a request to a service that
// Options.Residency manages waits in Acquire until the service is resident, and releases its
// admission when its answer ends. While it waits, a streaming OpenAI request gets SSE comment
// lines with the load's progress; the Ollama front sends nothing and reports the wait as the
// final object's load_duration. /v1/models, /v1/models/{model} and /api/ps show the services'
// states.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"citadel.dev/citadel/internal/residency"
)

// replicaWait bounds how long a request admitted on a service waits for the gateway's table
// to list a ready replica of it: the manager says the service is resident before the
// source's next table rebuild may have brought its endpoint in.
const replicaWait = 5 * time.Second

// onDemand reports whether t's service is managed by the residency manager.
func (s *Server) onDemand(t *Target) bool {
	return s.opts.Residency != nil && s.opts.Residency.OnDemand(t.Name)
}

func noRelease() {}

// hold waits until t's service admits the request: it returns the admission's release and
// the target to use (t, or the same target in a table rebuilt during the wait). The error is
// a *residency.Refusal, or ctx's. A streaming OpenAI request is sent the load's progress as
// SSE comments meanwhile (progressWriter).
func (s *Server) hold(ctx context.Context, w http.ResponseWriter, c *call, t *Target, stream bool) (func(), *Target, error) {
	start := time.Now()
	var pw *progressWriter
	var progress func(residency.Progress)
	if stream && c.front == "openai" {
		pw = &progressWriter{w: w, c: c, model: c.dec.Public}
		progress = pw.report
	}
	release, err := s.opts.Residency.Acquire(ctx, t.Name, progress)
	if pw != nil {
		pw.stop()
	}
	if err != nil {
		var rf *residency.Refusal
		if errors.As(err, &rf) {
			s.met.residencyRefusals.WithLabelValues(c.dec.Public, t.Name, rf.Reason).Inc()
		}
		return nil, t, err
	}
	wait := time.Since(start)
	c.wait += wait
	s.met.residencyWait.WithLabelValues(c.dec.Public, t.Name).Observe(wait.Seconds())
	if release == nil {
		release = noRelease
	}
	return release, s.readyTarget(ctx, t), nil
}

// readyTarget returns t when it has a usable replica, else the same service's replicas in
// the current table once it lists a usable one (a rebuild after the load), waiting at most
// replicaWait; t when none comes.
func (s *Server) readyTarget(ctx context.Context, t *Target) *Target {
	deadline := time.Now().Add(replicaWait)
	for tick := 10 * time.Millisecond; ; tick = min(2*tick, 200*time.Millisecond) {
		now := time.Now()
		if Pick(t, RequestInfo{}, nil, now) != nil {
			return t
		}
		var reps []*Replica
		for _, r := range s.table.Load().Replicas() {
			if r.Service == t.Name || r.Service == "" && r.ID == t.Name {
				reps = append(reps, r)
			}
		}
		if len(reps) > 0 {
			nt := &Target{Name: t.Name, Weight: t.Weight, Model: t.Model, API: t.API, Replicas: reps,
				Policy: t.Policy, SessionHeader: t.SessionHeader, MaxModelLen: t.MaxModelLen, Capabilities: t.Capabilities}
			if Pick(nt, RequestInfo{}, nil, now) != nil {
				return nt
			}
		}
		if now.After(deadline) || ejected(t.Replicas, now) || ejected(reps, now) {
			// Failures, not the load, keep it out: the next target takes over at once.
			return t
		}
		select {
		case <-ctx.Done():
			return t
		case <-time.After(tick):
		}
	}
}

// progressWriter sends a held streaming request the load's progress as SSE comment lines,
// at most one a second. The first commits the response: 200, text/event-stream; what
// follows (the stream, or an error) is then written as SSE events (see call.sse).
type progressWriter struct {
	mu    sync.Mutex
	w     http.ResponseWriter
	c     *call
	model string
	last  time.Time
	done  bool
}

func (p *progressWriter) report(pr residency.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.done || !p.last.IsZero() && now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	if !p.c.sse {
		h := p.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		p.w.WriteHeader(http.StatusOK)
		p.c.sse = true
	}
	pct := int(math.Floor(min(max(pr.Progress, 0), 1) * 100))
	eta := int(math.Ceil(max(pr.ETA, 0).Seconds()))
	if _, err := fmt.Fprintf(p.w, ": loading %s %d%% eta %ds\n\n", p.model, pct, eta); err == nil {
		_ = http.NewResponseController(p.w).Flush()
	}
}

// stop ends the reports: a late call from the manager writes nothing.
func (p *progressWriter) stop() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
}

// sseWriter writes an answer in OpenAI's JSON shape as SSE events on a stream whose headers
// were committed by the progress comments: an error body becomes `data: {"error": …}`
// followed by `data: [DONE]`, as a mid-stream failure is reported.
type sseWriter struct{ w http.ResponseWriter }

func (s sseWriter) Header() http.Header { return http.Header{} } // too late for headers
func (s sseWriter) WriteHeader(int)     {}
func (s sseWriter) Write(b []byte) (int, error) {
	out := make([]byte, 0, len(b)+32)
	out = append(append(append(out, "data: "...), bytes.TrimSpace(b)...), "\n\ndata: [DONE]\n\n"...)
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	_ = http.NewResponseController(s.w).Flush()
	return len(b), nil
}

// refusalError is a request the residency manager did not hold.
type refusalError struct {
	model string
	r     *residency.Refusal
}

func (e *refusalError) Error() string { return fmt.Sprintf("model %s: %s", e.model, e.r.Error()) }

// status is the refusal's HTTP status: 429 (queue full) or 503 (wait exceeded; anything else).
func (e *refusalError) status() int {
	if e.r.Status == http.StatusTooManyRequests {
		return e.r.Status
	}
	return http.StatusServiceUnavailable
}

// retryAfter is Retry-After in whole seconds, rounded up; "" for none.
func (e *refusalError) retryAfter() string {
	if e.r.RetryAfter <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(math.Ceil(e.r.RetryAfter.Seconds())), 10)
}

// writeRefusal answers a refusal in the front's shape: OpenAI's error object with the
// reason as its code, or Ollama's {"error": "…"} with the reason in the words.
func writeRefusal(w http.ResponseWriter, ollama bool, e *refusalError) {
	if ra := e.retryAfter(); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	msg := fmt.Sprintf("model %s is not loaded: %s", e.model, e.r.Message)
	if ollama {
		writeOllamaError(w, e.status(), fmt.Sprintf("%s (%s)", msg, e.r.Reason))
		return
	}
	typ := "server_error"
	if e.status() == http.StatusTooManyRequests {
		typ = "requests"
	}
	writeOpenAIError(w, e.status(), typ, e.r.Reason, msg)
}

// residencyStates is the manager's states by service; nil without a manager.
func (s *Server) residencyStates() map[string]residency.State {
	if s.opts.Residency == nil {
		return nil
	}
	states := s.opts.Residency.States()
	m := make(map[string]residency.State, len(states))
	for _, st := range states {
		m[st.Service] = st
	}
	return m
}

// stateRank orders states from the most available.
var stateRank = map[string]int{residency.StateLoaded: 0, residency.StateLoading: 1, residency.StateSleeping: 2,
	residency.StateUnloaded: 3, residency.StateFailed: 4}

// modelState is the state of public model id in t: the most available state among its
// targets, when every target that takes traffic is on-demand (a model with a dedicated target
// is always served, and has none). Fallbacks are left out.
func (s *Server) modelState(t *Table, states map[string]residency.State, id string) (residency.State, bool) {
	if states == nil {
		return residency.State{}, false
	}
	_, e := t.lookup(id)
	if e == nil || e.Dest == nil {
		return residency.State{}, false
	}
	var best residency.State
	found := false
	for _, tg := range e.Dest.Targets {
		if tg.Weight <= 0 {
			continue
		}
		st, ok := states[tg.Name]
		if !ok {
			return residency.State{}, false
		}
		if r, ok := stateRank[st.Value]; !found || ok && r < stateRank[best.Value] {
			best, found = st, true
		}
	}
	return best, found
}

// modelStatus is a /v1/models entry's "status", the shape llama.cpp's router mode writes
// (tools/server: {"value": "loaded|loading|unloaded|sleeping", "failed": true after a failed
// load}), with the load's progress, its ETA and the reason added.
type modelStatus struct {
	Value      string   `json:"value"`
	Failed     bool     `json:"failed,omitempty"`
	Progress   *float64 `json:"progress,omitempty"`
	ETASeconds *int     `json:"eta_seconds,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

func statusOf(st residency.State) *modelStatus {
	ms := &modelStatus{Value: st.Value, Reason: st.Reason}
	if st.Value == residency.StateFailed {
		// llama.cpp reports a failed load as unloaded with failed: true; clients know no
		// "failed" value.
		ms.Value, ms.Failed = residency.StateUnloaded, true
	}
	if st.Value == residency.StateLoading {
		p := math.Round(min(max(st.Progress, 0), 1)*100) / 100
		eta := int(math.Ceil(max(st.ETA, 0).Seconds()))
		ms.Progress, ms.ETASeconds = &p, &eta
	}
	return ms
}

// loadUnload serves Ollama's load and unload requests (an empty prompt, or no messages;
// keep_alive 0 unloads) for a model whose targets are on-demand: Load the first on-demand
// target that takes traffic, or Unload every on-demand target (fallbacks included). A model
// with no on-demand target has nothing to do.
func (s *Server) loadUnload(ctx context.Context, c *call, d Decision, unload bool) error {
	if c.key != nil && !c.key.Allowed(d.Public) {
		return &clientError{status: http.StatusForbidden, typ: "invalid_request_error", code: "model_not_allowed",
			message: fmt.Sprintf("this API key may not use model %q", d.Public)}
	}
	if d.Dest == nil {
		return nil
	}
	res := s.opts.Residency
	if unload {
		for _, t := range append(append([]*Target(nil), d.Dest.Targets...), d.Dest.Fallback...) {
			if res.OnDemand(t.Name) {
				if err := res.Unload(ctx, t.Name); err != nil {
					return loadError(d.Public, "unloading", err)
				}
			}
		}
		return nil
	}
	for _, t := range candidates(d.Dest, uint64(c.start.UnixNano()), time.Now()) {
		if res.OnDemand(t.Name) {
			if err := res.Load(ctx, t.Name); err != nil {
				return loadError(d.Public, "loading", err)
			}
			return nil
		}
	}
	return nil
}

func loadError(model, doing string, err error) error {
	var rf *residency.Refusal
	if errors.As(err, &rf) {
		return &refusalError{model: model, r: rf}
	}
	return &clientError{status: http.StatusServiceUnavailable, typ: "server_error", code: "residency_failed",
		message: fmt.Sprintf("%s model %s failed: %v", doing, model, err)}
}

// unloadAfter evicts t's service once the request is done when the client asked for
// keep_alive 0 on an ordinary request, as Ollama unloads a model after such a request.
func (s *Server) unloadAfter(t *Target) {
	if t == nil || !s.onDemand(t) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.opts.Residency.Unload(ctx, t.Name); err != nil {
			s.log.Warn("gateway: unloading after a keep_alive 0 request failed", "service", t.Name, "err", err)
		}
	}()
}

// waitPatcher adds a request's residency wait to the final object of an Ollama answer
// (total_duration and load_duration, as Ollama counts a model's load), line by line; the
// other lines pass unchanged. Lines are held until their newline (finish writes the rest).
type waitPatcher struct {
	http.ResponseWriter
	wait time.Duration
	buf  []byte
}

func (p *waitPatcher) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := p.ResponseWriter.Write(addWait(p.buf[:i+1], p.wait)); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
}

func (p *waitPatcher) finish() {
	if len(p.buf) > 0 {
		_, _ = p.ResponseWriter.Write(addWait(p.buf, p.wait))
		p.buf = nil
	}
}

func (p *waitPatcher) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// addWait adds wait to the total_duration and load_duration of line when it is Ollama's
// final object ("done": true), inserting a field that is absent (Ollama omits zeros).
func addWait(line []byte, wait time.Duration) []byte {
	if wait <= 0 || !bytes.Contains(line, []byte(`"done":true`)) {
		return line
	}
	for _, field := range []string{"total_duration", "load_duration"} {
		line = addDuration(line, field, wait)
	}
	return line
}

func addDuration(line []byte, field string, d time.Duration) []byte {
	key := []byte(`"` + field + `":`)
	if i := bytes.Index(line, key); i >= 0 {
		start := i + len(key)
		for start < len(line) && line[start] == ' ' {
			start++
		}
		end := start
		for end < len(line) && line[end] >= '0' && line[end] <= '9' {
			end++
		}
		n, err := strconv.ParseInt(string(line[start:end]), 10, 64)
		if err != nil {
			return line
		}
		out := make([]byte, 0, len(line)+20)
		out = append(append(out, line[:start]...), strconv.FormatInt(n+int64(d), 10)...)
		return append(out, line[end:]...)
	}
	j := bytes.LastIndexByte(line, '}')
	if j < 0 {
		return line
	}
	out := make([]byte, 0, len(line)+len(key)+22)
	out = append(append(out, line[:j]...), ',')
	out = append(append(out, key...), strconv.FormatInt(int64(d), 10)...)
	return append(out, line[j:]...)
}

// ejected reports whether a replica of reps is ejected at now after failures.
func ejected(reps []*Replica, now time.Time) bool {
	for _, r := range reps {
		r.State.mu.Lock()
		e := now.Before(r.State.EjectedUntil)
		r.State.mu.Unlock()
		if e {
			return true
		}
	}
	return false
}

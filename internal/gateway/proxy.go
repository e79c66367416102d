package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"citadel.dev/citadel/internal/residency"
)

// call is one client request on its way through the gateway.
type call struct {
	start     time.Time
	id        string // x-request-id
	front     string // openai or ollama
	kind      string // chat, completions, embeddings, generate, embed
	info      RequestInfo
	key       *Key
	ticket    *Ticket // the key's limits
	dec       Decision
	attempts  int
	replica   *Replica
	target    *Target
	status    int
	overhead  time.Duration // from arrival to the upstream request leaving
	ttft      time.Duration
	tokensIn  int
	tokensOut int
	err       string

	// The model's limits (limits.go): its ticket, and the answer's bound the request asks
	// for (0: none) with the field that says it.
	modelTicket    *Ticket
	maxTokens      int64
	maxTokensParam string

	// Residency (residency.go): the time the request waited for its service to load, and
	// whether the progress comments committed the response as an SSE stream already.
	wait time.Duration
	sse  bool
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// begin starts a call on a front: its request id, the key before the body is read, then the
// body. When ok is false the answer is written already; finish the call either way.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, front, kind string) (c *call, body []byte, ok bool) {
	c = &call{start: time.Now(), id: requestID(r), front: front, kind: kind}
	w.Header().Set("X-Request-Id", c.id)
	if err := s.authenticateCall(r, c); err != nil {
		s.fail(w, c, err)
		return c, nil, false
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, c, err)
		return c, nil, false
	}
	return c, body, true
}

// readBody reads a JSON request body within the size limit. The body is JSON whatever the
// Content-Type says, as Ollama reads it: `curl -d '{…}'` sends
// application/x-www-form-urlencoded, and Ollama's own examples are written that way.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/plain" && mt != "application/x-www-form-urlencoded") {
			return nil, &clientError{status: http.StatusUnsupportedMediaType, typ: "invalid_request_error", code: "unsupported_media_type",
				message: fmt.Sprintf("Content-Type %q is not supported: send application/json", ct)}
		}
	}
	return s.readBodyLimit(w, r, s.opts.MaxBodyBytes)
}

// readBodyLimit reads r's body, at most limit bytes (413 beyond), within BodyTimeout of now
// (408 after: a client that trickles its body does not hold a handler). A declared
// Content-Length within the limit is read into one buffer of that size, so a body costs its
// own length and no more.
func (s *Server) readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.opts.BodyTimeout)) == nil {
		// Cleared once the body is in: the connection's next reads (the client going away,
		// its next request) are not the body's.
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	size := int64(bytes.MinRead)
	if r.ContentLength > 0 {
		size += r.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mb):
			return nil, tooLarge(limit)
		case errors.As(err, &ne) && ne.Timeout():
			w.Header().Set("Connection", "close")
			return nil, &clientError{status: http.StatusRequestTimeout, typ: "invalid_request_error", code: "request_timeout",
				message: fmt.Sprintf("the request body did not arrive within %s (%d bytes came): send it faster, or ask the operator to raise the gateway's body timeout", s.opts.BodyTimeout, buf.Len())}
		}
		return nil, badRequest("invalid_body", "reading the request body: %v", err)
	}
	return buf.Bytes(), nil
}

func tooLarge(limit int64) *clientError {
	return &clientError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "request_too_large",
		message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
}

// authenticateCall finds the request's key before its body is read, so that a request
// without a valid key costs no memory; a nil key on an open gateway.
func (s *Server) authenticateCall(r *http.Request, c *call) error {
	key, err := s.authenticate(r)
	c.key = key
	return err
}

// admit applies the key's model allow-list and limits (authenticateCall found the key); the
// ticket (if any) is released by the caller.
func (s *Server) admit(_ *http.Request, c *call) error {
	key := c.key
	if key == nil {
		return nil
	}
	if !key.Allowed(c.info.Model) {
		return &clientError{status: http.StatusForbidden, typ: "invalid_request_error", code: "model_not_allowed",
			message: fmt.Sprintf("this API key may not use model %q", c.info.Model)}
	}
	t, err := s.keys.Admit(key, time.Now())
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			s.met.refused("key", key.Name, le.Limit)
		}
		return err
	}
	c.ticket = t
	return nil
}

// resolve routes the request and sets the session for affinity.
func (s *Server) resolve(r *http.Request, c *call) (Decision, error) {
	start := time.Now()
	d, err := s.table.Load().Resolve(c.info)
	if err != nil {
		return d, err
	}
	if d.Task != "" {
		s.met.decide.Observe(time.Since(start).Seconds())
		s.met.tasks.WithLabelValues(c.info.Model, d.Task, d.How).Inc()
	}
	for _, t := range d.Dest.Targets {
		if t.SessionHeader != "" {
			c.info.Session = r.Header.Get(t.SessionHeader)
			break
		}
	}
	if c.info.Session == "" {
		c.info.Session = r.Header.Get("X-Session-Id")
	}
	return d, nil
}

// candidates lists the targets to try, in order: the first choice among the targets (see
// pickTarget: a weighted draw, then the least loaded of the targets of that weight), the
// other targets, then the fallback chain.
func candidates(d *Destination, r uint64, now time.Time) []*Target {
	var out []*Target
	first := pickTarget(d, r, now)
	if first != nil {
		out = append(out, first)
	}
	for _, t := range d.Targets {
		if t != first && t.Weight > 0 {
			out = append(out, t)
		}
	}
	return append(out, d.Fallback...)
}

// respond writes an upstream response to the client; it returns the bytes it forwarded.
type respond func(w http.ResponseWriter, resp *http.Response, c *call, t *Target) error

// budget is what a request to d may spend: its total deadline (route limits.timeout, else
// Options.Total), its attempts (route retry.attempts, else Options.Attempts) and the per-try
// timeout of each attempt (route retry.perTryTimeout, else the header timeout for a
// non-streaming answer, which an engine sends whole when it is done, and the idle timeout
// for a stream's first byte), at most the total.
func (s *Server) budget(d *Destination, stream bool) (total time.Duration, attempts int, perTry time.Duration) {
	total, attempts, perTry = s.opts.Total, s.opts.Attempts, s.opts.HeaderTimeout
	if stream {
		perTry = s.opts.IdleTimeout
	}
	if d.Limits != nil && d.Limits.Timeout != nil {
		if t, err := d.Limits.Timeout.Std(); err == nil && t > 0 {
			total = t
		}
	}
	if d.Retry != nil {
		if d.Retry.Attempts != nil && *d.Retry.Attempts > 0 {
			attempts = int(*d.Retry.Attempts)
		}
		if d.Retry.PerTryTimeout != nil {
			if t, err := d.Retry.PerTryTimeout.Std(); err == nil && t > 0 {
				perTry = t
			}
		}
	}
	return total, attempts, min(perTry, total)
}

// forward sends the request to replicas until one answers: retries and failover happen only
// before the first byte reaches the client, each attempt under its per-try timeout (for the
// whole answer, or a stream's first byte: see try) and all of them under the request's total
// deadline. Once that deadline has passed no attempt starts.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, c *call, build func(*Target) (string, []byte, error), stream bool, out respond) {
	d := c.dec.Dest
	total, attempts, perTry := s.budget(d, stream)
	ctx, cancel := context.WithTimeout(r.Context(), total)
	defer cancel()
	deadline, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(deadline) } // the request's time is up
	tried := map[*Replica]bool{}
	var lastErr error
	lastStatus, lastRetryAfter := 0, ""
	truncated := false // the last attempt's answer was cut short
	seed := uint64(c.start.UnixNano())
	// An on-demand target is held (residency.go) before its replicas are tried, and released
	// when its answer is written or the request moves on; a target that refuses is skipped
	// for the next one, as a target without a usable replica is.
	var refusal *refusalError
	release := noRelease
	defer func() { release() }()
	for _, t := range candidates(d, seed, time.Now()) {
		release()
		release = noRelease
		if c.attempts >= attempts || over() {
			break
		}
		if s.onDemand(t) {
			rel, cur, err := s.hold(ctx, w, c, t, stream)
			if err != nil {
				var rf *residency.Refusal
				if errors.As(err, &rf) {
					refusal = &refusalError{model: c.dec.Public, r: rf}
					continue
				}
				lastErr = fmt.Errorf("waiting for %s to load: %w", t.Name, err)
				break
			}
			release, t = rel, cur
		}
		for c.attempts < attempts && !over() {
			rep := Pick(t, c.info, tried, time.Now())
			if rep == nil {
				break // this target has no usable replica: fall over to the next
			}
			tried[rep] = true
			c.attempts++
			if c.attempts > 1 {
				s.met.retries.WithLabelValues(c.dec.Public).Inc()
				if c.target != nil && c.target != t {
					s.met.failovers.WithLabelValues(c.dec.Public, c.target.Name, t.Name).Inc()
				}
			}
			c.replica, c.target = rep, t
			path, body, err := build(t)
			if err != nil {
				s.fail(w, c, err)
				return
			}
			resp, err := s.try(ctx, r, rep, path, body, c, stream, perTry)
			if err != nil {
				var te *truncatedError
				lastErr, lastStatus, truncated = err, 0, errors.As(err, &te)
				continue
			}
			truncated = false
			if retryable(resp.StatusCode) {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				rep.End(nil, resp.StatusCode, retryAfter(resp), time.Now())
				lastStatus, lastErr = resp.StatusCode, fmt.Errorf("%s answered %d: %s", rep.ID, resp.StatusCode, bytes.TrimSpace(b))
				lastRetryAfter = resp.Header.Get("Retry-After")
				continue
			}
			w.Header().Set("X-Citadel-Route", c.dec.headerVia(t)+" replica="+rep.ID+" attempts="+strconv.Itoa(c.attempts))
			w.Header().Set("X-Citadel-Overhead-Ms", strconv.FormatFloat(float64(c.overhead)/1e6, 'f', 3, 64))
			for k, v := range limitHeaders(c) {
				w.Header().Set(k, v)
			}
			var werr error
			if out != nil {
				werr = out(w, resp, c, t)
			} else {
				werr = s.passThrough(w, resp, c, stream)
			}
			resp.Body.Close()
			end(ctx, rep, werr, c.status)
			return
		}
	}
	if refusal != nil && c.attempts == 0 {
		s.fail(w, c, refusal)
		return
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no ready replica for model %q (every target and fallback is down, ejected or not ready)", c.dec.Public)
	}
	ce := &clientError{status: http.StatusServiceUnavailable, typ: "server_error", code: "upstream_unavailable",
		message: fmt.Sprintf("model %s: no replica could answer (%d attempt(s)); retry later. The gateway's log has the details under request id %s.", c.dec.Public, c.attempts, c.id),
		detail:  fmt.Sprintf("model %s: %d attempt(s) failed; last: %v", c.dec.Public, c.attempts, lastErr)}
	if lastStatus == http.StatusTooManyRequests {
		ce.status, ce.retryAfter = lastStatus, lastRetryAfter
		ce.message = fmt.Sprintf("model %s: the engines are busy (%d attempt(s) answered 429); retry after the time Retry-After gives.", c.dec.Public, c.attempts)
	}
	switch {
	case over() && r.Context().Err() == nil:
		ce.status, ce.retryAfter, ce.code = http.StatusGatewayTimeout, "", "gateway_timeout"
		ce.message = fmt.Sprintf("model %s: no answer within the request's deadline of %s (%d attempt(s)); retry, or raise the route's limits.timeout. The gateway's log has the details under request id %s.", c.dec.Public, total, c.attempts, c.id)
	case truncated:
		ce.status, ce.code = http.StatusBadGateway, "upstream_truncated"
		ce.message = fmt.Sprintf("model %s: the engine's answer was cut short before it was complete (%d attempt(s)); retry the request. The gateway's log has the details under request id %s.", c.dec.Public, c.attempts, c.id)
	}
	s.fail(w, c, ce)
}

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

func retryAfter(resp *http.Response) time.Duration {
	if v := resp.Header.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// errPerTry is the cause of an attempt that its per-try timeout cut.
var errPerTry = errors.New("per-try timeout")

// maxAnswer bounds a non-streaming answer the gateway holds before passing it on.
const maxAnswer = 256 << 20

// try makes one attempt on rep and books a failed one against it (rep.End): it sends the
// request and waits, under the per-try timeout (at most what is left of the request's
// deadline), for the whole answer of a non-streaming request, checked complete, or for the
// first bytes of a stream. Nothing has reached the client when it returns, so any error may
// be retried elsewhere. The response it returns holds what was read (Close releases the
// attempt); the caller books its outcome with end once it is copied.
//
// A failure is the replica's own unless the request ended first: a client that went away,
// or a deadline that earlier attempts had used up (an attempt that had less than its per-try
// timeout, and ran out of it, says nothing of the replica). That keeps one hung replica from
// getting a healthy one ejected by the requests it made late.
func (s *Server) try(ctx context.Context, r *http.Request, rep *Replica, path string, body []byte, c *call, stream bool, perTry time.Duration) (*http.Response, error) {
	budget := perTry
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl))
	}
	full := budget >= perTry || c.attempts == 1 // the first attempt is never cut short by others
	tctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(budget, func() { cancel(errPerTry) })
	fail := func(err error) (*http.Response, error) {
		timer.Stop()
		timedOut := context.Cause(tctx) == errPerTry || errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel(nil)
		switch {
		case r.Context().Err() != nil:
			rep.End(context.Canceled, 0, 0, time.Now())
			return nil, fmt.Errorf("%s: the client went away: %w", rep.ID, err)
		case timedOut && !full:
			rep.End(context.Canceled, 0, 0, time.Now())
			return nil, fmt.Errorf("%s: the request's deadline passed %s into the attempt (earlier attempts used the rest)", rep.ID, budget)
		case timedOut:
			err = fmt.Errorf("%s: no answer within the per-try timeout of %s", rep.ID, budget)
		default:
			if te := (*truncatedError)(nil); !errors.As(err, &te) {
				err = fmt.Errorf("%s: %w", rep.ID, err)
			}
		}
		rep.End(err, 0, 0, time.Now())
		return nil, err
	}
	rep.Begin()
	c.overhead = time.Since(c.start) - c.wait
	resp, err := s.send(tctx, rep.BaseURL+path, rep.BaseURL, path, body, c.id, r.Header.Get("Accept"))
	if err != nil {
		return fail(err)
	}
	if !stream || resp.StatusCode/100 != 2 || !streamType(resp.Header.Get("Content-Type")) {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		resp.Body.Close()
		if err == nil {
			err = incomplete(resp, b, rep.ID)
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			err = &truncatedError{replica: rep.ID, what: cutAt(len(b), resp.ContentLength)}
		}
		if err != nil {
			return fail(err)
		}
		timer.Stop()
		resp.Body = &attemptBody{Reader: bytes.NewReader(b), whole: b, cancel: cancel}
		return resp, nil
	}
	buf := make([]byte, 4<<10)
	var n int
	for n == 0 && err == nil {
		n, err = resp.Body.Read(buf)
	}
	if n == 0 {
		resp.Body.Close()
		if errors.Is(err, io.EOF) {
			err = &truncatedError{replica: rep.ID, what: "closed the stream before its first byte"}
		}
		return fail(err)
	}
	if !timer.Stop() && context.Cause(tctx) == errPerTry {
		resp.Body.Close()
		return fail(errPerTry)
	}
	resp.Body = &attemptBody{Reader: io.MultiReader(bytes.NewReader(buf[:n]), resp.Body), body: resp.Body, cancel: cancel}
	return resp, nil
}

// end closes an attempt try returned, after its response was copied, and books its outcome
// against rep, unless the request ended first (the client went away, or its deadline
// passed mid-answer): the replica did nothing wrong that this attempt could tell.
func end(ctx context.Context, rep *Replica, err error, status int) {
	if err != nil && ctx.Err() != nil {
		err = context.Canceled
	}
	rep.End(err, status, 0, time.Now())
}

// attemptBody is the body of an attempt's response: what try read, then the rest; Close
// closes the upstream body and releases the attempt's context.
type attemptBody struct {
	io.Reader
	whole  []byte    // the whole body, when try read it
	body   io.Closer // nil when the body was read whole
	cancel context.CancelCauseFunc
}

// readAnswer returns a whole answer: the bytes try already holds, without a second copy.
func readAnswer(body io.Reader) ([]byte, error) {
	if b, ok := body.(*attemptBody); ok && b.whole != nil {
		return b.whole, nil
	}
	return io.ReadAll(io.LimitReader(body, maxAnswer))
}

func (b *attemptBody) Close() error {
	var err error
	if b.body != nil {
		err = b.body.Close()
	}
	b.cancel(nil)
	return err
}

// truncatedError is an upstream answer that ended before it was complete.
type truncatedError struct {
	replica, what string
}

func (e *truncatedError) Error() string {
	return fmt.Sprintf("%s: the answer was cut short: %s", e.replica, e.what)
}

func cutAt(got int, length int64) string {
	if length >= 0 {
		return fmt.Sprintf("the connection closed at byte %d of %d", got, length)
	}
	return fmt.Sprintf("the connection closed after %d bytes, before the body's end", got)
}

// streamType reports whether an upstream answer of Content-Type ct is a stream: SSE, or
// Ollama's NDJSON.
func streamType(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/event-stream" || mt == "application/x-ndjson"
}

// incomplete checks a whole 2xx answer: JSON must be one complete value (a body closed
// early with no Content-Length is otherwise taken for the whole).
func incomplete(resp *http.Response, b []byte, replica string) error {
	if resp.StatusCode/100 != 2 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/json" && !json.Valid(b) {
		return &truncatedError{replica: replica, what: fmt.Sprintf("its JSON ends before it is complete (%d bytes)", len(b))}
	}
	return nil
}

// unfinished says why a stream that reached its end is incomplete ("" when it is not):
// OpenAI's SSE ends with data: [DONE], Ollama's NDJSON with a "done": true (or an error)
// line. tail is the stream's last bytes.
func unfinished(ct string, tail []byte) string {
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "text/event-stream":
		if !bytes.HasSuffix(bytes.TrimSpace(tail), []byte("[DONE]")) {
			return "no data: [DONE]"
		}
	case "application/x-ndjson":
		tail = bytes.TrimSpace(tail)
		var last struct {
			Done  bool `json:"done"`
			Error any  `json:"error"`
		}
		if json.Unmarshal(tail[bytes.LastIndexByte(tail, '\n')+1:], &last) != nil || !last.Done && last.Error == nil {
			return `no line with "done": true`
		}
	}
	return ""
}

// passThrough copies an OpenAI-compatible upstream response: whole, or chunk by chunk with
// a flush after each and an idle timeout between them. A failure after the first byte ends
// the stream with an OpenAI-shaped error event.
func (s *Server) passThrough(w http.ResponseWriter, resp *http.Response, c *call, stream bool) error {
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	c.status = resp.StatusCode
	if c.sse && (resp.StatusCode/100 != 2 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")) {
		// The progress comments committed a 200 stream: a whole answer (an engine's error)
		// goes as one event.
		b, err := readAnswer(resp.Body)
		c.ttft = time.Since(c.start)
		if resp.StatusCode/100 != 2 && !bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"error"`)) {
			b, _ = json.Marshal(map[string]any{"error": map[string]any{"message": strings.TrimSpace(string(b)), "type": "server_error", "code": resp.StatusCode}})
		}
		_, _ = sseWriter{w}.Write(b)
		return err
	}
	if !stream || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := readAnswer(resp.Body)
		c.ttft = time.Since(c.start)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(b)
		c.tokensIn, c.tokensOut = usageOf(b)
		return err
	}
	tail, err := s.copyStream(w, resp, c, func(msg string) []byte {
		ev, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": "upstream_stream_error"}})
		return fmt.Appendf(nil, "data: %s\n\ndata: [DONE]\n\n", ev)
	})
	if err == nil {
		c.tokensIn, c.tokensOut = usageOfStream(tail)
	}
	return err
}

// streamBufs holds copyStream's read buffers: one per stream in flight, not one per request.
var streamBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyStream sends an upstream body to the client as it comes, flushing after every read,
// under the idle timeout, and returns the body's last few KiB. A failure after the first byte
// is reported to the client with failure(msg), in the front's shape, and so is a stream that
// ends without its terminal event (see unfinished); a client that goes away is not the
// upstream's fault (nil).
func (s *Server) copyStream(w http.ResponseWriter, resp *http.Response, c *call, failure func(msg string) []byte) ([]byte, error) {
	if !c.sse {
		w.WriteHeader(resp.StatusCode)
	}
	rc := http.NewResponseController(w)
	bp := streamBufs.Get().(*[]byte)
	defer streamBufs.Put(bp)
	buf := *bp
	var tail []byte
	body := newIdleReader(resp.Body, s.opts.IdleTimeout)
	defer body.Stop()
	for first := true; ; first = false {
		n, err := body.Read(buf)
		if n > 0 {
			if first {
				c.ttft = time.Since(c.start)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				c.err = "client went away: " + werr.Error()
				return tail, nil
			}
			_ = rc.Flush()
			tail = append(tail, buf[:n]...)
			if len(tail) > 8<<10 {
				tail = tail[len(tail)-4<<10:]
			}
		}
		if errors.Is(err, io.EOF) {
			why := unfinished(resp.Header.Get("Content-Type"), tail)
			if why == "" {
				return tail, nil
			}
			te := &truncatedError{replica: c.replica.ID, what: "the stream ended before it finished (" + why + ")"}
			msg := fmt.Sprintf("the engine closed the stream before it finished (%s); the answer is incomplete: retry the request (request id %s)", why, c.id)
			_, _ = w.Write(failure(msg))
			_ = rc.Flush()
			c.err = te.Error()
			return tail, te
		}
		if err != nil {
			msg := fmt.Sprintf("the upstream engine failed mid-stream; the answer is incomplete: retry the request (request id %s)", c.id)
			_, _ = w.Write(failure(msg))
			_ = rc.Flush()
			c.err = fmt.Sprintf("%s failed mid-stream: %v", c.replica.ID, err) // for the log only: addresses
			return tail, err
		}
	}
}

// idleReader reads an upstream body, failing a read when nothing arrives for idle: one timer
// per stream, reset after every read, closes the body when it fires.
type idleReader struct {
	r     io.ReadCloser
	idle  time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newIdleReader(r io.ReadCloser, idle time.Duration) *idleReader {
	ir := &idleReader{r: r, idle: idle}
	ir.t = time.AfterFunc(idle, func() {
		ir.fired.Store(true)
		r.Close()
	})
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if err != nil && ir.fired.Load() {
		return n, fmt.Errorf("no data from the upstream for %s", ir.idle)
	}
	ir.t.Reset(ir.idle)
	return n, err
}

// Stop ends the watch.
func (ir *idleReader) Stop() { ir.t.Stop() }

type usageJSON struct {
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func usageOf(b []byte) (int, int) {
	var u usageJSON
	if json.Unmarshal(b, &u) != nil || u.Usage == nil {
		return 0, 0
	}
	return u.Usage.PromptTokens, u.Usage.CompletionTokens
}

// usageOfStream finds the usage chunk (stream_options.include_usage) among the last events.
func usageOfStream(tail []byte) (int, int) {
	i := bytes.LastIndex(tail, []byte(`"usage":{`))
	if i < 0 {
		return 0, 0
	}
	start := bytes.LastIndex(tail[:i], []byte("data: "))
	if start < 0 {
		return 0, 0
	}
	end := bytes.Index(tail[start:], []byte("\n"))
	if end < 0 {
		return 0, 0
	}
	return usageOf(tail[start+6 : start+end])
}

// fail writes an error in the front's shape.
func (s *Server) fail(w http.ResponseWriter, c *call, err error) {
	ollama := c.front == "ollama"
	if c.sse {
		w = sseWriter{w} // the progress comments committed a 200 stream: the error is an event
	}
	var rf *refusalError
	if errors.As(err, &rf) {
		c.status = rf.status()
		writeRefusal(w, ollama, rf)
		c.err = rf.Error()
		return
	}
	var nf *NotFoundError
	var ce *clientError
	var ae *AuthError
	var le *LimitError
	var oe *OllamaError
	switch {
	case errors.As(err, &nf):
		c.status = http.StatusNotFound
		if c.key != nil {
			nf = &NotFoundError{Model: nf.Model, Available: slices.DeleteFunc(slices.Clone(nf.Available), func(m string) bool { return !c.key.Allowed(m) })}
		}
		s.notFound(w, ollama, nf)
	case errors.As(err, &ae):
		c.status = ae.Status
		s.authError(w, ollama, ae)
	case errors.As(err, &le):
		c.status = le.Status
		for k, v := range le.Headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((le.RetryAfter+time.Second-1)/time.Second)))
		if ollama {
			writeOllamaError(w, le.Status, le.Message)
		} else {
			writeOpenAIError(w, le.Status, "requests", le.Code, le.Message)
		}
	case errors.As(err, &oe):
		c.status = oe.Status
		writeOllamaError(w, oe.Status, oe.Message)
	case errors.As(err, &ce):
		c.status = ce.status
		if ce.retryAfter != "" {
			w.Header().Set("Retry-After", ce.retryAfter)
		}
		if ce.detail != "" {
			s.log.Warn("gateway request failed", "request_id", c.id, "model", c.dec.Public, "err", ce.detail)
			c.err = ce.detail
		}
		if ollama {
			writeOllamaError(w, ce.status, ce.message)
		} else {
			writeOpenAIErrorParam(w, ce.status, ce.typ, ce.code, ce.param, ce.message)
		}
	default:
		// Not one of the gateway's own errors: its text may name backends or Go types, so
		// it goes to the log and the client gets the request id.
		c.status = http.StatusInternalServerError
		s.log.Error("gateway request failed", "request_id", c.id, "model", c.dec.Public, "err", err)
		msg := "internal error in the gateway; its log has the details under request id " + c.id
		if ollama {
			writeOllamaError(w, 500, msg)
		} else {
			writeOpenAIError(w, 500, "server_error", "internal_error", msg)
		}
	}
	if c.err == "" {
		c.err = err.Error()
	}
}

func (s *Server) notFound(w http.ResponseWriter, ollama bool, nf *NotFoundError) {
	msg := nf.Error() + " Available models: " + strings.Join(nf.Available, ", ")
	if len(nf.Available) == 0 {
		msg = nf.Error() + " No models are available: apply a Route or an InferenceService and wait for it to be Ready."
	}
	if ollama {
		writeOllamaError(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found; available: %s", nf.Model, strings.Join(nf.Available, ", ")))
		return
	}
	writeOpenAIErrorParam(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "model", msg)
}

func (s *Server) authError(w http.ResponseWriter, ollama bool, err error) {
	var ae *AuthError
	if !errors.As(err, &ae) {
		ae = &AuthError{Status: 401, Code: "invalid_api_key", Message: err.Error()}
	}
	if ollama {
		writeOllamaError(w, ae.Status, ae.Message)
		return
	}
	writeOpenAIError(w, ae.Status, "invalid_request_error", ae.Code, ae.Message)
}

func writeOpenAIError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeOpenAIErrorParam(w, status, typ, code, "", msg)
}

func writeOpenAIErrorParam(w http.ResponseWriter, status int, typ, code, param, msg string) {
	var p any
	if param != "" {
		p = param
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": code}})
}

func writeOllamaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// finish records metrics, charges tokens and writes the access log line.
func (s *Server) finish(c *call) {
	dur := time.Since(c.start)
	c.ticket.Done(c.tokensIn+c.tokensOut, time.Now()) // nil-safe
	c.modelTicket.Done(c.tokensIn+c.tokensOut, time.Now())
	s.met.observe(c, dur)
	if s.access == nil {
		return
	}
	attrs := []any{"request_id", c.id, "front", c.front, "kind", c.kind, "model", c.info.Model, "status", c.status,
		"duration_ms", float64(dur.Microseconds()) / 1000, "attempts", c.attempts}
	if c.dec.Public != "" {
		attrs = append(attrs, "public", c.dec.Public, "task", c.dec.Task, "reason", c.dec.Reason)
	}
	if c.replica != nil {
		attrs = append(attrs, "service", c.target.Name, "replica", c.replica.ID, "ttft_ms", float64(c.ttft.Microseconds())/1000,
			"overhead_ms", float64(c.overhead.Microseconds())/1000)
	}
	if c.wait > 0 {
		attrs = append(attrs, "residency_wait_ms", float64(c.wait.Microseconds())/1000)
	}
	if c.tokensIn+c.tokensOut > 0 {
		attrs = append(attrs, "tokens_in", c.tokensIn, "tokens_out", c.tokensOut)
	}
	if c.key != nil {
		attrs = append(attrs, "key", c.key.Name)
	}
	if c.err != "" {
		attrs = append(attrs, "error", c.err)
	}
	s.access.Info("request", attrs...)
}

package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ollama handles an Ollama front endpoint: to an Ollama backend the request passes through
// (model renamed); to an OpenAI-compatible backend it is translated, and so is the answer,
// NDJSON line by line when streaming.
func (s *Server) ollama(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := &call{start: time.Now(), id: requestID(r), front: "ollama", kind: kind}
		w.Header().Set("X-Request-Id", c.id)
		defer s.finish(c)
		if err := s.authenticateCall(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		body, err := s.readBody(w, r)
		if err != nil {
			s.fail(w, c, err)
			return
		}
		o, err := ParseOllama(kind, body)
		if err != nil {
			s.fail(w, c, err)
			return
		}
		c.info = o.Info()
		if b, ok := o.LocalResponse(OllamaName(StripLatest(c.info.Model))); ok {
			// Ollama's load/unload requests (no messages, no prompt): nothing to forward.
			if _, err := s.table.Load().Resolve(RequestInfo{Model: StripLatest(c.info.Model)}); err == nil {
				c.status = http.StatusOK
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				_, _ = w.Write(b)
				return
			}
		}
		c.info.Model = StripLatest(c.info.Model)
		c.info.TaskHeader = r.Header.Get("X-Citadel-Task")
		if err := s.admit(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		if c.dec, err = s.resolve(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		build := func(t *Target) (string, []byte, error) {
			if t.API == APIOllama {
				b, err := o.Passthrough(t.Model)
				return "/api/" + kind, b, err
			}
			return o.ToOpenAI(t.Model)
		}
		out := func(w http.ResponseWriter, resp *http.Response, c *call, t *Target) error {
			return s.ollamaOut(w, resp, c, t, o)
		}
		s.forward(w, r, c, build, o.Stream, out)
	}
}

// ollamaOut writes an upstream's answer in Ollama's shape.
func (s *Server) ollamaOut(w http.ResponseWriter, resp *http.Response, c *call, t *Target, o *OllamaRequest) error {
	c.status = resp.StatusCode
	if t.API == APIOllama {
		// Ollama to Ollama: the bytes as they come.
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		return s.passThroughNDJSON(w, resp, c)
	}
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(b, &e)
		msg := e.Error.Message
		if msg == "" {
			msg = e.Message
		}
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		writeOllamaError(w, resp.StatusCode, msg)
		return nil
	}
	public := OllamaName(c.dec.Public)
	if !o.Stream {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		if err != nil {
			return err
		}
		c.ttft = time.Since(c.start)
		c.tokensIn, c.tokensOut = usageOf(b)
		out, err := OpenAIToOllama(o, public, b, time.Since(c.start))
		if err != nil {
			s.log.Warn("gateway: an upstream answer could not be translated", "request_id", c.id, "replica", c.replica.ID, "err", err)
			writeOllamaError(w, http.StatusBadGateway, "the upstream engine's answer could not be translated to Ollama's shape; the gateway's log has the details under request id "+c.id)
			return err
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	cw := &countingWriter{w: w, c: c}
	body := newIdleReader(resp.Body, s.opts.IdleTimeout)
	defer body.Stop()
	err := StreamOpenAIToOllama(o, public, body, cw, func() { _ = rc.Flush() }, c.start)
	if err != nil {
		c.err = err.Error()
	}
	return err
}

// passThroughNDJSON copies an Ollama upstream's answer, flushing after every chunk.
func (s *Server) passThroughNDJSON(w http.ResponseWriter, resp *http.Response, c *call) error {
	_, err := s.copyStream(w, resp, c, func(msg string) []byte {
		b, _ := json.Marshal(map[string]string{"error": msg})
		return append(b, '\n')
	})
	return err
}

// countingWriter notes when the first byte reaches the client.
type countingWriter struct {
	w io.Writer
	c *call
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	if cw.c.ttft == 0 && len(p) > 0 {
		cw.c.ttft = time.Since(cw.c.start)
	}
	return cw.w.Write(p)
}

// ollamaModels lists the public models key may use (all for a nil key) as Ollama names them.
func (s *Server) ollamaModels(key *Key) []OllamaModelInfo {
	var out []OllamaModelInfo
	for _, m := range s.table.Load().Models() {
		if key.Allowed(m.ID) {
			out = append(out, OllamaModelInfo{Name: m.ID})
		}
	}
	return out
}

func (s *Server) ollamaTags(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authorized(w, r, true)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(OllamaTags(s.ollamaModels(key)))
}

// ollamaPs is Ollama's list of running models: the public models that have a replica in
// service.
func (s *Server) ollamaPs(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authorized(w, r, true)
	if !ok {
		return
	}
	var running []OllamaModelInfo
	for _, m := range s.ollamaModels(key) {
		if _, err := s.table.Load().Resolve(RequestInfo{Model: m.Name}); err == nil {
			running = append(running, m)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(OllamaPs(running))
}

func (s *Server) ollamaShow(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authorized(w, r, true)
	if !ok {
		return
	}
	body, err := s.readBodyLimit(w, r, 1<<20)
	if err != nil {
		s.fail(w, &call{front: "ollama"}, err)
		return
	}
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"`
	}
	if err := ollamaDecode(body, &req); err != nil {
		s.fail(w, &call{front: "ollama"}, err)
		return
	}
	name := req.Model
	if name == "" {
		name = req.Name
	}
	if name == "" {
		writeOllamaError(w, 400, "model is required")
		return
	}
	for _, m := range s.ollamaModels(key) {
		if m.Name == StripLatest(name) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(OllamaShow(m))
			return
		}
	}
	s.notFound(w, true, &NotFoundError{Model: name, Available: s.publicNames(key)})
}

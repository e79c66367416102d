package gateway

// The Ollama front: the HTTP of /api/chat, /api/generate, /api/embed, /api/tags, /api/ps and
// /api/show. The protocol itself — parsing, translation to and from OpenAI, the listing
// bodies — is internal/ollamaapi's; this file routes, forwards and writes.

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"citadel.dev/citadel/internal/ollamaapi"
	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/taskclass"
)

// Names kept for the rest of the package (proxy.go's fail, explain.go, gateway.go's mux);
// new code may use ollamaapi's directly.

// OllamaError is an error in Ollama's shape: ollamaapi.Error.
type OllamaError = ollamaapi.Error

// OllamaChat is the /api/chat request kind (ollamaapi.Chat).
const OllamaChat = ollamaapi.Chat

// OllamaVersion is the /api/version body (ollamaapi.Version).
func OllamaVersion(v string) []byte { return ollamaapi.Version(v) }

// OllamaRequest is a parsed Ollama request with what routing reads from it (Info).
type OllamaRequest struct{ *ollamaapi.Request }

// ParseOllama parses the body of an /api/<kind> request (ollamaapi.Parse); errors are
// *OllamaError.
func ParseOllama(kind string, body []byte) (*OllamaRequest, error) {
	o, err := ollamaapi.Parse(kind, body)
	if err != nil {
		return nil, err
	}
	return &OllamaRequest{o}, nil
}

// ollamaTextSample bounds RequestInfo.Text: the first and the last this many bytes.
const ollamaTextSample = 16 << 10

// Info is what routing needs: the model as named, the images, the prompt's text (the first and
// last 16 KiB), a token estimate (1 per 4 bytes, 1024 per image: ollamaapi's PromptTokens),
// what the task classifier reads, and the prefix hash.
func (o *OllamaRequest) Info() RequestInfo {
	ri := RequestInfo{Model: o.Model, Embedding: o.Kind == ollamaapi.Embed, PromptTokens: o.PromptTokens()}
	var text strings.Builder
	add := func(s string) {
		if s == "" {
			return
		}
		text.WriteString(s)
		text.WriteByte('\n')
	}
	switch o.Kind {
	case ollamaapi.Chat:
		msgs := o.Messages()
		turns := make([]taskclass.Turn, len(msgs))
		for i, m := range msgs {
			add(m.Content)
			ri.Images += len(m.Images)
			turns[i] = taskclass.Turn{Role: m.Role, Text: m.Content, Images: len(m.Images), Calls: len(m.ToolCalls) > 0}
			for _, tc := range m.ToolCalls {
				turns[i].Text += "\n" + tc.Function.Name + " " + string(tc.Function.Arguments[:min(len(tc.Function.Arguments), 256)])
			}
		}
		ri.Class = taskclass.FromTurns(turns)
	case ollamaapi.Generate:
		add(o.System())
		add(o.Prompt())
		add(o.Suffix())
		ri.Images = len(o.Images())
		ri.Class = taskclass.Input{Ask: o.Prompt(), System: o.System()}
	case ollamaapi.Embed:
		for _, s := range o.Input() {
			add(s)
		}
	}
	ri.Text = ollamaSample(text.String())
	ri.PrefixHash = prefixHash(ri.Text) // as the OpenAI front hashes
	return ri
}

// ollamaSample bounds s to its first and last ollamaTextSample bytes, cut on rune boundaries.
func ollamaSample(s string) string {
	if len(s) <= 2*ollamaTextSample {
		return s
	}
	head, tail := ollamaTextSample, len(s)-ollamaTextSample
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + "\n" + s[tail:]
}

// ollama handles an Ollama front endpoint: to an Ollama backend the request passes through
// (model renamed); to an OpenAI-compatible backend it is translated, and so is the answer,
// NDJSON line by line when streaming.
func (s *Server) ollama(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, body, ok := s.begin(w, r, "ollama", kind)
		defer s.finish(c)
		if !ok {
			return
		}
		o, err := ParseOllama(kind, body)
		if err != nil {
			s.fail(w, c, err)
			return
		}
		c.info = o.Info()
		if b, ok := o.LocalResponse(ollamaapi.Name(ollamaapi.StripLatest(c.info.Model))); ok {
			// Ollama's load/unload requests (no messages, no prompt): nothing to forward.
			if d, err := s.table.Load().Resolve(RequestInfo{Model: ollamaapi.StripLatest(c.info.Model)}); err == nil {
				if s.opts.Residency != nil && o.Kind != ollamaapi.Embed {
					// An on-demand model is loaded (or unloaded) before the answer, as Ollama does.
					c.dec = d
					if err := s.loadUnload(r.Context(), c, d, o.Unloads()); err != nil {
						s.fail(w, c, err)
						return
					}
				}
				c.status = http.StatusOK
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				_, _ = w.Write(b)
				return
			}
		}
		c.info.Model = ollamaapi.StripLatest(c.info.Model)
		c.info.TaskHeader = r.Header.Get("X-Citadel-Task")
		if err := s.admit(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		if c.dec, err = s.resolve(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		if d := c.dec.Dest; d != nil && d.Limits != nil && d.Limits.MaxTokens != nil {
			c.maxTokens, c.maxTokensParam = numPredict(body), "options.num_predict"
		}
		if err := s.admitModel(c); err != nil {
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
		if s.opts.Residency != nil && o.Unloads() {
			s.unloadAfter(c.target)
		}
	}
}

// numPredict is a request's options.num_predict, the answer's bound (0 for none: absent,
// -1 unbounded and -2 fill the context, which the OpenAI translation sends as no bound too).
// Read only for a model with limits.maxTokens; Parse has checked the body already.
func numPredict(body []byte) int64 {
	var req struct {
		Options struct {
			NumPredict *float64 `json:"num_predict"`
		} `json:"options"`
	}
	if json.Unmarshal(body, &req) != nil || req.Options.NumPredict == nil || *req.Options.NumPredict <= 0 {
		return 0
	}
	return int64(min(math.Ceil(*req.Options.NumPredict), math.MaxInt32))
}

// ollamaOut writes an upstream's answer in Ollama's shape.
func (s *Server) ollamaOut(w http.ResponseWriter, resp *http.Response, c *call, t *Target, o *OllamaRequest) error {
	c.status = resp.StatusCode
	if t.API == APIOllama {
		// Ollama to Ollama: the bytes as they come (the final object's durations with the
		// residency wait added).
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		if c.wait > 0 && resp.StatusCode/100 == 2 {
			p := &waitPatcher{ResponseWriter: w, wait: c.wait}
			defer p.finish()
			return s.passThroughNDJSON(p, resp, c)
		}
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
	public := ollamaapi.Name(c.dec.Public)
	if !o.Stream {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
		if err != nil {
			return err
		}
		c.ttft = time.Since(c.start)
		c.tokensIn, c.tokensOut = usageOf(b)
		out, err := ollamaapi.FromOpenAI(o.Request, public, b, time.Since(c.start)-c.wait)
		if err != nil {
			s.log.Warn("gateway: an upstream answer could not be translated", "request_id", c.id, "replica", c.replica.ID, "err", err)
			writeOllamaError(w, http.StatusBadGateway, "the upstream engine's answer could not be translated to Ollama's shape; the gateway's log has the details under request id "+c.id)
			return err
		}
		out = addWait(out, c.wait)
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
	err := ollamaapi.StreamFromOpenAI(o.Request, public, body, cw, func() { _ = rc.Flush() }, c.start.Add(c.wait))
	if err != nil {
		c.err = err.Error()
	} else {
		c.tokensIn, c.tokensOut = ollamaUsage(cw.last)
	}
	return err
}

// passThroughNDJSON copies an Ollama upstream's answer, flushing after every chunk.
func (s *Server) passThroughNDJSON(w http.ResponseWriter, resp *http.Response, c *call) error {
	tail, err := s.copyStream(w, resp, c, func(msg string) []byte {
		b, _ := json.Marshal(map[string]string{"error": msg})
		return append(b, '\n')
	})
	if err == nil && resp.StatusCode/100 == 2 {
		c.tokensIn, c.tokensOut = ollamaUsage(tail)
	}
	return err
}

// ollamaUsage reads the token counts (prompt_eval_count, eval_count) at the end of an
// Ollama answer: a stream's "done" line, or the end of a whole answer, which tail may hold
// only part of.
func ollamaUsage(tail []byte) (int, int) {
	count := func(field string) int {
		i := bytes.LastIndex(tail, []byte(`"`+field+`":`))
		if i < 0 {
			return 0
		}
		rest := bytes.TrimLeft(tail[i+len(field)+3:], " ")
		n := 0
		for _, c := range rest {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	return count("prompt_eval_count"), count("eval_count")
}

// countingWriter notes when the first byte reaches the client, and keeps the last line
// written (the translation writes one line a call) for its token counts.
type countingWriter struct {
	w    io.Writer
	c    *call
	last []byte
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	if cw.c.ttft == 0 && len(p) > 0 {
		cw.c.ttft = time.Since(cw.c.start)
	}
	n := len(p)
	if cw.c.wait > 0 {
		p = addWait(p, cw.c.wait) // the final object: the residency wait is its load
	}
	if len(p) <= 4<<10 {
		cw.last = append(cw.last[:0], p...)
	}
	if _, err := cw.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// ollamaModels lists the public models key may use (all for a nil key) as Ollama names them.
func (s *Server) ollamaModels(key *Key) []ollamaapi.ModelInfo {
	var out []ollamaapi.ModelInfo
	for _, m := range s.table.Load().Models() {
		if key.Allowed(m.ID) {
			out = append(out, ollamaapi.ModelInfo{Name: m.ID})
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
	_, _ = w.Write(ollamaapi.Tags(s.ollamaModels(key)))
}

// ollamaPs is Ollama's list of running models: the public models that have a replica in
// service.
func (s *Server) ollamaPs(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authorized(w, r, true)
	if !ok {
		return
	}
	var running []ollamaapi.ModelInfo
	t, states := s.table.Load(), s.residencyStates()
	for _, m := range s.ollamaModels(key) {
		if _, err := t.Resolve(RequestInfo{Model: m.Name}); err != nil {
			continue
		}
		if st, ok := s.modelState(t, states, m.Name); ok {
			// An on-demand model runs while it is loaded or loading, as Ollama lists a model
			// from the moment its runner starts.
			if st.Value != residency.StateLoaded && st.Value != residency.StateLoading {
				continue
			}
			m.Size, m.SizeVRAM, m.ExpiresAt = st.SizeVRAM, st.SizeVRAM, st.ExpiresAt
		}
		running = append(running, m)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(ollamaapi.Ps(running))
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
	if err := ollamaapi.Decode(body, &req); err != nil {
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
		if m.Name == ollamaapi.StripLatest(name) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write(ollamaapi.Show(m))
			return
		}
	}
	s.notFound(w, true, &NotFoundError{Model: name, Available: s.publicNames(key)})
}

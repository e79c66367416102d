package sim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// llama.cpp's server (tools/server in https://github.com/ggml-org/llama.cpp): it binds its port at once and answers 503 "Loading model"
// until the weights are in memory; it serves one model whatever a request's "model" says; it
// runs -np fixed slots, each with ctx-size/np tokens of context.

// llamacppDialect is llama-server's OpenAI-compatible server: -np fixed slots, a loading
// phase, one model whatever a request names, llama.cpp's error JSON, and its native endpoints
// (/completion, /props, /slots, /models). Its /v1 responses and streams are vLLM's shape.
var llamacppDialect = &dialect{
	name: EngineLlamaCPP,
	launch: Launch{Port: 8080, Host: "127.0.0.1", DefaultContext: 4096, SlotsShareContext: true,
		DefaultQuant: perfmodel.QuantQ4KM, LoadsWhileListening: true},
	mode:         perfmodel.Ollama, // fixed slots (-np), each with ctx-size/np tokens
	routes:       (*OpenAI).llamacppRoutes,
	gate:         (*OpenAI).llamacppGate,
	errorBody:    func(_ *OpenAI, e *apiError) any { return llamacppError(e) },
	model:        (*OpenAI).llamacppModel,
	models:       (*OpenAI).llamacppModels,
	contextError: (*OpenAI).llamacppContextError,
	chatError:    plainChatError,
	whole:        vllmWhole,
	stream:       streamDialect{chunk: vllmChunk, usage: vllmUsageChunk},
	metrics:      metricsDialect{write: (*metrics).llamacpp, ttft: ttftBuckets, itl: itlBuckets, e2e: e2eBuckets},
	loadLog:      (*OpenAI).llamacppLoadLog,
	servingLog:   (*OpenAI).llamacppServingLog,
}

// LlamaCPPBuild is the build_info the personality reports.
const LlamaCPPBuild = "b6700-citadel-sim"

// defaultLoadRate is how fast a simulated llama-server loads weights (bytes per simulated
// second): a local NVMe read plus the upload to the GPU.
const defaultLoadRate = 2 << 30

// loadTime is the wall duration of the loading phase.
func (s *OpenAI) loadTime() time.Duration {
	d := s.cfg.LoadTime
	switch {
	case d < 0:
		return 0
	case d == 0:
		d = time.Duration(float64(s.cfg.Plan.WeightBytes) / defaultLoadRate * float64(time.Second))
	}
	return time.Duration(s.cfg.TimeScale * float64(d))
}

func (s *OpenAI) llamacppRoutes(mux *http.ServeMux) {
	healthy := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
	mux.HandleFunc("GET /health", healthy)
	mux.HandleFunc("GET /v1/health", healthy)
	mux.HandleFunc("GET /models", s.models)
	mux.HandleFunc("GET /props", s.llamacppProps)
	mux.HandleFunc("POST /completion", s.llamacppCompletion)
	mux.HandleFunc("POST /completions", s.llamacppCompletion)
	mux.HandleFunc("GET /slots", s.llamacppSlots)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		s.writeError(w, &apiError{status: http.StatusNotFound, message: "File Not Found"})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.EnableMetrics {
			s.writeError(w, &apiError{status: http.StatusNotImplemented, message: "This server does not support metrics endpoint. Start it with `--metrics`"})
			return
		}
		s.serveMetrics(w, r)
	})
}

// loading reports whether the server is still in its loading phase.
func (s *OpenAI) loading() bool { return s.clock().Before(s.readyAt) }

// llamacppListing are the model listings, served during loading too.
var llamacppListing = map[string]bool{"/models": true, "/v1/models": true, "/api/tags": true}

// llamacppPublic are the paths llama-server serves without an API key.
var llamacppPublic = map[string]bool{"/health": true, "/v1/health": true, "/models": true, "/v1/models": true, "/api/tags": true}

// llamacppGate answers for the server while it loads the model and checks the API key; it
// reports whether it wrote the response.
func (s *OpenAI) llamacppGate(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Server", "llama.cpp")
	if s.loading() && !llamacppListing[r.URL.Path] {
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "Loading model"})
		return true
	}
	if s.cfg.APIKey == "" || r.Method == http.MethodOptions || llamacppPublic[r.URL.Path] {
		return false
	}
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) == 1 {
		return false
	}
	s.writeError(w, &apiError{status: http.StatusUnauthorized, message: "Invalid API Key"})
	return true
}

var llamacppErrorTypes = map[int]string{
	400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
	500: "server_error", 501: "not_supported_error", 503: "unavailable_error",
}

// llamacppError is llama-server's {"error":{"message","type","code"}}.
func llamacppError(e *apiError) any {
	typ := llamacppErrorTypes[e.status]
	if strings.Contains(e.message, "context") && e.status == http.StatusBadRequest {
		typ = "exceed_context_size_error"
	}
	if typ == "" {
		typ = "server_error"
	}
	type info struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	}
	return struct {
		Error info `json:"error"`
	}{info{e.message, typ, e.status}}
}

// llamacppModel serves one model whatever a request names, and echoes the name; no name
// means the served one.
func (s *OpenAI) llamacppModel(name string) (string, error) {
	if name == "" {
		return s.cfg.ServedModelNames[0], nil
	}
	return name, nil
}

// llamacppContextError refuses a prompt that does not fit its slot; generation past the
// slot's context just stops (finish_reason "length").
func (s *OpenAI) llamacppContextError(input, _ int, _ bool) *apiError {
	if input >= s.maxLen {
		return badRequest("the request exceeds the available context size, try increasing it")
	}
	return nil
}

// slotContext is each slot's context: ctx-size split over the slots.
func (s *OpenAI) slotContext() int { return s.cfg.Plan.Options.MaxModelLen }

func (s *OpenAI) llamacppModels(w http.ResponseWriter, _ *http.Request) {
	m := s.cfg.Plan.Model
	id := s.cfg.ServedModelNames[0]
	var meta any // null while the model loads
	if !s.loading() {
		meta = map[string]any{
			"vocab_type": 2, "n_vocab": m.Vocab, "n_ctx_train": m.MaxContext, "n_embd": m.Hidden,
			"n_params": m.Params, "size": s.cfg.Plan.WeightBytes,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"models": []map[string]any{{"name": id, "model": id, "modified_at": "", "size": "", "digest": "", "type": "model",
			"description": "", "tags": []string{""}, "capabilities": []string{"completion"}, "parameters": "",
			"details": map[string]any{"parent_model": "", "format": "gguf", "family": "", "families": []string{""},
				"parameter_size": "", "quantization_level": ""}}},
		"object": "list",
		"data":   []map[string]any{{"id": id, "object": "model", "created": s.created, "owned_by": "llamacpp", "meta": meta}},
	})
}

func (s *OpenAI) llamacppProps(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"default_generation_settings": map[string]any{"id": 0, "id_task": -1, "n_ctx": s.slotContext(), "speculative": false,
			"is_processing": false, "params": map[string]any{"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95}},
		"total_slots":   s.cfg.Plan.Options.Parallel,
		"model_path":    s.cfg.ModelRoot,
		"modalities":    map[string]bool{"vision": s.vision, "audio": false},
		"chat_template": "{%- for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n'}}{%- endfor %}{%- if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{%- endif %}",
		"build_info":    LlamaCPPBuild,
	})
}

// llamacppSlots lists the slots; the first Running of them are busy. With ?fail_on_no_slot=1
// it answers 503 when every slot is busy.
func (s *OpenAI) llamacppSlots(w http.ResponseWriter, r *http.Request) {
	if s.cfg.NoSlots {
		s.writeError(w, &apiError{status: http.StatusNotImplemented, message: "This server does not support slots endpoint. Start it with `--slots`"})
		return
	}
	s.metrics.mu.Lock()
	busy := s.metrics.running
	s.metrics.mu.Unlock()
	n := s.cfg.Plan.Options.Parallel
	if r.URL.Query().Get("fail_on_no_slot") != "" && busy >= n {
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "no slot available"})
		return
	}
	slots := make([]map[string]any, n)
	for i := range slots {
		slots[i] = map[string]any{"id": i, "id_task": -1, "n_ctx": s.slotContext(), "speculative": false, "is_processing": i < busy,
			"next_token": map[string]any{"has_next_token": i < busy, "has_new_line": false, "n_remain": -1, "n_decoded": 0, "stopping_word": ""}}
	}
	writeJSON(w, http.StatusOK, slots)
}

// llamacppCompletion is the native POST /completion: {"prompt", "n_predict", "stream", "stop"}
// answered with {"content", "stop_type", "timings", …}; a stream sends one data: event per
// token and no [DONE].
func (s *OpenAI) llamacppCompletion(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Prompt    json.RawMessage `json:"prompt"`
		NPredict  *int            `json:"n_predict"`
		Stream    bool            `json:"stream"`
		Stop      stopList        `json:"stop"`
		IgnoreEOS bool            `json:"ignore_eos"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	var p prompt
	if err := json.Unmarshal(req.Prompt, &p.text); err != nil {
		s.writeError(w, badRequest("\"prompt\" must be a string, a list of tokens, or a list of mixed strings and tokens"))
		return
	}
	p.tokens = max(1, countTokens(p.text))
	smp := sampling{Stop: req.Stop, IgnoreEOS: req.IgnoreEOS, Stream: req.Stream}
	if req.NPredict != nil && *req.NPredict >= 0 {
		smp.MaxTokens = req.NPredict
	}
	if p.tokens >= s.slotContext() {
		s.writeError(w, badRequest("the request exceeds the available context size, try increasing it"))
		return
	}
	if smp.MaxTokens != nil && p.tokens+*smp.MaxTokens > s.slotContext() {
		n := s.slotContext() - p.tokens // llama-server stops at the context's end
		smp.MaxTokens = &n
	}
	j, err := s.newJob(smp, p, false, shape{})
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.runWith(w, r, j, func(st *stream) responder { return &llamacppOut{streamBuf: streamBuf{w: w}, j: j, st: st, srv: s} })
}

// llamacppOut writes /completion's response.
type llamacppOut struct {
	streamBuf
	j   *job
	st  *stream
	srv *OpenAI
}

func (o *llamacppOut) token(_, index int) {
	if !o.j.stream {
		return
	}
	o.event(llamacppPartial{Content: o.j.delta(0, index), Tokens: []int{}, IDSlot: -1, TokensPredicted: index + 1, TokensEvaluated: o.j.prompt.tokens})
}

// Wire types of /completion, in llama-server's (ordered_json) field order.
type (
	llamacppPartial struct {
		Index           int    `json:"index"`
		Content         string `json:"content"`
		Tokens          []int  `json:"tokens"`
		Stop            bool   `json:"stop"`
		IDSlot          int    `json:"id_slot"`
		TokensPredicted int    `json:"tokens_predicted"`
		TokensEvaluated int    `json:"tokens_evaluated"`
	}
	llamacppFinal struct {
		Index           int             `json:"index"`
		Content         string          `json:"content"`
		Tokens          []int           `json:"tokens"`
		IDSlot          int             `json:"id_slot"`
		Stop            bool            `json:"stop"`
		Model           string          `json:"model"`
		TokensPredicted int             `json:"tokens_predicted"`
		TokensEvaluated int             `json:"tokens_evaluated"`
		Prompt          string          `json:"prompt"`
		HasNewLine      bool            `json:"has_new_line"`
		Truncated       bool            `json:"truncated"`
		StopType        string          `json:"stop_type"`
		StoppingWord    string          `json:"stopping_word"`
		TokensCached    int             `json:"tokens_cached"`
		Timings         llamacppTimings `json:"timings"`
	}
	llamacppTimings struct {
		CacheN              int     `json:"cache_n"`
		PromptN             int     `json:"prompt_n"`
		PromptMS            float64 `json:"prompt_ms"`
		PromptPerTokenMS    float64 `json:"prompt_per_token_ms"`
		PromptPerSecond     float64 `json:"prompt_per_second"`
		PredictedN          int     `json:"predicted_n"`
		PredictedMS         float64 `json:"predicted_ms"`
		PredictedPerTokenMS float64 `json:"predicted_per_token_ms"`
		PredictedPerSecond  float64 `json:"predicted_per_second"`
	}
)

func (o *llamacppOut) event(v any) { o.data(marshalJSON(v)) }

func (o *llamacppOut) flush() error {
	if !o.j.stream {
		return nil
	}
	o.begin("text/event-stream")
	return o.send()
}

// timings are llama-server's per-request timings, from the simulated clock.
func (o *llamacppOut) timings() llamacppTimings {
	c := o.j.choices[0]
	ttft, e2e := o.st.timings(0)
	promptMS := float64(ttft) / float64(time.Millisecond)
	predMS := float64(e2e-ttft) / float64(time.Millisecond)
	per := func(n int, ms float64) (float64, float64) {
		if n == 0 || ms <= 0 {
			return 0, 0
		}
		return ms / float64(n), 1000 * float64(n) / ms
	}
	ppt, pps := per(o.j.prompt.tokens, promptMS)
	dpt, dps := per(c.tokens, predMS)
	return llamacppTimings{PromptN: o.j.prompt.tokens, PromptMS: promptMS, PromptPerTokenMS: ppt, PromptPerSecond: pps,
		PredictedN: c.tokens, PredictedMS: predMS, PredictedPerTokenMS: dpt, PredictedPerSecond: dps}
}

func (o *llamacppOut) done() {
	c := o.j.choices[0]
	stopType, word := "eos", ""
	switch {
	case c.stopStr != "":
		stopType, word = "word", c.stopStr
	case c.finish == "length":
		stopType = "limit"
	}
	final := llamacppFinal{Content: c.text, Tokens: []int{}, Stop: true,
		Model: o.srv.cfg.ServedModelNames[0], TokensPredicted: c.tokens, TokensEvaluated: o.j.prompt.tokens,
		Prompt: o.j.prompt.text, HasNewLine: strings.Contains(c.text, "\n"),
		StopType: stopType, StoppingWord: word, TokensCached: o.j.prompt.tokens + c.tokens, Timings: o.timings()}
	if !o.j.stream {
		writeJSON(o.w, http.StatusOK, final)
		return
	}
	final.Content = ""
	o.event(final)
	_ = o.flush()
}

func (o *llamacppOut) fail(e *apiError) {
	if !o.started {
		o.srv.writeError(o.w, e)
		return
	}
	o.event(llamacppError(e))
	_ = o.flush()
}

// llamacpp writes llama-server's /metrics: unlabelled llamacpp: series. Prompt time is the
// requests' time to first token and generation time the rest of their life (both simulated).
func (m *metrics) llamacpp() string {
	var b strings.Builder
	metric := func(typ, name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, typ, name, cppFloat(v))
	}
	promptS, predS := m.ttft.sum, m.e2eLatency.sum-m.ttft.sum
	rate := func(n uint64, s float64) float64 {
		if s <= 0 {
			return 0
		}
		return float64(n) / s
	}
	var busy float64
	if m.steps > 0 {
		busy = float64(m.busy) / float64(m.steps)
	}
	metric("counter", "llamacpp:prompt_tokens_total", "Number of prompt tokens processed.", float64(m.promptTokens))
	metric("counter", "llamacpp:prompt_seconds_total", "Prompt process time", promptS)
	metric("counter", "llamacpp:tokens_predicted_total", "Number of generation tokens processed.", float64(m.genTokens))
	metric("counter", "llamacpp:tokens_predicted_seconds_total", "Predict process time", max(predS, 0))
	metric("counter", "llamacpp:n_decode_total", "Total number of llama_decode() calls", float64(m.steps))
	metric("counter", "llamacpp:n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call", busy)
	metric("gauge", "llamacpp:prompt_tokens_seconds", "Average prompt throughput in tokens/s.", rate(m.promptTokens, promptS))
	metric("gauge", "llamacpp:predicted_tokens_seconds", "Average generation throughput in tokens/s.", rate(m.genTokens, predS))
	metric("gauge", "llamacpp:requests_processing", "Number of requests processing.", float64(m.running))
	metric("gauge", "llamacpp:requests_deferred", "Number of requests deferred.", float64(m.waiting))
	return b.String()
}

// cppFloat formats v as llama-server does (std::to_string-free %g-style output).
func cppFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

// llamacppLoadLog is what llama-server logs while it loads: its build and the slots' context.
func (s *OpenAI) llamacppLoadLog(out io.Writer) {
	plan := s.cfg.Plan
	fmt.Fprintf(out, "build: %s (citadel sim, time scale %g)\n", LlamaCPPBuild, s.cfg.TimeScale)
	fmt.Fprintf(out, "main: loading model\n")
	fmt.Fprintf(out, "llama_context: n_ctx_per_seq = %d, n_seq_max = %d\n", plan.Options.MaxModelLen, plan.Options.Parallel)
	fmt.Fprintf(out, "sim plan: %s\n", plan)
}

func (s *OpenAI) llamacppServingLog(out io.Writer, addr net.Addr) {
	fmt.Fprintf(out, "main: server is listening on http://%s - starting the main loop (answers 503 until the model is loaded)\n", addr)
}

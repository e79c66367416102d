package sim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// DefaultVLLMVersion is the release the personality imitates unless Config.VLLMVersion says.
const DefaultVLLMVersion = "0.11.0"

// Engines whose OpenAI-compatible server the VLLM type speaks (Config.Engine).
const (
	EngineVLLM     = "vllm"
	EngineSGLang   = "sglang"
	EngineLlamaCPP = "llamacpp"
)

// Config describes one simulated OpenAI-compatible engine server.
type Config struct {
	// Engine is the dialect: EngineVLLM (default), EngineSGLang or EngineLlamaCPP. It decides
	// error JSON, authentication, metric names, the engine's own endpoints and, for llama.cpp,
	// slots instead of continuous batching and a loading phase.
	Engine           string
	Plan             perfmodel.Plan
	ServedModelNames []string // the first is the metrics' model_name; default Plan.Model.Name
	ModelRoot        string   // --model as given: /v1/models "root"
	APIKey           string   // empty: no auth
	VLLMVersion      string   // default DefaultVLLMVersion; selects error JSON and metric names
	TimeScale        float64  // wall seconds per simulated second; 0 = no delay
	Seed             int64    // of the pseudo-text
	Logger           *slog.Logger
	Now              func() time.Time // the "created" clock; default time.Now
	Slowdown         float64          // multiplies every step's duration; 0 means 1
	EmbeddingDim     int              // /v1/embeddings vector length; default the model's hidden size, else 1024
	Faults           Faults           // injected failures; the zero value injects none
	// EnableMetrics serves /metrics on SGLang (--enable-metrics) and llama.cpp (--metrics);
	// vLLM always serves it.
	EnableMetrics bool
	// LoadTime (llama.cpp) is how long, in simulated time, the server answers 503 "Loading
	// model" after it is built; 0 means the weights' size at defaultLoadRate, < 0 none.
	LoadTime time.Duration
	// NoSlots (llama.cpp --no-slots) disables /slots.
	NoSlots bool
	// NoPrefixCache turns automatic prefix caching off (vLLM --no-enable-prefix-caching,
	// SGLang --disable-radix-cache); llama.cpp never shares a prefix across slots here.
	NoPrefixCache bool
	// FixedTTFT and FixedITL, when either is more than 0, replace the performance model with
	// fixed latencies (Engine.SetFixed): each choice's first token FixedTTFT after its request
	// arrives, each later token FixedITL after the previous one, regardless of load. They are
	// simulated time, scaled by TimeScale (and Slowdown) like step times.
	FixedTTFT, FixedITL time.Duration
}

// VLLM is a simulated vLLM OpenAI-compatible server.
type VLLM struct {
	cfg     Config
	clock   func() time.Time // wall clock of the loading phase (Faults.Now)
	readyAt time.Time        // llama.cpp: the end of the loading phase
	version version
	engine  *Engine
	metrics *metrics
	mux     *http.ServeMux
	handler http.Handler // mux behind the faults
	created int64
	maxLen  int
	vision  bool
	nextID  atomic.Uint64
	prefix  *prefixCache // nil: no prefix caching
}

// NewVLLM builds the server; call Run (or Serve) to start its engine.
func NewVLLM(cfg Config) (*VLLM, error) {
	mode := perfmodel.VLLM
	switch cfg.Engine {
	case "":
		cfg.Engine = EngineVLLM
	case EngineVLLM, EngineSGLang:
	case EngineLlamaCPP:
		mode = perfmodel.Ollama // fixed slots (-np), each with ctx-size/np tokens
	default:
		return nil, fmt.Errorf("engine %q: want %s, %s or %s", cfg.Engine, EngineVLLM, EngineSGLang, EngineLlamaCPP)
	}
	if cfg.VLLMVersion == "" {
		cfg.VLLMVersion = DefaultVLLMVersion
	}
	v, err := parseVersion(cfg.VLLMVersion)
	if err != nil {
		return nil, err
	}
	if len(cfg.ServedModelNames) == 0 {
		cfg.ServedModelNames = []string{cfg.Plan.Model.Name}
	}
	if cfg.ModelRoot == "" {
		cfg.ModelRoot = cfg.ServedModelNames[0]
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := newMetrics(cfg.ServedModelNames[0], cfg.VLLMVersion)
	m.setDialect(cfg.Engine)
	eng, err := newPersonalityEngine(cfg.Plan, mode, cfg.TimeScale, m, cfg.Slowdown, cfg.FixedTTFT, cfg.FixedITL, cfg.Faults)
	if err != nil {
		return nil, err
	}
	if cfg.EmbeddingDim == 0 {
		cfg.EmbeddingDim = cfg.Plan.Model.Hidden
	}
	if cfg.EmbeddingDim <= 0 {
		cfg.EmbeddingDim = 1024
	}
	if cfg.Faults.Now == nil {
		cfg.Faults.Now = time.Now
	}
	s := &VLLM{cfg: cfg, clock: cfg.Faults.Now, version: v, engine: eng, metrics: m, created: cfg.Now().Unix(),
		maxLen: cfg.Plan.Options.MaxModelLen, vision: cfg.Plan.Model.Vision}
	if cfg.Engine == EngineLlamaCPP {
		s.readyAt = s.clock().Add(s.loadTime())
	} else if !cfg.NoPrefixCache {
		s.prefix = newPrefixCache(cfg.Plan.KVBlocks)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/completions", s.completions)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /tokenize", s.tokenize)
	mux.HandleFunc("POST /detokenize", s.detokenize)
	switch cfg.Engine {
	case EngineSGLang:
		s.sglangRoutes(mux)
	case EngineLlamaCPP:
		s.llamacppRoutes(mux)
	default:
		mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("POST /ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"version": cfg.VLLMVersion})
		})
		mux.HandleFunc("GET /metrics", s.serveMetrics)
	}
	s.mux = mux
	s.handler = WithFaults(cfg.Faults, mux, func(w http.ResponseWriter, status int, message string) {
		s.writeError(w, &apiError{status: status, message: message})
	})
	return s, nil
}

// ServeHTTP applies the engine's API-key check and routes. vLLM checks paths under /v1 only.
func (s *VLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch s.cfg.Engine {
	case EngineSGLang:
		if !s.sglangAuthorized(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
			return
		}
	case EngineLlamaCPP:
		if s.llamacppGate(w, r) {
			return
		}
	default:
		if s.cfg.APIKey != "" && r.Method != http.MethodOptions && strings.HasPrefix(r.URL.Path, "/v1") && !bearer(r, s.cfg.APIKey) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
			return
		}
	}
	s.handler.ServeHTTP(w, r)
}

// bearer reports whether r carries "Authorization: Bearer key".
func bearer(r *http.Request, key string) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+key)) == 1
}

// listOf is an OpenAI list object, "object" first as the Python servers write it.
type listOf[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

// serveMetrics writes /metrics in the engine's names.
func (s *VLLM) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = s.metrics.write(w)
}

// Run drives the engine until ctx ends.
func (s *VLLM) Run(ctx context.Context) error { return s.engine.Run(ctx) }

// Serve runs the engine and an HTTP server on ln until ctx ends.
func (s *VLLM) Serve(ctx context.Context, ln net.Listener) error {
	return serveWith(ctx, ln, s, s.engine.Run)
}

// apiError is an error the client sees as vLLM's error JSON.
type apiError struct {
	status  int
	message string
	param   string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

var errorTypes = map[int]string{
	400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
	500: "InternalServerError", 503: "ServiceUnavailableError",
}

// errorBody is vLLM's error object: nested under "error" from 0.10.1, flat with
// "object":"error" before (vLLM PR #22099).
func (s *VLLM) errorBody(e *apiError) any {
	switch s.cfg.Engine {
	case EngineLlamaCPP:
		return llamacppError(e)
	case EngineSGLang:
		return flatError{Object: "error", Message: e.message, Type: errorTypes[e.status], Param: e.paramValue(), Code: e.status}
	}
	if s.version.less(version{0, 10, 1}) {
		return flatError{Object: "error", Message: e.message, Type: errorTypes[e.status], Param: e.paramValue(), Code: e.status}
	}
	return struct {
		Error errorInfo `json:"error"`
	}{errorInfo{Message: e.message, Type: errorTypes[e.status], Param: e.paramValue(), Code: e.status}}
}

// errorInfo and flatError are vLLM's ErrorInfo and pre-0.10.1 ErrorResponse, in field order.
type (
	errorInfo struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
	flatError struct {
		Object  string `json:"object"`
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
)

func (e *apiError) paramValue() any {
	if e.param == "" {
		return nil
	}
	return e.param
}

func (s *VLLM) writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, message: err.Error()}
	}
	writeJSON(w, e.status, s.errorBody(e))
}

// writeJSON writes v as compact JSON without HTML escaping, as Python servers do.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(marshalJSON(v))
}

func marshalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func (s *VLLM) decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

func (s *VLLM) checkModel(name string) (string, error) {
	switch s.cfg.Engine {
	case EngineLlamaCPP, EngineSGLang:
		// Both serve one model whatever a request names, and echo the name back.
		if name == "" {
			if s.cfg.Engine == EngineSGLang {
				return "default", nil // SGLang's DEFAULT_MODEL_NAME
			}
			return s.cfg.ServedModelNames[0], nil
		}
		return name, nil
	}
	if name == "" {
		return s.cfg.ServedModelNames[0], nil
	}
	for _, n := range s.cfg.ServedModelNames {
		if n == name {
			return name, nil
		}
	}
	return "", &apiError{status: http.StatusNotFound, message: fmt.Sprintf("The model `%s` does not exist.", name), param: "model"}
}

func (s *VLLM) models(w http.ResponseWriter, r *http.Request) {
	switch s.cfg.Engine {
	case EngineLlamaCPP:
		s.llamacppModels(w, r)
		return
	case EngineSGLang:
		s.sglangModels(w, r)
		return
	}
	type permission struct {
		ID                 string  `json:"id"`
		Object             string  `json:"object"`
		Created            int64   `json:"created"`
		AllowCreateEngine  bool    `json:"allow_create_engine"`
		AllowSampling      bool    `json:"allow_sampling"`
		AllowLogprobs      bool    `json:"allow_logprobs"`
		AllowSearchIndices bool    `json:"allow_search_indices"`
		AllowView          bool    `json:"allow_view"`
		AllowFineTuning    bool    `json:"allow_fine_tuning"`
		Organization       string  `json:"organization"`
		Group              *string `json:"group"`
		IsBlocking         bool    `json:"is_blocking"`
	}
	type card struct {
		ID          string       `json:"id"`
		Object      string       `json:"object"`
		Created     int64        `json:"created"`
		OwnedBy     string       `json:"owned_by"`
		Root        string       `json:"root"`
		Parent      *string      `json:"parent"`
		MaxModelLen int          `json:"max_model_len"`
		Permission  []permission `json:"permission"`
	}
	var data []card
	for i, n := range s.cfg.ServedModelNames {
		data = append(data, card{ID: n, Object: "model", Created: s.created, OwnedBy: "vllm", Root: s.cfg.ModelRoot,
			MaxModelLen: s.maxLen, Permission: []permission{{ID: fmt.Sprintf("modelperm-%032x", i+1), Object: "model_permission",
				Created: s.created, AllowSampling: true, AllowLogprobs: true, AllowView: true, Organization: "*"}}})
	}
	writeJSON(w, http.StatusOK, listOf[card]{Object: "list", Data: data})
}

type tokenizeRequest struct {
	Model    string        `json:"model"`
	Prompt   *string       `json:"prompt"`
	Messages []chatMessage `json:"messages"`
}

func (s *VLLM) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	var ids []int
	switch {
	case req.Prompt != nil:
		ids = tokenize(*req.Prompt)
	case req.Messages != nil:
		p, err := s.parseMessages(req.Messages)
		if err != nil {
			s.writeError(w, err)
			return
		}
		ids = tokenize(p.text)
		for len(ids) < p.tokens { // the chat template's framing
			ids = append(ids, len(vocabulary)+100000+len(ids))
		}
	default:
		s.writeError(w, badRequest("either prompt or messages is required"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(ids), "max_model_len": s.maxLen, "tokens": ids, "token_strs": nil})
}

func (s *VLLM) detokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Tokens []int  `json:"tokens"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"prompt": detokenize(req.Tokens)})
}

// chatMessage is one message; content is a string or a list of parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// prompt is a parsed prompt: its text (the generator's key), token counts.
type prompt struct {
	text   string
	tokens int // text tokens including template framing
	vision int
}

// Chat-template framing of the approximate tokenizer (ChatML: <|im_start|>role\n … <|im_end|>\n).
const (
	tokensPerMessage   = 4
	tokensPerAssistant = 3
)

func (s *VLLM) parseMessages(msgs []chatMessage) (prompt, error) {
	var p prompt
	var text strings.Builder
	if len(msgs) == 0 {
		return p, &apiError{status: 400, message: "messages: at least one message is required", param: "messages"}
	}
	images := 0
	for i, m := range msgs {
		text.WriteString(m.Role)
		text.WriteString(": ")
		p.tokens += tokensPerMessage
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || string(c) == "null":
		case c[0] == '"':
			var str string
			if err := json.Unmarshal(c, &str); err != nil {
				return p, badRequest("messages[%d].content: %v", i, err)
			}
			p.tokens += countTokens(str)
			text.WriteString(str)
		case c[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(c, &parts); err != nil {
				return p, badRequest("messages[%d].content: %v", i, err)
			}
			for _, part := range parts {
				switch part.Type {
				case "text":
					p.tokens += countTokens(part.Text)
					text.WriteString(part.Text)
				case "image_url":
					if part.ImageURL == nil || part.ImageURL.URL == "" {
						return p, badRequest("messages[%d]: image_url part without a url", i)
					}
					images++
					p.vision += visionTokens(part.ImageURL.URL)
					text.WriteString(part.ImageURL.URL[:min(len(part.ImageURL.URL), 256)])
				default:
					return p, badRequest("Unknown part type: %s", part.Type)
				}
			}
		default:
			return p, badRequest("messages[%d].content: want a string or a list of content parts", i)
		}
		text.WriteByte('\n')
	}
	if images > 0 && !s.vision {
		return p, badRequest("%s", s.chatPreprocessMessage(s.cfg.ServedModelNames[0]+" is not a multimodal model"))
	}
	p.tokens += tokensPerAssistant
	p.text = text.String()
	return p, nil
}

// stopList is "stop": a string or a list of strings.
type stopList []string

func (l *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop: want a string or a list of strings")
	}
	*l = many
	return nil
}

// sampling are the request fields shared by chat and completions.
type sampling struct {
	Model               string   `json:"model"`
	MaxTokens           *int     `json:"max_tokens"`
	MaxCompletionTokens *int     `json:"max_completion_tokens"`
	N                   *int     `json:"n"`
	Stop                stopList `json:"stop"`
	Stream              bool     `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS   bool            `json:"ignore_eos"`
	Seed        *int64          `json:"seed"`
	Logprobs    json.RawMessage `json:"logprobs"` // chat: bool; completions: top count
	TopLogprobs *int            `json:"top_logprobs"`
}

// maxLogprobs is vLLM's default --max-logprobs.
const maxLogprobs = 20

// logprobCount is how many top alternatives each token reports: -1 when logprobs are off.
func (smp sampling) logprobCount(chat bool) (int, error) {
	raw := bytes.TrimSpace(smp.Logprobs)
	if chat {
		var on bool
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &on); err != nil {
				return 0, &apiError{status: 400, message: "logprobs: want true or false", param: "logprobs"}
			}
		}
		top := 0
		if smp.TopLogprobs != nil {
			top = *smp.TopLogprobs
		}
		switch {
		case top < 0 || top > maxLogprobs:
			return 0, &apiError{status: 400, message: fmt.Sprintf("top_logprobs must be between 0 and %d, got %d.", maxLogprobs, top), param: "top_logprobs"}
		case top > 0 && !on:
			return 0, &apiError{status: 400, message: "when using `top_logprobs`, `logprobs` must be set to true.", param: "top_logprobs"}
		case !on:
			return -1, nil
		}
		return top, nil
	}
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, &apiError{status: 400, message: "logprobs: want a number of top log probabilities from 0 to 20", param: "logprobs"}
	}
	if n > maxLogprobs {
		return 0, badRequest("Requested sample logprobs of %d, which is greater than max allowed: %d", n, maxLogprobs)
	}
	return n, nil
}

// choice is one output sequence, decided in full before the engine runs it.
type choice struct {
	tokens  int
	finish  string
	stopStr string
	text    string
	ends    []int // text offset after each token
	gen     generator
	tool    string // a tool call's function name: text is its arguments
	toolID  string
}

// job is a validated request, ready for the engine.
type job struct {
	model      string
	chat       bool
	prompt     prompt
	choices    []choice
	stream     bool
	withUsage  bool
	id         string
	completion int
	logprobs   int // top alternatives per token; -1: no logprobs
}

// shape is what a chat request asks the output to be: a tool call, JSON, or text.
type shape struct {
	tools  []toolDef
	forced string // tool_choice naming a function
	call   bool   // answer with a tool call
	format *responseFormat
}

// contextError is the engine's refusal of input prompt tokens plus maxTokens (0: not given)
// that do not fit the context, in the wording of the imitated release; nil when they fit.
func (s *VLLM) contextError(input, maxTokens int, chat bool) *apiError {
	L := s.maxLen
	switch s.cfg.Engine {
	case EngineSGLang:
		switch {
		case input >= L:
			return badRequest("The input (%d tokens) is longer than the model's context length (%d tokens).", input, L)
		case maxTokens > 0 && input+maxTokens >= L:
			return badRequest("Requested token count exceeds the model's maximum context length of %d tokens. You requested a total of %d tokens: %d tokens from the input messages and %d tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.",
				L, input+maxTokens, input, maxTokens)
		}
		return nil
	case EngineLlamaCPP:
		if input >= L {
			return badRequest("the request exceeds the available context size, try increasing it")
		}
		return nil // generation past the slot's context just stops (finish_reason "length")
	}
	var e *apiError
	if s.version.less(version{0, 11, 0}) {
		switch {
		case maxTokens == 0 && input >= L:
			e = badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens in the messages, Please reduce the length of the messages.", L, input)
		case maxTokens > 0 && input+maxTokens > L:
			e = badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				L, input+maxTokens, input, maxTokens)
		}
	} else {
		switch {
		case input >= L:
			e = badRequest("This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", L, input)
			e.param = "input_tokens"
		case maxTokens > 0 && input+maxTokens > L:
			e = badRequest("'max_tokens' or 'max_completion_tokens' is too large: %d. This model's maximum context length is %d tokens and your request has %d input tokens (%d > %d - %d).",
				maxTokens, L, input, maxTokens, L, input)
			e.param = "max_tokens"
		}
	}
	if e != nil && chat {
		e.message = s.chatPreprocessMessage(e.message)
	}
	return e
}

// chatPreprocessMessage is a chat request's validation error as vLLM 0.9–0.11 word it: the
// chat handler formats f"{e} {e.__cause__}", leaving a literal " None" on the message.
func (s *VLLM) chatPreprocessMessage(m string) string {
	if s.cfg.Engine == EngineVLLM && !s.version.less(version{0, 9, 0}) && s.version.less(version{0, 12, 0}) {
		return m + " None"
	}
	return m
}

func (s *VLLM) newJob(smp sampling, p prompt, chat bool, sh shape) (*job, error) {
	model, err := s.checkModel(smp.Model)
	if err != nil {
		return nil, err
	}
	lp, err := smp.logprobCount(chat)
	if err != nil {
		return nil, err
	}
	n := 1
	if smp.N != nil {
		n = *smp.N
	}
	if n < 1 {
		return nil, &apiError{status: 400, message: fmt.Sprintf("n must be at least 1, got %d.", n), param: "n"}
	}
	input := p.tokens + p.vision
	maxTokens := smp.MaxTokens
	if smp.MaxCompletionTokens != nil {
		maxTokens = smp.MaxCompletionTokens
	}
	limit := 0
	if maxTokens == nil {
		if err := s.contextError(input, 0, chat); err != nil {
			return nil, err
		}
		limit = s.maxLen - input
	} else {
		limit = *maxTokens
		if limit < 1 {
			return nil, &apiError{status: 400, message: fmt.Sprintf("max_tokens must be at least 1, got %d.", limit), param: "max_tokens"}
		}
		if err := s.contextError(input, limit, chat); err != nil {
			return nil, err
		}
	}
	seed := s.cfg.Seed
	if smp.Seed != nil {
		seed ^= *smp.Seed
	}
	j := &job{model: model, chat: chat, prompt: p, stream: smp.Stream,
		withUsage: smp.StreamOptions != nil && smp.StreamOptions.IncludeUsage, logprobs: lp}
	for i := range n {
		g := newGenerator(seed, p.text, i)
		c := choice{gen: g}
		switch {
		case sh.call:
			t := sh.pick(g)
			c.tool, c.toolID = t.Function.Name, g.toolCallID()
			c.text, c.ends, c.finish = structured(g.fill(t.Function.Parameters), limit, "tool_calls")
			c.tokens = len(c.ends)
		case sh.format != nil && sh.format.Type != "text":
			schema := json.RawMessage(nil)
			if sh.format.JSONSchema != nil {
				schema = sh.format.JSONSchema.Schema
			}
			c.text, c.ends, c.finish = structured(g.fill(schema), limit, "stop")
			c.tokens = len(c.ends)
		default:
			c.tokens, c.finish, c.stopStr = g.plan(limit, smp.IgnoreEOS, smp.Stop)
			c.text, c.ends = g.render(c.tokens, c.stopStr)
		}
		j.choices = append(j.choices, c)
		j.completion += c.tokens
	}
	return j, nil
}

func (s *VLLM) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		sampling
		Messages       []chatMessage   `json:"messages"`
		Tools          json.RawMessage `json:"tools"`
		ToolChoice     json.RawMessage `json:"tool_choice"`
		ResponseFormat *responseFormat `json:"response_format"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	p, err := s.parseMessages(req.Messages)
	if err != nil {
		s.writeError(w, err)
		return
	}
	sh, err := parseShape(req.Tools, req.ToolChoice, req.ResponseFormat)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if len(sh.tools) > 0 { // the chat template renders the tool definitions into the prompt
		p.tokens += countTokens(string(req.Tools))
		p.text += string(req.Tools)
	}
	j, err := s.newJob(req.sampling, p, true, sh)
	if err != nil {
		s.writeError(w, err)
		return
	}
	j.id = "chatcmpl-" + s.requestID()
	s.run(w, r, j)
}

func (s *VLLM) completions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		sampling
		Prompt json.RawMessage `json:"prompt"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	var text string
	if err := json.Unmarshal(req.Prompt, &text); err != nil {
		var list []string
		if err := json.Unmarshal(req.Prompt, &list); err != nil || len(list) != 1 {
			s.writeError(w, &apiError{status: 400, message: "prompt: want a string (or a list of one string)", param: "prompt"})
			return
		}
		text = list[0]
	}
	p := prompt{text: text, tokens: max(1, countTokens(text))}
	j, err := s.newJob(req.sampling, p, false, shape{})
	if err != nil {
		s.writeError(w, err)
		return
	}
	j.id = "cmpl-" + s.requestID()
	s.run(w, r, j)
}

func (s *VLLM) requestID() string {
	return fmt.Sprintf("%032x", s.nextID.Add(1))
}

// run submits j to the engine and writes its OpenAI response as the tokens come.
func (s *VLLM) run(w http.ResponseWriter, r *http.Request, j *job) {
	s.runWith(w, r, j, func(*stream) responder {
		if j.stream {
			return newSSE(w, j, s.cfg.Now().Unix(), s)
		}
		return &whole{w: w, j: j, created: s.cfg.Now().Unix(), srv: s}
	})
}

// runWith submits j to the engine and writes its response with the responder newOut makes
// for the request's stream.
func (s *VLLM) runWith(w http.ResponseWriter, r *http.Request, j *job, newOut func(*stream) responder) {
	ctx := r.Context()
	tokens := make([]int, len(j.choices))
	finish := make([]string, len(j.choices))
	for i, c := range j.choices {
		tokens[i], finish[i] = c.tokens, c.finish
	}
	// A cached prefix is not prefilled again (usage still counts the whole prompt).
	prefill := max(j.prompt.tokens-s.prefix.hit(j.prompt.text), 1)
	st, err := s.engine.Submit(ctx, prefill, j.prompt.vision, tokens, finish)
	if err != nil {
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "The engine is not accepting requests: " + err.Error()})
		return
	}
	out := newOut(st)
	produced := make([]int, len(j.choices))
	finished := make([]bool, len(j.choices))
	sent := make([]int, len(j.choices))
	for {
		select {
		case <-ctx.Done():
			s.engine.Abort(st)
			return
		case <-st.notify:
		}
		err := st.snapshot(produced, finished)
		if err != nil {
			out.fail(s.submitError(err))
			return
		}
		all := true
		for i := range j.choices {
			for ; sent[i] < produced[i]; sent[i]++ {
				out.token(i, sent[i])
			}
			all = all && finished[i]
		}
		if err := out.flush(); err != nil {
			s.engine.Abort(st)
			return
		}
		if all {
			out.done()
			return
		}
	}
}

// submitError turns an engine error into vLLM's.
func (s *VLLM) submitError(err error) *apiError {
	switch {
	case errors.Is(err, perfmodel.ErrTooLong):
		return badRequest("This model's maximum context length is %d tokens. %v", s.maxLen, err)
	case errors.Is(err, perfmodel.ErrNoVision):
		return badRequest("%s is not a multimodal model", s.cfg.ServedModelNames[0])
	case errors.Is(err, perfmodel.ErrInvalid):
		return badRequest("%v", err)
	}
	return &apiError{status: http.StatusServiceUnavailable, message: "The engine stopped before the request finished: " + err.Error()}
}

// responder writes one response, streamed or whole.
type responder interface {
	token(choice, index int)
	flush() error
	done()
	fail(*apiError)
}

type usage struct {
	PromptTokens     int  `json:"prompt_tokens"`
	TotalTokens      int  `json:"total_tokens"`
	CompletionTokens int  `json:"completion_tokens"`
	Details          *any `json:"prompt_tokens_details"`
}

func (j *job) usage() usage {
	p := j.prompt.tokens + j.prompt.vision
	return usage{PromptTokens: p, CompletionTokens: j.completion, TotalTokens: p + j.completion}
}

// delta is the text token index adds to choice c.
func (j *job) delta(c, index int) string {
	ch := &j.choices[c]
	from := 0
	if index > 0 {
		from = ch.ends[index-1]
	}
	return ch.text[from:ch.ends[index]]
}

func stopReason(c choice) any {
	if c.stopStr != "" {
		return c.stopStr
	}
	return nil
}

// whole collects a non-streaming response.
type whole struct {
	w       http.ResponseWriter
	j       *job
	created int64
	srv     *VLLM
}

func (o *whole) token(int, int)   {}
func (o *whole) flush() error     { return nil }
func (o *whole) fail(e *apiError) { o.srv.writeError(o.w, e) }

func (o *whole) done() {
	if o.srv.cfg.Engine == EngineSGLang {
		o.sglangWhole() // sglang.go: SGLang's own response shape
		return
	}
	j := o.j
	r := wholeResponse{ID: j.id, Object: "chat.completion", Created: o.created, Model: j.model, Usage: j.usage()}
	if !j.chat {
		r.Object = "text_completion"
	}
	for i, c := range j.choices {
		wc := wholeChoice{Index: i, FinishReason: c.finish, StopReason: stopReason(c)}
		if j.chat {
			wc.Message = &chatMessageOut{Role: "assistant", Content: c.text, ToolCalls: []any{}}
			if c.tool != "" {
				wc.Message.Content = nil
				wc.Message.ToolCalls = []any{toolCall{ID: c.toolID, Type: "function", Function: toolFunction{Name: c.tool, Arguments: c.text}}}
			}
		} else {
			wc.Text = &c.text
		}
		if j.logprobs >= 0 {
			wc.Logprobs = j.logprobsOf(i, 0, c.tokens)
		}
		r.Choices = append(r.Choices, wc)
	}
	writeJSON(o.w, http.StatusOK, r)
}

// Wire types, in vLLM's field order.
type (
	chatDelta struct {
		Role      string          `json:"role,omitempty"`
		Content   *string         `json:"content,omitempty"`
		ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
	}
	streamChoice struct {
		Index        int        `json:"index"`
		Delta        *chatDelta `json:"delta,omitempty"`
		Text         *string    `json:"text,omitempty"`
		Logprobs     any        `json:"logprobs"`
		FinishReason any        `json:"finish_reason"`
		StopReason   any        `json:"stop_reason"`
	}
	streamChunk struct {
		ID      string         `json:"id"`
		Object  string         `json:"object"`
		Created int64          `json:"created"`
		Model   string         `json:"model"`
		Choices []streamChoice `json:"choices"`
		Usage   *usage         `json:"usage,omitempty"`
	}
	chatMessageOut struct {
		Role             string `json:"role"`
		Content          any    `json:"content"`
		Refusal          any    `json:"refusal"`
		ToolCalls        []any  `json:"tool_calls"`
		ReasoningContent any    `json:"reasoning_content"`
	}
	wholeChoice struct {
		Index          int             `json:"index"`
		Message        *chatMessageOut `json:"message,omitempty"`
		Text           *string         `json:"text,omitempty"`
		Logprobs       any             `json:"logprobs"`
		FinishReason   string          `json:"finish_reason"`
		StopReason     any             `json:"stop_reason"`
		PromptLogprobs any             `json:"prompt_logprobs,omitempty"`
	}
	wholeResponse struct {
		ID                string        `json:"id"`
		Object            string        `json:"object"`
		Created           int64         `json:"created"`
		Model             string        `json:"model"`
		Choices           []wholeChoice `json:"choices"`
		Usage             usage         `json:"usage"`
		SystemFingerprint any           `json:"system_fingerprint"`
		PromptLogprobs    any           `json:"prompt_logprobs"`
		KVTransferParams  any           `json:"kv_transfer_params"`
	}
)

// sse writes a streamed response: data: <json>\n\n per chunk, data: [DONE] last.
type sse struct {
	streamBuf
	j       *job
	created int64
	srv     *VLLM
}

func newSSE(w http.ResponseWriter, j *job, created int64, srv *VLLM) *sse {
	return &sse{streamBuf: streamBuf{w: w}, j: j, created: created, srv: srv}
}

func (o *sse) start() {
	if o.started {
		return
	}
	o.w.Header().Set("Cache-Control", "no-cache")
	o.begin("text/event-stream; charset=utf-8")
	if o.j.chat { // the role-first chunk of every choice
		for i := range o.j.choices {
			empty := ""
			o.chunk(streamChoice{Index: i, Delta: &chatDelta{Role: "assistant", Content: &empty}})
		}
	}
}

func (o *sse) event(v any) {
	b, _ := json.Marshal(v)
	o.data(b)
}

func (o *sse) chunk(c streamChoice) {
	object := "chat.completion.chunk"
	if !o.j.chat {
		object = "text_completion"
	}
	ch := streamChunk{ID: o.j.id, Object: object, Created: o.created, Model: o.j.model, Choices: []streamChoice{c}}
	if o.j.withUsage {
		o.event(withNullUsage{ch})
		return
	}
	o.event(ch)
}

// withNullUsage is a chunk with "usage": null, as chunks are when include_usage is set.
type withNullUsage struct{ streamChunk }

func (c withNullUsage) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.streamChunk)
	if err != nil {
		return nil, err
	}
	return append(b[:len(b)-1], []byte(`,"usage":null}`)...), nil
}

func (o *sse) token(c, index int) {
	o.start()
	ch := o.j.choices[c]
	last := index == ch.tokens-1
	text := o.j.delta(c, index)
	if text == "" && !last {
		return // text swallowed by a stop string
	}
	sc := streamChoice{Index: c}
	if last {
		sc.FinishReason, sc.StopReason = ch.finish, stopReason(ch)
	}
	switch {
	case o.j.chat && ch.tool != "":
		d := toolCallDelta{Function: toolFunction{Arguments: text}}
		if index == 0 {
			d.ID, d.Type, d.Function.Name = ch.toolID, "function", ch.tool
		}
		sc.Delta = &chatDelta{ToolCalls: []toolCallDelta{d}}
	case o.j.chat:
		sc.Delta = &chatDelta{Content: &text}
	default:
		sc.Text = &text
	}
	if o.j.logprobs >= 0 {
		sc.Logprobs = o.j.logprobsOf(c, index, index+1)
	}
	o.chunk(sc)
}

func (o *sse) flush() error {
	o.start()
	return o.send()
}

func (o *sse) done() {
	if o.j.withUsage {
		object := "chat.completion.chunk"
		if !o.j.chat {
			object = "text_completion"
		}
		u := o.j.usage()
		o.event(streamChunk{ID: o.j.id, Object: object, Created: o.created, Model: o.j.model, Choices: []streamChoice{}, Usage: &u})
	}
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.flush()
}

// fail reports an error: as the whole response before the stream starts, else as a data
// event followed by [DONE], as vLLM does mid-stream.
func (o *sse) fail(e *apiError) {
	if !o.started {
		o.srv.writeError(o.w, e)
		return
	}
	o.event(o.srv.errorBody(e))
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.flush()
}

var _ responder = (*sse)(nil)
var _ responder = (*whole)(nil)

// embeddings answers /v1/embeddings. Any model embeds (as if served with --task embed): each
// input is prefilled for its token count, and its vector is a deterministic unit vector from
// the input's text (see unitVector).
func (s *VLLM) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
		Dimensions     *int            `json:"dimensions"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	model, err := s.checkModel(req.Model)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		s.writeError(w, &apiError{status: 400, message: fmt.Sprintf("encoding_format %q: want float or base64", req.EncodingFormat), param: "encoding_format"})
		return
	}
	if req.Dimensions != nil && *req.Dimensions != s.cfg.EmbeddingDim {
		s.writeError(w, badRequest("Model \"%s\" does not support matryoshka representation, changing output dimensions will lead to poor results.", model))
		return
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil {
		s.writeError(w, err)
		return
	}
	total := 0
	streams := make([]*stream, 0, len(inputs))
	defer func() {
		for _, st := range streams {
			s.engine.Abort(st)
		}
	}()
	for _, in := range inputs {
		if in.tokens >= s.maxLen {
			s.writeError(w, badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens in the input for embedding generation. Please reduce the length of the input.", s.maxLen, in.tokens))
			return
		}
		total += in.tokens
	}
	ctx := r.Context()
	for _, in := range inputs {
		st, err := s.engine.Submit(ctx, in.tokens, 0, []int{1}, []string{"stop"})
		if err != nil {
			s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "The engine is not accepting requests: " + err.Error()})
			return
		}
		streams = append(streams, st)
	}
	produced, finished := []int{0}, []bool{false}
	for _, st := range streams {
		for finished[0] = false; !finished[0]; {
			select {
			case <-ctx.Done():
				return
			case <-st.notify:
			}
			if err := st.snapshot(produced, finished); err != nil {
				s.writeError(w, s.submitError(err))
				return
			}
		}
	}
	streams = nil
	type item struct {
		Index     int    `json:"index"`
		Object    string `json:"object"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, len(inputs))
	for i, in := range inputs {
		v := unitVector(s.cfg.Seed, in.text, s.cfg.EmbeddingDim)
		var e any = v
		if req.EncodingFormat == "base64" {
			e = encodeFloat32s(v)
		}
		data[i] = item{Index: i, Object: "embedding", Embedding: e}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "embd-" + s.requestID(), "object": "list", "created": s.cfg.Now().Unix(), "model": model, "data": data,
		"usage": usage{PromptTokens: total, TotalTokens: total},
	})
}

type embeddingInput struct {
	text   string
	tokens int
}

// embeddingInputs reads "input": a string, a list of strings, a list of token IDs or a list
// of lists of token IDs.
func embeddingInputs(raw json.RawMessage) ([]embeddingInput, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []embeddingInput{{one, max(1, countTokens(one))}}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err == nil && len(many) > 0 {
		out := make([]embeddingInput, len(many))
		for i, t := range many {
			out[i] = embeddingInput{t, max(1, countTokens(t))}
		}
		return out, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil && len(ids) > 0 {
		return []embeddingInput{{fmt.Sprint(ids), len(ids)}}, nil
	}
	var idLists [][]int
	if err := json.Unmarshal(raw, &idLists); err == nil && len(idLists) > 0 {
		out := make([]embeddingInput, len(idLists))
		for i, l := range idLists {
			out[i] = embeddingInput{fmt.Sprint(l), max(1, len(l))}
		}
		return out, nil
	}
	return nil, &apiError{status: 400, message: "input: want a non-empty string, list of strings, list of token IDs or list of lists of token IDs", param: "input"}
}

// Tool calling and structured output.
type (
	toolDef struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	responseFormat struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	toolFunction struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	}
	toolCall struct {
		ID       string       `json:"id"`
		Type     string       `json:"type"`
		Function toolFunction `json:"function"`
	}
	toolCallDelta struct {
		Index    int          `json:"index"`
		ID       string       `json:"id,omitempty"`
		Type     string       `json:"type,omitempty"`
		Function toolFunction `json:"function"`
	}
)

// parseShape reads tools, tool_choice and response_format. With tools and a tool_choice other
// than "none" (unset counts as "auto"), every choice is a call of one tool: the named one, or
// one picked by the request's hash.
func parseShape(rawTools, rawChoice json.RawMessage, format *responseFormat) (shape, error) {
	var sh shape
	if len(rawTools) > 0 && string(rawTools) != "null" {
		if err := json.Unmarshal(rawTools, &sh.tools); err != nil {
			return sh, &apiError{status: 400, message: fmt.Sprintf("tools: %v", err), param: "tools"}
		}
		for i, t := range sh.tools {
			if t.Type != "function" || t.Function.Name == "" {
				return sh, &apiError{status: 400, message: fmt.Sprintf("tools[%d]: want {\"type\": \"function\", \"function\": {\"name\": …}}", i), param: "tools"}
			}
		}
	}
	choice := "auto"
	if c := bytes.TrimSpace(rawChoice); len(c) > 0 && string(c) != "null" {
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(c, &choice) == nil:
			if choice != "none" && choice != "auto" && choice != "required" {
				return sh, &apiError{status: 400, message: fmt.Sprintf("tool_choice %q: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}", choice), param: "tool_choice"}
			}
		case json.Unmarshal(c, &named) == nil && named.Function.Name != "":
			choice, sh.forced = "named", named.Function.Name
		default:
			return sh, &apiError{status: 400, message: "tool_choice: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}", param: "tool_choice"}
		}
		if choice != "none" && len(sh.tools) == 0 {
			return sh, &apiError{status: 400, message: "When using `tool_choice`, `tools` must be set.", param: "tool_choice"}
		}
	}
	if sh.forced != "" {
		found := false
		for _, t := range sh.tools {
			found = found || t.Function.Name == sh.forced
		}
		if !found {
			return sh, &apiError{status: 400, message: fmt.Sprintf("Tool '%s' has not been passed in `tools`.", sh.forced), param: "tool_choice"}
		}
	}
	sh.call = len(sh.tools) > 0 && choice != "none"
	if format != nil {
		switch format.Type {
		case "text", "json_object":
		case "json_schema":
			if format.JSONSchema == nil || len(format.JSONSchema.Schema) == 0 {
				return sh, &apiError{status: 400, message: "response_format: json_schema needs a json_schema.schema", param: "response_format"}
			}
		default:
			return sh, &apiError{status: 400, message: fmt.Sprintf("response_format type %q: want text, json_object or json_schema", format.Type), param: "response_format"}
		}
		sh.format = format
	}
	return sh, nil
}

// pick is the tool a choice calls.
func (sh shape) pick(g generator) toolDef {
	for _, t := range sh.tools {
		if t.Function.Name == sh.forced {
			return t
		}
	}
	return sh.tools[g.at(-5)%uint64(len(sh.tools))]
}

// Log probabilities, in the chat shape {"content": [...]} or the completions shape.
type (
	topLogprob struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	}
	logprobContent struct {
		topLogprob
		TopLogprobs []topLogprob `json:"top_logprobs"`
	}
	completionLogprobs struct {
		TextOffset    []int                `json:"text_offset"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		Tokens        []string             `json:"tokens"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	}
)

// logprobsOf is choice c's logprobs for tokens [from, to) that appear in the output (a token
// swallowed by a stop string does not, as in the stream).
func (j *job) logprobsOf(c, from, to int) any {
	ch := &j.choices[c]
	content := []logprobContent{}
	cl := completionLogprobs{TextOffset: []int{}, TokenLogprobs: []float64{}, Tokens: []string{}, TopLogprobs: []map[string]float64{}}
	for i := from; i < to; i++ {
		text := j.delta(c, i)
		if text == "" && i != ch.tokens-1 {
			continue
		}
		lp := ch.gen.logprob(i)
		alts := []topLogprob{{Token: text, Logprob: lp, Bytes: tokenBytes(text)}}
		for k := 1; k < j.logprobs; k++ {
			alt := " " + vocabulary[ch.gen.at(i<<5|k+1<<24)%uint64(len(vocabulary))]
			alts = append(alts, topLogprob{Token: alt, Logprob: lp - 0.75*float64(k), Bytes: tokenBytes(alt)})
		}
		if j.chat {
			content = append(content, logprobContent{topLogprob: alts[0], TopLogprobs: alts[:j.logprobs]})
			continue
		}
		from := 0
		if i > 0 {
			from = ch.ends[i-1]
		}
		top := map[string]float64{}
		for _, a := range alts {
			if _, ok := top[a.Token]; !ok {
				top[a.Token] = a.Logprob
			}
		}
		cl.TextOffset = append(cl.TextOffset, from)
		cl.TokenLogprobs = append(cl.TokenLogprobs, lp)
		cl.Tokens = append(cl.Tokens, text)
		cl.TopLogprobs = append(cl.TopLogprobs, top)
	}
	if j.chat {
		return map[string]any{"content": content}
	}
	return cl
}

func tokenBytes(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

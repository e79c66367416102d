package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"citadel.dev/citadel/internal/sim/perf"
)

// DefaultOllamaVersion is the release /api/version reports unless OllamaConfig.Version says.
const DefaultOllamaVersion = "0.12.6"

// OllamaConfig describes one simulated Ollama server serving one model.
//
// The Ollama personality uses perf.Ollama scheduling: Plan.Options.Parallel fixed slots
// (OLLAMA_NUM_PARALLEL) and a FIFO queue, so aggregate throughput stays flat with concurrency.
type OllamaConfig struct {
	Plan      perf.Plan
	Model     string        // the served name, e.g. "qwen2.5:7b"; ":latest" is added when there is no tag
	Version   string        // default DefaultOllamaVersion
	KeepAlive time.Duration // default keep_alive (OLLAMA_KEEP_ALIVE); default 5m; negative: forever
	// LoadTime is the simulated time to load the model into VRAM (scaled like every other
	// simulated duration). Zero: 0.5 s plus the weights at 4 GB/s; negative: no load time.
	LoadTime  time.Duration
	TimeScale float64
	Seed      int64
	Logger    *slog.Logger
	Now       func() time.Time // the created_at / expires_at clock; default time.Now
	Slowdown  float64          // multiplies every step's duration; 0 means 1
	// Faults are injected failures; the zero value injects none. Counted defaults to Ollama's
	// inference paths (isOllamaInference), Health to GET / and /api/version (isOllamaHealth),
	// and the errors are Ollama's {"error":"…"}.
	Faults Faults
	// OOMAtLoad: every load of the model fails, as when Ollama finds it does not fit: the
	// server keeps running, and each request that needs the model answers 500 "model requires
	// more system memory (…) than is available (…)".
	OOMAtLoad bool
	// FixedTTFT and FixedITL, when either is more than 0, replace the performance model with
	// fixed latencies, as Config's do: the load then takes no time (LoadTime is ignored),
	// prompt_eval_duration is FixedTTFT and eval_duration FixedITL per later token.
	FixedTTFT, FixedITL time.Duration
}

// Ollama is a simulated Ollama server.
//
// Model residency (keep_alive) is a small state machine guarded by mu: a request acquires the
// model (loading it, or waiting for the load in progress), and releases it with its
// keep_alive; the expiry countdown starts when the last request releases, as in Ollama's
// scheduler. Token generation goes through the shared Engine in perf.Ollama mode.
type Ollama struct {
	cfg     OllamaConfig
	name    string // with tag
	short   string // without ":latest", also accepted
	engine  *Engine
	compat  *VLLM // the OpenAI-compatible /v1/chat/completions, on the same engine
	mux     *http.ServeMux
	handler http.Handler // mux behind the faults
	digest  string

	mu      sync.Mutex
	cur     *modelLoad // nil: not loaded
	active  int
	keep    time.Duration // keep_alive of the latest request
	expires time.Time     // when active == 0; zero with keep < 0 (forever)
}

// modelLoad is one load of the model; done is closed when it finishes, with err set if it was
// abandoned.
type modelLoad struct {
	done chan struct{}
	err  error
}

// NewOllama builds the server; call Run (or Serve) to start its engine.
func NewOllama(cfg OllamaConfig) (*Ollama, error) {
	if cfg.Model == "" {
		cfg.Model = cfg.Plan.Model.Name
	}
	if cfg.Version == "" {
		cfg.Version = DefaultOllamaVersion
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 5 * time.Minute
	}
	if cfg.FixedTTFT > 0 || cfg.FixedITL > 0 {
		cfg.LoadTime = -1 // fixed latencies: no load delay
	}
	if cfg.LoadTime == 0 {
		cfg.LoadTime = 500*time.Millisecond + time.Duration(float64(cfg.Plan.WeightBytes*int64(cfg.Plan.Options.TP))/4e9*float64(time.Second))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	name := ollamaName(cfg.Model)
	m := newMetrics(name, "")
	eng, err := newPersonalityEngine(cfg.Plan, perf.Ollama, cfg.TimeScale, m, cfg.Slowdown, cfg.FixedTTFT, cfg.FixedITL, cfg.Faults)
	if err != nil {
		return nil, err
	}
	if cfg.Faults.Counted == nil {
		cfg.Faults.Counted = isOllamaInference
	}
	if cfg.Faults.Health == nil {
		cfg.Faults.Health = isOllamaHealth
	}
	sum := sha256.Sum256([]byte(name + "\x00" + string(cfg.Plan.Options.Quant)))
	s := &Ollama{cfg: cfg, name: name, short: strings.TrimSuffix(name, ":latest"), engine: eng,
		digest: hex.EncodeToString(sum[:]), keep: cfg.KeepAlive}
	s.compat = &VLLM{cfg: Config{Plan: cfg.Plan, ServedModelNames: []string{name, s.short}, ModelRoot: name,
		VLLMVersion: DefaultVLLMVersion, TimeScale: cfg.TimeScale, Seed: cfg.Seed, Logger: cfg.Logger, Now: cfg.Now},
		engine: eng, metrics: m, created: cfg.Now().Unix(), maxLen: cfg.Plan.Options.MaxModelLen, vision: cfg.Plan.Model.Vision}
	s.compat.version, _ = parseVersion(DefaultVLLMVersion)

	mux := http.NewServeMux()
	running := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Ollama is running"))
	}
	mux.HandleFunc("GET /{$}", running)
	mux.HandleFunc("HEAD /{$}", running)
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": cfg.Version})
	})
	mux.HandleFunc("GET /api/tags", s.tags)
	mux.HandleFunc("GET /api/ps", s.ps)
	mux.HandleFunc("POST /api/show", s.show)
	mux.HandleFunc("POST /api/chat", s.chat)
	mux.HandleFunc("POST /api/generate", s.generate)
	mux.HandleFunc("POST /api/embed", s.embed)
	mux.HandleFunc("POST /api/pull", s.pull)
	mux.HandleFunc("POST /v1/chat/completions", s.openAI(s.compat.chat))
	mux.HandleFunc("POST /v1/completions", s.openAI(s.compat.completions))
	mux.HandleFunc("GET /v1/models", s.openAIModels)
	s.mux = mux
	s.handler = WithFaults(cfg.Faults, mux, func(w http.ResponseWriter, status int, message string) {
		if status == http.StatusServiceUnavailable {
			// The only 503 of the faults is StartupDelay's; its message names vLLM's /health.
			message = "the model is still loading; retry when GET / answers 200"
		}
		writeOllamaError(w, &ollamaError{status, message})
	})
	return s, nil
}

// isOllamaInference reports Ollama's inference requests, the ones faults count and fail: POST
// /api/chat, /api/generate, /api/embed, /api/embeddings and the OpenAI-compatible
// /v1/chat/completions, /v1/completions, /v1/embeddings.
func isOllamaInference(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	switch r.URL.Path {
	case "/api/chat", "/api/generate", "/api/embed", "/api/embeddings":
		return true
	}
	return isInference(r)
}

// isOllamaHealth reports what clients of Ollama poll for readiness: / ("Ollama is running")
// and /api/version.
func isOllamaHealth(r *http.Request) bool { return r.URL.Path == "/" || r.URL.Path == "/api/version" }

// ollamaName adds the default tag.
func ollamaName(n string) string {
	if i := strings.LastIndexByte(n, ':'); i < 0 || strings.Contains(n[i:], "/") {
		return n + ":latest"
	}
	return n
}

func (s *Ollama) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Run drives the engine until ctx ends.
func (s *Ollama) Run(ctx context.Context) error { return s.engine.Run(ctx) }

// Serve runs the engine and an HTTP server on ln until ctx ends.
func (s *Ollama) Serve(ctx context.Context, ln net.Listener) error {
	return serveWith(ctx, ln, s, s.engine)
}

// serveWith serves h on ln and runs eng until ctx ends, then shuts both down.
func serveWith(ctx context.Context, ln net.Listener, h http.Handler, eng *Engine) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engineDone := make(chan struct{})
	go func() { defer close(engineDone); _ = eng.Run(ctx) }()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(shutdownCtx)
	<-engineDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ollamaError is Ollama's {"error": "..."} with a status.
type ollamaError struct {
	status  int
	message string
}

func (e *ollamaError) Error() string { return e.message }

func writeOllamaError(w http.ResponseWriter, err error) {
	var e *ollamaError
	if !errors.As(err, &e) {
		e = &ollamaError{status: http.StatusInternalServerError, message: err.Error()}
	}
	writeJSON(w, e.status, map[string]string{"error": e.message})
}

func (s *Ollama) checkModel(name string) error {
	if name == "" {
		return &ollamaError{http.StatusBadRequest, "model is required"}
	}
	if ollamaName(name) != s.name {
		return &ollamaError{http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", name)}
	}
	return nil
}

func decodeOllama(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20)).Decode(v); err != nil {
		return &ollamaError{http.StatusBadRequest, "invalid request body: " + err.Error()}
	}
	return nil
}

// keepAlive is keep_alive: a duration string ("5m", "0", "-1s") or a number of seconds.
type keepAlive struct {
	set bool
	d   time.Duration
}

func (k *keepAlive) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		k.set, k.d = true, time.Duration(f*float64(time.Second))
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("keep_alive: want a duration such as \"5m\" or a number of seconds")
	}
	if n, err := strconv.ParseFloat(str, 64); err == nil {
		k.set, k.d = true, time.Duration(n*float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("keep_alive: %w", err)
	}
	k.set, k.d = true, d
	return nil
}

func (s *Ollama) keepFor(k keepAlive) time.Duration {
	if k.set {
		return k.d
	}
	return s.cfg.KeepAlive
}

// acquire makes the model resident, loading it if needed, and counts the caller as active. It
// returns the simulated load time the caller waited for (0 when the model was loaded), or an
// error: the context's when the client went away, an *ollamaError when the load fails.
func (s *Ollama) acquire(ctx context.Context) (time.Duration, error) {
	if s.cfg.OOMAtLoad {
		return 0, s.oomError()
	}
	for {
		s.mu.Lock()
		if s.cur != nil && s.active == 0 && s.keep >= 0 && !s.cfg.Now().Before(s.expires) && isDone(s.cur) {
			s.cur = nil // expired
		}
		l := s.cur
		if l != nil && isDone(l) {
			s.active++
			s.mu.Unlock()
			return 0, nil
		}
		loader := l == nil
		if loader {
			l = &modelLoad{done: make(chan struct{})}
			s.cur = l
		}
		s.active++
		s.mu.Unlock()
		if loader {
			s.load(ctx, l)
		} else {
			select {
			case <-l.done:
			case <-ctx.Done():
				s.mu.Lock()
				s.active--
				s.mu.Unlock()
				return 0, ctx.Err()
			}
		}
		if l.err == nil {
			return max(s.cfg.LoadTime, 0), nil
		}
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// oomError is Ollama's refusal to load a model that does not fit (llm/memory.go), with the
// weights as the requirement and the GPUs' memory as what is available.
func (s *Ollama) oomError() *ollamaError {
	avail := s.cfg.Plan.GPU.MemoryBytes * int64(s.cfg.Plan.Options.TP)
	return &ollamaError{http.StatusInternalServerError, fmt.Sprintf("model requires more system memory (%.1f GiB) than is available (%.1f GiB)",
		float64(s.size())/(1<<30), float64(avail)/(1<<30))}
}

func isDone(l *modelLoad) bool {
	select {
	case <-l.done:
		return l.err == nil
	default:
		return false
	}
}

// load waits out the scaled load time; a cancelled loader abandons the load so that a waiter
// starts another.
func (s *Ollama) load(ctx context.Context, l *modelLoad) {
	defer close(l.done)
	wait := time.Duration(s.cfg.TimeScale * float64(max(s.cfg.LoadTime, 0)))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		s.mu.Lock()
		l.err = ctx.Err()
		if s.cur == l {
			s.cur = nil
		}
		s.mu.Unlock()
	}
}

// release ends one request's use with its keep_alive: 0 unloads when nothing else runs, a
// negative value keeps the model forever.
func (s *Ollama) release(keep time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	s.keep = keep
	s.expires = s.cfg.Now().Add(keep)
	if keep == 0 && s.active == 0 {
		s.cur = nil
	}
}

// unload is keep_alive 0 with an empty prompt.
func (s *Ollama) unload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == 0 {
		s.cur = nil
	}
}

// resident reports whether the model is loaded and when it expires.
func (s *Ollama) resident() (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if s.cur == nil || !isDone(s.cur) {
		return false, time.Time{}
	}
	switch {
	case s.keep < 0:
		return true, now.AddDate(100, 0, 0) // "forever", as far as a client can tell
	case s.active > 0:
		return true, now.Add(s.keep)
	case !now.Before(s.expires):
		return false, time.Time{}
	}
	return true, s.expires
}

// Model metadata.

func (s *Ollama) arch() string {
	n := s.cfg.Plan.Model.Name
	switch {
	case strings.HasPrefix(n, "mimo-vl"):
		return "qwen25vl"
	case strings.HasPrefix(n, "llama"), strings.HasPrefix(n, "mixtral"):
		return "llama"
	}
	return "qwen2"
}

func (s *Ollama) quantLevel() string {
	switch s.cfg.Plan.Options.Quant {
	case perf.QuantFP8:
		return "F8_E4M3"
	case perf.QuantAWQInt4:
		return "Q4_0"
	case perf.QuantQ4KM:
		return "Q4_K_M"
	}
	return "BF16"
}

type ollamaDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

func (s *Ollama) details() ollamaDetails {
	a := s.arch()
	return ollamaDetails{Format: "gguf", Family: a, Families: []string{a},
		ParameterSize: fmt.Sprintf("%.1fB", float64(s.cfg.Plan.Model.Params)/1e9), QuantizationLevel: s.quantLevel()}
}

func (s *Ollama) size() int64 {
	return s.cfg.Plan.WeightBytes * int64(s.cfg.Plan.Options.TP)
}

type ollamaModel struct {
	Name          string        `json:"name"`
	Model         string        `json:"model"`
	ModifiedAt    *time.Time    `json:"modified_at,omitempty"`
	Size          int64         `json:"size"`
	Digest        string        `json:"digest"`
	Details       ollamaDetails `json:"details"`
	ExpiresAt     *time.Time    `json:"expires_at,omitempty"`
	SizeVRAM      *int64        `json:"size_vram,omitempty"`
	ContextLength int           `json:"context_length,omitempty"`
}

func (s *Ollama) tags(w http.ResponseWriter, _ *http.Request) {
	mod := s.modified()
	writeJSON(w, http.StatusOK, map[string]any{"models": []ollamaModel{{Name: s.name, Model: s.name, ModifiedAt: &mod,
		Size: s.size(), Digest: s.digest, Details: s.details()}}})
}

func (s *Ollama) modified() time.Time { return time.Unix(s.compat.created, 0).UTC() }

func (s *Ollama) ps(w http.ResponseWriter, _ *http.Request) {
	models := []ollamaModel{}
	if ok, exp := s.resident(); ok {
		p := s.cfg.Plan
		vram := s.size() + p.KVBytesPerToken*int64(p.Options.Parallel)*int64(p.Options.MaxModelLen)*int64(p.Options.TP)
		exp = exp.UTC()
		models = append(models, ollamaModel{Name: s.name, Model: s.name, Size: vram, Digest: s.digest, Details: s.details(),
			ExpiresAt: &exp, SizeVRAM: &vram, ContextLength: p.Options.MaxModelLen})
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Ollama) show(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"` // deprecated alias
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	if err := s.checkModel(req.Model); err != nil {
		writeOllamaError(w, err)
		return
	}
	m, a := s.cfg.Plan.Model, s.arch()
	caps := []string{"completion", "tools"}
	if m.Vision {
		caps = append(caps, "vision")
	}
	info := map[string]any{
		"general.architecture":         a,
		"general.parameter_count":      m.Params,
		"general.basename":             m.Name,
		a + ".context_length":          m.MaxContext,
		a + ".embedding_length":        m.Hidden,
		a + ".block_count":             m.Layers,
		a + ".feed_forward_length":     m.Intermediate,
		a + ".attention.head_count":    m.Heads,
		a + ".attention.head_count_kv": m.KVHeads,
		a + ".vocab_size":              m.Vocab,
		"general.file_type":            15,
		"general.size_label":           s.details().ParameterSize,
	}
	resp := map[string]any{
		"license":      "Apache License 2.0",
		"modelfile":    fmt.Sprintf("# Modelfile generated by \"ollama show\"\nFROM %s\nTEMPLATE {{ .Prompt }}\n", s.name),
		"parameters":   "stop                           \"<|im_start|>\"\nstop                           \"<|im_end|>\"",
		"template":     "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
		"details":      s.details(),
		"model_info":   info,
		"capabilities": caps,
		"modified_at":  s.modified(),
	}
	if m.Vision {
		resp["projector_info"] = map[string]any{"clip.has_vision_encoder": true, "general.architecture": "clip",
			"clip.vision.image_size": 560, "clip.vision.patch_size": 14}
	}
	writeJSON(w, http.StatusOK, resp)
}

// Generation.

// ollamaOptions are the runtime options the simulator honours; the rest are accepted.
type ollamaOptions struct {
	NumPredict *int     `json:"num_predict"`
	Stop       stopList `json:"stop"`
	Seed       *int64   `json:"seed"`
}

type ollamaMessage struct {
	Role    string   `json:"role"`
	Content string   `json:"content"`
	Images  []string `json:"images,omitempty"`
}

type ollamaMetrics struct {
	TotalDuration      time.Duration `json:"total_duration,omitempty"`
	LoadDuration       time.Duration `json:"load_duration,omitempty"`
	PromptEvalCount    int           `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration,omitempty"`
	EvalCount          int           `json:"eval_count,omitempty"`
	EvalDuration       time.Duration `json:"eval_duration,omitempty"`
}

// ollamaResponse is ChatResponse and GenerateResponse in Ollama's field order.
type ollamaResponse struct {
	Model      string         `json:"model"`
	CreatedAt  time.Time      `json:"created_at"`
	Message    *ollamaMessage `json:"message,omitempty"`
	Response   *string        `json:"response,omitempty"`
	DoneReason string         `json:"done_reason,omitempty"`
	Done       bool           `json:"done"`
	Context    []int          `json:"context,omitempty"`
	ollamaMetrics
}

// ollamaJob is a validated chat or generate request.
type ollamaJob struct {
	model  string
	chat   bool
	stream bool
	keep   time.Duration
	prompt prompt
	choice choice
	empty  bool // an empty prompt: load (or unload) only
}

func (s *Ollama) newJob(model string, p prompt, opts ollamaOptions, chat bool, stream *bool, k keepAlive) (*ollamaJob, error) {
	if err := s.checkModel(model); err != nil {
		return nil, err
	}
	j := &ollamaJob{model: model, chat: chat, stream: stream == nil || *stream, keep: s.keepFor(k), prompt: p}
	if p.tokens == 0 {
		j.empty = true
		return j, nil
	}
	if p.vision > 0 && !s.cfg.Plan.Model.Vision {
		return nil, &ollamaError{http.StatusBadRequest, fmt.Sprintf("model %q does not support images", model)}
	}
	ctxLen := s.cfg.Plan.Options.MaxModelLen
	if p.tokens+p.vision >= ctxLen {
		return nil, &ollamaError{http.StatusBadRequest, fmt.Sprintf("the input length (%d tokens) exceeds the context length (%d tokens)", p.tokens+p.vision, ctxLen)}
	}
	limit := ctxLen - p.tokens - p.vision
	if opts.NumPredict != nil && *opts.NumPredict > 0 {
		limit = min(limit, *opts.NumPredict)
	}
	seed := s.cfg.Seed
	if opts.Seed != nil {
		seed ^= *opts.Seed
	}
	g := newGenerator(seed, p.text, 0)
	c := choice{}
	c.tokens, c.finish, c.stopStr = g.plan(limit, false, opts.Stop)
	c.text, c.ends = g.render(c.tokens, c.stopStr)
	j.choice = c
	return j, nil
}

func (s *Ollama) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string          `json:"model"`
		Messages  []ollamaMessage `json:"messages"`
		Stream    *bool           `json:"stream"`
		KeepAlive keepAlive       `json:"keep_alive"`
		Options   ollamaOptions   `json:"options"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	var p prompt
	var text strings.Builder
	for _, m := range req.Messages {
		text.WriteString(m.Role + ": " + m.Content + "\n")
		p.tokens += tokensPerMessage + countTokens(m.Content)
		for _, img := range m.Images {
			p.vision += visionTokens("data:image/png;base64," + img)
		}
	}
	if len(req.Messages) > 0 {
		p.tokens += tokensPerAssistant
	}
	p.text = text.String()
	j, err := s.newJob(req.Model, p, req.Options, true, req.Stream, req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	s.run(w, r, j)
}

func (s *Ollama) generate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string        `json:"model"`
		Prompt    string        `json:"prompt"`
		System    string        `json:"system"`
		Images    []string      `json:"images"`
		Raw       bool          `json:"raw"`
		Stream    *bool         `json:"stream"`
		KeepAlive keepAlive     `json:"keep_alive"`
		Options   ollamaOptions `json:"options"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	var p prompt
	if req.Prompt != "" || len(req.Images) > 0 {
		p.text = req.System + "\n" + req.Prompt
		p.tokens = max(1, countTokens(req.System)+countTokens(req.Prompt))
		if !req.Raw { // the template's framing
			p.tokens += tokensPerMessage + tokensPerAssistant
			if req.System != "" {
				p.tokens += tokensPerMessage
			}
		}
		for _, img := range req.Images {
			p.vision += visionTokens("data:image/png;base64," + img)
		}
	}
	j, err := s.newJob(req.Model, p, req.Options, false, req.Stream, req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	s.run(w, r, j)
}

// prefillTime is the simulated time of a lone prefill of n tokens (v of them image tokens).
func (s *Ollama) prefillTime(n, v int) time.Duration {
	return s.cfg.Plan.StepTime(perf.Batch{Tokens: n, Sampled: 1, ContextTokens: int64(n),
		AttentionWork: float64(n) * float64(n+1) / 2, VisionTokens: v})
}

// promptEvalTime is prompt_eval_duration of n prompt tokens (v of them image tokens), in
// simulated time with the slowdown: a lone prefill's, or in fixed-latency mode FixedTTFT.
func (s *Ollama) promptEvalTime(n, v int) time.Duration {
	if ttft, _, ok := s.engine.Fixed(); ok {
		return s.engine.simTime(ttft)
	}
	return s.engine.simTime(s.prefillTime(n, v))
}

// run loads the model, generates j's tokens on the engine and writes NDJSON (or one object).
func (s *Ollama) run(w http.ResponseWriter, r *http.Request, j *ollamaJob) {
	ctx := r.Context()
	if j.empty && j.keep == 0 {
		s.unload()
		s.finalOnly(w, j, "unload", ollamaMetrics{})
		return
	}
	load, err := s.acquire(ctx)
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	if j.empty {
		s.release(j.keep)
		s.finalOnly(w, j, "load", ollamaMetrics{TotalDuration: load, LoadDuration: load})
		return
	}
	defer func() { s.release(j.keep) }()
	c := j.choice
	st, err := s.engine.Submit(ctx, j.prompt.tokens, j.prompt.vision, []int{c.tokens}, []string{c.finish})
	if err != nil {
		writeOllamaError(w, &ollamaError{http.StatusServiceUnavailable, "server busy, please try again: " + err.Error()})
		return
	}
	nd := &ndjson{streamBuf{w: w}}
	produced, finished := make([]int, 1), make([]bool, 1)
	sent := 0
	for {
		select {
		case <-ctx.Done():
			s.engine.Abort(st)
			return
		case <-st.notify:
		}
		if err := st.snapshot(produced, finished); err != nil {
			msg := "llama runner process has terminated: " + err.Error()
			if errors.Is(err, perf.ErrTooLong) || errors.Is(err, perf.ErrInvalid) || errors.Is(err, perf.ErrNoVision) {
				msg = err.Error()
			}
			if j.stream && nd.started {
				nd.line(map[string]string{"error": msg})
				_ = nd.flush()
			} else {
				writeOllamaError(w, &ollamaError{http.StatusInternalServerError, msg})
			}
			return
		}
		for ; sent < produced[0]; sent++ {
			if !j.stream {
				continue
			}
			from := 0
			if sent > 0 {
				from = c.ends[sent-1]
			}
			if piece := c.text[from:c.ends[sent]]; piece != "" {
				nd.line(s.partial(j, piece))
			}
		}
		if j.stream {
			if err := nd.flush(); err != nil {
				s.engine.Abort(st)
				return
			}
		}
		if finished[0] {
			break
		}
	}
	// The driver wrote arrival and last before publishing finished under st.mu, and never
	// writes them again: reading them here is ordered by snapshot's lock.
	span := s.engine.simTime(st.last[0] - st.arrival)
	pe := min(s.promptEvalTime(j.prompt.tokens+j.prompt.vision, j.prompt.vision), span)
	m := ollamaMetrics{TotalDuration: load + span, LoadDuration: load, PromptEvalCount: j.prompt.tokens + j.prompt.vision,
		PromptEvalDuration: pe, EvalCount: c.tokens, EvalDuration: span - pe}
	final := s.final(j, c.finish, m)
	if !j.stream {
		if j.chat {
			final.Message.Content = c.text
		} else {
			*final.Response = c.text
		}
		writeJSON(w, http.StatusOK, final)
		return
	}
	nd.line(final)
	_ = nd.flush()
}

func (s *Ollama) partial(j *ollamaJob, piece string) ollamaResponse {
	r := ollamaResponse{Model: j.model, CreatedAt: s.cfg.Now().UTC()}
	if j.chat {
		r.Message = &ollamaMessage{Role: "assistant", Content: piece}
	} else {
		r.Response = &piece
	}
	return r
}

func (s *Ollama) final(j *ollamaJob, reason string, m ollamaMetrics) ollamaResponse {
	r := s.partial(j, "")
	r.Done, r.DoneReason, r.ollamaMetrics = true, reason, m
	if !j.chat && !j.empty {
		r.Context = tokenize(j.prompt.text + " " + j.choice.text)
	}
	return r
}

// finalOnly answers a load or unload request: one final object, streamed or not.
func (s *Ollama) finalOnly(w http.ResponseWriter, j *ollamaJob, reason string, m ollamaMetrics) {
	f := s.final(j, reason, m)
	if !j.stream {
		writeJSON(w, http.StatusOK, f)
		return
	}
	nd := &ndjson{streamBuf{w: w}}
	nd.line(f)
	_ = nd.flush()
}

// ndjson writes application/x-ndjson, one object per line, flushed per batch.
type ndjson struct{ streamBuf }

func (o *ndjson) line(v any) {
	b, _ := json.Marshal(v)
	o.buf.Write(b)
	o.buf.WriteByte('\n')
}

func (o *ndjson) flush() error {
	o.begin("application/x-ndjson")
	return o.send()
}

// embed returns deterministic unit vectors of the model's hidden size (or dimensions).
func (s *Ollama) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions"`
		KeepAlive  keepAlive       `json:"keep_alive"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	if err := s.checkModel(req.Model); err != nil {
		writeOllamaError(w, err)
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil {
		writeOllamaError(w, &ollamaError{http.StatusBadRequest, "invalid input type: want a string or a list of strings"})
		return
	}
	dims := s.cfg.Plan.Model.Hidden
	if req.Dimensions > 0 && req.Dimensions < dims {
		dims = req.Dimensions
	}
	load, err := s.acquire(r.Context())
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	defer func() { s.release(s.keepFor(req.KeepAlive)) }()
	tokens := 0
	embeddings := make([][]float32, len(inputs))
	for i, in := range inputs {
		tokens += max(1, countTokens(in))
		embeddings[i] = unitVector(s.cfg.Seed, in, dims)
	}
	pe := s.promptEvalTime(tokens, 0)
	if wait := time.Duration(s.cfg.TimeScale * float64(pe)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": req.Model, "embeddings": embeddings,
		"total_duration": load + pe, "load_duration": load, "prompt_eval_count": tokens})
}

// pull streams Ollama's progress for the served model; other names are not in the "registry".
func (s *Ollama) pull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Name   string `json:"name"`
		Stream *bool  `json:"stream"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	stream := req.Stream == nil || *req.Stream
	if ollamaName(req.Model) != s.name {
		msg := "pull model manifest: file does not exist"
		if !stream {
			writeOllamaError(w, &ollamaError{http.StatusInternalServerError, msg})
			return
		}
		nd := &ndjson{streamBuf{w: w}}
		nd.line(map[string]string{"status": "pulling manifest"})
		nd.line(map[string]string{"error": msg})
		_ = nd.flush()
		return
	}
	if !stream {
		writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
		return
	}
	type progress struct {
		Status    string `json:"status"`
		Digest    string `json:"digest,omitempty"`
		Total     int64  `json:"total,omitempty"`
		Completed int64  `json:"completed,omitempty"`
	}
	nd := &ndjson{streamBuf{w: w}}
	nd.line(progress{Status: "pulling manifest"})
	layers := []struct {
		kind string
		size int64
	}{{"model", s.size()}, {"template", 1482}, {"license", 11343}, {"params", 148}}
	for _, l := range layers {
		sum := sha256.Sum256([]byte(s.digest + l.kind))
		d := "sha256:" + hex.EncodeToString(sum[:])
		status := "pulling " + d[7:19]
		steps := int64(1)
		if l.size > 1<<20 {
			steps = 4
		}
		for k := int64(0); k <= steps; k++ {
			nd.line(progress{Status: status, Digest: d, Total: l.size, Completed: l.size * k / steps})
		}
		if err := nd.flush(); err != nil {
			return
		}
	}
	nd.line(progress{Status: "verifying sha256 digest"})
	nd.line(progress{Status: "writing manifest"})
	nd.line(progress{Status: "success"})
	_ = nd.flush()
}

// openAI wraps a /v1 handler of the shared vLLM code with model residency.
func (s *Ollama) openAI(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.acquire(r.Context()); err != nil {
			var e *ollamaError
			if errors.As(err, &e) { // else the client went away
				s.compat.writeError(w, &apiError{status: e.status, message: e.message})
			}
			return
		}
		defer s.release(s.cfg.KeepAlive)
		h(w, r)
	}
}

func (s *Ollama) openAIModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
		{"id": s.name, "object": "model", "created": s.compat.created, "owned_by": "library"}}})
}

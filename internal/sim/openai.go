package sim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
)

// Config describes one simulated OpenAI-compatible engine server.
type Config struct {
	// Engine is the dialect: EngineVLLM (default), EngineSGLang or EngineLlamaCPP. It decides
	// error JSON, authentication, metric names, the response shapes, the engine's own
	// endpoints and, for llama.cpp, slots instead of continuous batching and a loading phase.
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
	// Faults are injected failures; the zero value injects none. An engine that loads while
	// listening (llama.cpp, Launch.LoadsWhileListening) takes Faults.StartupDelay as its
	// loading phase's length when LoadTime is 0.
	Faults Faults
	// OOMAtLoad makes NewOpenAI fail as the engine fails to load weights that do not fit: a
	// *LoadError with CUDA's out-of-memory message.
	OOMAtLoad bool
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
	// DevMode (vLLM: VLLM_SERVER_DEV_MODE=1) serves vLLM's development endpoints: /sleep,
	// /wake_up, /is_sleeping, /collective_rpc, /reset_prefix_cache.
	DevMode bool
	// EnableSleepMode (vLLM --enable-sleep-mode) lets /sleep release GPU memory; without it
	// /sleep and /wake_up fail as vLLM's engine does.
	EnableSleepMode bool
	// EnableMemorySaver (SGLang --enable-memory-saver) lets /release_memory_occupation free
	// GPU memory; without it the call succeeds and frees nothing.
	EnableMemorySaver bool
}

// OpenAI is a simulated OpenAI-compatible engine server in one engine's dialect
// (Config.Engine: vLLM, SGLang or llama.cpp's llama-server).
type OpenAI struct {
	cfg     Config
	d       *dialect
	clock   func() time.Time // wall clock of the loading phase (Faults.Now)
	readyAt time.Time        // the end of the loading phase (Launch.LoadsWhileListening)
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
	sleep   *sleeper     // GPU memory release (sleep.go)
}

// NewOpenAI builds the server; call Run (or Serve) to start its engine.
func NewOpenAI(cfg Config) (*OpenAI, error) {
	if cfg.Engine == "" {
		cfg.Engine = EngineVLLM
	}
	d, ok := dialects[cfg.Engine]
	if !ok {
		return nil, fmt.Errorf("engine %q: want %s, %s or %s", cfg.Engine, EngineVLLM, EngineSGLang, EngineLlamaCPP)
	}
	if cfg.OOMAtLoad {
		return nil, oomAtLoad(cfg.Plan)
	}
	if d.launch.LoadsWhileListening && cfg.Faults.StartupDelay > 0 {
		if cfg.LoadTime == 0 {
			cfg.LoadTime = cfg.Faults.StartupDelay
		}
		cfg.Faults.StartupDelay = 0 // the loading phase answers instead
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
	m.use(d.metrics)
	eng, err := newPersonalityEngine(cfg.Plan, d.mode, cfg.TimeScale, m, cfg.Slowdown, cfg.FixedTTFT, cfg.FixedITL, cfg.Faults)
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
	s := &OpenAI{cfg: cfg, d: d, clock: cfg.Faults.Now, version: v, engine: eng, metrics: m, created: cfg.Now().Unix(),
		maxLen: cfg.Plan.Options.MaxModelLen, vision: cfg.Plan.Model.Vision}
	if d.launch.LoadsWhileListening {
		s.readyAt = s.clock().Add(s.loadTime())
	} else if d.prefixCache && !cfg.NoPrefixCache {
		s.prefix = newPrefixCache(cfg.Plan.KVBlocks)
	}
	s.sleep = newSleeper(cfg.Plan, cfg.TimeScale, cfg.EnableSleepMode || cfg.EnableMemorySaver)
	if cfg.EnableSleepMode || cfg.EnableMemorySaver {
		m.extra = s.sleepMetrics
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sim/state", s.serveSimState)
	switch {
	case d == vllmDialect && cfg.DevMode:
		s.vllmSleepRoutes(mux)
	case d == sglangDialect:
		s.sglangMemoryRoutes(mux)
	}
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/completions", s.completions)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /tokenize", s.tokenize)
	mux.HandleFunc("POST /detokenize", s.detokenize)
	d.routes(s, mux)
	s.mux = mux
	s.handler = WithFaults(cfg.Faults, mux, func(w http.ResponseWriter, status int, message string) {
		s.writeError(w, &apiError{status: status, message: message})
	})
	return s, nil
}

// ServeHTTP applies the engine's gate (API key, loading phase) and routes.
func (s *OpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.d.gate(s, w, r) {
		return
	}
	s.handler.ServeHTTP(w, r)
}

// Run drives the engine until ctx ends.
func (s *OpenAI) Run(ctx context.Context) error { return s.engine.Run(ctx) }

// Serve runs the engine and an HTTP server on ln until ctx ends.
func (s *OpenAI) Serve(ctx context.Context, ln net.Listener) error {
	return serveWith(ctx, ln, s, s.engine.Run)
}

// LogLoad writes what the engine logs while it loads the model (before it listens, for the
// engines that bind only when ready), plus the simulator's plan.
func (s *OpenAI) LogLoad(w io.Writer) { s.d.loadLog(s, w) }

// LogServing writes the line that says the engine serves, and where.
func (s *OpenAI) LogServing(w io.Writer, addr net.Addr) { s.d.servingLog(s, w, addr) }

// models answers GET /v1/models in the engine's shape.
func (s *OpenAI) models(w http.ResponseWriter, r *http.Request) { s.d.models(s, w, r) }

// checkModel resolves a request's "model" as the engine does.
func (s *OpenAI) checkModel(name string) (string, error) { return s.d.model(s, name) }

// serveMetrics writes /metrics in the engine's names.
func (s *OpenAI) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = s.metrics.write(w)
}

// answerOK answers 200 with an empty body.
func answerOK(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }

// bearer reports whether r carries "Authorization: Bearer key".
func bearer(r *http.Request, key string) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+key)) == 1
}

// listOf is an OpenAI list object, "object" first as the Python servers write it.
type listOf[T any] struct {
	Object string `json:"object"`
	Data   []T    `json:"data"`
}

// apiError is an error the client sees in the engine's error JSON (dialect.errorBody).
type apiError struct {
	status  int
	message string
	param   string
}

func (e *apiError) Error() string { return e.message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...)}
}

func (e *apiError) paramValue() any {
	if e.param == "" {
		return nil
	}
	return e.param
}

// errorBody is e's JSON body in the engine's shape.
func (s *OpenAI) errorBody(e *apiError) any { return s.d.errorBody(s, e) }

func (s *OpenAI) writeError(w http.ResponseWriter, err error) {
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

func (s *OpenAI) decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

func (s *OpenAI) requestID() string {
	return fmt.Sprintf("%032x", s.nextID.Add(1))
}

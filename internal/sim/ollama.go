package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/registry"
)

// DefaultOllamaVersion is the release /api/version reports unless OllamaConfig.Version says.
const DefaultOllamaVersion = "0.12.6"

// OllamaConfig describes one simulated Ollama server: one model (Plan and Model), or the
// models of an Ollama store (Models), loaded on demand as ollama serve does.
//
// The Ollama personality uses perfmodel.Ollama scheduling: Plan.Options.Parallel fixed slots
// (OLLAMA_NUM_PARALLEL) per model and a FIFO queue, so aggregate throughput stays flat with
// concurrency.
type OllamaConfig struct {
	Plan  perfmodel.Plan
	Model string // the served name, e.g. "qwen2.5:7b"; ":latest" is added when there is no tag
	// Models, when set, are served instead of Plan and Model: every model of an Ollama store
	// (see OllamaStoreModels), each under its own name, loaded on first use.
	Models []OllamaModel
	// GPUFree is the memory of each visible GPU the server may use (citadel sim
	// --gpu-free-memory). When set, a loaded model holds its footprint (OllamaModel.Offload's
	// GPUBytes) until it is unloaded, and a load that does not fit beside the loaded models
	// evicts the least recently used idle ones first, or waits for busy ones to finish, as
	// Ollama's scheduler does. Nil: models never compete for memory.
	GPUFree []int64
	// Store, when set, is the Ollama models directory Models came from. It is read again when a
	// request names a model the server does not know and when /api/tags lists, so that models
	// pulled or deleted while the server runs are served or gone, as ollama serve reads its
	// store; a model re-pulled under the same name keeps its first sizing.
	Store     *OllamaStore
	Version   string        // default DefaultOllamaVersion
	KeepAlive time.Duration // default keep_alive (OLLAMA_KEEP_ALIVE); default 5m; negative: forever
	// LoadTime is the simulated time to load a model into VRAM (scaled like every other
	// simulated duration). Zero: 0.5 s plus the weights at 4 GB/s (a PCIe 4.0 NVMe drive's
	// sequential read); negative: no load time. OllamaModel.LoadTime overrides it per model.
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

// OllamaModel is one model of a simulated Ollama server.
type OllamaModel struct {
	Name string         // as Ollama shows it: "deepcoder:14b", "ns/model:tag", "host/ns/model:tag"
	Plan perfmodel.Plan // the engine's plan, as if every layer were on the GPU (Offload slows it down)
	// Offload is the model's split over OllamaConfig.GPUFree (perfmodel.PlanOffload). Its Slowdown
	// multiplies every step; its GPUBytes are the VRAM the loaded model holds, and /api/ps
	// reports size_vram < size when layers are on the CPU. Zero: the Plan's weights and KV cache
	// on the GPU.
	Offload perfmodel.Offload
	// Store metadata, as /api/tags reports it; zero values are derived from Plan.
	Digest            string    // the manifest's sha256, hex
	Size              int64     // bytes of the model's blobs
	Modified          time.Time // the manifest's modification time
	Family            string    // e.g. "qwen2"
	ParameterSize     string    // e.g. "14.8B"
	QuantizationLevel string    // e.g. "Q4_K_M"
	StandIn           bool      // the GGUF is a stand-in (modelinfo.Info.StandIn)
	Manifest          string    // the manifest file in the store; a request finds it gone as Ollama does
	LoadTime          time.Duration
}

// Ollama is a simulated Ollama server (ollama serve; the paths in this file's comments, such
// as server/routes.go, are in https://github.com/ollama/ollama).
//
// Model residency (keep_alive) is a small state machine per model, guarded by mu: a request
// acquires its model (loading it — after evicting idle models when memory is short — or waiting
// for the load in progress), and releases it with its keep_alive; the expiry countdown starts
// when the last request releases, as in Ollama's scheduler. Each model's tokens come from its
// own Engine in perfmodel.Ollama mode.
type Ollama struct {
	cfg     OllamaConfig
	mux     *http.ServeMux
	handler http.Handler // mux behind the faults
	created int64

	mu      sync.Mutex
	runners []*ollamaRunner // in /api/tags order
	byName  map[string]*ollamaRunner
	used    []int64       // VRAM held per GPU by loaded models (with cfg.GPUFree)
	changed chan struct{} // closed (and replaced) when a model is released or unloaded
	runCtx  context.Context
	stopped bool
	engines sync.WaitGroup
	warned  map[string]bool // store manifests already reported as unusable
}

// ollamaRunner is one model: its engine and its residency.
type ollamaRunner struct {
	OllamaModel
	s      *Ollama
	name   string // with tag
	engine *Engine
	compat *OpenAI // the OpenAI-compatible /v1 endpoints (vLLM's dialect), on the same engine
	load   time.Duration

	// Guarded by s.mu.
	cur      *modelLoad // nil: not loaded
	active   int
	keep     time.Duration // keep_alive of the latest request
	expires  time.Time     // when active == 0; zero with keep < 0 (forever)
	lastUsed time.Time
}

// modelLoad is one load of a model; done is closed when it finishes, with err set if it was
// abandoned.
type modelLoad struct {
	done chan struct{}
	err  error
}

// NewOllama builds the server; call Run (or Serve) to start its engines.
func NewOllama(cfg OllamaConfig) (*Ollama, error) {
	if cfg.Version == "" {
		cfg.Version = DefaultOllamaVersion
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 5 * time.Minute
	}
	if cfg.FixedTTFT > 0 || cfg.FixedITL > 0 {
		cfg.LoadTime = -1 // fixed latencies: no load delay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Faults.Counted == nil {
		cfg.Faults.Counted = isOllamaInference
	}
	if cfg.Faults.Health == nil {
		cfg.Faults.Health = isOllamaHealth
	}
	models := cfg.Models
	if len(models) == 0 {
		if cfg.Model == "" {
			cfg.Model = cfg.Plan.Model.Name
		}
		models = []OllamaModel{{Name: cfg.Model, Plan: cfg.Plan}}
	}
	s := &Ollama{cfg: cfg, byName: make(map[string]*ollamaRunner), created: cfg.Now().Unix(),
		changed: make(chan struct{}), used: make([]int64, len(cfg.GPUFree)), warned: make(map[string]bool)}
	for _, m := range models {
		r, err := s.newRunner(m)
		if err != nil {
			return nil, err
		}
		if err := s.addLocked(r); err != nil {
			return nil, err
		}
	}

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
	mux.HandleFunc("POST /v1/chat/completions", s.openAI(func(r *ollamaRunner) http.HandlerFunc { return r.compat.chat }))
	mux.HandleFunc("POST /v1/completions", s.openAI(func(r *ollamaRunner) http.HandlerFunc { return r.compat.completions }))
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

// newRunner builds a model's engine and its OpenAI-compatible front.
func (s *Ollama) newRunner(m OllamaModel) (*ollamaRunner, error) {
	cfg := s.cfg
	name := ollamaName(m.Name)
	if len(m.Offload.GPUBytes) != len(cfg.GPUFree) && len(m.Offload.GPUBytes) > 0 {
		return nil, fmt.Errorf("model %q: its offload plan covers %d GPUs, the server has %d", name, len(m.Offload.GPUBytes), len(cfg.GPUFree))
	}
	slow := cfg.Slowdown
	if slow == 0 {
		slow = 1
	}
	if m.Offload.Slowdown > 1 {
		slow *= m.Offload.Slowdown
	}
	met := newMetrics(name, "")
	eng, err := newPersonalityEngine(m.Plan, perfmodel.Ollama, cfg.TimeScale, met, slow, cfg.FixedTTFT, cfg.FixedITL, cfg.Faults)
	if err != nil {
		return nil, err
	}
	if m.Digest == "" {
		sum := sha256.Sum256([]byte(name + "\x00" + string(m.Plan.Options.Quant)))
		m.Digest = hex.EncodeToString(sum[:])
	}
	if m.Modified.IsZero() {
		m.Modified = time.Unix(s.created, 0)
	}
	r := &ollamaRunner{OllamaModel: m, s: s, name: name, engine: eng, keep: cfg.KeepAlive}
	switch {
	case m.LoadTime != 0:
		r.load = m.LoadTime
	case cfg.LoadTime != 0:
		r.load = cfg.LoadTime
	default:
		r.load = 500*time.Millisecond + time.Duration(float64(r.weightBytes())/4e9*float64(time.Second))
	}
	if cfg.FixedTTFT > 0 || cfg.FixedITL > 0 {
		r.load = -1
	}
	r.compat = &OpenAI{cfg: Config{Plan: m.Plan, ServedModelNames: ollamaAliases(name), ModelRoot: name,
		VLLMVersion: DefaultVLLMVersion, TimeScale: cfg.TimeScale, Seed: cfg.Seed, Logger: cfg.Logger, Now: cfg.Now},
		d: vllmDialect, engine: eng, metrics: met, created: s.created, maxLen: m.Plan.Options.MaxModelLen, vision: m.Plan.Model.Vision}
	r.compat.version, _ = parseVersion(DefaultVLLMVersion)
	return r, nil
}

// ollamaAliases are the names a model answers to: as shown, without ":latest", and fully
// qualified (registry.ollama.ai/library/qwen2.5:7b, library/qwen2.5:7b).
func ollamaAliases(name string) []string {
	out := []string{name}
	if short, ok := strings.CutSuffix(name, ":latest"); ok {
		out = append(out, short)
	}
	if n, err := registry.ParseName(name); err == nil {
		full := n.Host + "/" + n.Namespace + "/" + n.Model + ":" + n.Tag
		out = append(out, full, n.Namespace+"/"+n.Model+":"+n.Tag)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// addLocked registers r under its names and starts its engine if the server runs.
func (s *Ollama) addLocked(r *ollamaRunner) error {
	names := ollamaAliases(r.name)
	for _, n := range names {
		if other, dup := s.byName[n]; dup && other != r {
			return fmt.Errorf("model %q is in the store twice (as %q and %q)", n, other.name, r.name)
		}
	}
	for _, n := range names {
		s.byName[n] = r
	}
	s.runners = append(s.runners, r)
	// Ollama lists the most recently modified first.
	slices.SortStableFunc(s.runners, func(a, b *ollamaRunner) int { return b.Modified.Compare(a.Modified) })
	if s.runCtx != nil && !s.stopped {
		s.engines.Add(1)
		go func() { defer s.engines.Done(); _ = r.engine.Run(s.runCtx) }()
	}
	return nil
}

// removeLocked forgets r (its manifest is gone), unless a request is using it.
func (s *Ollama) removeLocked(r *ollamaRunner) {
	if r.active > 0 {
		return
	}
	s.unloadLocked(r)
	for _, n := range ollamaAliases(r.name) {
		if s.byName[n] == r {
			delete(s.byName, n)
		}
	}
	s.runners = slices.DeleteFunc(s.runners, func(o *ollamaRunner) bool { return o == r })
}

// list is a snapshot of the models.
func (s *Ollama) list() []*ollamaRunner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runners)
}

// find looks a name up without reading the store.
func (s *Ollama) find(name string) *ollamaRunner {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.byName[ollamaName(name)]; ok {
		return r
	}
	if n, err := registry.ParseName(name); err == nil {
		return s.byName[n.Host+"/"+n.Namespace+"/"+n.Model+":"+n.Tag]
	}
	return nil
}

// lookup finds the model a request names, reading the store again when it is not known, or
// answers Ollama's own 404 (server/routes.go: "model '%s' not found", the name as given).
func (s *Ollama) lookup(name string) (*ollamaRunner, error) {
	if name == "" {
		return nil, &ollamaError{http.StatusBadRequest, "model is required"}
	}
	if r := s.find(name); r != nil {
		if _, err := os.Stat(r.Manifest); r.Manifest == "" || err == nil {
			return r, nil
		}
	}
	if s.cfg.Store != nil {
		s.rescan()
		if r := s.find(name); r != nil {
			return r, nil
		}
	}
	return nil, &ollamaError{http.StatusNotFound, fmt.Sprintf("model '%s' not found", name)}
}

// rescan reads the store again: models pulled since are added, models deleted are dropped.
func (s *Ollama) rescan() {
	st := s.cfg.Store
	if st == nil {
		return
	}
	files, err := storeManifests(st.Dir)
	if err != nil {
		s.cfg.Logger.Warn("cannot read the Ollama store", "err", err)
		return
	}
	s.mu.Lock()
	var gone []*ollamaRunner
	for _, r := range s.runners {
		if _, ok := files[r.name]; !ok {
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		s.removeLocked(r)
	}
	var fresh []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if _, ok := s.byName[name]; !ok {
			fresh = append(fresh, name)
		}
	}
	s.mu.Unlock()
	for _, name := range fresh {
		m, err := storeModel(st.Dir, files[name], st.GPU, st.Options, s.cfg.GPUFree)
		var r *ollamaRunner
		if err == nil {
			r, err = s.newRunner(m)
		}
		s.mu.Lock()
		if err == nil {
			if _, ok := s.byName[name]; !ok {
				err = s.addLocked(r)
				s.cfg.Logger.Info("model found in the store", "model", name)
			}
		}
		if err != nil && !s.warned[files[name]] {
			s.warned[files[name]] = true
			s.cfg.Logger.Warn("skipping a model of the store", "model", name, "err", err)
		}
		s.mu.Unlock()
	}
}

// Run drives every model's engine until ctx ends.
func (s *Ollama) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, r := range s.runners {
		s.engines.Add(1)
		go func() { defer s.engines.Done(); _ = r.engine.Run(ctx) }()
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.engines.Wait()
	return nil
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

// Serve runs the engines and an HTTP server on ln until ctx ends.
func (s *Ollama) Serve(ctx context.Context, ln net.Listener) error {
	return serveWith(ctx, ln, s, s.Run)
}

// serveWith serves h on ln and runs the engines (run) until ctx ends, then shuts both down.
func serveWith(ctx context.Context, ln net.Listener, h http.Handler, run func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engineDone := make(chan struct{})
	go func() { defer close(engineDone); _ = run(ctx) }()
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

func decodeOllama(r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20)).Decode(v); err != nil {
		return &ollamaError{http.StatusBadRequest, "invalid request body: " + err.Error()}
	}
	return nil
}

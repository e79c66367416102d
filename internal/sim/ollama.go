package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"citadel.dev/citadel/internal/modelinfo"
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

// acquire makes r resident, loading it if needed, and counts the caller as active. It returns
// the simulated load time the caller waited for (0 when the model was loaded), or an error: the
// context's when the client went away, an *ollamaError when the load fails.
func (s *Ollama) acquire(ctx context.Context, r *ollamaRunner) (time.Duration, error) {
	if s.cfg.OOMAtLoad {
		return 0, r.oomError()
	}
	for {
		s.mu.Lock()
		s.expireLocked()
		l := r.cur
		if l != nil && isDone(l) {
			r.active++
			r.lastUsed = s.cfg.Now()
			s.mu.Unlock()
			return 0, nil
		}
		loader := l == nil
		if loader && !s.makeRoomLocked(r) {
			// Every model that would have to go is busy: wait for one to be released.
			wait := s.changed
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		if loader {
			l = &modelLoad{done: make(chan struct{})}
			r.cur = l
			s.hold(r, 1)
		}
		r.active++
		r.lastUsed = s.cfg.Now()
		s.mu.Unlock()
		if loader {
			s.load(ctx, r, l)
		} else {
			select {
			case <-l.done:
			case <-ctx.Done():
				s.mu.Lock()
				r.active--
				s.mu.Unlock()
				return 0, ctx.Err()
			}
		}
		if l.err == nil {
			return max(r.load, 0), nil
		}
		s.mu.Lock()
		r.active--
		s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// hold adds (sign 1) or returns (sign -1) r's VRAM footprint to the GPUs' accounting.
func (s *Ollama) hold(r *ollamaRunner, sign int64) {
	for i, b := range r.Offload.GPUBytes {
		if i < len(s.used) {
			s.used[i] += sign * b
		}
	}
}

// fitsLocked reports whether r's footprint fits beside the loaded models.
func (s *Ollama) fitsLocked(r *ollamaRunner) bool {
	for i, b := range r.Offload.GPUBytes {
		if i < len(s.cfg.GPUFree) && s.used[i]+b > s.cfg.GPUFree[i] {
			return false
		}
	}
	return true
}

// makeRoomLocked evicts idle loaded models, least recently used first, until r fits; it reports
// false, evicting nothing, when even evicting every idle model would not make room.
func (s *Ollama) makeRoomLocked(r *ollamaRunner) bool {
	if s.fitsLocked(r) {
		return true
	}
	var idle []*ollamaRunner
	for _, o := range s.runners {
		if o != r && o.cur != nil && o.active == 0 && isDone(o.cur) {
			idle = append(idle, o)
		}
	}
	slices.SortFunc(idle, func(a, b *ollamaRunner) int { return a.lastUsed.Compare(b.lastUsed) })
	// Check first that evicting them all would be enough; then evict only as many as needed.
	for _, o := range idle {
		s.hold(o, -1)
	}
	ok := s.fitsLocked(r)
	for _, o := range idle {
		s.hold(o, 1)
	}
	if !ok {
		return false
	}
	for _, o := range idle {
		if s.fitsLocked(r) {
			break
		}
		s.cfg.Logger.Info("evicting model to make room", "model", o.name, "for", r.name)
		s.unloadLocked(o)
	}
	return true
}

// expireLocked unloads idle models whose keep_alive has passed.
func (s *Ollama) expireLocked() {
	now := s.cfg.Now()
	for _, r := range s.runners {
		if r.cur != nil && r.active == 0 && r.keep >= 0 && !now.Before(r.expires) && isDone(r.cur) {
			s.unloadLocked(r)
		}
	}
}

// unloadLocked drops r from memory and wakes loaders waiting for room.
func (s *Ollama) unloadLocked(r *ollamaRunner) {
	if r.cur == nil {
		return
	}
	r.cur = nil
	s.hold(r, -1)
	s.signalLocked()
}

func (s *Ollama) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// oomError is Ollama's refusal to load a model that does not fit (llm/memory.go), with the
// weights as the requirement and the GPUs' memory as what is available.
func (r *ollamaRunner) oomError() *ollamaError {
	avail := r.Plan.GPU.MemoryBytes * int64(r.Plan.Options.TP)
	return &ollamaError{http.StatusInternalServerError, fmt.Sprintf("model requires more system memory (%.1f GiB) than is available (%.1f GiB)",
		float64(r.weightBytes())/(1<<30), float64(avail)/(1<<30))}
}

func isDone(l *modelLoad) bool {
	select {
	case <-l.done:
		return l.err == nil
	default:
		return false
	}
}

// load waits out r's scaled load time; a cancelled loader abandons the load so that a waiter
// starts another.
func (s *Ollama) load(ctx context.Context, r *ollamaRunner, l *modelLoad) {
	defer close(l.done)
	wait := time.Duration(s.cfg.TimeScale * float64(max(r.load, 0)))
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
		if r.cur == l {
			s.unloadLocked(r)
		}
		s.mu.Unlock()
	}
}

// release ends one request's use of r with its keep_alive: 0 unloads when nothing else runs, a
// negative value keeps the model forever.
func (s *Ollama) release(r *ollamaRunner, keep time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.active--
	r.keep = keep
	r.expires = s.cfg.Now().Add(keep)
	r.lastUsed = s.cfg.Now()
	switch {
	case keep == 0 && r.active == 0:
		s.unloadLocked(r)
	case r.active == 0:
		s.signalLocked() // r may now be evicted for a waiting load
	}
}

// unload is keep_alive 0 with an empty prompt.
func (s *Ollama) unload(r *ollamaRunner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.active == 0 {
		s.unloadLocked(r)
	}
}

// resident reports whether r is loaded and when it expires.
func (s *Ollama) resident(r *ollamaRunner) (bool, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if r.cur == nil || !isDone(r.cur) {
		return false, time.Time{}
	}
	switch {
	case r.keep < 0:
		return true, now.AddDate(100, 0, 0) // "forever", as far as a client can tell
	case r.active > 0:
		return true, now.Add(r.keep)
	case !now.Before(r.expires):
		return false, time.Time{}
	}
	return true, r.expires
}

// Model metadata.

func (r *ollamaRunner) arch() string {
	if r.Family != "" {
		return r.Family
	}
	n := r.Plan.Model.Name
	switch {
	case strings.HasPrefix(n, "mimo-vl"):
		return "qwen25vl"
	case strings.HasPrefix(n, "llama"), strings.HasPrefix(n, "mixtral"):
		return "llama"
	}
	return "qwen2"
}

func (r *ollamaRunner) quantLevel() string {
	if r.QuantizationLevel != "" {
		return r.QuantizationLevel
	}
	switch r.Plan.Options.Quant {
	case perfmodel.QuantFP8:
		return "F8_E4M3"
	case perfmodel.QuantAWQInt4:
		return "Q4_0"
	case perfmodel.QuantQ4KM:
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

func (r *ollamaRunner) details() ollamaDetails {
	a := r.arch()
	size := r.ParameterSize
	if size == "" {
		size = fmt.Sprintf("%.1fB", float64(r.Plan.Model.Params)/1e9)
	}
	return ollamaDetails{Format: "gguf", Family: a, Families: []string{a}, ParameterSize: size, QuantizationLevel: r.quantLevel()}
}

// weightBytes is the weights' size over all GPUs, as the performance model costs them.
func (r *ollamaRunner) weightBytes() int64 {
	return r.Plan.WeightBytes * int64(r.Plan.Options.TP)
}

// diskSize is /api/tags' size: the store's blobs, else the weights.
func (r *ollamaRunner) diskSize() int64 {
	if r.Size > 0 {
		return r.Size
	}
	return r.weightBytes()
}

// memory is /api/ps' size and size_vram: with an offload plan, what Ollama allocates on the
// GPUs and in host memory; else the weights and the slots' KV cache.
func (r *ollamaRunner) memory() (size, vram int64) {
	if len(r.Offload.GPUBytes) > 0 {
		for _, b := range r.Offload.GPUBytes {
			vram += b
		}
		return vram + r.Offload.CPUBytes, vram
	}
	p := r.Plan
	vram = r.weightBytes() + p.KVBytesPerToken*int64(p.Options.Parallel)*int64(p.Options.MaxModelLen)*int64(p.Options.TP)
	return vram, vram
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
	s.rescan()
	runners := s.list()
	models := make([]ollamaModel, 0, len(runners))
	for _, r := range runners {
		mod := r.Modified.UTC()
		models = append(models, ollamaModel{Name: r.name, Model: r.name, ModifiedAt: &mod, Size: r.diskSize(), Digest: r.Digest, Details: r.details()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Ollama) ps(w http.ResponseWriter, _ *http.Request) {
	models := []ollamaModel{}
	for _, r := range s.list() {
		ok, exp := s.resident(r)
		if !ok {
			continue
		}
		size, vram := r.memory()
		exp = exp.UTC()
		models = append(models, ollamaModel{Name: r.name, Model: r.name, Size: size, Digest: r.Digest, Details: r.details(),
			ExpiresAt: &exp, SizeVRAM: &vram, ContextLength: r.Plan.Options.MaxModelLen})
	}
	// Ollama lists the longest remaining first.
	slices.SortStableFunc(models, func(a, b ollamaModel) int { return b.ExpiresAt.Compare(*a.ExpiresAt) })
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
	rn, err := s.lookup(req.Model)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	m, a := rn.Plan.Model, rn.arch()
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
		"general.size_label":           rn.details().ParameterSize,
	}
	if rn.StandIn {
		info[modelinfo.StandInParameterCountKey] = m.Params
	}
	resp := map[string]any{
		"license":      "Apache License 2.0",
		"modelfile":    fmt.Sprintf("# Modelfile generated by \"ollama show\"\nFROM %s\nTEMPLATE {{ .Prompt }}\n", rn.name),
		"parameters":   "stop                           \"<|im_start|>\"\nstop                           \"<|im_end|>\"",
		"template":     "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
		"details":      rn.details(),
		"model_info":   info,
		"capabilities": caps,
		"modified_at":  rn.Modified.UTC(),
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
	r      *ollamaRunner
	model  string
	chat   bool
	stream bool
	keep   time.Duration
	prompt prompt
	choice choice
	empty  bool // an empty prompt: load (or unload) only
}

func (s *Ollama) newJob(model string, p prompt, opts ollamaOptions, chat bool, stream *bool, k keepAlive) (*ollamaJob, error) {
	r, err := s.lookup(model)
	if err != nil {
		return nil, err
	}
	j := &ollamaJob{r: r, model: model, chat: chat, stream: stream == nil || *stream, keep: s.keepFor(k), prompt: p}
	if p.tokens == 0 {
		j.empty = true
		return j, nil
	}
	if p.vision > 0 && !r.Plan.Model.Vision {
		return nil, &ollamaError{http.StatusBadRequest, fmt.Sprintf("model %q does not support images", model)}
	}
	ctxLen := r.Plan.Options.MaxModelLen
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
func (r *ollamaRunner) prefillTime(n, v int) time.Duration {
	return r.Plan.StepTime(perfmodel.Batch{Tokens: n, Sampled: 1, ContextTokens: int64(n),
		AttentionWork: float64(n) * float64(n+1) / 2, VisionTokens: v})
}

// promptEvalTime is prompt_eval_duration of n prompt tokens (v of them image tokens), in
// simulated time with the slowdown: a lone prefill's, or in fixed-latency mode FixedTTFT.
func (r *ollamaRunner) promptEvalTime(n, v int) time.Duration {
	if ttft, _, ok := r.engine.Fixed(); ok {
		return r.engine.simTime(ttft)
	}
	return r.engine.simTime(r.prefillTime(n, v))
}

// run loads the model, generates j's tokens on the engine and writes NDJSON (or one object).
func (s *Ollama) run(w http.ResponseWriter, r *http.Request, j *ollamaJob) {
	ctx, rn := r.Context(), j.r
	if j.empty && j.keep == 0 {
		s.unload(rn)
		s.finalOnly(w, j, "unload", ollamaMetrics{})
		return
	}
	load, err := s.acquire(ctx, rn)
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	if j.empty {
		s.release(rn, j.keep)
		s.finalOnly(w, j, "load", ollamaMetrics{TotalDuration: load, LoadDuration: load})
		return
	}
	defer func() { s.release(rn, j.keep) }()
	c := j.choice
	st, err := rn.engine.Submit(ctx, j.prompt.tokens, j.prompt.vision, []int{c.tokens}, []string{c.finish})
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
			rn.engine.Abort(st)
			return
		case <-st.notify:
		}
		if err := st.snapshot(produced, finished); err != nil {
			msg := "llama runner process has terminated: " + err.Error()
			if errors.Is(err, perfmodel.ErrTooLong) || errors.Is(err, perfmodel.ErrInvalid) || errors.Is(err, perfmodel.ErrNoVision) {
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
				rn.engine.Abort(st)
				return
			}
		}
		if finished[0] {
			break
		}
	}
	// The driver wrote arrival and last before publishing finished under st.mu, and never
	// writes them again: reading them here is ordered by snapshot's lock.
	span := rn.engine.simTime(st.last[0] - st.arrival)
	pe := min(rn.promptEvalTime(j.prompt.tokens+j.prompt.vision, j.prompt.vision), span)
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
	rn, err := s.lookup(req.Model)
	if err != nil {
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
	dims := rn.Plan.Model.Hidden
	if req.Dimensions > 0 && req.Dimensions < dims {
		dims = req.Dimensions
	}
	load, err := s.acquire(r.Context(), rn)
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	defer func() { s.release(rn, s.keepFor(req.KeepAlive)) }()
	tokens := 0
	embeddings := make([][]float32, len(inputs))
	for i, in := range inputs {
		tokens += max(1, countTokens(in))
		embeddings[i] = unitVector(s.cfg.Seed, in, dims)
	}
	pe := rn.promptEvalTime(tokens, 0)
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

// pull streams Ollama's progress for a served model; other names are not in the "registry".
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
	rn, err := s.lookup(req.Model)
	if err != nil {
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
	}{{"model", rn.diskSize()}, {"template", 1482}, {"license", 11343}, {"params", 148}}
	for _, l := range layers {
		sum := sha256.Sum256([]byte(rn.Digest + l.kind))
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

// openAI routes a /v1 request of the shared vLLM code to the model its body names, with model
// residency. An unknown model gets Ollama's 404 in OpenAI's error shape (middleware/openai.go).
func (s *Ollama) openAI(h func(*ollamaRunner) http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
		if err != nil {
			writeOpenAIError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &req) // the handler reports a malformed body
		runners := s.list()
		var rn *ollamaRunner
		if req.Model == "" && len(runners) == 1 {
			rn = runners[0]
		} else {
			if rn, err = s.lookup(req.Model); err != nil {
				var e *ollamaError
				errors.As(err, &e)
				writeOpenAIError(w, e.status, e.message)
				return
			}
		}
		if _, err := s.acquire(r.Context(), rn); err != nil {
			var e *ollamaError
			if errors.As(err, &e) { // else the client went away
				rn.compat.writeError(w, &apiError{status: e.status, message: e.message})
			}
			return
		}
		defer s.release(rn, s.cfg.KeepAlive)
		h(rn)(w, r)
	}
}

// writeOpenAIError is Ollama's OpenAI-compatible error (openai.NewError).
func writeOpenAIError(w http.ResponseWriter, status int, message string) {
	typ := "api_error"
	switch status {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	}
	type openAIError struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   any     `json:"param"`
		Code    *string `json:"code"`
	}
	writeJSON(w, status, struct {
		Error openAIError `json:"error"`
	}{openAIError{Message: message, Type: typ}})
}

func (s *Ollama) openAIModels(w http.ResponseWriter, _ *http.Request) {
	s.rescan()
	runners := s.list()
	data := make([]map[string]any, 0, len(runners))
	for _, r := range runners {
		data = append(data, map[string]any{"id": r.name, "object": "model", "created": r.Modified.Unix(), "owned_by": "library"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

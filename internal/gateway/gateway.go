package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/residency"
	"citadel.dev/citadel/internal/taskclass"
)

// DefaultAddr is where citadel serve's gateway listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// Options configure a gateway.
type Options struct {
	// Source supplies Routes, InferenceServices (their ready endpoints) and APIKeys, and takes
	// the status of every Route it supplies (StoreSource for citadel serve's store); nil for a
	// gateway with only fixed Routes.
	Source Source
	// Routes are fixed routes (url targets) for a gateway without a store (citadel gateway -f).
	Routes []*v1.Route
	// Keys are fixed API keys for a gateway without a store; with a store they come from it.
	Keys   []*v1.APIKey
	Logger *slog.Logger
	// AccessLog receives one JSON line per request; nil: none.
	AccessLog io.Writer
	Version   string
	// MaxBodyBytes bounds a request body (413 beyond); default 32 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds the reading of a request body, from the handler's start: a client
	// that sends it slower is answered 408 and its connection closed. Default 60 s.
	BodyTimeout time.Duration
	// MetricsRequireKey makes /metrics need an API key once keys exist (any valid key); by
	// default /metrics stays open, for a Prometheus on the same host or network.
	MetricsRequireKey bool
	// Timeouts of every upstream call: connect, first response header, and silence between
	// streamed chunks. Total is a request's whole deadline, retries included, unless its
	// route sets limits.timeout. Defaults: 2 s, 120 s, 60 s, 10 min.
	ConnectTimeout, HeaderTimeout, IdleTimeout, Total time.Duration
	// Attempts is how many upstream attempts a request may make before the first byte reaches
	// the client (replicas and fallbacks together), unless its route sets retry.attempts;
	// default 3.
	Attempts int
	// HealthInterval and ScrapeInterval pace the active health probes and the engine load
	// scrapes; defaults 2 s and 200 ms.
	HealthInterval, ScrapeInterval time.Duration
	// Addr is the address the gateway serves on, named in the status it writes on the
	// Source's Routes; "" leaves it out.
	Addr string
	// Now is the clock of status condition times; default time.Now.
	Now func() time.Time
	// StdlibHTTP makes Serve use net/http's server instead of the gateway's own HTTP/1.1
	// path (both hand h2c connections to net/http); for comparisons.
	StdlibHTTP bool
	// LimitShare is the number of gateway replicas that serve the same Routes and keys, each
	// counting on its own (no shared store): each enforces 1/LimitShare of every rate and
	// concurrency limit of keys and routes, rounded up, and says so in its 429s. 0 or 1: the
	// whole limits.
	LimitShare int
	// Residency admits requests to on-demand services (docs/design/0006-residency.md): a
	// request to a service it manages waits in Acquire until the service is resident. nil:
	// every service is always resident, as before.
	Residency residency.Admitter
}

// Server is the gateway.
type Server struct {
	opts    Options
	log     *slog.Logger
	access  *slog.Logger
	table   atomic.Pointer[Table]
	keys    *Keys
	met     *metrics
	client  *http.Client
	health  *Health
	scraper *Scraper
}

// New returns a gateway; call Run to keep its table current, and serve Handler.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&opts.BodyTimeout, 60*time.Second)
	def(&opts.ConnectTimeout, 2*time.Second)
	def(&opts.HeaderTimeout, 120*time.Second)
	def(&opts.IdleTimeout, 60*time.Second)
	def(&opts.Total, 10*time.Minute)
	def(&opts.HealthInterval, 2*time.Second)
	def(&opts.ScrapeInterval, 200*time.Millisecond)
	if opts.Attempts == 0 {
		opts.Attempts = 3
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, log: opts.Logger, keys: NewKeys(), met: newMetrics()}
	if opts.AccessLog != nil {
		s.access = slog.New(slog.NewJSONHandler(opts.AccessLog, nil))
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true, // pass bytes through as the engine wrote them
	}
	s.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.health = &Health{Interval: opts.HealthInterval, Timeout: time.Second, Client: &http.Client{Transport: tr}}
	s.scraper = &Scraper{Interval: opts.ScrapeInterval, Timeout: time.Second, Client: &http.Client{Transport: tr}}
	taskclass.Builtin() // decode the classifier's weights now, not on the first request
	t, errs := Build(BuildInput{Routes: opts.Routes})
	for _, err := range errs {
		s.log.Warn("gateway backends", "err", err)
	}
	s.table.Store(t)
	s.keys.share = opts.LimitShare
	s.keys.Update(opts.Keys)
	return s
}

// Table is the current routing table.
func (s *Server) Table() *Table { return s.table.Load() }

// Run keeps the table and keys current from the Source and runs the health checker and the
// scraper, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	replicas := func() []*Replica { return s.table.Load().Replicas() }
	go s.health.Run(ctx, replicas)
	go s.scraper.Run(ctx, replicas)
	if s.opts.Source == nil {
		<-ctx.Done()
		return nil
	}
	return s.opts.Source.Run(ctx, s.rebuild)
}

// rebuild reads routes, services and keys, swaps in a new table, and sets the status of every
// Route the Source supplied: the gateway serving a route is the one to say how.
func (s *Server) rebuild(ctx context.Context) error {
	snap, err := s.opts.Source.Snapshot(ctx)
	if err != nil {
		return err
	}
	in := BuildInput{Routes: append(slices.Clone(s.opts.Routes), snap.Routes...), Services: snap.Services, Previous: s.table.Load()}
	services := map[string]*v1.InferenceService{}
	for _, o := range snap.Services {
		services[cmp.Or(o.Namespace, v1.DefaultNamespace)+"/"+o.Name] = o
	}
	t, errs := Build(in)
	for _, err := range errs {
		s.log.Warn("gateway route", "err", err)
	}
	s.table.Store(t)
	s.keys.Update(append(slices.Clone(s.opts.Keys), snap.Keys...))
	now := s.opts.Now()
	for _, r := range snap.Routes {
		if err := s.opts.Source.SetRouteStatus(ctx, r, RouteStatus(r, t, services, errs, s.opts.Addr, now)); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the OpenAI and Ollama fronts, /metrics and /healthz. With keys on, every
// endpoint that uses or lists models needs a key (and /metrics too with MetricsRequireKey);
// /, /healthz and /api/version stay open. A known path asked with the wrong method is 405
// with Allow.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.openAI("chat"))
	mux.HandleFunc("POST /v1/completions", s.openAI("completions"))
	mux.HandleFunc("POST /v1/embeddings", s.openAI("embeddings"))
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("GET /v1/models/{model...}", s.model)
	mux.HandleFunc("POST /api/chat", s.ollama("chat"))
	mux.HandleFunc("POST /api/generate", s.ollama("generate"))
	mux.HandleFunc("POST /api/embed", s.ollama("embed"))
	mux.HandleFunc("GET /api/tags", s.ollamaTags)
	mux.HandleFunc("POST /api/show", s.ollamaShow)
	mux.HandleFunc("GET /api/ps", s.ollamaPs)
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(OllamaVersion(s.opts.Version))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	metrics := s.met.handler(s)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if s.opts.MetricsRequireKey {
			if _, ok := s.authorized(w, r, false); !ok {
				return
			}
		}
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", s.other)
	return mux
}

// allowed is the methods of every fixed path the gateway serves, for 405's Allow.
var allowed = map[string]string{
	"/v1/chat/completions": "POST", "/v1/completions": "POST", "/v1/embeddings": "POST",
	"/v1/models": "GET, HEAD", "/api/chat": "POST", "/api/generate": "POST", "/api/embed": "POST",
	"/api/tags": "GET, HEAD", "/api/show": "POST", "/api/ps": "GET, HEAD", "/api/version": "GET, HEAD",
	"/healthz": "GET, HEAD", "/metrics": "GET, HEAD", "/": "GET, HEAD",
}

// other answers what no method pattern took: Ollama's probe of /, 405 with Allow for a known
// path asked with another method, 404 for the rest.
func (s *Server) other(w http.ResponseWriter, r *http.Request) {
	allow, known := allowed[r.URL.Path]
	if !known && strings.HasPrefix(r.URL.Path, "/v1/models/") {
		allow, known = "GET, HEAD", true
	}
	ollama := strings.HasPrefix(r.URL.Path, "/api/")
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		_, _ = io.WriteString(w, "Ollama is running") // what Ollama clients probe
	case known:
		w.Header().Set("Allow", allow)
		msg := fmt.Sprintf("Method %s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.ReplaceAll(allow, ", ", " or "))
		if ollama {
			writeOllamaError(w, http.StatusMethodNotAllowed, msg)
			return
		}
		writeOpenAIError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", msg)
	case ollama:
		writeOllamaError(w, http.StatusNotFound, "404 page not found: "+r.URL.Path+" is not an endpoint of this gateway's Ollama API")
	default:
		writeOpenAIError(w, http.StatusNotFound, "invalid_request_error", "not_found", "Unknown path "+r.URL.Path+": this gateway serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models and Ollama's /api/*")
	}
}

// authorized checks r's key when keys are required and answers 401 itself when it fails;
// the key is nil on an open gateway.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, ollama bool) (*Key, bool) {
	key, err := s.authenticate(r)
	if err != nil {
		s.authError(w, ollama, err)
		return nil, false
	}
	return key, true
}

// models is OpenAI's GET /v1/models: every public name, with max_model_len and capabilities.
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	type card struct {
		ID           string       `json:"id"`
		Object       string       `json:"object"`
		Created      int64        `json:"created"`
		OwnedBy      string       `json:"owned_by"`
		MaxModelLen  int          `json:"max_model_len,omitempty"`
		Capabilities []string     `json:"capabilities,omitempty"`
		Status       *modelStatus `json:"status,omitempty"` // on-demand models: residency.go
	}
	key, ok := s.authorized(w, r, false)
	if !ok {
		return
	}
	var data []card
	t, states := s.table.Load(), s.residencyStates()
	for _, m := range t.Models() {
		if key != nil && !key.Allowed(m.ID) {
			continue
		}
		cd := card{ID: m.ID, Object: "model", Created: 0, OwnedBy: "citadel", MaxModelLen: m.MaxModelLen, Capabilities: m.Capabilities}
		if st, ok := s.modelState(t, states, m.ID); ok {
			cd.Status = statusOf(st)
		}
		data = append(data, cd)
	}
	if data == nil {
		data = []card{}
	}
	writeJSON(w, http.StatusOK, struct {
		Object string `json:"object"`
		Data   []card `json:"data"`
	}{"list", data})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authorized(w, r, false)
	if !ok {
		return
	}
	id := r.PathValue("model")
	t := s.table.Load()
	for _, m := range t.Models() {
		if m.ID == id && key.Allowed(m.ID) {
			cd := map[string]any{"id": m.ID, "object": "model", "created": 0, "owned_by": "citadel"}
			if st, ok := s.modelState(t, s.residencyStates(), m.ID); ok {
				cd["status"] = statusOf(st)
			}
			writeJSON(w, http.StatusOK, cd)
			return
		}
	}
	s.notFound(w, false, &NotFoundError{Model: id, Available: s.publicNames(key)})
}

// authenticate returns r's key when keys are required (nil, nil when the gateway is open).
func (s *Server) authenticate(r *http.Request) (*Key, error) {
	if !s.keys.Required() {
		return nil, nil
	}
	return s.keys.Authenticate(r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
}

// publicNames lists the public models key may use (all for a nil key), sorted.
func (s *Server) publicNames(key *Key) []string {
	var names []string
	for _, m := range s.table.Load().Models() {
		if !key.Allowed(m.ID) {
			continue
		}
		names = append(names, m.ID)
	}
	slices.Sort(names)
	return names
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the response failed","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

package mirror

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Token is a credential the mirror accepts as "Authorization: Bearer <Value>".
// It never prints or logs its value.
type Token struct {
	User  string // reported by /api/whoami-v2
	Value string
}

// String hides the secret.
func (t Token) String() string { return t.User + ":hf_***" }

// GoString hides the secret from %#v.
func (t Token) GoString() string { return "mirror.Token{" + t.String() + "}" }

// LogValue hides the secret from log/slog.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalText hides the secret from encoders (JSON logs among them).
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Options configure a Server. The zero value of every field but Dir is usable.
type Options struct {
	// Dir is the mirrored directory (see the package documentation).
	Dir string
	// Tokens are the valid credentials. A repo's .mirror.json "tokens" pick
	// which may read it; a token listed there is valid for that repo even if
	// it is not in Tokens.
	Tokens []Token
	// TreePageSize is the number of entries per tree page (default 1000).
	TreePageSize int
	// CacheFile persists the hash cache; default DIR/.mirror-cache.json.
	// "-" disables persistence.
	CacheFile string
	// RedirectHost, when set, is the host (optionally host:port; the
	// request's port is kept otherwise) that LFS and blob redirects point
	// to. By default 127.0.0.1 and localhost swap, and other hosts redirect
	// to themselves (which Ollama's client does not accept for blobs).
	RedirectHost string
	// URLTTL is how long a signed LFS or blob URL stays valid (default 1h).
	URLTTL time.Duration
	// SigningKey signs LFS and blob URLs; default: random per Server.
	SigningKey []byte
	Logger     *slog.Logger
	// Now is the clock for URL expiry (default time.Now).
	Now func() time.Time
}

// Server serves a mirror directory. It is safe for concurrent use.
type Server struct {
	dir       string
	root      *os.Root
	log       *slog.Logger
	now       func() time.Time
	tokens    map[string]string // value → user
	pageSize  int
	redirect  string
	ttl       time.Duration
	key       []byte
	hashes    *hashCache
	faults    *faultTable
	stats     *stats
	handler   http.Handler
	closeOnce sync.Once
}

// New opens a mirror of opts.Dir. It does not hash anything yet.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("mirror: no directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("mirror: directory %s does not exist: create it with hf/<org>/<name>/ and/or ollama/ inside", dir)
	case err != nil:
		return nil, fmt.Errorf("mirror: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("mirror: %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	s := &Server{
		dir: dir, root: root, log: opts.Logger, now: opts.Now,
		tokens: map[string]string{}, pageSize: opts.TreePageSize, redirect: opts.RedirectHost,
		ttl: opts.URLTTL, key: opts.SigningKey, faults: newFaultTable(), stats: newStats(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.pageSize <= 0 {
		s.pageSize = 1000
	}
	if s.ttl <= 0 {
		s.ttl = time.Hour
	}
	if len(s.key) == 0 {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	for i, t := range opts.Tokens {
		if t.Value == "" {
			root.Close()
			return nil, fmt.Errorf("mirror: token %d (%s) is empty", i, t.User)
		}
		user := t.User
		if user == "" {
			user = "citadel"
		}
		s.tokens[t.Value] = user
	}
	cache := opts.CacheFile
	switch cache {
	case "":
		cache = filepath.Join(dir, ".mirror-cache.json")
	case "-":
		cache = ""
	}
	s.hashes = newHashCache(root, cache, s.log)
	s.handler = s.routes()
	return s, nil
}

// Dir is the absolute path of the mirrored directory.
func (s *Server) Dir() string { return s.dir }

// Handler serves the Hub, the Ollama registry and their download hosts.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully (stalled
// downloads are cut after 5 s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("mirror: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mirror: %w", err)
	}
	return nil
}

// Close writes the hash cache and releases the directory. Call it after the
// last request.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = errors.Join(s.hashes.flush(), s.root.Close())
	})
	return err
}

// HashStats summarises a Hash run.
type HashStats struct {
	Repos, Revisions, Files int
	Bytes                   int64
	Hashed                  int64 // files whose hashes were computed (not cached)
}

// Hash hashes every revision of every repo and writes the cache file,
// dropping entries of files that are gone.
func (s *Server) Hash(ctx context.Context) (HashStats, error) {
	var st HashStats
	before := s.hashes.computed.Load()
	seen := map[string]bool{}
	orgs, err := fs.ReadDir(s.root.FS(), "hf")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("mirror: %w", err)
	}
	var errs []error
	for _, org := range orgs {
		if !org.IsDir() || !validName(org.Name()) {
			continue
		}
		names, err := fs.ReadDir(s.root.FS(), path.Join("hf", org.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			if !n.IsDir() || !validName(n.Name()) {
				continue
			}
			rp, err := s.openRepo(org.Name(), n.Name())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			st.Repos++
			for _, rev := range rp.revisionNames() {
				snap, err := s.snapshot(ctx, rp, rev)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s@%s: %w", rp.id, rev, err))
					continue
				}
				st.Revisions++
				for _, e := range snap.files {
					if !seen[e.file] {
						seen[e.file] = true
						st.Files++
						st.Bytes += e.size
					}
				}
			}
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
	}
	st.Hashed = s.hashes.computed.Load() - before
	if len(errs) == 0 {
		s.hashes.prune(func(name string) bool { return seen[name] })
	}
	errs = append(errs, s.hashes.flush())
	return st, errors.Join(errs...)
}

// routes dispatches on the first path segment; each family has its own mux
// (one mux cannot hold both /api/models/{org}/{name}/… and /{org}/{name}/resolve/…).
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /api/models/{org}/{name}", s.modelInfo)
	api.HandleFunc("GET /api/models/{org}/{name}/revision/{rev}", s.modelInfo)
	api.HandleFunc("GET /api/models/{org}/{name}/tree/{rev}", s.tree)
	api.HandleFunc("GET /api/models/{org}/{name}/tree/{rev}/{path...}", s.tree)
	api.HandleFunc("POST /api/models/{org}/{name}/paths-info/{rev}", s.pathsInfo)
	api.HandleFunc("GET /api/whoami-v2", s.whoami)

	hub := http.NewServeMux()
	hub.HandleFunc("GET /{org}/{name}/resolve/{rev}/{path...}", s.resolve)

	cdn := http.NewServeMux()
	cdn.HandleFunc("GET /__lfs/{org}/{name}/{commit}/{path...}", s.lfs)
	cdn.HandleFunc("GET /__blob/{ns}/{model}/{digest}", s.blob)

	v2 := http.NewServeMux()
	v2.HandleFunc("GET /v2/{$}", s.registryBase)
	v2.HandleFunc("GET /v2/{ns}/{model}/manifests/{tag}", s.manifest)
	v2.HandleFunc("GET /v2/{ns}/{model}/blobs/{digest}", s.registryBlob)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := s.stats.begin(w, r.URL.Path)
		if !cleanURLPath(r.URL.Path) {
			writeJSON(sw, http.StatusBadRequest, map[string]string{"error": "Invalid path: " + strconv.Quote(r.URL.Path)})
			return
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch first {
		case "api":
			api.ServeHTTP(sw, r)
		case "v2":
			v2.ServeHTTP(sw, r)
		case "__lfs", "__blob":
			cdn.ServeHTTP(sw, r)
		default:
			hub.ServeHTTP(sw, r)
		}
	})
}

// cleanURLPath rejects paths with ".", ".." or empty segments (also when
// percent-encoded), so no handler ever sees one: the standard mux would
// otherwise redirect them.
func cleanURLPath(p string) bool {
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	trimmed := strings.TrimSuffix(p, "/")
	return trimmed == "" || path.Clean(trimmed) == trimmed
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// baseURL is the scheme and host the client used.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// otherHost is the URL prefix of "another host" on this listener, for
// redirects that must change host (CDN semantics).
func (s *Server) otherHost(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if s.redirect != "" {
		if _, _, err := net.SplitHostPort(s.redirect); err == nil || port == "" {
			return scheme + "://" + s.redirect
		}
		return scheme + "://" + net.JoinHostPort(s.redirect, port)
	}
	switch strings.ToLower(host) {
	case "127.0.0.1", "::1":
		host = "localhost"
	case "localhost":
		host = "127.0.0.1"
	}
	if port == "" {
		if strings.Contains(host, ":") {
			return scheme + "://[" + host + "]"
		}
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// sign returns the query string of a signed URL for the given fields.
func (s *Server) sign(fields ...string) string {
	exp := strconv.FormatInt(s.now().Add(s.ttl).Unix(), 10)
	return "expires=" + exp + "&signature=" + s.mac(exp, fields)
}

func (s *Server) mac(exp string, fields []string) string {
	m := hmac.New(sha256.New, s.key)
	io.WriteString(m, exp)
	for _, f := range fields {
		io.WriteString(m, "\x00"+f)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks a signed URL's query; the error is meant for the client.
func (s *Server) verify(r *http.Request, fields ...string) error {
	q := r.URL.Query()
	exp := q.Get("expires")
	sig := q.Get("signature")
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sig == "" {
		return errors.New("missing or malformed signature: request the file through its resolve URL")
	}
	if !hmac.Equal([]byte(sig), []byte(s.mac(exp, fields))) {
		return errors.New("signature does not match: request the file through its resolve URL")
	}
	if s.now().Unix() > t {
		return errors.New("request has expired: request the file through its resolve URL again")
	}
	return nil
}

// escapePath percent-escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// Counter counts requests and the body bytes written for them.
type Counter struct {
	Requests int64
	Bytes    int64
}

// Stats are the request counts since New or ResetRequests.
type Stats struct {
	// Paths is keyed by URL path (no query).
	Paths map[string]Counter
	// Files is keyed by the served file's path in DIR, slash-separated
	// ("hf/org/name/model.safetensors", "ollama/blobs/sha256-…"); it counts
	// the requests that sent file bytes (resolve GET of a small file, the
	// LFS and blob hosts), whatever URL they used.
	Files map[string]Counter
}

// Requests returns the request counts so far.
func (s *Server) Requests() Stats { return s.stats.snapshot() }

// ResetRequests zeroes the request counts.
func (s *Server) ResetRequests() { s.stats.reset() }

type counter struct{ requests, bytes atomic.Int64 }

type stats struct {
	mu    sync.Mutex
	paths map[string]*counter
	files map[string]*counter
}

func newStats() *stats {
	return &stats{paths: map[string]*counter{}, files: map[string]*counter{}}
}

// get returns the counter of key among files or paths.
func (st *stats) get(files bool, key string) *counter {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.paths
	if files {
		m = st.files
	}
	c := m[key]
	if c == nil {
		c = &counter{}
		m[key] = c
	}
	return c
}

func (st *stats) begin(w http.ResponseWriter, urlPath string) *statsWriter {
	c := st.get(false, urlPath)
	c.requests.Add(1)
	return &statsWriter{ResponseWriter: w, st: st, counters: []*counter{c}}
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Stats{Paths: map[string]Counter{}, Files: map[string]Counter{}}
	for k, c := range st.paths {
		out.Paths[k] = Counter{c.requests.Load(), c.bytes.Load()}
	}
	for k, c := range st.files {
		out.Files[k] = Counter{c.requests.Load(), c.bytes.Load()}
	}
	return out
}

func (st *stats) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.paths = map[string]*counter{}
	st.files = map[string]*counter{}
}

// statsWriter counts body bytes. It keeps the ResponseWriter's ReadFrom so
// files still go out with sendfile(2).
type statsWriter struct {
	http.ResponseWriter
	st       *stats
	counters []*counter
}

// countFile attributes this request to a served file.
func countFile(w http.ResponseWriter, file string) {
	if sw, ok := w.(*statsWriter); ok {
		c := sw.st.get(true, file)
		c.requests.Add(1)
		sw.counters = append(sw.counters, c)
	}
}

func (sw *statsWriter) add(n int64) {
	for _, c := range sw.counters {
		c.bytes.Add(n)
	}
}

func (sw *statsWriter) Write(p []byte) (int, error) {
	n, err := sw.ResponseWriter.Write(p)
	sw.add(int64(n))
	return n, err
}

func (sw *statsWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := sw.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(r)
		sw.add(n)
		return n, err
	}
	return io.Copy(struct{ io.Writer }{sw}, r)
}

func (sw *statsWriter) Flush() { _ = http.NewResponseController(sw.ResponseWriter).Flush() }

func (sw *statsWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

var (
	_ io.ReaderFrom = (*statsWriter)(nil)
	_ http.Flusher  = (*statsWriter)(nil)
	_ http.Flusher  = (*faultWriter)(nil)
)

package mirror

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"citadel.dev/citadel/internal/hub"
	"citadel.dev/citadel/internal/netclass"
	"citadel.dev/citadel/internal/registry"
)

// CacheOptions configure a [Cache]. The zero value of every field but Dir is usable.
type CacheOptions struct {
	// Dir holds the cached files and metadata; it is created if missing.
	Dir string
	// Upstream is the Hugging Face Hub endpoint; default https://huggingface.co.
	Upstream string
	// OllamaUpstream is the Ollama registry's base URL; default https://registry.ollama.ai.
	OllamaUpstream string
	// APITTL is how long an API answer (model info, tree, paths-info, file metadata, an Ollama manifest)
	// about a branch or tag is reused without asking upstream; default 30 s. Answers about a 40-hex commit
	// are kept for good.
	APITTL time.Duration
	// HTTPClient sends every upstream request (through internal/hub and internal/registry's clients);
	// default: theirs.
	HTTPClient *http.Client
	// RedirectHost is as in [Options]: Ollama blob GETs are redirected to it (default 127.0.0.1 <-> localhost).
	RedirectHost string
	// StreamFrom is the size from which a file being fetched is sent to waiting clients as it arrives
	// (its last byte only once verified); smaller files are sent once fetched and verified. Default 8 MiB.
	StreamFrom int64
	Logger     *slog.Logger
	// Now is the clock of the API cache and of verification failures; default time.Now.
	Now func() time.Time
}

// Cache is a pull-through cache of a Hugging Face Hub and an Ollama registry: API calls are forwarded (with
// the client's Authorization) and kept briefly; files and blobs are fetched from upstream once, verified,
// and then served from Dir with Range support.
//
// Layout of Dir:
//
//	hf/blobs/<etag>                   a Hub file by its ETag (sha256 for LFS files, git blob sha1 otherwise)
//	ollama/blobs/sha256-<hex>         an Ollama blob (the layout of an Ollama models directory)
//	*.partial                         an upstream fetch in progress or interrupted (resumed with Range)
//	meta/<sha256 of the key>.json     API answers and file metadata, for the TTL or, for commits, for good
type Cache struct {
	dir      string
	upstream string
	reg      *registry.Client
	regURL   string
	hc       *http.Client
	ttl      time.Duration
	stream   int64
	log      *slog.Logger
	now      func() time.Time
	redirect *Server // only for otherHost
	ctx      context.Context
	cancel   context.CancelFunc
	handler  http.Handler

	mu       sync.Mutex
	fetches  map[string]*fetch    // cache file → the upstream fetch in flight
	rejected map[string]rejection // cache file → its last verification failure
	meta     map[string]stored
}

// fetch is one upstream fetch; done closes when err is set.
type fetch struct {
	done    chan struct{}
	err     error
	partial string

	mu      sync.Mutex
	written int64         // bytes in partial
	wake    chan struct{} // closed (and replaced) when written grows
}

func (f *fetch) grew(n int64) {
	f.mu.Lock()
	f.written += n
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

func (f *fetch) state() (int64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.written, f.wake
}

// rejection is a verification failure, answered again for a minute instead of fetching the same bad bytes.
type rejection struct {
	err error
	at  time.Time
}

// rejectFor is how long a verification failure is answered without asking upstream again.
const rejectFor = time.Minute

// stored is a cached API answer or file metadata.
type stored struct {
	Time   time.Time       `json:"time"`
	Pinned bool            `json:"pinned,omitempty"`
	Status int             `json:"status,omitempty"`
	Header http.Header     `json:"header,omitempty"`
	Body   []byte          `json:"body,omitempty"`
	Meta   json.RawMessage `json:"meta,omitempty"`
}

// NewCache opens (creating) the cache directory.
func NewCache(opts CacheOptions) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("mirror cache: no directory given (--cache)")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	for _, d := range []string{"hf/blobs", "ollama/blobs", "meta"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(d)), 0o755); err != nil {
			return nil, fmt.Errorf("mirror cache: cannot create %s: %w (check --cache and its permissions)", filepath.Join(dir, d), err)
		}
	}
	c := &Cache{
		dir: dir, upstream: strings.TrimRight(opts.Upstream, "/"), hc: opts.HTTPClient, ttl: opts.APITTL,
		log: opts.Logger, now: opts.Now, redirect: &Server{redirect: opts.RedirectHost},
		fetches: map[string]*fetch{}, rejected: map[string]rejection{}, meta: map[string]stored{}, stream: opts.StreamFrom,
	}
	if c.stream <= 0 {
		c.stream = 8 << 20
	}
	if c.upstream == "" {
		c.upstream = hub.DefaultEndpoint
	}
	if u, err := url.Parse(c.upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mirror cache: upstream %q is not an http(s) URL, e.g. %s", c.upstream, hub.DefaultEndpoint)
	}
	reg := strings.TrimRight(opts.OllamaUpstream, "/")
	if reg == "" {
		reg = "https://" + registry.DefaultHost
	}
	if u, err := url.Parse(reg); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mirror cache: Ollama upstream %q is not an http(s) URL, e.g. https://%s", reg, registry.DefaultHost)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: upstreamTransport()}
	}
	if c.ttl <= 0 {
		c.ttl = 30 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.regURL = reg
	c.reg = registry.New(registry.Options{Registry: reg, HTTPClient: c.hc, Retry: registry.Retry{Tries: 2, Base: 200 * time.Millisecond}})
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.handler = c.routes()
	return c, nil
}

// upstreamTransport has the dial, TLS and header timeouts of the hub and registry clients' defaults.
func upstreamTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// Dir is the absolute path of the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Handler serves the Hub and the Ollama registry from the cache.
func (c *Cache) Handler() http.Handler { return c.handler }

// Close stops the upstream fetches in flight (their partial files stay, to be resumed).
func (c *Cache) Close() error {
	c.cancel()
	return nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (c *Cache) Serve(ctx context.Context, ln net.Listener) error {
	s := &Server{handler: c.handler, log: c.log}
	return s.Serve(ctx, ln)
}

func (c *Cache) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /v2/{ns}/{model}/manifests/{tag}", c.manifest)
	mux.HandleFunc("GET /v2/{ns}/{model}/blobs/{digest}", c.registryBlob)
	mux.HandleFunc("GET /__blob/{ns}/{model}/{digest}", c.blob)
	hubMux := http.NewServeMux()
	hubMux.HandleFunc("GET /{org}/{name}/resolve/{rev}/{path...}", c.resolve)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanURLPath(r.URL.Path) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Invalid path: " + strconv.Quote(r.URL.Path)})
			return
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch first {
		case "api":
			c.api(w, r)
		case "v2", "__blob":
			mux.ServeHTTP(w, r)
		default:
			hubMux.ServeHTTP(w, r)
		}
	})
}

// key names a cached answer: what was asked, and by whom (a hash of the Authorization header, so private
// answers are never shared between tokens).
func key(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p+"\x00")
	}
	return hex.EncodeToString(h.Sum(nil))
}

func authKey(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if a == "" {
		return "-"
	}
	sum := sha256.Sum256([]byte(a))
	return hex.EncodeToString(sum[:])
}

// load returns a cached entry and whether it is still fresh.
func (c *Cache) load(k string) (stored, bool, bool) {
	c.mu.Lock()
	e, ok := c.meta[k]
	c.mu.Unlock()
	if !ok {
		b, err := os.ReadFile(filepath.Join(c.dir, "meta", k+".json"))
		if err != nil || json.Unmarshal(b, &e) != nil {
			return stored{}, false, false
		}
		c.remember(k, e)
	}
	return e, true, e.Pinned || c.now().Sub(e.Time) < c.ttl
}

// remember keeps small entries in memory; large ones (a big repository's tree) are read from disk.
func (c *Cache) remember(k string, e stored) {
	if len(e.Body)+len(e.Meta) > maxMemEntry {
		return
	}
	c.mu.Lock()
	c.meta[k] = e
	c.mu.Unlock()
}

// maxMemEntry bounds the API answers kept in memory.
const maxMemEntry = 256 << 10

// save keeps an entry in memory and on disk (so that a restart, or an upstream outage, still has it).
func (c *Cache) save(k string, e stored) {
	e.Time = c.now()
	c.remember(k, e)
	b, _ := json.Marshal(e)
	if err := writeFileAtomic(filepath.Join(c.dir, "meta", k+".json"), b); err != nil {
		c.log.Warn("mirror cache cannot store metadata; it will be asked upstream again after a restart", "err", err)
	}
}

// pinnedRev reports whether an API path names a 40-hex commit:
// /api/models/{org}/{name}/{revision|tree|paths-info}/{rev}[/…].
func pinnedRev(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) < 7 || parts[1] != "api" || parts[2] != "models" {
		return false
	}
	switch parts[5] {
	case "revision", "tree", "paths-info":
		rev, err := url.PathUnescape(parts[6])
		return err == nil && hub.IsCommit(rev)
	}
	return false
}

// forwarded are the response headers an API answer keeps.
var forwarded = []string{"Content-Type", "Link", "X-Repo-Commit", "X-Error-Code", "X-Error-Message", "Retry-After", "Ratelimit", "Ratelimit-Policy", "Www-Authenticate"}

// api forwards a Hub API request upstream with the client's Authorization, and caches 200 answers.
func (c *Cache) api(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20)); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Invalid request body: " + err.Error()})
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "The mirror cache only forwards GET, HEAD and POST"})
		return
	}
	k := key("api", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(body), authKey(r))
	cached, have, fresh := c.load(k)
	if have && fresh {
		c.writeStored(w, r, cached, "")
		return
	}
	target := c.upstream + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, strings.NewReader(string(body)))
	if err == nil {
		for _, h := range []string{"Authorization", "Content-Type", "Accept", "User-Agent"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		req.Header.Set("Accept-Encoding", "identity")
	}
	var resp *http.Response
	if err == nil {
		resp, err = c.hc.Do(req)
	}
	var b []byte
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode >= 500 {
		why := ""
		if err != nil {
			why = netclass.RedactURL(target) + ": " + err.Error()
		} else {
			why = fmt.Sprintf("%s answered %d", netclass.RedactURL(target), resp.StatusCode)
		}
		if have {
			c.log.Warn("mirror cache: upstream unavailable, answering from the cache", "url", netclass.RedactURL(target), "reason", why)
			c.writeStored(w, r, cached, "110 - \"Response is Stale\"")
			return
		}
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			c.unavailable(w, target, err)
			return
		}
	}
	e := stored{Status: resp.StatusCode, Header: http.Header{}, Body: b, Pinned: pinnedRev(r.URL.Path)}
	for _, h := range forwarded {
		if v := resp.Header.Values(h); len(v) > 0 {
			e.Header[h] = v
		}
	}
	if l := e.Header.Get("Link"); l != "" { // pagination points at us, not upstream
		e.Header.Set("Link", strings.ReplaceAll(l, c.upstream, "{base}"))
	}
	if resp.StatusCode == http.StatusOK {
		c.save(k, e)
	}
	c.writeStored(w, r, e, "")
}

func (c *Cache) writeStored(w http.ResponseWriter, r *http.Request, e stored, warning string) {
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if l := h.Get("Link"); l != "" {
		h.Set("Link", strings.ReplaceAll(l, "{base}", baseURL(r)))
	}
	if warning != "" {
		h.Set("Warning", warning)
	}
	h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		w.Write(e.Body)
	}
}

// unavailable answers 504 (upstream unreachable or silent) or 502 (anything else) and says which upstream.
func (c *Cache) unavailable(w http.ResponseWriter, target string, err error) {
	status := http.StatusBadGateway
	var ne net.Error
	var na *hub.NoAnswerError
	if errors.As(err, &ne) || errors.As(err, &na) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	msg := fmt.Sprintf("Mirror cache: upstream %s is unavailable and this is not cached: %v", netclass.RedactURL(target), err)
	c.log.Warn("mirror cache: upstream unavailable", "url", netclass.RedactURL(target), "err", err)
	w.Header().Set("X-Error-Message", headerSafe(msg))
	writeJSON(w, status, map[string]string{"error": msg})
}

// headerSafe keeps a message fit for a header value.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}

// hubClient is a client of the upstream Hub with the request's token.
func (c *Cache) hubClient(r *http.Request) *hub.Client {
	return hub.New(hub.Options{Endpoint: c.upstream, Token: bearer(r), HTTPClient: c.hc, Retry: hub.Retry{Tries: 2, Base: 200 * time.Millisecond}})
}

// definitive reports whether an upstream error is an answer about the request (no access, no such repo,
// revision or file) rather than a failure of the upstream: such answers are passed on, never covered with
// a stale cached one.
func definitive(err error) bool {
	var (
		rnf *hub.RepoNotFoundError
		gr  *hub.GatedRepoError
		rev *hub.RevisionNotFoundError
		enf *hub.EntryNotFoundError
		un  *hub.UnauthorizedError
		he  *hub.HTTPError
		nf  *registry.NotFoundError
		rhe *registry.HTTPError
	)
	switch {
	case errors.As(err, &rnf), errors.As(err, &gr), errors.As(err, &rev), errors.As(err, &enf), errors.As(err, &un), errors.As(err, &nf):
		return true
	case errors.As(err, &he):
		return he.Status < 500 && he.Status != http.StatusTooManyRequests
	case errors.As(err, &rhe):
		return rhe.Status < 500 && rhe.Status != http.StatusTooManyRequests
	}
	return false
}

// hubFail passes an upstream Hub error on with its status and error code, so the client reports it as if
// it had talked to the Hub itself.
func (c *Cache) hubFail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	var (
		rnf *hub.RepoNotFoundError
		gr  *hub.GatedRepoError
		rev *hub.RevisionNotFoundError
		enf *hub.EntryNotFoundError
		un  *hub.UnauthorizedError
		rl  *hub.RateLimitedError
		he  *hub.HTTPError
		ve  *verifyError
	)
	he2 := &hubError{status: http.StatusBadGateway, msg: "Mirror cache: " + err.Error()}
	switch {
	case errors.As(err, &ve):
		he2.msg = ve.Error()
	case errors.As(err, &rnf):
		he2.status, he2.code, he2.msg = http.StatusNotFound, "RepoNotFound", rnf.Message
		if !rnf.Authenticated {
			he2.status = http.StatusUnauthorized
		}
	case errors.As(err, &gr):
		he2.status, he2.code, he2.msg = http.StatusForbidden, "GatedRepo", gr.Message
		if !gr.Authenticated {
			he2.status = http.StatusUnauthorized
		}
	case errors.As(err, &rev):
		he2.status, he2.code, he2.msg = http.StatusNotFound, "RevisionNotFound", rev.Message
	case errors.As(err, &enf):
		he2.status, he2.code, he2.msg, he2.commit = http.StatusNotFound, "EntryNotFound", enf.Message, enf.Commit
	case errors.As(err, &un):
		he2.status, he2.msg = http.StatusUnauthorized, un.Message
	case errors.As(err, &rl):
		he2.status, he2.msg = http.StatusTooManyRequests, rl.Message
		if rl.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.5)))
		}
	case errors.As(err, &he) && he.Status < 500:
		he2.status, he2.code, he2.msg = he.Status, he.Code, he.Message
	default:
		c.unavailable(w, c.upstream, err)
		return
	}
	if he2.msg == "" {
		he2.msg = err.Error()
	}
	(&Server{log: c.log}).fail(w, r, he2)
}

// verifyError is an upstream file whose bytes do not match its hash or size; nothing was cached.
type verifyError struct {
	url, what string
}

func (e *verifyError) Error() string {
	return "Mirror cache: the upstream file failed verification (" + e.what + "); nothing was cached; the cache asks upstream again after a minute (report it to the upstream if it persists): " + netclass.RedactURL(e.url)
}

// fileMeta is FileMeta of the upstream, cached for the TTL (a commit: for good) and used stale when the
// upstream is unavailable.
func (c *Cache) fileMeta(r *http.Request, repo, rev, p string) (*hub.FileMeta, error) {
	k := key("meta", repo, rev, p, authKey(r))
	cached, have, fresh := c.load(k)
	var m hub.FileMeta
	if have && fresh && json.Unmarshal(cached.Meta, &m) == nil {
		return &m, nil
	}
	got, err := c.hubClient(r).FileMeta(r.Context(), repo, rev, p)
	if err != nil {
		if have && !definitive(err) && json.Unmarshal(cached.Meta, &m) == nil {
			c.log.Warn("mirror cache: upstream unavailable, using cached file metadata", "repo", repo, "revision", rev, "path", p, "err", err)
			return &m, nil
		}
		return nil, err
	}
	b, _ := json.Marshal(got)
	c.save(k, stored{Pinned: hub.IsCommit(rev), Meta: b})
	return got, nil
}

// resolve serves HEAD|GET /{org}/{name}/resolve/{rev}/{path}: the file itself (200/206, no redirect),
// from the cache, fetched from upstream first if needed.
func (c *Cache) resolve(w http.ResponseWriter, r *http.Request) {
	repo, rev, p := r.PathValue("org")+"/"+r.PathValue("name"), r.PathValue("rev"), r.PathValue("path")
	m, err := c.fileMeta(r, repo, rev, p)
	if err != nil {
		c.hubFail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", m.Commit)
	h.Set("ETag", `"`+m.ETag+`"`)
	if m.LFS {
		h.Set("X-Linked-Etag", `"`+m.ETag+`"`)
		h.Set("X-Linked-Size", strconv.FormatInt(m.Size, 10))
	}
	file := filepath.Join(c.dir, "hf", "blobs", m.ETag)
	if r.Method == http.MethodHead {
		h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		return
	}
	hc := c.hubClient(r)
	f, err := c.ensure(r.Context(), file, m.Size, hubHash(m), func(ctx context.Context) (string, func(int64) (io.ReadCloser, error), error) {
		fresh, err := hc.FileMeta(ctx, repo, m.Commit, p) // a fresh (signed) download URL
		if err != nil {
			return m.Location, nil, err
		}
		if fresh.ETag != m.ETag || fresh.Size != m.Size {
			return fresh.Location, nil, &verifyError{url: fresh.Location, what: fmt.Sprintf("upstream now says ETag %s, %d bytes; it said %s, %d bytes", fresh.ETag, fresh.Size, m.ETag, m.Size)}
		}
		return fresh.Location, func(start int64) (io.ReadCloser, error) {
			body, _, err := hc.Get(ctx, fresh.Location, start, -1)
			return body, err
		}, nil
	})
	if err != nil {
		c.hubFail(w, r, err)
		return
	}
	c.serveFetch(w, r, f, file, m.Size)
}

// hubHash is how a Hub file is verified: sha256 for LFS files, the git blob sha1 for others (the Hub's
// ETag of a small file), else its size only.
func hubHash(m *hub.FileMeta) func() (hash.Hash, string) {
	switch {
	case m.LFS:
		return func() (hash.Hash, string) { return sha256.New(), m.ETag }
	case len(m.ETag) == 40:
		return func() (hash.Hash, string) {
			h := sha1.New()
			fmt.Fprintf(h, "blob %d\x00", m.Size)
			return h, m.ETag
		}
	}
	return nil
}

func (c *Cache) serveCached(w http.ResponseWriter, r *http.Request, file, contentType string) {
	f, err := os.Open(file)
	if err != nil {
		c.log.Error("mirror cache: cached file vanished", "file", file, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Mirror cache: the cached file cannot be read; retry"})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", contentType)
	http.ServeContent(w, r, "", time.Time{}, f)
}

// ensure makes file present and verified, or, for a file of StreamFrom bytes or more, returns the fetch
// in flight to stream from. A file already cached returns (nil, nil) at once; otherwise there is one
// upstream fetch per file, started by the first request, which the others wait for or stream from. The
// fetch runs on the Cache's context, not the request's, so a client that gives up does not waste what has
// arrived. begin returns the upstream URL (for messages) and an opener of the body from a byte offset.
func (c *Cache) ensure(ctx context.Context, file string, size int64, newHash func() (hash.Hash, string), begin func(context.Context) (string, func(int64) (io.ReadCloser, error), error)) (*fetch, error) {
	if fi, err := os.Stat(file); err == nil && fi.Size() == size {
		return nil, nil
	}
	c.mu.Lock()
	if r, ok := c.rejected[file]; ok && c.now().Sub(r.at) < rejectFor {
		c.mu.Unlock()
		return nil, r.err
	}
	f := c.fetches[file]
	if f == nil {
		f = &fetch{done: make(chan struct{}), partial: file + ".partial", wake: make(chan struct{})}
		c.fetches[file] = f
		go func() {
			err := c.fetch(f, file, size, newHash, begin)
			c.mu.Lock()
			var ve *verifyError
			if errors.As(err, &ve) {
				c.rejected[file] = rejection{err, c.now()}
			} else {
				delete(c.rejected, file)
			}
			f.err = err
			delete(c.fetches, file)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	if size >= c.stream {
		return f, nil
	}
	select {
	case <-f.done:
		return nil, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// growing reads a file while its fetch writes it: a read past what has arrived waits for more, and the last
// byte waits for verification. A failed fetch fails the read (the client sees a cut transfer and retries).
type growing struct {
	ctx       context.Context
	f         *fetch
	final     string
	size, off int64
	file      *os.File
}

func (g *growing) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		g.off = off
	case io.SeekCurrent:
		g.off += off
	case io.SeekEnd:
		g.off = g.size + off
	}
	if g.off < 0 {
		return 0, errors.New("seek before the start")
	}
	return g.off, nil
}

func (g *growing) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	for {
		w, wake := g.f.state()
		done := false
		select {
		case <-g.f.done:
			if g.f.err != nil {
				return 0, g.f.err
			}
			done = true
		default:
			w = min(w, g.size-1) // the last byte only once verified
		}
		if g.off < w {
			if g.file == nil {
				var err error
				if g.file, err = os.Open(g.f.partial); err != nil {
					// Renamed into place, or deleted after a failed verification: the fetch is ending.
					select {
					case <-g.f.done:
					case <-g.ctx.Done():
						return 0, g.ctx.Err()
					}
					if g.f.err != nil {
						return 0, g.f.err
					}
					if g.file, err = os.Open(g.final); err != nil {
						return 0, err
					}
				}
			}
			n, err := g.file.ReadAt(p[:min(int64(len(p)), w-g.off)], g.off)
			g.off += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		if done {
			return 0, io.ErrUnexpectedEOF
		}
		select {
		case <-wake:
		case <-g.f.done:
		case <-g.ctx.Done():
			return 0, g.ctx.Err()
		}
	}
}

func (g *growing) Close() {
	if g.file != nil {
		g.file.Close()
	}
}

// serveFetch serves file: from the cache, or streamed from its fetch f.
func (c *Cache) serveFetch(w http.ResponseWriter, r *http.Request, f *fetch, file string, size int64) {
	if f == nil {
		c.serveCached(w, r, file, "application/octet-stream")
		return
	}
	g := &growing{ctx: r.Context(), f: f, final: file, size: size}
	defer g.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(flusher{w}, r, "", time.Time{}, g)
}

// flusher sends each write at once, so a client sees a streamed file's bytes (and headers) as they arrive.
type flusher struct{ http.ResponseWriter }

func (f flusher) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	_ = http.NewResponseController(f.ResponseWriter).Flush()
	return n, err
}

// fetch downloads file from upstream into file.partial, resuming what a failed fetch left, verifies it and
// renames it into place. A verification failure deletes the partial file.
func (c *Cache) fetch(fe *fetch, file string, size int64, newHash func() (hash.Hash, string), begin func(context.Context) (string, func(int64) (io.ReadCloser, error), error)) error {
	ctx := c.ctx
	partial := fe.partial
	src, open, err := begin(ctx)
	if err != nil {
		var ve *verifyError
		if errors.As(err, &ve) {
			c.log.Error("mirror cache: upstream file failed verification", "url", netclass.RedactURL(ve.url), "reason", ve.what)
		}
		return err
	}
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cannot write the cache: %w", err)
	}
	defer f.Close()
	have, _ := f.Seek(0, io.SeekEnd)
	if have > size {
		have = 0
	}
	if err := f.Truncate(have); err != nil {
		return fmt.Errorf("cannot write the cache: %w", err)
	}
	fe.grew(have)
	var h hash.Hash
	var want string
	if newHash != nil {
		h, want = newHash()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
			return fmt.Errorf("cannot read the cache: %w", err)
		}
	}
	if have < size {
		body, err := open(have)
		var ri *hub.RangeIgnoredError
		var rri *registry.RangeIgnoredError
		if have > 0 && (errors.As(err, &ri) || errors.As(err, &rri)) {
			have = 0
			fe.grew(-fe.written)
			if newHash != nil {
				h, _ = newHash()
			}
			if err = f.Truncate(0); err == nil {
				body, err = open(0)
			}
		}
		if err != nil {
			return err
		}
		defer body.Close()
		if _, err := f.Seek(have, io.SeekStart); err != nil {
			return err
		}
		var w io.Writer = f
		if h != nil {
			w = io.MultiWriter(f, h)
		}
		w = grower{w, fe}
		n, err := io.Copy(w, io.LimitReader(body, size-have+1))
		have += n
		if have > size {
			return c.reject(partial, src, fmt.Sprintf("more than the %d bytes announced", size))
		}
		if err != nil || have < size {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			c.log.Warn("mirror cache: upstream fetch interrupted; the next request resumes it", "url", netclass.RedactURL(src), "have", have, "size", size, "err", err)
			return fmt.Errorf("upstream fetch of %s stopped after %d of %d bytes (%v); the next request resumes it", netclass.RedactURL(src), have, size, err)
		}
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return c.reject(partial, src, fmt.Sprintf("content hash %s, expected %s", got, want))
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot write the cache: %w", err)
	}
	if err := os.Rename(partial, file); err != nil {
		return fmt.Errorf("cannot write the cache: %w", err)
	}
	c.log.Info("mirror cache: fetched from upstream", "url", netclass.RedactURL(src), "bytes", size)
	return nil
}

// grower reports each write to the fetch's readers.
type grower struct {
	w io.Writer
	f *fetch
}

func (g grower) Write(p []byte) (int, error) {
	n, err := g.w.Write(p)
	g.f.grew(int64(n))
	return n, err
}

func (c *Cache) reject(partial, src, what string) error {
	os.Remove(partial)
	c.log.Error("mirror cache: upstream file failed verification; deleted", "url", netclass.RedactURL(src), "reason", what)
	return &verifyError{url: src, what: what}
}

// manifest serves HEAD|GET /v2/{ns}/{model}/manifests/{tag} from upstream, cached for the TTL and used
// stale when the upstream is unavailable.
func (c *Cache) manifest(w http.ResponseWriter, r *http.Request) {
	ns, model, tag := r.PathValue("ns"), r.PathValue("model"), r.PathValue("tag")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if !validName(ns) || !validName(model) || !tagRE.MatchString(tag) {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown")
		return
	}
	k := key("manifest", ns, model, tag)
	cached, have, fresh := c.load(k)
	raw := cached.Body
	if !have || !fresh {
		_, got, err := c.reg.Manifest(r.Context(), registry.Name{Host: registry.DefaultHost, Namespace: ns, Model: model, Tag: tag})
		switch {
		case err == nil:
			raw = got
			c.save(k, stored{Body: raw})
		case have && !definitive(err):
			c.log.Warn("mirror cache: upstream unavailable, using the cached manifest", "model", ns+"/"+model+":"+tag, "err", err)
		default:
			c.registryFail(w, r, err)
			return
		}
	}
	sum := sha256.Sum256(raw)
	h := w.Header()
	h.Set("Content-Type", manifestMediaType)
	h.Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
	h.Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(raw)
	}
}

func (c *Cache) registryFail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	var nf *registry.NotFoundError
	var he *registry.HTTPError
	var ve *verifyError
	switch {
	case errors.As(err, &ve):
		registryError(w, http.StatusBadGateway, "UNKNOWN", ve.Error())
	case errors.As(err, &nf) && nf.Digest != "":
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to the upstream registry: "+nf.Digest)
	case errors.As(err, &nf):
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown to the upstream registry: "+nf.Name)
	case errors.As(err, &he) && he.Status < 500:
		registryError(w, he.Status, he.Code, he.Message)
	default:
		c.unavailable(w, c.regURL, err)
	}
}

// registryBlob serves HEAD (size) and GET (307 to the blob host, as the real registry and the directory
// mirror do) of /v2/{ns}/{model}/blobs/sha256:{hex}.
func (c *Cache) registryBlob(w http.ResponseWriter, r *http.Request) {
	ns, model, digest := r.PathValue("ns"), r.PathValue("model"), r.PathValue("digest")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	hexDigest, ok := blobDigest(digest)
	if !ok || !validName(ns) || !validName(model) {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content: "+digest)
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Location", c.redirect.otherHost(r)+"/__blob/"+ns+"/"+model+"/"+digest)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	size, err := c.blobSize(r, ns, model, digest, hexDigest)
	if err != nil {
		c.registryFail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", digest)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
}

// blobSize is the size of a cached blob, else upstream's (cached: a digest never changes).
func (c *Cache) blobSize(r *http.Request, ns, model, digest, hexDigest string) (int64, error) {
	if fi, err := os.Stat(filepath.Join(c.dir, "ollama", "blobs", "sha256-"+hexDigest)); err == nil {
		return fi.Size(), nil
	}
	k := key("blobsize", digest)
	if e, have, _ := c.load(k); have {
		return strconv.ParseInt(string(e.Body), 10, 64)
	}
	_, size, err := c.reg.BlobURL(r.Context(), registry.Name{Host: registry.DefaultHost, Namespace: ns, Model: model, Tag: registry.DefaultTag}, digest)
	if err != nil {
		return 0, err
	}
	c.save(k, stored{Pinned: true, Body: []byte(strconv.FormatInt(size, 10))})
	return size, nil
}

// blob serves GET /__blob/{ns}/{model}/{digest} from the cache, fetching and verifying it first if needed.
func (c *Cache) blob(w http.ResponseWriter, r *http.Request) {
	ns, model, digest := r.PathValue("ns"), r.PathValue("model"), r.PathValue("digest")
	hexDigest, ok := blobDigest(digest)
	if !ok || !validName(ns) || !validName(model) {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", "provided digest did not match uploaded content: "+digest)
		return
	}
	size, err := c.blobSize(r, ns, model, digest, hexDigest)
	if err != nil {
		c.registryFail(w, r, err)
		return
	}
	file := filepath.Join(c.dir, "ollama", "blobs", "sha256-"+hexDigest)
	name := registry.Name{Host: registry.DefaultHost, Namespace: ns, Model: model, Tag: registry.DefaultTag}
	f, err := c.ensure(r.Context(), file, size, func() (hash.Hash, string) { return sha256.New(), hexDigest }, func(ctx context.Context) (string, func(int64) (io.ReadCloser, error), error) {
		u, _, err := c.reg.BlobURL(ctx, name, digest)
		if err != nil {
			return c.regURL, nil, err
		}
		return u, func(start int64) (io.ReadCloser, error) { return c.reg.Get(ctx, u, start, -1) }, nil
	})
	if err != nil {
		c.registryFail(w, r, err)
		return
	}
	w.Header().Set("Docker-Content-Digest", digest)
	c.serveFetch(w, r, f, file, size)
}

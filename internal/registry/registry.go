// Package registry is a client for the Ollama registry (registry.ollama.ai), a subset of the Docker
// Registry v2 protocol: manifests, blob locations and ranged blob downloads, with the anonymous bearer-token
// flow (https://distribution.github.io/distribution/spec/auth/token/). ollama pull's side of it is
// https://github.com/ollama/ollama/blob/main/server/download.go; docs/mirror.md ("Endpoints") tables the answers.
//
// A [Client] is safe for concurrent use; it caches the bearer tokens it obtains, per registry host and
// repository, and sends a token only to the host that asked for it.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"citadel.dev/citadel/internal/netclass"
	"citadel.dev/citadel/internal/version"
)

// ManifestMediaType is the media type of the manifests Ollama's registry serves.
const ManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json"

const (
	maxRedirects    = 10
	maxManifestBody = 4 << 20
	maxSmallBody    = 64 << 10
)

// Options configures a [Client].
type Options struct {
	// Registry is where names on registry.ollama.ai (and names without a host) are fetched from: "host[:port]",
	// or a base URL "http(s)://host[:port]". Default "registry.ollama.ai". Names on other hosts go to their host.
	Registry string
	// Insecure uses plain http instead of https (for a Registry without a scheme and for names' own hosts).
	Insecure bool
	// HTTPClient sends the requests; default: 10 s dial and TLS-handshake timeouts, 30 s response-header
	// timeout, no overall timeout. It is copied and its CheckRedirect replaced: this package follows
	// redirects itself.
	HTTPClient *http.Client
	// UserAgent defaults to "citadel/<version>".
	UserAgent string
	// HeaderTimeout is how long the default HTTP client waits for response headers; default 30 s (a pull
	// sets its stall timeout).
	HeaderTimeout time.Duration
	// Retry says how the manifest and blob-location requests are retried; the zero value is 6 tries with
	// waits of 1, 2, 4, 8, 8 s, or the server's Retry-After up to 60 s.
	Retry Retry
	// Now turns a Retry-After date into a duration; default time.Now.
	Now func() time.Time
}

// Client talks to Ollama-compatible registries.
type Client struct {
	registry  string // base URL for the default registry, without trailing "/"
	regHost   string // its host[:port]
	scheme    string
	hc        *http.Client
	userAgent string
	headerTO  time.Duration // the default client's header timeout; 0 with a caller's client
	retry     Retry
	now       func() time.Time

	mu     sync.Mutex
	tokens map[string]string // host + " " + repository → bearer token
}

// New returns a client for opts.
func New(opts Options) *Client {
	c := &Client{scheme: "https", userAgent: opts.UserAgent, tokens: map[string]string{}, retry: opts.Retry.WithDefaults(), now: opts.Now}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.Insecure {
		c.scheme = "http"
	}
	reg := strings.TrimRight(opts.Registry, "/")
	if reg == "" {
		reg = DefaultHost
	}
	if !strings.Contains(reg, "://") {
		reg = c.scheme + "://" + reg
	}
	c.registry = reg
	if u, err := url.Parse(reg); err == nil {
		c.regHost = u.Host
	}
	if c.userAgent == "" {
		c.userAgent = "citadel/" + version.Info().Version
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		hc.CheckRedirect = noRedirects
		c.hc = &hc
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 10 * time.Second
		c.headerTO = opts.HeaderTimeout
		if c.headerTO <= 0 {
			c.headerTO = 30 * time.Second
		}
		t.ResponseHeaderTimeout = c.headerTO
		c.hc = &http.Client{Transport: t, CheckRedirect: noRedirects}
	}
	return c
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// base is the URL prefix for n's registry.
func (c *Client) base(n Name) string {
	if n.Host == "" || strings.EqualFold(n.Host, DefaultHost) || strings.EqualFold(n.Host, c.regHost) {
		return c.registry
	}
	return c.scheme + "://" + n.Host
}

// Manifest is an image manifest (manifest/manifest.go). Raw bytes are returned next to it by
// [Client.Manifest]: they are what Ollama stores and hashes.
type Manifest struct {
	SchemaVersion int     `json:"schemaVersion"`
	MediaType     string  `json:"mediaType"`
	Config        Layer   `json:"config"`
	Layers        []Layer `json:"layers"`
}

// Layer is a manifest's config or layer entry.
type Layer struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	From      string `json:"from,omitempty"`
	Name      string `json:"name,omitempty"`
}

// Manifest fetches GET /v2/{namespace}/{model}/manifests/{tag}. The manifest must have schemaVersion 2,
// valid "sha256:<64 hex>" digests, non-negative sizes and at least one layer. 5xx, 429 and connection
// failures are retried (see [Retry]).
func (c *Client) Manifest(ctx context.Context, n Name) (*Manifest, []byte, error) {
	u, err := c.repoURL(n, "manifests/"+url.PathEscape(n.Tag))
	if err != nil {
		return nil, nil, err
	}
	var raw []byte
	if err := c.withRetry(ctx, func() error {
		resp, err := c.send(ctx, http.MethodGet, u, http.Header{"Accept": {ManifestMediaType}}, repoOf(n), sameHostname(u))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			code, msg := errorBody(resp)
			return &NotFoundError{Name: n.String(), Code: code, Message: msg}
		case resp.StatusCode >= 400:
			return c.httpError(resp)
		case resp.StatusCode != http.StatusOK:
			return &HTTPError{Method: http.MethodGet, Status: resp.StatusCode, URL: resp.Request.URL.String(), Message: "expected 200 with a manifest"}
		}
		raw, err = io.ReadAll(io.LimitReader(resp.Body, maxManifestBody+1))
		if err != nil {
			return fmt.Errorf("reading the manifest of %s: %w", n, err)
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if len(raw) > maxManifestBody {
		return nil, nil, &ManifestError{Name: n.String(), Problem: fmt.Sprintf("larger than %d MiB", maxManifestBody>>20)}
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, &ManifestError{Name: n.String(), Problem: fmt.Sprintf("not a JSON manifest: %v", err)}
	}
	if m.SchemaVersion != 2 {
		return nil, nil, &ManifestError{Name: n.String(), Problem: fmt.Sprintf("schemaVersion %d, want 2", m.SchemaVersion)}
	}
	if len(m.Layers) == 0 {
		return nil, nil, &ManifestError{Name: n.String(), Problem: "no layers"}
	}
	for i, l := range append([]Layer{m.Config}, m.Layers...) {
		what := "config"
		if i > 0 {
			what = fmt.Sprintf("layer %d", i-1)
		}
		if !ValidDigest(l.Digest) {
			return nil, nil, &ManifestError{Name: n.String(), Problem: fmt.Sprintf("%s has digest %q, want sha256:<64 hex>", what, l.Digest)}
		}
		if l.Size < 0 {
			return nil, nil, &ManifestError{Name: n.String(), Problem: fmt.Sprintf("%s has negative size %d", what, l.Size)}
		}
	}
	return &m, raw, nil
}

// BlobURL finds where to download a blob, as Ollama's downloader does: GET /v2/{ns}/{model}/blobs/{digest}
// following redirects only within the registry's hostname; the first redirect to another host (the real
// registry answers 307 to its CDN) is the direct URL, returned without being requested. A registry that
// serves the blob itself (200, no redirect) is accepted too — Ollama would fail there — and the blob URL
// is returned; its body is not read. The size comes from HEAD on the blob URL (redirects followed) and its
// Content-Length.
func (c *Client) BlobURL(ctx context.Context, n Name, digest string) (string, int64, error) {
	if !ValidDigest(digest) {
		return "", 0, fmt.Errorf("invalid blob digest %q: want sha256:<64 hex>", digest)
	}
	u, err := c.repoURL(n, "blobs/"+digest)
	if err != nil {
		return "", 0, err
	}
	var resp *http.Response
	if err := c.withRetry(ctx, func() error {
		var err error
		resp, err = c.send(ctx, http.MethodGet, u, nil, repoOf(n), sameHostname(u))
		if err != nil {
			return err
		}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			defer resp.Body.Close()
			return c.httpError(resp)
		}
		return nil
	}); err != nil {
		return "", 0, err
	}
	var direct string
	switch {
	case isRedirect(resp.StatusCode):
		_ = resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return "", 0, fmt.Errorf("GET %s: %d redirect without a usable Location", netclass.RedactURL(resp.Request.URL.String()), resp.StatusCode)
		}
		direct = loc.String()
	case resp.StatusCode == http.StatusOK:
		_ = resp.Body.Close() // the blob itself: not read here
		direct = resp.Request.URL.String()
	case resp.StatusCode == http.StatusNotFound:
		code, msg := errorBody(resp)
		_ = resp.Body.Close()
		return "", 0, &NotFoundError{Name: n.String(), Digest: digest, Code: code, Message: msg}
	default:
		defer resp.Body.Close()
		return "", 0, c.httpError(resp)
	}

	var head *http.Response
	if err := c.withRetry(ctx, func() error {
		var err error
		head, err = c.send(ctx, http.MethodHead, u, nil, repoOf(n), anyHost)
		if err != nil {
			return err
		}
		if head.StatusCode >= 400 {
			defer head.Body.Close()
			return c.httpError(head)
		}
		return nil
	}); err != nil {
		return "", 0, err
	}
	defer head.Body.Close()
	if head.StatusCode != http.StatusOK {
		return "", 0, &HTTPError{Method: http.MethodHead, Status: head.StatusCode, URL: head.Request.URL.String(), Message: "expected 200 with Content-Length"}
	}
	size, err := strconv.ParseInt(head.Header.Get("Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return "", 0, fmt.Errorf("HEAD %s: no usable Content-Length (%q): the blob's size is unknown", netclass.RedactURL(head.Request.URL.String()), head.Header.Get("Content-Length"))
	}
	return direct, size, nil
}

// Get GETs rawURL (BlobURL's direct URL) with Range bytes=start-end (end inclusive; end < 0 means to the end;
// start == 0 && end < 0 sends no Range), following redirects. A ranged request must be answered 206 with a
// Content-Range starting at start; 200 is a [*RangeIgnoredError]. The caller closes the body.
func (c *Client) Get(ctx context.Context, rawURL string, start, end int64) (io.ReadCloser, error) {
	if start < 0 || (end >= 0 && end < start) {
		return nil, fmt.Errorf("invalid byte range %d-%d", start, end)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("GET %q: not an absolute http(s) URL", netclass.RedactURL(rawURL))
	}
	header := http.Header{"Accept-Encoding": {"identity"}}
	ranged := start > 0 || end >= 0
	if ranged {
		r := fmt.Sprintf("bytes=%d-", start)
		if end >= 0 {
			r += strconv.FormatInt(end, 10)
		}
		header.Set("Range", r)
	}
	// The manifest came from the registry, so a download host that does not resolve is transient: no
	// origin is the registry here.
	resp, err := c.sendFrom(ctx, http.MethodGet, u, header, repoFromPath(u.Path), anyHost, "")
	if err != nil {
		return nil, err
	}
	final := resp.Request.URL.String()
	switch {
	case resp.StatusCode >= 400:
		defer resp.Body.Close()
		return nil, c.httpError(resp)
	case resp.StatusCode == http.StatusOK && ranged:
		_ = resp.Body.Close()
		return nil, &RangeIgnoredError{URL: final}
	case resp.StatusCode == http.StatusOK:
		return resp.Body, nil
	case resp.StatusCode == http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		got, ok := contentRangeStart(cr)
		if !ok || got != start {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", netclass.RedactURL(final), start, cr)
		}
		return resp.Body, nil
	}
	_ = resp.Body.Close()
	return nil, &HTTPError{Method: http.MethodGet, Status: resp.StatusCode, URL: final, Message: "expected 200 or 206"}
}

// contentRangeStart returns a of "bytes a-b/N".
func contentRangeStart(s string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !ok {
		return 0, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	return n, err == nil && n >= 0
}

// ValidDigest reports whether d is "sha256:" and 64 lower-case hex digits.
func ValidDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (c *Client) repoURL(n Name, suffix string) (*url.URL, error) {
	if n.Namespace == "" || n.Model == "" {
		return nil, fmt.Errorf("incomplete model name %q: use ParseName", n.String())
	}
	raw := c.base(n) + "/v2/" + url.PathEscape(n.Namespace) + "/" + url.PathEscape(n.Model) + "/" + suffix
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("registry address %q is not usable: give host[:port] or http(s)://host[:port]", c.base(n))
	}
	return u, nil
}

func repoOf(n Name) string { return n.Namespace + "/" + n.Model }

// repoFromPath recovers "ns/model" from a registry path /v2/ns/model/…, for the token cache.
func repoFromPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return ""
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// follow decides whether a redirect from the original URL to next is followed.
type follow func(next *url.URL) bool

func anyHost(*url.URL) bool { return true }

// sameHostname follows redirects within u's hostname only (Ollama's CheckRedirect for the direct-URL step).
func sameHostname(u *url.URL) follow {
	return func(next *url.URL) bool { return strings.EqualFold(next.Hostname(), u.Hostname()) }
}

// send issues the request, following redirects allowed by ok (at most maxRedirects) and answering one
// Bearer challenge per hop with an anonymous token. A redirect that is not followed is returned.
func (c *Client) send(ctx context.Context, method string, u *url.URL, header http.Header, repo string, ok follow) (*http.Response, error) {
	return c.sendFrom(ctx, method, u, header, repo, ok, u.Hostname())
}

// sendFrom is send for a chain whose configured host is origin: a host other than origin that does not
// resolve is an [*UnresolvedHostError] (retried), origin's own a configuration error.
func (c *Client) sendFrom(ctx context.Context, method string, u *url.URL, header http.Header, repo string, ok follow, origin string) (*http.Response, error) {
	for hop := 0; ; hop++ {
		resp, err := c.sendOne(ctx, method, u, header, repo, origin)
		if err != nil {
			return nil, err
		}
		if !isRedirect(resp.StatusCode) || resp.Header.Get("Location") == "" {
			return resp, nil
		}
		next, err := resp.Location()
		if err != nil {
			return resp, nil
		}
		if !ok(next) {
			return resp, nil
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
		if hop == maxRedirects {
			return nil, fmt.Errorf("%s %s: more than %d redirects", method, netclass.RedactURL(u.String()), maxRedirects)
		}
		if next.Scheme != "http" && next.Scheme != "https" {
			return nil, fmt.Errorf("%s %s: redirect to unsupported scheme %q", method, netclass.RedactURL(u.String()), next.Scheme)
		}
		u = next
	}
}

// sendOne sends one request, with the cached token for (host, repo) if any; on a 401 Bearer challenge it
// fetches a token from the realm and retries once. origin is the host the request chain started on.
func (c *Client) sendOne(ctx context.Context, method string, u *url.URL, header http.Header, repo, origin string) (*http.Response, error) {
	key := strings.ToLower(u.Host) + " " + repo
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("building request for %s: %w", netclass.RedactURL(u.String()), err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.userAgent)
		c.mu.Lock()
		tok := c.tokens[key]
		c.mu.Unlock()
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, c.transportError(method, req.URL, origin, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		ch, ok := parseBearerChallenge(resp.Header.Get("WWW-Authenticate"))
		if !ok {
			return resp, nil
		}
		_, _ = io.CopyN(io.Discard, resp.Body, maxSmallBody)
		_ = resp.Body.Close()
		tok, err = c.fetchToken(ctx, ch)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.tokens[key] = tok
		c.mu.Unlock()
	}
}

type challenge struct{ realm, service, scope string }

// parseBearerChallenge parses `Bearer realm="…",service="…",scope="…"`.
func parseBearerChallenge(h string) (challenge, bool) {
	scheme, params, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return challenge{}, false
	}
	var ch challenge
	for params != "" {
		params = strings.TrimLeft(params, " ,")
		k, rest, ok := strings.Cut(params, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return challenge{}, false
			}
			v, params = rest[1:1+end], rest[2+end:]
		} else {
			v, params, _ = strings.Cut(rest, ",")
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "realm":
			ch.realm = v
		case "service":
			ch.service = v
		case "scope":
			ch.scope = v
		}
	}
	if ch.realm == "" {
		return challenge{}, false
	}
	return ch, true
}

// fetchToken gets an anonymous token: GET realm?service=…&scope=… → {"token": …} or {"access_token": …}.
func (c *Client) fetchToken(ctx context.Context, ch challenge) (string, error) {
	u, err := url.Parse(ch.realm)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && c.scheme == "http")) {
		return "", fmt.Errorf("registry asked for a token from realm %q, which is not an https URL (http only with the insecure setting)", ch.realm)
	}
	q := u.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	if ch.scope != "" {
		q.Set("scope", ch.scope)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetching a registry token: %w", transportError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetching a registry token: %w", c.httpError(resp))
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxSmallBody)).Decode(&body); err != nil {
		return "", fmt.Errorf("fetching a registry token from %s: malformed answer: %v", netclass.RedactURL(u.String()), err)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("fetching a registry token from %s: the answer has no token", netclass.RedactURL(u.String()))
	}
	return tok, nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

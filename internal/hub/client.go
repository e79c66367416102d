package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"citadel.dev/citadel/internal/netclass"
	"citadel.dev/citadel/internal/version"
)

// DefaultEndpoint is the Hugging Face Hub.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is used when a call is given an empty revision.
const DefaultRevision = "main"

// maxRedirects bounds every redirect chain the client follows.
const maxRedirects = 10

// maxErrorBody bounds the bytes read from an error response.
const maxErrorBody = 64 << 10

// maxJSONBody bounds a model info or tree page (a repository with tens of thousands of files stays far below).
const maxJSONBody = 64 << 20

// ErrOffline is returned by every call of a client built with [Options.Offline] (HF_HUB_OFFLINE).
var ErrOffline = errors.New("offline mode is enabled (HF_HUB_OFFLINE): no request is sent to the hub; unset HF_HUB_OFFLINE or use files already in the cache")

// Options configures a [Client]. The zero value talks to https://huggingface.co anonymously.
type Options struct {
	// Endpoint is the hub's base URL; default "https://huggingface.co"; a trailing "/" is stripped.
	Endpoint string
	// Token is sent as "Authorization: Bearer …" to the endpoint's origin only.
	Token string
	// HTTPClient sends the requests. The default has dial and TLS-handshake timeouts of 10 s, a response-header
	// timeout of HeaderTimeout and no overall timeout, so bodies can stream for as long as they flow. The client is
	// copied and its CheckRedirect replaced so redirects reach this package, which follows them itself.
	HTTPClient *http.Client
	// UserAgent defaults to "citadel/<version>".
	UserAgent string
	// Offline makes every call fail with [ErrOffline] without a request (HF_HUB_OFFLINE).
	Offline bool
	// Now is the clock used to turn a Retry-After date into a duration; default time.Now.
	Now func() time.Time
	// HeaderTimeout is how long the default HTTP client waits for response headers; default 30 s. A pull sets
	// its stall timeout, so that a server that accepts and never answers is named after that long.
	HeaderTimeout time.Duration
	// Retry says how metadata requests are retried; the zero value is huggingface_hub's schedule.
	Retry Retry
}

// String describes the options without the token.
func (o Options) String() string {
	return fmt.Sprintf("{Endpoint:%s Token:%s UserAgent:%s Offline:%t}", o.Endpoint, redactSecret(o.Token), o.UserAgent, o.Offline)
}

// GoString is String, so %#v does not print the token either.
func (o Options) GoString() string { return "hub.Options" + o.String() }

// LogValue logs the options without the token.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", o.Endpoint), slog.String("token", redactSecret(o.Token)), slog.Bool("offline", o.Offline))
}

// Client talks to one hub endpoint. It is safe for concurrent use.
type Client struct {
	endpoint  string   // without trailing "/"
	base      *url.URL // parsed endpoint; nil when invalid (then err is set)
	err       error    // a bad endpoint, reported by every call
	token     string
	hc        *http.Client
	userAgent string
	offline   bool
	now       func() time.Time
	headerTO  time.Duration // the default client's response-header timeout; 0 with a caller's client
	retry     Retry
}

// New returns a client for opts. An invalid endpoint is reported by every call.
func New(opts Options) *Client {
	c := &Client{
		endpoint:  strings.TrimRight(opts.Endpoint, "/"),
		token:     opts.Token,
		userAgent: opts.UserAgent,
		offline:   opts.Offline,
		now:       opts.Now,
		retry:     opts.Retry.WithDefaults(),
	}
	if c.endpoint == "" {
		c.endpoint = DefaultEndpoint
	}
	if c.userAgent == "" {
		c.userAgent = "citadel/" + version.Info().Version
	}
	if c.now == nil {
		c.now = time.Now
	}
	u, err := url.Parse(c.endpoint)
	switch {
	case err != nil:
		c.err = fmt.Errorf("hub endpoint %q is not a URL: %v; set HF_ENDPOINT to e.g. %s", c.endpoint, err, DefaultEndpoint)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		c.err = fmt.Errorf("hub endpoint %q must be an http or https URL without query, e.g. %s; check HF_ENDPOINT", c.endpoint, DefaultEndpoint)
	default:
		c.base = u
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		hc.CheckRedirect = noRedirects
		c.hc = &hc
	} else {
		c.headerTO = opts.HeaderTimeout
		if c.headerTO <= 0 {
			c.headerTO = 30 * time.Second
		}
		c.hc = defaultHTTPClient(c.headerTO)
	}
	return c
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func defaultHTTPClient(headerTimeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = headerTimeout
	return &http.Client{Transport: t, CheckRedirect: noRedirects}
}

// Endpoint returns the hub's base URL, without a trailing "/".
func (c *Client) Endpoint() string { return c.endpoint }

// String describes the client without its token.
func (c *Client) String() string {
	return fmt.Sprintf("hub.Client{Endpoint:%s Token:%s}", c.endpoint, redactSecret(c.token))
}

// GoString is String, so %#v does not print the token either.
func (c *Client) GoString() string { return c.String() }

// LogValue logs the client without its token.
func (c *Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", c.endpoint), slog.String("token", redactSecret(c.token)))
}

func redactSecret(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// target is what a request is about, for error messages; repo is "" for URLs that are not a repository's.
type target struct {
	repo, revision, path string
	whoami               bool
}

// send issues method on u, following redirects hop by hop (at most maxRedirects) and setting Authorization
// per hop for the endpoint's origin only. With relativeOnly, a redirect whose Location names a host is not
// followed and its response is returned (FileMeta). The caller closes the response body.
func (c *Client) send(ctx context.Context, method string, u *url.URL, header http.Header, relativeOnly bool) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.offline {
		return nil, ErrOffline
	}
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("building request for %s: %w", netclass.RedactURL(u.String()), err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.userAgent)
		if c.token != "" && sameOrigin(req.URL, c.base) {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, c.transportError(method, req.URL, err)
		}
		if !isRedirect(resp.StatusCode) {
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp, nil // the caller reports a redirect without a target
		}
		lu, err := url.Parse(loc)
		if err != nil {
			discard(resp)
			return nil, fmt.Errorf("%s %s: redirect to an unparsable Location %q: %v", method, netclass.RedactURL(u.String()), netclass.RedactURL(loc), err)
		}
		if relativeOnly && (lu.Scheme != "" || lu.Host != "") {
			return resp, nil
		}
		discard(resp)
		if hop == maxRedirects {
			return nil, fmt.Errorf("%s %s: more than %d redirects; the server or a proxy is looping", method, netclass.RedactURL(u.String()), maxRedirects)
		}
		next := req.URL.ResolveReference(lu)
		if next.Scheme != "http" && next.Scheme != "https" {
			return nil, fmt.Errorf("%s %s: redirect to unsupported scheme %q", method, netclass.RedactURL(u.String()), next.Scheme)
		}
		u = next
	}
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// discard closes a response after draining a little of it, so that small bodies keep the connection reusable.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}

// sameOrigin reports whether a and b have the same scheme, host and port (default ports made explicit).
func sameOrigin(a, b *url.URL) bool {
	if a == nil || b == nil {
		return false
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// transportError redacts the URL inside a transport error and says what to do about the common causes.
// The error chain is kept, so [Retryable] still sees the cause. A host other than the endpoint's (a CDN a
// file redirects to) that does not resolve is an [*UnresolvedHostError], retried, with advice naming that
// host; a request left unanswered for the header timeout is a [*NoAnswerError].
func (c *Client) transportError(method string, u *url.URL, err error) error {
	onEndpoint := c.base != nil && strings.EqualFold(u.Hostname(), c.base.Hostname())
	if netclass.AwaitingHeaders(err) {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = netclass.RedactURL(ue.URL)
		}
		return &NoAnswerError{Method: method, URL: u.String(), After: c.headerTO, Endpoint: onEndpoint, Err: err}
	}
	var dns *net.DNSError
	if !onEndpoint && errors.As(err, &dns) && dns.IsNotFound {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = netclass.RedactURL(ue.URL)
		}
		return &UnresolvedHostError{Host: u.Hostname(), Err: err}
	}
	return transportError(err)
}

func transportError(err error) error {
	return netclass.Explain(err, netclass.Advice{
		Unresolved: "check the endpoint (HF_ENDPOINT) and this host's DNS",
		Refused:    "check the endpoint (HF_ENDPOINT) and that the hub or mirror is up",
	})
}

package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// Retry says how the manifest and blob-location requests are retried, as the hub client's
// metadata requests are (see [netclass.Retry]). Blob downloads ([Client.Get]) are resumed by
// their caller instead.
type Retry = netclass.Retry

// RetryNotice describes one retry about to happen.
type RetryNotice = netclass.RetryNotice

// withRetry runs f until it succeeds, fails for good or runs out of tries. A registry that kept a
// request unanswered for the whole header timeout has had its time: the caller names it.
func (c *Client) withRetry(ctx context.Context, f func() error) error {
	return c.retry.Do(ctx, f, func(err error) bool {
		var na *NoAnswerError
		return Retryable(err) && !errors.As(err, &na)
	}, RetryAfter)
}

// RetryAfter returns how long the registry asked to wait (Retry-After on a 429 or 5xx).
func RetryAfter(err error) (time.Duration, bool) {
	var he *HTTPError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return he.RetryAfter, true
	}
	return 0, false
}

func (c *Client) httpError(resp *http.Response) error {
	err := httpError(resp)
	if he, ok := err.(*HTTPError); ok {
		he.RetryAfter = netclass.ParseRetryAfter(resp.Header, c.now())
	}
	return err
}

// NoAnswerError: the server accepted the request and sent no response headers within the header timeout
// (a pull's stall timeout). Retryable later, not within the same call.
type NoAnswerError struct {
	Method, URL string
	After       time.Duration // 0 when unknown (a caller's own HTTP client)
	Err         error
}

func (e *NoAnswerError) Error() string {
	within := "in time"
	if e.After > 0 {
		within = "within " + e.After.String()
	}
	return fmt.Sprintf("%s %s: the server accepted the connection but sent no answer %s; the registry is hung or overloaded: check the registry address and that it is up, or raise the stall timeout (--stall-timeout)", e.Method, netclass.RedactURL(e.URL), within)
}

func (e *NoAnswerError) Unwrap() error { return e.Err }

// UnresolvedHostError: a download host other than the registry (the CDN a blob redirects to) does not
// resolve. The registry answered, so this is transient and retried.
type UnresolvedHostError struct {
	Host string
	Err  error
}

func (e *UnresolvedHostError) Error() string {
	return fmt.Sprintf("%v: the download host %q (where the registry sends this blob) does not resolve; retrying: check this host's DNS, and that a firewall or proxy allows %s", e.Err, e.Host, e.Host)
}

func (e *UnresolvedHostError) Unwrap() error { return e.Err }

// transportError explains a transport error of a request to u in a chain that started on origin.
func (c *Client) transportError(method string, u *url.URL, origin string, err error) error {
	if netclass.AwaitingHeaders(err) {
		redact(err)
		return &NoAnswerError{Method: method, URL: u.String(), After: c.headerTO, Err: err}
	}
	var dns *net.DNSError
	if !strings.EqualFold(u.Hostname(), origin) && errors.As(err, &dns) && dns.IsNotFound {
		redact(err)
		return &UnresolvedHostError{Host: u.Hostname(), Err: err}
	}
	return transportError(err)
}

func redact(err error) {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = netclass.RedactURL(ue.URL)
	}
}

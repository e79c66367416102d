package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// Retry says how the manifest and blob-location requests are retried, as the hub client's metadata
// requests are: the zero value is 6 tries, waits of 1, 2, 4, 8, 8 s after 5xx, 408, 429 and connection
// errors, or the server's Retry-After when it sends one. Blob downloads ([Client.Get]) are resumed by their
// caller instead.
type Retry struct {
	// Tries is the number of attempts in all; default 6. 1 disables retries.
	Tries int
	// Base is the first backoff wait, doubled after each failure up to Max; defaults 1 s and 8 s.
	Base, Max time.Duration
	// MaxRetryAfter is the longest Retry-After waited inside a call; default 60 s. A longer one ends the call
	// with the error, whose RetryAfter ([RetryAfter]) tells the caller when to come back.
	MaxRetryAfter time.Duration
	// Budget, when > 0, bounds the waits of one call: a retry whose wait would bring their sum past Budget
	// is not made, and the last error is returned. A pull sets its stall timeout, so that a metadata failure
	// is named within it, as a stalled download is.
	Budget time.Duration
	// Sleep waits d or until ctx ends; default a timer. A seam for tests.
	Sleep func(ctx context.Context, d time.Duration) error
	// Notify, if set, is told of each retry before its wait; it must not block.
	Notify func(RetryNotice)
}

// RetryNotice describes one retry about to happen.
type RetryNotice struct {
	Attempt    int           // the attempt that failed, from 1
	Tries      int           // attempts in all
	Wait       time.Duration // before the next attempt
	RetryAfter bool          // Wait is the server's Retry-After
	Err        error
}

// String is what a status line shows.
func (n RetryNotice) String() string {
	why := ""
	if n.RetryAfter {
		why = " (Retry-After)"
	}
	return fmt.Sprintf("%v: retrying in %s%s, attempt %d of %d", n.Err, n.Wait.Round(time.Millisecond), why, n.Attempt+1, n.Tries)
}

func (r Retry) withDefaults() Retry {
	if r.Tries <= 0 {
		r.Tries = 6
	}
	if r.Base <= 0 {
		r.Base = time.Second
	}
	if r.Max <= 0 {
		r.Max = 8 * time.Second
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = time.Minute
	}
	if r.Sleep == nil {
		r.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return r
}

func (c *Client) withRetry(ctx context.Context, f func() error) error {
	var spent time.Duration
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var na *NoAnswerError
		if attempt >= c.retry.Tries || !Retryable(err) || errors.As(err, &na) {
			return err
		}
		d, byServer := RetryAfter(err)
		if byServer && d > c.retry.MaxRetryAfter {
			return err
		}
		if !byServer {
			d = min(c.retry.Base<<min(attempt-1, 20), c.retry.Max)
		}
		if c.retry.Budget > 0 && spent+d > c.retry.Budget {
			return err
		}
		spent += d
		if c.retry.Notify != nil {
			c.retry.Notify(RetryNotice{Attempt: attempt, Tries: c.retry.Tries, Wait: d, RetryAfter: byServer, Err: err})
		}
		if serr := c.retry.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %v)", serr, err)
		}
	}
}

// RetryAfter returns how long the registry asked to wait (Retry-After on a 429 or 5xx).
func RetryAfter(err error) (time.Duration, bool) {
	var he *HTTPError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return he.RetryAfter, true
	}
	return 0, false
}

// maxRetryAfter caps a server's Retry-After.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date relative to now; 0 when absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(secs) {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, maxRetryAfter.Seconds())*float64(time.Second)), maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

func (c *Client) httpError(resp *http.Response) error {
	err := httpError(resp)
	if he, ok := err.(*HTTPError); ok {
		he.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
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
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) && ne.Timeout() && !netclass.ChainHas(err, context.DeadlineExceeded) && !(errors.As(err, &oe) && oe.Op == "dial") {
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

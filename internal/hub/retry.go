package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// Retry says how metadata requests (model info, each tree page, whoami, HEAD on a resolve URL) are retried.
// The zero value takes huggingface_hub's http_backoff defaults: 5 retries (6 tries), waits of 1, 2, 4, 8, 8 s
// after 5xx, 408 and connection errors; a 429 (or a 5xx with Retry-After) waits what the server asked.
// Downloads ([Client.Get]) are not retried here: their caller resumes them.
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
	// Sleep waits d or until ctx ends; default a timer. A seam for tests, which count tries instead of waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Notify, if set, is told of each retry before its wait (for progress and status); it must not block.
	Notify func(RetryNotice)
}

// RetryNotice describes one retry about to happen.
type RetryNotice struct {
	Attempt    int           // the attempt that failed, from 1
	Tries      int           // attempts in all
	Wait       time.Duration // before the next attempt
	RetryAfter bool          // Wait is the server's Retry-After
	Err        error         // why the attempt failed
}

// String is what a status line shows, e.g. `GET …: 429 …: retrying in 3s (Retry-After), attempt 2 of 6`.
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
		r.Sleep = sleep
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait is how long to wait before trying again after the attempt-th failure, or false when the error is
// final: not retryable, a server that kept a request unanswered for the whole header timeout (it has had
// its time; the caller names it), a Retry-After longer than MaxRetryAfter, or a wait past the Budget
// (spent is the sum of the waits so far).
func (r Retry) wait(err error, attempt int, spent time.Duration) (time.Duration, bool, bool) {
	var na *NoAnswerError
	if attempt >= r.Tries || !Retryable(err) || errors.As(err, &na) {
		return 0, false, false
	}
	d, byServer := RetryAfter(err)
	switch {
	case byServer && d > r.MaxRetryAfter:
		return 0, false, false
	case !byServer:
		d = min(r.Base<<min(attempt-1, 20), r.Max)
	}
	if r.Budget > 0 && spent+d > r.Budget {
		return 0, false, false
	}
	return d, byServer, true
}

// withRetry runs f until it succeeds, fails for good or runs out of tries (see [Retry]).
func (c *Client) withRetry(ctx context.Context, f func() error) error {
	var spent time.Duration
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		d, retryAfter, ok := c.retry.wait(err, attempt, spent)
		if !ok {
			return err
		}
		spent += d
		if c.retry.Notify != nil {
			c.retry.Notify(RetryNotice{Attempt: attempt, Tries: c.retry.Tries, Wait: d, RetryAfter: retryAfter, Err: err})
		}
		if serr := c.retry.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %v)", serr, err)
		}
	}
}

// NoAnswerError: the server accepted the request and sent no response headers within the header timeout
// (by default the pull's stall timeout). It is retryable later, but not within the same call: the server
// has already had the whole timeout.
type NoAnswerError struct {
	Method, URL string
	After       time.Duration // the header timeout; 0 when unknown (a caller's own HTTP client)
	Endpoint    bool          // the URL is on the hub endpoint (else a CDN or other redirect target)
	Err         error
}

func (e *NoAnswerError) Error() string {
	within := "in time"
	if e.After > 0 {
		within = "within " + e.After.String()
	}
	where := "the hub or mirror at HF_ENDPOINT is hung or overloaded: check it"
	if !e.Endpoint {
		where = "the download host is hung or overloaded: try again later"
	}
	return fmt.Sprintf("%s %s: the server accepted the connection but sent no answer %s; %s, or raise the stall timeout (--stall-timeout)", e.Method, netclass.RedactURL(e.URL), within, where)
}

func (e *NoAnswerError) Unwrap() error { return e.Err }

// UnresolvedHostError: a host other than the endpoint (the CDN or storage host a file redirects to) does
// not resolve. Unlike the endpoint's own name, which is configuration, this is the hub's or the network's
// doing and is retried.
type UnresolvedHostError struct {
	Host string
	Err  error
}

func (e *UnresolvedHostError) Error() string {
	return fmt.Sprintf("%v: the download host %q (where the hub redirects this file) does not resolve; retrying: check this host's DNS, and that a firewall or proxy allows %s", e.Err, e.Host, e.Host)
}

func (e *UnresolvedHostError) Unwrap() error { return e.Err }

// awaitingHeaders reports whether err is the transport's response-header timeout: a timeout that is not
// the dial's or the TLS handshake's.
func awaitingHeaders(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || netclass.ChainHas(err, context.DeadlineExceeded) {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false
	}
	return true
}

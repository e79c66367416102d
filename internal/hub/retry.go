package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"citadel.dev/citadel/internal/netclass"
)

// Retry says how metadata requests (model info, each tree page, whoami, HEAD on a resolve URL)
// are retried: 5xx, 408, 429 and connection errors, with huggingface_hub's backoff or the
// server's Retry-After (see [netclass.Retry]). Downloads ([Client.Get]) are not retried here:
// their caller resumes them.
type Retry = netclass.Retry

// RetryNotice describes one retry about to happen.
type RetryNotice = netclass.RetryNotice

// withRetry runs f until it succeeds, fails for good or runs out of tries. A server that kept a
// request unanswered for the whole header timeout has had its time: the caller names it.
func (c *Client) withRetry(ctx context.Context, f func() error) error {
	return c.retry.Do(ctx, f, func(err error) bool {
		var na *NoAnswerError
		return Retryable(err) && !errors.As(err, &na)
	}, RetryAfter)
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

package netclass

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry says how a client retries its metadata requests (the hub's model info, tree pages and
// resolve HEADs; the registry's manifests and blob locations). The zero value takes
// huggingface_hub's http_backoff defaults: 6 tries, waits of 1, 2, 4, 8, 8 s after a retryable
// failure, or the server's Retry-After when it sends one. Downloads are not retried here: their
// caller resumes them.
type Retry struct {
	// Tries is the number of attempts in all; default 6. 1 disables retries.
	Tries int
	// Base is the first backoff wait, doubled after each failure up to Max; defaults 1 s and 8 s.
	Base, Max time.Duration
	// MaxRetryAfter is the longest Retry-After waited inside a call; default 60 s. A longer one ends
	// the call with the error, which tells the caller when to come back.
	MaxRetryAfter time.Duration
	// Budget, when > 0, bounds the waits of one call: a retry whose wait would bring their sum past
	// Budget is not made, and the last error is returned. A pull sets its stall timeout, so that a
	// metadata failure is named within it, as a stalled download is.
	Budget time.Duration
	// Sleep waits d or until ctx ends; default a timer. A seam for tests, which count tries instead
	// of waiting.
	Sleep func(ctx context.Context, d time.Duration) error
	// Notify, if set, is told of each retry before its wait (for progress and status); it must not
	// block.
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

// WithDefaults fills the zero fields.
func (r Retry) WithDefaults() Retry {
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

// Do runs f until it succeeds, fails for good or runs out of tries. retryable says whether an
// error may be retried within this call; retryAfter, the wait the server asked for, if any. A
// Retry-After longer than MaxRetryAfter, or a wait past the Budget, ends the call with the error.
// r must have its defaults (WithDefaults).
func (r Retry) Do(ctx context.Context, f func() error, retryable func(error) bool, retryAfter func(error) (time.Duration, bool)) error {
	var spent time.Duration
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if attempt >= r.Tries || !retryable(err) {
			return err
		}
		d, byServer := retryAfter(err)
		switch {
		case byServer && d > r.MaxRetryAfter:
			return err
		case !byServer:
			d = min(r.Base<<min(attempt-1, 20), r.Max)
		}
		if r.Budget > 0 && spent+d > r.Budget {
			return err
		}
		spent += d
		if r.Notify != nil {
			r.Notify(RetryNotice{Attempt: attempt, Tries: r.Tries, Wait: d, RetryAfter: byServer, Err: err})
		}
		if serr := r.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %v)", serr, err)
		}
	}
}

// MaxRetryAfter caps a server's Retry-After so that a hostile or broken value cannot park a client forever.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads Retry-After (delay-seconds or an HTTP date, relative to now), else the "t=" parameter
// of the IETF RateLimit header (`"api";r=0;t=55`). 0 when absent or unparsable.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(secs) {
			return clampSeconds(secs)
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(t.Sub(now), 0), MaxRetryAfter)
		}
	}
	for _, v := range h.Values("RateLimit") {
		for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
			k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || strings.TrimSpace(k) != "t" {
				continue
			}
			if secs, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && !math.IsNaN(secs) {
				return clampSeconds(secs)
			}
		}
	}
	return 0
}

func clampSeconds(secs float64) time.Duration {
	if secs <= 0 {
		return 0
	}
	if secs >= MaxRetryAfter.Seconds() {
		return MaxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

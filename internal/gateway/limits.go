package gateway

// Rate and concurrency limits: one limiter type serves an APIKey's limits (keys.go) and a
// public model's (its Route's limits merged with the model's own, build.go). A request must
// pass both; the one refused by either costs the other nothing.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LimitError is a request refused by a key's or a model's limits: 429 with Retry-After and
// the x-ratelimit-* headers.
type LimitError struct {
	Status     int    // 429
	Code       string // rate_limit_exceeded
	Type       string // requests, tokens (the OpenAI error type)
	Limit      string // requests_per_minute, tokens_per_minute, max_concurrent (for metrics)
	Message    string
	RetryAfter time.Duration // when a retry can be admitted; at most a minute
	// Headers are x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the limits the
	// holder sets, and retry-after (whole seconds, rounded up).
	Headers map[string]string
}

func (e *LimitError) Error() string { return e.Message }

// quota is what one limiter enforces; 0 means no limit.
type quota struct {
	rpm, tpm, conc int64
	// The holder, for messages (built only for a refusal): kind "API key" or "model", its
	// name, and for a model where its limits are set (owner "route ns/name", field "limits").
	kind, name, owner, field string
	// share is n when the limits are this replica's 1/n of a budget (divide), for messages.
	share int64
}

// divide makes q one replica's share of a budget that n gateway replicas enforce each on
// their own, with no shared count (Options.LimitShare): every limit is divided by n and
// rounded up, so no limit falls to 0 and the replicas together admit at most n-1 more than
// the budget. n <= 1 leaves q whole.
func (q *quota) divide(n int) {
	if n <= 1 {
		return
	}
	d := int64(n)
	for _, v := range []*int64{&q.rpm, &q.tpm, &q.conc} {
		if *v > 0 {
			*v = (*v + d - 1) / d
		}
	}
	q.share = d
}

// who names the holder: `API key "lab"`, `model "chat" (route default/chat)`.
func (q *quota) who() string {
	if q.owner == "" {
		return q.kind + " " + strconv.Quote(q.name)
	}
	return q.kind + " " + strconv.Quote(q.name) + " (" + q.owner + ")"
}

func (q quota) none() bool { return q.rpm <= 0 && q.tpm <= 0 && q.conc <= 0 }

// window is the length of the sliding windows, in one-second buckets.
const window = 60

// limiter is the state of one key or one public model: requests admitted and tokens charged
// per second over the last minute (rings of one-second buckets: nothing is allocated per
// request), and the requests in flight. Its holder keeps it across updates that keep the
// name, so a changed limit applies to what was already counted.
type limiter struct {
	mu         sync.Mutex
	last       int64 // the Unix second the rings were advanced to
	reqs, toks [window]int64
	nreq, ntok int64 // sums over the rings
	inflight   int64
}

// advance moves the window to second sec, emptying the buckets of the seconds that left it.
// Time never goes back: an earlier sec (a clock step, a racing caller) counts as the latest.
func (l *limiter) advance(sec int64) {
	if sec <= l.last {
		return
	}
	if sec-l.last >= window {
		l.reqs, l.toks = [window]int64{}, [window]int64{}
		l.nreq, l.ntok = 0, 0
	} else {
		for s := l.last + 1; s <= sec; s++ {
			i := s % window
			l.nreq -= l.reqs[i]
			l.ntok -= l.toks[i]
			l.reqs[i], l.toks[i] = 0, 0
		}
	}
	l.last = sec
}

// freeAfter returns how long until at least need units of ring leave the window.
func (l *limiter) freeAfter(ring *[window]int64, need int64, now time.Time) time.Duration {
	var acc int64
	for s := l.last - window + 1; s <= l.last; s++ {
		acc += ring[((s%window)+window)%window]
		if acc >= need {
			return min(time.Unix(s+window, 0).Sub(now), window*time.Second) // now may lag l.last
		}
	}
	return window * time.Second
}

// resetAfter returns how long until ring is empty (0 when it is).
func (l *limiter) resetAfter(ring *[window]int64, now time.Time) time.Duration {
	for s := l.last; s > l.last-window; s-- {
		if ring[((s%window)+window)%window] != 0 {
			return min(max(time.Unix(s+window, 0).Sub(now), 0), window*time.Second)
		}
	}
	return 0
}

// admit applies q at now: requests per minute and tokens per minute (both over a sliding
// minute; tokens are those charged by Done so far, so a request is admitted while the holder
// is under its budget and is never cut, and the next one is refused), then concurrency.
func (l *limiter) admit(q *quota, now time.Time) (*Ticket, *LimitError) {
	l.mu.Lock()
	l.advance(now.Unix())
	if q.rpm > 0 && l.nreq >= q.rpm || q.tpm > 0 && l.ntok >= q.tpm || q.conc > 0 && l.inflight >= q.conc {
		err := l.refusal(q, now)
		l.mu.Unlock()
		return nil, err
	}
	l.reqs[l.last%window]++
	l.nreq++
	l.inflight++
	t := &Ticket{lim: l, rpm: q.rpm, tpm: q.tpm}
	t.sec.Store(l.last)
	if t.rpm > 0 {
		t.remReq = max(t.rpm-l.nreq, 0)
		t.resetReq = l.resetAfter(&l.reqs, now)
	}
	if t.tpm > 0 {
		t.remTok = max(t.tpm-l.ntok, 0)
		t.resetTok = l.resetAfter(&l.toks, now)
	}
	l.mu.Unlock()
	return t, nil
}

// refusal says which of q's limits refuses a request at now, and when to retry; l.mu is held.
func (l *limiter) refusal(q *quota, now time.Time) *LimitError {
	set := func(name string) string {
		var where []string
		if q.field != "" {
			where = append(where, q.field+"."+name)
		}
		if q.share > 1 {
			where = append(where, fmt.Sprintf("this gateway's 1/%d share", q.share))
		}
		if len(where) == 0 {
			return ""
		}
		return " (" + strings.Join(where, ", ") + ")"
	}
	switch {
	case q.rpm > 0 && l.nreq >= q.rpm:
		retry := l.freeAfter(&l.reqs, l.nreq-q.rpm+1, now)
		return l.refuse(q, now, "requests", "requests_per_minute", retry, fmt.Sprintf(
			"Rate limit reached for %s on requests per min (RPM)%s: Limit %d, Used %d, Requested 1. Please try again in %s.",
			q.who(), set("requestsPerMinute"), q.rpm, l.nreq, roundUp(retry)))
	case q.tpm > 0 && l.ntok >= q.tpm:
		retry := l.freeAfter(&l.toks, l.ntok-q.tpm+1, now)
		return l.refuse(q, now, "tokens", "tokens_per_minute", retry, fmt.Sprintf(
			"Rate limit reached for %s on tokens per min (TPM)%s: Limit %d, Used %d. Please try again in %s.",
			q.who(), set("tokensPerMinute"), q.tpm, l.ntok, roundUp(retry)))
	default:
		return l.refuse(q, now, "requests", "max_concurrent", time.Second, fmt.Sprintf(
			"Too many concurrent requests for %s%s: Limit %d, In flight %d. Please try again when one finishes.",
			q.who(), set("maxConcurrent"), q.conc, l.inflight))
	}
}

// refuse builds the 429 of q; l.mu is held.
func (l *limiter) refuse(q *quota, now time.Time, typ, limit string, retry time.Duration, msg string) *LimitError {
	retry = max(retry, time.Millisecond)
	h := make(map[string]string, 7)
	if q.rpm > 0 {
		setLimitHeaders(h, "requests", q.rpm, q.rpm-l.nreq, l.resetAfter(&l.reqs, now))
	}
	if q.tpm > 0 {
		setLimitHeaders(h, "tokens", q.tpm, q.tpm-l.ntok, l.resetAfter(&l.toks, now))
	}
	h["retry-after"] = strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10)
	return &LimitError{Status: 429, Code: "rate_limit_exceeded", Type: typ, Limit: limit, Message: msg, RetryAfter: retry, Headers: h}
}

func setLimitHeaders(h map[string]string, what string, limit, remaining int64, reset time.Duration) {
	h["x-ratelimit-limit-"+what] = strconv.FormatInt(limit, 10)
	h["x-ratelimit-remaining-"+what] = strconv.FormatInt(max(remaining, 0), 10)
	h["x-ratelimit-reset-"+what] = roundUp(reset)
}

// roundUp formats a duration as OpenAI's reset headers do ("1s", "6m0s", "250ms"), rounded up
// to the millisecond.
func roundUp(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
}

// Ticket is an admitted request. Done charges its tokens and frees its concurrency slot.
type Ticket struct {
	lim *limiter
	// sec is the Unix second the request was counted in, -1 once Done or cancel has run
	// (one word: a ticket is 64 bytes, one allocation class).
	sec atomic.Int64
	// What the x-ratelimit-* headers say, as of admission.
	rpm, tpm           int64
	remReq, remTok     int64
	resetReq, resetTok time.Duration
}

// openTicket is the ticket of a request without limits (no key, or no limits): it limits
// nothing.
var openTicket = &Ticket{}

// Headers returns the x-ratelimit-* headers of a successful response, for the limits the
// holder sets (nil for none).
func (t *Ticket) Headers() map[string]string {
	if t == nil || t.lim == nil || (t.rpm == 0 && t.tpm == 0) {
		return nil
	}
	h := make(map[string]string, 6)
	if t.rpm > 0 {
		setLimitHeaders(h, "requests", t.rpm, t.remReq, t.resetReq)
	}
	if t.tpm > 0 {
		setLimitHeaders(h, "tokens", t.tpm, t.remTok, t.resetTok)
	}
	return h
}

// Done ends the request at now: it charges tokens (prompt and completion) to the current
// second of the holder's window and frees the concurrency slot. Only the first call (of Done
// and cancel) counts, so a deferred Done after an explicit one is harmless.
func (t *Ticket) Done(tokens int, now time.Time) {
	if !t.end() {
		return
	}
	l := t.lim
	l.mu.Lock()
	l.advance(now.Unix())
	if tokens > 0 {
		l.toks[l.last%window] += int64(tokens)
		l.ntok += int64(tokens)
	}
	l.inflight--
	l.mu.Unlock()
}

// end reports whether this call ends the ticket (the first of Done and cancel).
func (t *Ticket) end() bool {
	if t == nil || t.lim == nil {
		return false
	}
	sec := t.sec.Load()
	return sec >= 0 && t.sec.CompareAndSwap(sec, -1)
}

// cancel takes the request back, as if it had never been admitted: another limit refused
// it. Its count leaves the window (if still in it) and its slot is freed.
func (t *Ticket) cancel(now time.Time) {
	if t == nil {
		return
	}
	sec := t.sec.Load() // it changes only to -1, which end then refuses
	if !t.end() {
		return
	}
	l := t.lim
	l.mu.Lock()
	l.advance(now.Unix())
	if sec > l.last-window && l.reqs[sec%window] > 0 {
		l.reqs[sec%window]--
		l.nreq--
	}
	l.inflight--
	l.mu.Unlock()
}

// modelQuota is what d's limits allow per minute and at once; Destination.Owner names the
// route in messages.
func modelQuota(public string, d *Destination) quota {
	q := quota{kind: "model", name: public, owner: d.Owner, field: "limits"}
	if l := d.Limits; l != nil {
		if l.RequestsPerMinute != nil {
			q.rpm = max(int64(*l.RequestsPerMinute), 0)
		}
		if l.TokensPerMinute != nil {
			q.tpm = max(*l.TokensPerMinute, 0)
		}
		if l.MaxConcurrent != nil {
			q.conc = max(int64(*l.MaxConcurrent), 0)
		}
	}
	return q
}

// admitModel applies the resolved model's limits, after the key's (admit): limits.maxTokens
// first, then requests per minute, tokens per minute and concurrency, on the limiter the
// public model keeps across route updates. A refusal takes back the key's admission, so
// the key's window and in-flight count are as if the request never came.
//
// maxTokens refuses (400, the field named) a request that asks for more: c.maxTokens, from
// max_tokens, max_completion_tokens or Ollama's options.num_predict. It does not clamp.
// LiteLLM passes max_tokens through and the provider refuses an over-large one with a 400
// ("max_tokens is too large: …"); clamping would silently shorten answers the client
// believes it asked room for. A request that sets no bound is passed as sent: the engine's
// own default and the model's context length bound it.
func (s *Server) admitModel(c *call) error {
	d := c.dec.Dest
	if d == nil {
		return nil
	}
	now := time.Now()
	if l := d.Limits; l != nil && l.MaxTokens != nil && c.maxTokens > int64(*l.MaxTokens) {
		c.ticket.cancel(now)
		s.met.refused("model", c.dec.Public, "max_tokens")
		return &clientError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "invalid_value", param: c.maxTokensParam,
			message: fmt.Sprintf("%s is too large: %d. Model %q (%s) allows at most %d tokens per answer (its limits.maxTokens), whereas you provided %d: lower %s.",
				c.maxTokensParam, c.maxTokens, c.dec.Public, d.Owner, *l.MaxTokens, c.maxTokens, c.maxTokensParam)}
	}
	q := modelQuota(c.dec.Public, d)
	q.divide(s.opts.LimitShare)
	if q.none() || d.lim == nil {
		return nil
	}
	t, le := d.lim.admit(&q, now)
	if le != nil {
		c.ticket.cancel(now)
		s.met.refused("model", c.dec.Public, le.Limit)
		return le
	}
	c.modelTicket = t
	return nil
}

// limitHeaders are the x-ratelimit-* headers of an admitted call: per kind (requests,
// tokens), those of the key's or the model's limits, whichever has less left.
func limitHeaders(c *call) map[string]string {
	kh, mh := c.ticket.Headers(), c.modelTicket.Headers()
	if mh == nil {
		return kh
	}
	if kh == nil {
		return mh
	}
	for _, what := range []string{"requests", "tokens"} {
		rem := "x-ratelimit-remaining-" + what
		mv, ok := mh[rem]
		if !ok {
			continue
		}
		if kv, ok := kh[rem]; ok {
			a, _ := strconv.ParseInt(kv, 10, 64)
			b, _ := strconv.ParseInt(mv, 10, 64)
			if a <= b {
				continue
			}
		}
		for _, p := range []string{"x-ratelimit-limit-", "x-ratelimit-remaining-", "x-ratelimit-reset-"} {
			kh[p+what] = mh[p+what]
		}
	}
	return kh
}

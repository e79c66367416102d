package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// Keys is the gateway's set of API keys (v1.APIKey objects) with each key's limiter state.
//
// Keys are optional. While no APIKey exists, Required is false and the gateway is open to
// anyone who can reach it; that is why citadel serve binds the gateway to loopback
// (DefaultAddr, 127.0.0.1) unless told otherwise. Creating the first key (citadel key
// create) closes it: from then on every request needs a key.
//
// The key set is an immutable snapshot swapped atomically by Update, so Authenticate takes
// no lock. Limiter state (sliding one-minute windows and the in-flight count) lives per key
// name and survives Updates that keep the name.
type Keys struct {
	mu   sync.Mutex // serialises Update
	snap atomic.Pointer[keySnapshot]
	now  func() time.Time // for expiry; tests replace it
}

type keySnapshot struct {
	keys   []*Key // sorted by name
	byName map[string]*Key
}

// Key is one API key as the gateway sees it. Its fields never change: Update builds new Keys
// that share the limiter state of the old ones.
type Key struct {
	Name   string
	Prefix string   // the key's first characters, for display
	Models []string // allow-list of public model names; empty: all
	// Limits; 0 means none.
	RequestsPerMinute int64
	TokensPerMinute   int64
	MaxConcurrent     int64
	ExpiresAt         time.Time // zero: never
	Disabled          bool

	hash  [sha256.Size]byte
	valid bool // hash decoded; a key with a malformed hash matches nothing
	allow map[string]struct{}
	lim   *limiter
}

// AuthError is a refused key: 401 in the OpenAI error shape
// ({"error": {"message", "type": "invalid_request_error", "code"}}).
type AuthError struct {
	Status  int    // 401
	Code    string // invalid_api_key
	Reason  string // missing, unknown, disabled, expired (for logs and metrics)
	Message string
}

func (e *AuthError) Error() string { return e.Message }

// LimitError is a request refused by a key's limits: 429 with Retry-After and the
// x-ratelimit-* headers.
type LimitError struct {
	Status     int    // 429
	Code       string // rate_limit_exceeded
	Type       string // requests, tokens (the OpenAI error type)
	Message    string
	RetryAfter time.Duration // when a retry can be admitted; at most a minute
	// Headers are x-ratelimit-{limit,remaining,reset}-{requests,tokens} for the limits the
	// key sets, and retry-after (whole seconds, rounded up).
	Headers map[string]string
}

func (e *LimitError) Error() string { return e.Message }

// NewKeys returns an empty set: the gateway is open until Update brings a key.
func NewKeys() *Keys {
	k := &Keys{now: time.Now}
	k.snap.Store(&keySnapshot{byName: map[string]*Key{}})
	return k
}

// Update replaces the key set. Keys whose name remains keep their limiter state (requests and
// tokens in the window, requests in flight), even when their limits change.
func (k *Keys) Update(keys []*v1.APIKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.snap.Load()
	next := &keySnapshot{byName: make(map[string]*Key, len(keys))}
	for _, ak := range keys {
		if ak == nil {
			continue
		}
		s := &ak.Spec
		key := &Key{
			Name: ak.Name, Prefix: s.Prefix, Models: append([]string(nil), s.Models...),
			RequestsPerMinute: max(int64(s.RequestsPerMinute), 0),
			TokensPerMinute:   max(s.TokensPerMinute, 0),
			MaxConcurrent:     max(int64(s.MaxConcurrent), 0),
			Disabled:          s.Disabled,
		}
		if s.ExpiresAt != nil {
			key.ExpiresAt = s.ExpiresAt.Time
		}
		if b, err := hex.DecodeString(strings.TrimSpace(s.Hash)); err == nil && len(b) == sha256.Size {
			copy(key.hash[:], b)
			key.valid = true
		}
		if len(key.Models) > 0 {
			key.allow = make(map[string]struct{}, len(key.Models))
			for _, m := range key.Models {
				key.allow[m] = struct{}{}
			}
		}
		if prev, ok := old.byName[key.Name]; ok {
			key.lim = prev.lim
		} else if prev, ok := next.byName[key.Name]; ok {
			key.lim = prev.lim // a duplicate name: the last one wins, with one state
		} else {
			key.lim = &limiter{}
		}
		next.byName[key.Name] = key
	}
	next.keys = make([]*Key, 0, len(next.byName))
	for _, key := range next.byName {
		next.keys = append(next.keys, key)
	}
	sort.Slice(next.keys, func(i, j int) bool { return next.keys[i].Name < next.keys[j].Name })
	k.snap.Store(next)
}

// Required reports whether requests need a key: true once at least one APIKey exists
// (disabled and expired ones count, so disabling the only key does not open the gateway).
func (k *Keys) Required() bool { return len(k.snap.Load().keys) > 0 }

// Authenticate finds the key a request presents, as "Authorization: Bearer ck-…" (OpenAI
// clients) or "x-api-key: ck-…" (Anthropic-style clients); the bearer token wins when both
// are given. The presented key is hashed with SHA-256 and compared in constant time with
// every stored hash, without stopping at a match, so timing tells nothing about how close a
// guess came or which key matched. With no keys configured the gateway is open: it returns
// nil, nil and ignores what the client sent.
func (k *Keys) Authenticate(authorization, xAPIKey string) (*Key, error) {
	snap := k.snap.Load()
	if len(snap.keys) == 0 {
		return nil, nil
	}
	secret := bearer(authorization)
	if secret == "" {
		secret = strings.TrimSpace(xAPIKey)
	}
	if secret == "" {
		return nil, &AuthError{Status: 401, Code: "invalid_api_key", Reason: "missing",
			Message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an x-api-key header. Create one with citadel key create NAME."}
	}
	sum := sha256.Sum256([]byte(secret))
	var found *Key
	for _, key := range snap.keys {
		if subtle.ConstantTimeCompare(sum[:], key.hash[:]) == 1 && key.valid {
			found = key
		}
	}
	if found == nil {
		return nil, &AuthError{Status: 401, Code: "invalid_api_key", Reason: "unknown",
			Message: "Incorrect API key provided: " + maskKey(secret) + ". You can find your API key with citadel key list."}
	}
	if found.Disabled {
		return nil, &AuthError{Status: 401, Code: "invalid_api_key", Reason: "disabled",
			Message: fmt.Sprintf("API key %s is disabled. Ask an administrator to enable it, or use another key.", found.label())}
	}
	if !found.ExpiresAt.IsZero() && !k.now().Before(found.ExpiresAt) {
		return nil, &AuthError{Status: 401, Code: "invalid_api_key", Reason: "expired",
			Message: fmt.Sprintf("API key %s expired at %s. Create a new one with citadel key create NAME.", found.label(), found.ExpiresAt.UTC().Format(time.RFC3339))}
	}
	return found, nil
}

// label names the key in messages: "lab" (ck-Ab12c…).
func (key *Key) label() string {
	if key.Prefix == "" {
		return strconv.Quote(key.Name)
	}
	return strconv.Quote(key.Name) + " (" + key.Prefix + "…)"
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header ("" for other schemes).
func bearer(h string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// maskKey shows the start of a presented key, as OpenAI does: enough to recognise it, never
// more than a third of it, and only printable ASCII.
func maskKey(s string) string {
	n := min(7, len(s)/3)
	b := []byte(s[:n])
	for i, c := range b {
		if c <= ' ' || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b) + "…"
}

// Allowed reports whether the key may use the public model (true for a nil key: an open
// gateway).
func (key *Key) Allowed(model string) bool {
	if key == nil || len(key.allow) == 0 {
		return true
	}
	_, ok := key.allow[model]
	return ok
}

// window is the length of the sliding windows, in one-second buckets.
const window = 60

// limiter is one key's state: requests admitted and tokens charged per second over the last
// minute (rings of one-second buckets: nothing is allocated per request), and the requests
// in flight.
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

// Ticket is an admitted request. Done charges its tokens and frees its concurrency slot.
type Ticket struct {
	lim  *limiter
	done atomic.Bool
	// What the x-ratelimit-* headers say, as of admission.
	rpm, tpm           int64
	remReq, remTok     int64
	resetReq, resetTok time.Duration
}

// openTicket is the ticket of a request without a key (an open gateway): it limits nothing.
var openTicket = &Ticket{}

// Admit applies key's limits at now: requests per minute and tokens per minute (both over a
// sliding minute; tokens are those charged by Done so far, so a request is admitted while the
// key is under its budget and is never cut, and the next one is refused), then concurrency.
// A nil key (an open gateway) is always admitted. A refusal is a *LimitError.
func (k *Keys) Admit(key *Key, now time.Time) (*Ticket, error) {
	if key == nil || key.lim == nil {
		return openTicket, nil
	}
	l := key.lim
	l.mu.Lock()
	l.advance(now.Unix())
	switch {
	case key.RequestsPerMinute > 0 && l.nreq >= key.RequestsPerMinute:
		retry := l.freeAfter(&l.reqs, l.nreq-key.RequestsPerMinute+1, now)
		err := l.refuse(key, now, "requests", retry, fmt.Sprintf(
			"Rate limit reached for API key %q on requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %s.",
			key.Name, key.RequestsPerMinute, l.nreq, roundUp(retry)))
		l.mu.Unlock()
		return nil, err
	case key.TokensPerMinute > 0 && l.ntok >= key.TokensPerMinute:
		retry := l.freeAfter(&l.toks, l.ntok-key.TokensPerMinute+1, now)
		err := l.refuse(key, now, "tokens", retry, fmt.Sprintf(
			"Rate limit reached for API key %q on tokens per min (TPM): Limit %d, Used %d. Please try again in %s.",
			key.Name, key.TokensPerMinute, l.ntok, roundUp(retry)))
		l.mu.Unlock()
		return nil, err
	case key.MaxConcurrent > 0 && l.inflight >= key.MaxConcurrent:
		err := l.refuse(key, now, "requests", time.Second, fmt.Sprintf(
			"Too many concurrent requests for API key %q: Limit %d, In flight %d. Please try again when one finishes.",
			key.Name, key.MaxConcurrent, l.inflight))
		l.mu.Unlock()
		return nil, err
	}
	l.reqs[l.last%window]++
	l.nreq++
	l.inflight++
	t := &Ticket{lim: l, rpm: key.RequestsPerMinute, tpm: key.TokensPerMinute}
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

// refuse builds the 429 for key; l.mu is held.
func (l *limiter) refuse(key *Key, now time.Time, typ string, retry time.Duration, msg string) *LimitError {
	retry = max(retry, time.Millisecond)
	h := make(map[string]string, 7)
	if key.RequestsPerMinute > 0 {
		setLimitHeaders(h, "requests", key.RequestsPerMinute, key.RequestsPerMinute-l.nreq, l.resetAfter(&l.reqs, now))
	}
	if key.TokensPerMinute > 0 {
		setLimitHeaders(h, "tokens", key.TokensPerMinute, key.TokensPerMinute-l.ntok, l.resetAfter(&l.toks, now))
	}
	h["retry-after"] = strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10)
	return &LimitError{Status: 429, Code: "rate_limit_exceeded", Type: typ, Message: msg, RetryAfter: retry, Headers: h}
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

// Headers returns the x-ratelimit-* headers of a successful response, for the limits the key
// sets (nil for none).
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
// second of the key's window and frees the concurrency slot. Only the first call counts, so
// a deferred Done after an explicit one is harmless.
func (t *Ticket) Done(tokens int, now time.Time) {
	if t == nil || t.lim == nil || !t.done.CompareAndSwap(false, true) {
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

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

// Keys is the gateway's set of API keys (v1.APIKey objects) with each key's limiter state
// (limits.go's limiter, the one that also serves the Routes' limits).
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
	// share is Options.LimitShare: each key's limits are enforced as 1/share of them.
	share int
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

// Admit applies key's limits at now (see limiter.admit). A nil key (an open gateway) is
// always admitted. A refusal is a *LimitError.
func (k *Keys) Admit(key *Key, now time.Time) (*Ticket, error) {
	if key == nil || key.lim == nil {
		return openTicket, nil
	}
	q := quota{
		rpm: key.RequestsPerMinute, tpm: key.TokensPerMinute, conc: key.MaxConcurrent,
		kind: "API key", name: key.Name,
	}
	q.divide(k.share)
	t, err := key.lim.admit(&q, now)
	if err != nil {
		return nil, err
	}
	return t, nil
}

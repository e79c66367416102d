package v1

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// APIKey (citadel.dev/v1alpha1, cluster-scoped) is a client key of the
// inference gateway, with its model allow-list and limits. Only the SHA-256
// of the key is stored: the key itself is shown once, by citadel key create,
// and cannot be read back.
//
//	apiVersion: citadel.dev/v1alpha1
//	kind: APIKey
//	metadata: {name: lab}
//	spec:
//	  hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	  prefix: ck-Ab12c
//	  models: [mimo-vl, auto]
//	  requestsPerMinute: 60
//	  tokensPerMinute: 100000
//	  maxConcurrent: 4
//
// Keys are optional: while no APIKey exists the gateway is open (citadel
// serve binds it to loopback by default); the first key closes it.
type APIKey struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       APIKeySpec `json:"spec"`
}

// APIKeySpec is what the gateway checks a request's key against. A zero
// (or absent) limit means no limit.
type APIKeySpec struct {
	// Hash is the SHA-256 of the key, as 64 lower-case hexadecimal
	// characters (HashAPIKey). Never the key itself.
	Hash string `json:"hash"`
	// Prefix is the start of the key (APIKeyPrefixLen characters), shown
	// by citadel key list so that a key can be told apart.
	Prefix string `json:"prefix,omitempty"`
	// Models is the allow-list of public model names (as clients send
	// "model"); empty allows every model.
	Models []string `json:"models,omitempty"`
	// RequestsPerMinute bounds the requests admitted in any sliding minute.
	RequestsPerMinute int32 `json:"requestsPerMinute,omitempty"`
	// TokensPerMinute bounds the tokens (prompt and completion) charged in
	// any sliding minute. Tokens are charged when a response ends: an
	// admitted request is never cut, the next one is refused.
	TokensPerMinute int64 `json:"tokensPerMinute,omitempty"`
	// MaxConcurrent bounds the requests in flight at once.
	MaxConcurrent int32 `json:"maxConcurrent,omitempty"`
	// ExpiresAt, when set, is when the key stops being accepted.
	ExpiresAt *Time `json:"expiresAt,omitempty"`
	// Disabled keys are refused, without being deleted.
	Disabled bool `json:"disabled,omitempty"`
}

// API key format: APIKeyPrefix followed by random characters.
const (
	APIKeyPrefix = "ck-"
	// APIKeyPrefixLen is how many leading characters of a key are stored
	// in spec.prefix for display.
	APIKeyPrefixLen = 8
)

// HashAPIKey returns the SHA-256 of key as lower-case hex, the form kept in
// spec.hash.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// APIKeyDisplayPrefix returns the leading part of key kept in spec.prefix.
func APIKeyDisplayPrefix(key string) string {
	if len(key) <= APIKeyPrefixLen {
		return key
	}
	return key[:APIKeyPrefixLen]
}

// Default sets the type and lower-cases the hash.
func (k *APIKey) Default() {
	k.APIVersion, k.Kind = CitadelGroupVersion, KindAPIKey
	k.Spec.Hash = strings.ToLower(strings.TrimSpace(k.Spec.Hash))
}

// maxPrefixLen bounds spec.prefix, so that a whole key cannot be kept there.
const maxPrefixLen = 12

// Validate checks the key on its own. Messages never repeat the hash or
// the prefix: a key pasted into the wrong field must not be echoed.
func (k *APIKey) Validate() FieldErrors {
	errs := validateMeta(&k.ObjectMeta, false)
	var spec FieldErrors
	s := &k.Spec
	createFix := "create keys with citadel key create NAME, which stores only the hash"
	switch {
	case s.Hash == "":
		spec.Add("hash", "is required", createFix)
	case strings.HasPrefix(strings.ToLower(s.Hash), APIKeyPrefix):
		spec.Add("hash", "looks like the key itself, not its hash", "store the SHA-256 of the key (printf %s \"$KEY\" | sha256sum), or "+createFix)
	case len(s.Hash) != 2*sha256.Size || !isHex(s.Hash):
		spec.Add("hash", fmt.Sprintf("must be a SHA-256 as %d hexadecimal characters, got %d characters", 2*sha256.Size, len(s.Hash)), "printf %s \"$KEY\" | sha256sum, or "+createFix)
	}
	if len(s.Prefix) > maxPrefixLen {
		spec.Add("prefix", fmt.Sprintf("is %d characters long; at most %d are kept", len(s.Prefix), maxPrefixLen), fmt.Sprintf("keep only the first %d characters of the key: the prefix is shown, never secret", APIKeyPrefixLen))
	} else {
		for i := 0; i < len(s.Prefix); i++ {
			if c := s.Prefix[i]; c <= ' ' || c >= 0x7f {
				spec.Add("prefix", fmt.Sprintf("character at offset %d is not printable ASCII", i), "")
				break
			}
		}
	}
	seen := map[string]bool{}
	for i, m := range s.Models {
		p := fmt.Sprintf("models[%d]", i)
		switch {
		case m == "":
			spec.Add(p, "is empty", "name a public model, or remove models to allow them all")
		case strings.ContainsAny(m, " \t\r\n"):
			spec.Add(p, fmt.Sprintf("%q contains whitespace", m), "use the model name clients send as \"model\"")
		case seen[m]:
			spec.Add(p, fmt.Sprintf("%q is listed twice", m), "remove one of them")
		}
		seen[m] = true
	}
	if s.RequestsPerMinute < 0 {
		spec.Add("requestsPerMinute", fmt.Sprintf("must not be negative, got %d", s.RequestsPerMinute), "use 0 or remove it for no limit")
	}
	if s.TokensPerMinute < 0 {
		spec.Add("tokensPerMinute", fmt.Sprintf("must not be negative, got %d", s.TokensPerMinute), "use 0 or remove it for no limit")
	}
	if s.MaxConcurrent < 0 {
		spec.Add("maxConcurrent", fmt.Sprintf("must not be negative, got %d", s.MaxConcurrent), "use 0 or remove it for no limit")
	}
	errs.Prefixed("spec", spec)
	return errs
}

// References: keys name no other object (models are public names, which
// may come and go).
func (k *APIKey) References() []Reference { return nil }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

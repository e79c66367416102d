package v1

import (
	"encoding/base64"
	"fmt"
	"sort"
)

// Secret holds tokens, shaped like a Kubernetes v1 Secret so that the same
// file applies to both. Data values are base64; StringData values are plain
// and are folded into Data on apply. The admin API never returns values:
// they read as Redacted.
type Secret struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	// Type is Kubernetes' secret type; default Opaque.
	Type string `json:"type,omitempty"`
	// Data maps keys (such as token) to base64-encoded values.
	Data map[string]string `json:"data,omitempty"`
	// StringData maps keys to plain values, folded into Data on apply.
	StringData map[string]string `json:"stringData,omitempty"`
	// Immutable is Kubernetes'; kept as written.
	Immutable *bool `json:"immutable,omitempty"`
}

// Redacted replaces every secret value on output.
const Redacted = "<redacted>"

// Default folds StringData into Data (base64) and sets the namespace.
func (s *Secret) Default() {
	s.APIVersion, s.Kind = CoreGroupVersion, KindSecret
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.Type == "" {
		s.Type = "Opaque"
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string]string{}
		}
		for k, v := range s.StringData {
			s.Data[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		s.StringData = nil
	}
}

// Validate checks keys and base64 values; values never appear in messages.
func (s *Secret) Validate() FieldErrors {
	errs := validateMeta(&s.ObjectMeta, true)
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if msg := checkSecretKey(k); msg != "" {
			errs.Add("data", fmt.Sprintf("invalid key %q: %s", k, msg), "keys are letters, digits, '-', '_' and '.'")
		}
		if s.Data[k] == Redacted {
			errs.Add("data."+k, "is the redaction placeholder, not a value", "secrets read back from citadel are redacted; give the real value with stringData or citadel secret create")
			continue
		}
		if _, err := base64.StdEncoding.DecodeString(s.Data[k]); err != nil {
			errs.Add("data."+k, "is not valid base64", "put plain text under stringData instead, or base64-encode the value")
		}
	}
	for k := range s.StringData {
		if msg := checkSecretKey(k); msg != "" {
			errs.Add("stringData", fmt.Sprintf("invalid key %q: %s", k, msg), "keys are letters, digits, '-', '_' and '.'")
		}
	}
	return errs
}

// References: secrets name no other object.
func (s *Secret) References() []Reference { return nil }

// Value returns the decoded value of key.
func (s *Secret) Value(key string) (string, bool) {
	v, ok := s.Data[key]
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Redact returns a copy with every value replaced by Redacted.
func (s *Secret) Redact() *Secret {
	c := *s
	c.Data = make(map[string]string, len(s.Data))
	for k := range s.Data {
		c.Data[k] = Redacted
	}
	c.StringData = nil
	return &c
}

// String never prints values, so a Secret in a log line or %v is safe.
func (s *Secret) String() string {
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Sprintf("Secret %s/%s keys=%v", s.Namespace, s.Name, keys)
}

func checkSecretKey(k string) string {
	if k == "" {
		return "empty"
	}
	if len(k) > 253 {
		return "longer than 253 characters"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("character %q is not allowed", c)
		}
	}
	return ""
}

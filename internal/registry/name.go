package registry

import (
	"fmt"
	"strings"
)

// Defaults of Ollama model names (types/model/name.go).
const (
	DefaultHost      = "registry.ollama.ai"
	DefaultNamespace = "library"
	DefaultTag       = "latest"
)

// Name is a fully qualified Ollama model name: host/namespace/model:tag.
type Name struct {
	Host, Namespace, Model, Tag string
}

// String is "host/namespace/model:tag".
func (n Name) String() string {
	return n.Host + "/" + n.Namespace + "/" + n.Model + ":" + n.Tag
}

// ParseName parses "[https://][host/][namespace/]model[:tag]" as Ollama does, filling in the defaults:
// "qwen2.5:7b" is registry.ollama.ai/library/qwen2.5:7b, "ns/model" is registry.ollama.ai/ns/model:latest,
// "host:port/ns/model:tag" names another registry. Parts are validated like Ollama's: they start with a
// letter, digit or "_" and contain letters, digits, "_", "-" and "." (no "." in the namespace; ":" only in
// the host), at most 80 characters (350 for the host). Digests ("@sha256:…") and schemes other than https
// are refused.
func ParseName(s string) (Name, error) {
	orig := s
	bad := func(why string) (Name, error) {
		return Name{}, fmt.Errorf("invalid model name %q: %s; expected [host/][namespace/]model[:tag], e.g. qwen2.5:7b", orig, why)
	}
	if strings.Contains(s, "@") {
		return bad("digests (@sha256:…) are not supported; name a tag")
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if scheme != "https" {
			return bad(fmt.Sprintf("scheme %q is not supported; use the registry's plain-http setting for http", scheme))
		}
		s = rest
	}
	var n Name
	if strings.LastIndex(s, ":") > strings.LastIndex(s, "/") {
		i := strings.LastIndex(s, ":")
		s, n.Tag = s[:i], s[i+1:]
		if n.Tag == "" {
			return bad("empty tag")
		}
	}
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		n.Model = parts[0]
	case 2:
		n.Namespace, n.Model = parts[0], parts[1]
	case 3:
		n.Host, n.Namespace, n.Model = parts[0], parts[1], parts[2]
	default:
		return bad("too many \"/\"")
	}
	for _, p := range []struct {
		kind, value string
		given       bool
		max         int
		extra       string
	}{
		{"host", n.Host, len(parts) == 3, 350, ".:"},
		{"namespace", n.Namespace, len(parts) >= 2, 80, ""},
		{"model", n.Model, true, 80, "."},
		{"tag", n.Tag, n.Tag != "", 80, "."},
	} {
		if !p.given {
			continue
		}
		if err := checkPart(p.value, p.max, p.extra); err != "" {
			return bad(p.kind + " " + err)
		}
	}
	if n.Host == "" {
		n.Host = DefaultHost
	}
	if n.Namespace == "" {
		n.Namespace = DefaultNamespace
	}
	if n.Tag == "" {
		n.Tag = DefaultTag
	}
	return n, nil
}

// checkPart returns why s is not a valid name part, or "".
func checkPart(s string, max int, extra string) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > max {
		return fmt.Sprintf("is longer than %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		switch {
		case alnum:
		case i == 0:
			return "must start with a letter, digit or \"_\""
		case c == '-' || strings.IndexByte(extra, c) >= 0:
		default:
			return fmt.Sprintf("contains %q", c)
		}
	}
	return ""
}

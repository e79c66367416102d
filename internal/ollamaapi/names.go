package ollamaapi

import "strings"

// Name is a model name as Ollama reports it: with ":latest" when it has no tag (no colon after
// the last slash). The empty name stays empty.
func Name(public string) string {
	if public == "" {
		return ""
	}
	if i := strings.LastIndexByte(public, ':'); i < 0 || strings.Contains(public[i:], "/") {
		return public + ":latest"
	}
	return public
}

// StripLatest drops a ":latest" tag, so "x:latest" finds the public model "x".
func StripLatest(name string) string { return strings.TrimSuffix(name, ":latest") }

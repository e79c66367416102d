package v1

import "strings"

// OllamaName is the name an Ollama server knows an ollama:// model by, as `ollama list` shows
// it: "deepcoder:14b" for the default registry's library namespace, "ns/name:tag" for another
// namespace, "host/ns/name:tag" for another registry. Empty for other schemes.
func (u StorageURI) OllamaName() string {
	if u.Scheme != "ollama" {
		return ""
	}
	name := strings.TrimPrefix(u.Name, "library/")
	if u.Registry != "" && u.Registry != "registry.ollama.ai" {
		name = u.Registry + "/" + u.Name
	}
	return name + ":" + u.Tag
}

package ollamaapi

// The answers that need no upstream: the listing endpoints and Ollama's load and unload
// requests.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// LocalResponse answers, without any upstream, the requests Ollama treats as "load" or
// "unload" only: a chat without messages, a generate with an empty prompt (done_reason "load",
// or "unload" with keep_alive 0), an embed without input (no embeddings). An OpenAI upstream
// has nothing to load, so the front answers these itself; an Ollama upstream should still get
// them (Passthrough), since they are how clients preload and evict models. ok is false
// otherwise.
func (o *Request) LocalResponse(publicModel string) (body []byte, ok bool) {
	reason := "load"
	if keepAliveZero(o.KeepAlive) {
		reason = "unload"
	}
	now := time.Now().UTC()
	switch {
	case o.Kind == Chat && len(o.messages) == 0:
		b, _ := json.Marshal(chatResponse{Model: publicModel, CreatedAt: now,
			Message: Message{Role: "assistant"}, DoneReason: reason, Done: true})
		return b, true
	case o.Kind == Generate && o.prompt == "":
		b, _ := json.Marshal(generateResponse{Model: publicModel, CreatedAt: now, DoneReason: reason, Done: true})
		return b, true
	case o.Kind == Embed && len(o.input) == 0:
		b, _ := json.Marshal(map[string]any{"model": publicModel, "embeddings": []any{}})
		return b, true
	}
	return nil, false
}

// Unloads reports whether the request asks for keep_alive 0: its model is to be unloaded after
// it (at once, for a load request with nothing to answer).
func (o *Request) Unloads() bool { return keepAliveZero(o.KeepAlive) }

func keepAliveZero(raw json.RawMessage) bool {
	var v any
	if isNull(raw) || json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch t := v.(type) {
	case float64:
		return t == 0
	case string:
		if f, err := strconv.ParseFloat(t, 64); err == nil {
			return f == 0
		}
		d, err := time.ParseDuration(t)
		return err == nil && d == 0
	}
	return false
}

// ModelInfo describes one public model for /api/tags, /api/ps and /api/show. Name is the
// public name (":latest" is added when it has no tag); the rest is optional.
type ModelInfo struct {
	Name                  string
	Family, ParameterSize string // e.g. "qwen2", "7.6B"
	Quantization          string // e.g. "Q4_K_M", "BF16"
	Format                string // "gguf" when empty
	ContextLength         int    // /api/show model_info["<family>.context_length"]
	Capabilities          []string
	Size                  int64
	ModifiedAt            time.Time
	// SizeVRAM and ExpiresAt are a running model's, for /api/ps: its GPU memory (default Size)
	// and when it is unloaded if idle (default: far ahead, never).
	SizeVRAM  int64
	ExpiresAt time.Time
}

// Details are api.ModelDetails, the "details" of /api/tags, /api/ps and /api/show entries.
type Details struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

func (m ModelInfo) details() Details {
	d := Details{Format: m.Format, Family: m.Family, ParameterSize: m.ParameterSize, QuantizationLevel: m.Quantization}
	if d.Format == "" {
		d.Format = "gguf"
	}
	if m.Family != "" {
		d.Families = []string{m.Family}
	}
	return d
}

// digest is a stable stand-in for the manifest digest: the sha256 of the name.
func digest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// Tags is the /api/tags body: {"models": [{name, model, modified_at, size, digest,
// details}]}, in the order given.
func Tags(models []ModelInfo) []byte {
	type entry struct {
		Name       string    `json:"name"`
		Model      string    `json:"model"`
		ModifiedAt time.Time `json:"modified_at"`
		Size       int64     `json:"size"`
		Digest     string    `json:"digest"`
		Details    Details   `json:"details"`
	}
	list := make([]entry, 0, len(models))
	for _, m := range models {
		name := Name(m.Name)
		list = append(list, entry{Name: name, Model: name, ModifiedAt: m.ModifiedAt.UTC(), Size: m.Size,
			Digest: digest(name), Details: m.details()})
	}
	b, _ := json.Marshal(map[string]any{"models": list})
	return b
}

// Ps is the /api/ps body: {"models": [{name, model, size, digest, details, expires_at,
// size_vram, context_length}]}: expires_at is the model's ExpiresAt (far ahead when unset),
// with its zone, as Ollama writes local time; size_vram its SizeVRAM, else Size.
func Ps(models []ModelInfo) []byte {
	type entry struct {
		Name          string    `json:"name"`
		Model         string    `json:"model"`
		Size          int64     `json:"size"`
		Digest        string    `json:"digest"`
		Details       Details   `json:"details"`
		ExpiresAt     time.Time `json:"expires_at"`
		SizeVRAM      int64     `json:"size_vram"`
		ContextLength int       `json:"context_length"`
	}
	list := make([]entry, 0, len(models))
	for _, m := range models {
		name := Name(m.Name)
		list = append(list, entry{Name: name, Model: name, Size: m.Size, Digest: digest(name), Details: m.details(),
			ExpiresAt: m.expires(), SizeVRAM: cmp.Or(m.SizeVRAM, m.Size), ContextLength: m.ContextLength})
	}
	b, _ := json.Marshal(map[string]any{"models": list})
	return b
}

// expires is when m is unloaded: its ExpiresAt, or far ahead.
func (m ModelInfo) expires() time.Time {
	if m.ExpiresAt.IsZero() {
		return time.Date(2318, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return m.ExpiresAt
}

// Show is the /api/show body for m: modelfile, template, details, model_info, capabilities
// (["completion"] unless given) and modified_at.
func Show(m ModelInfo) []byte {
	name := Name(m.Name)
	info := map[string]any{"general.basename": StripLatest(name)}
	if m.Family != "" {
		info["general.architecture"] = m.Family
		if m.ContextLength > 0 {
			info[m.Family+".context_length"] = m.ContextLength
		}
	}
	caps := m.Capabilities
	if len(caps) == 0 {
		caps = []string{"completion"}
	}
	b, _ := json.Marshal(struct {
		Modelfile    string         `json:"modelfile"`
		Template     string         `json:"template"`
		Details      Details        `json:"details"`
		ModelInfo    map[string]any `json:"model_info"`
		Capabilities []string       `json:"capabilities"`
		ModifiedAt   time.Time      `json:"modified_at"`
	}{
		Modelfile: "# Modelfile generated by \"ollama show\"\n# Served by the Citadel gateway; the engine applies the model's own chat template.\nFROM " + name + "\n",
		Template:  "{{ .Prompt }}",
		Details:   m.details(), ModelInfo: info, Capabilities: caps, ModifiedAt: m.ModifiedAt.UTC(),
	})
	return b
}

// Version is the /api/version body, {"version": v}.
func Version(v string) []byte {
	b, _ := json.Marshal(map[string]string{"version": v})
	return b
}

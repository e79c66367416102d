package gateway

// The Ollama front's translation layer: parsing /api/chat, /api/generate and /api/embed
// requests, rewriting them for an Ollama backend (model renamed) or an OpenAI-compatible one
// (/v1/chat/completions, /v1/completions, /v1/embeddings), and turning OpenAI answers —
// whole or as an SSE stream — back into Ollama's JSON and NDJSON. No I/O beyond the reader
// and writer handed in; the proxy owns the HTTP.
//
// Wire shapes follow ollama/ollama api/types.go and server/routes.go: stream defaults to
// true, images are base64 strings (decoded by the JSON binding, so bad base64 is a 400),
// durations are integer nanoseconds, and errors are {"error": "…"}.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"citadel.dev/citadel/internal/taskclass"
)

// Ollama request kinds: the endpoint a request came to.
const (
	OllamaChat     = "chat"     // POST /api/chat
	OllamaGenerate = "generate" // POST /api/generate
	OllamaEmbed    = "embed"    // POST /api/embed
)

const (
	// ollamaImageTokens is the prompt-token estimate of one image, as the OpenAI front counts it.
	ollamaImageTokens = 1024
	// ollamaTextSample bounds RequestInfo.Text: the first and the last this many bytes.
	ollamaTextSample = 16 << 10
	// ollamaDecodeCost is how many prompt tokens cost as much time as one generated token,
	// to split an answer's wall time when the upstream reports no timings.
	ollamaDecodeCost = 64
)

// OllamaError is an error in Ollama's shape: an HTTP status and {"error": Message}.
type OllamaError struct {
	Status  int
	Message string
}

func (e *OllamaError) Error() string { return e.Message }

// JSON is the error's body, {"error": "…"}.
func (e *OllamaError) JSON() []byte {
	b, _ := json.Marshal(map[string]string{"error": e.Message})
	return b
}

func ollamaBadRequest(format string, args ...any) *OllamaError {
	return &OllamaError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// OllamaRequest is a parsed /api/chat, /api/generate or /api/embed request. Parse it with
// ParseOllama; it is read-only afterwards, so a proxy may build upstream bodies from it
// again for each retry.
type OllamaRequest struct {
	Kind      string          // OllamaChat, OllamaGenerate or OllamaEmbed
	Model     string          // as the client named it ("x" or "x:latest")
	Stream    bool            // default true, as Ollama; always false for embed
	KeepAlive json.RawMessage // as sent (validated); nil when absent
	Raw       []byte          // the body as received, for Passthrough

	messages []ollamaMessage // chat
	tools    json.RawMessage // chat: the tool definitions, OpenAI's shape already
	format   json.RawMessage // chat, generate: "json" or a JSON schema; nil for none
	think    json.RawMessage // chat, generate: true, false, "high", "medium" or "low"; nil unset
	opts     ollamaOptions

	// generate
	prompt, system, suffix string
	raw                    bool
	images                 [][]byte

	// embed
	input       []string
	inputString bool // input was one string rather than a list
	dimensions  int
}

// ollamaMessage is api.Message. Images decode from base64 as api.ImageData ([]byte) does.
type ollamaMessage struct {
	Role       string           `json:"role"`
	Content    string           `json:"content"`
	Thinking   string           `json:"thinking,omitempty"`
	Images     [][]byte         `json:"images,omitempty"`
	ToolCalls  []ollamaToolCall `json:"tool_calls,omitempty"`
	ToolName   string           `json:"tool_name,omitempty"`
	ToolCallID string           `json:"tool_call_id,omitempty"`
}

// ollamaToolCall is api.ToolCall: the arguments are a JSON object, not a string.
type ollamaToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     int             `json:"index"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type ollamaChatRequest struct {
	Model     string          `json:"model"`
	Messages  []ollamaMessage `json:"messages"`
	Tools     json.RawMessage `json:"tools"`
	Format    json.RawMessage `json:"format"`
	Options   map[string]any  `json:"options"`
	Stream    *bool           `json:"stream"`
	KeepAlive json.RawMessage `json:"keep_alive"`
	Think     json.RawMessage `json:"think"`
}

type ollamaGenerateRequest struct {
	Model     string          `json:"model"`
	Prompt    string          `json:"prompt"`
	Suffix    string          `json:"suffix"`
	System    string          `json:"system"`
	Template  string          `json:"template"`
	Context   []int           `json:"context"`
	Raw       bool            `json:"raw"`
	Images    [][]byte        `json:"images"`
	Format    json.RawMessage `json:"format"`
	Options   map[string]any  `json:"options"`
	Stream    *bool           `json:"stream"`
	KeepAlive json.RawMessage `json:"keep_alive"`
	Think     json.RawMessage `json:"think"`
}

type ollamaEmbedRequest struct {
	Model      string          `json:"model"`
	Input      any             `json:"input"`
	Truncate   *bool           `json:"truncate"`
	Dimensions int             `json:"dimensions"`
	Options    map[string]any  `json:"options"`
	KeepAlive  json.RawMessage `json:"keep_alive"`
}

// ollamaOptions are the runtime options that have an OpenAI equivalent; the others (num_ctx,
// mirostat, …) are accepted and dropped for OpenAI backends, and kept for Ollama ones.
type ollamaOptions struct {
	Temperature, TopP, MinP           *float64
	PresencePenalty, FrequencyPenalty *float64
	TopK, NumPredict                  *int
	Seed                              *int64
	Stop                              []string
}

// ParseOllama parses the body of an /api/<kind> request. Errors are *OllamaError (400) with
// Ollama's wording where Ollama has one: "missing request body", "model is required",
// "invalid input type", Go's JSON errors (with Ollama's type names), bad base64 image data.
func ParseOllama(kind string, body []byte) (*OllamaRequest, error) {
	o := &OllamaRequest{Kind: kind, Raw: body, Stream: true}
	var rawOpts map[string]any
	switch kind {
	case OllamaChat:
		var req ollamaChatRequest
		if err := ollamaDecode(body, &req); err != nil {
			return nil, err
		}
		o.Model, o.KeepAlive, o.format, o.think, rawOpts = req.Model, req.KeepAlive, req.Format, req.Think, req.Options
		o.messages = req.Messages
		if req.Stream != nil {
			o.Stream = *req.Stream
		}
		for i, m := range req.Messages {
			for j, img := range m.Images {
				if len(img) == 0 {
					return nil, ollamaBadRequest("invalid image data: image %d of message %d is empty", j, i)
				}
			}
		}
		if t := bytes.TrimSpace(req.Tools); len(t) > 0 && string(t) != "null" {
			var list []json.RawMessage
			if err := json.Unmarshal(t, &list); err != nil {
				return nil, ollamaBadRequest("invalid tools: want an array of {\"type\": \"function\", \"function\": {…}} objects")
			}
			if len(list) > 0 {
				o.tools = t
			}
		}
	case OllamaGenerate:
		var req ollamaGenerateRequest
		if err := ollamaDecode(body, &req); err != nil {
			return nil, err
		}
		o.Model, o.KeepAlive, o.format, o.think, rawOpts = req.Model, req.KeepAlive, req.Format, req.Think, req.Options
		o.prompt, o.system, o.suffix, o.raw, o.images = req.Prompt, req.System, req.Suffix, req.Raw, req.Images
		if req.Stream != nil {
			o.Stream = *req.Stream
		}
		for j, img := range req.Images {
			if len(img) == 0 {
				return nil, ollamaBadRequest("invalid image data: image %d is empty", j)
			}
		}
		if req.Raw && (req.Template != "" || req.System != "" || len(req.Context) > 0) {
			return nil, ollamaBadRequest("raw mode does not support template, system, or context")
		}
	case OllamaEmbed:
		var req ollamaEmbedRequest
		if err := ollamaDecode(body, &req); err != nil {
			return nil, err
		}
		o.Model, o.KeepAlive, rawOpts = req.Model, req.KeepAlive, req.Options
		o.Stream = false
		o.dimensions = req.Dimensions
		switch in := req.Input.(type) {
		case nil:
		case string:
			o.inputString = true
			if in != "" {
				o.input = []string{in}
			}
		case []any:
			for _, v := range in {
				s, ok := v.(string)
				if !ok {
					return nil, ollamaBadRequest("invalid input type")
				}
				o.input = append(o.input, s)
			}
		default:
			return nil, ollamaBadRequest("invalid input type")
		}
		if req.Dimensions < 0 {
			return nil, ollamaBadRequest("dimensions must be a positive number")
		}
	default:
		return nil, &OllamaError{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown Ollama endpoint /api/%s: this gateway serves /api/chat, /api/generate and /api/embed", kind)}
	}
	if o.Model == "" {
		return nil, ollamaBadRequest("model is required")
	}
	if err := ollamaCheckKeepAlive(o.KeepAlive); err != nil {
		return nil, err
	}
	if err := ollamaCheckFormat(o.format); err != nil {
		return nil, err
	}
	if err := ollamaCheckThink(o.think); err != nil {
		return nil, err
	}
	opts, err := ollamaParseOptions(rawOpts)
	if err != nil {
		return nil, err
	}
	o.opts = opts
	if isNull(o.format) {
		o.format = nil
	}
	if isNull(o.think) {
		o.think = nil
	}
	return o, nil
}

// ollamaTypeNames renames this file's request types to Ollama's in JSON type errors, so the
// message reads as Ollama's own ("… into Go struct field ChatRequest.stream of type bool").
var ollamaTypeNames = strings.NewReplacer(
	"gateway.ollamaChatRequest", "api.ChatRequest", "ollamaChatRequest", "ChatRequest",
	"gateway.ollamaGenerateRequest", "api.GenerateRequest", "ollamaGenerateRequest", "GenerateRequest",
	"gateway.ollamaEmbedRequest", "api.EmbedRequest", "ollamaEmbedRequest", "EmbedRequest",
	"gateway.ollamaMessage", "api.Message", "ollamaMessage", "Message",
	"gateway.ollamaToolCall", "api.ToolCall", "ollamaToolCall", "ToolCall",
	"[]uint8", "api.ImageData",
)

// ollamaDecode binds a request body as gin's ShouldBindJSON does for Ollama: one JSON value
// (trailing bytes ignored), field names matched case-insensitively.
func ollamaDecode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return ollamaBadRequest("missing request body")
	}
	err := decodeFirst(body, v)
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syn):
		return ollamaBadRequest("invalid JSON: %v", err)
	case errors.As(err, &b64):
		return ollamaBadRequest("invalid image data: %v: images must be base64-encoded bytes (no data: URL prefix)", err)
	case errors.As(err, &typ):
		return ollamaBadRequest("%s", ollamaTypeNames.Replace(err.Error()))
	}
	return ollamaBadRequest("%v", err)
}

// decodeFirst decodes the first JSON value of body into v, ignoring what follows it, as a
// json.Decoder does, with the Decoder's errors; a body that is one value (the usual case) is
// decoded in place, without the Decoder's copy of it.
func decodeFirst(body []byte, v any) error {
	if json.Unmarshal(body, v) == nil {
		return nil
	}
	return json.NewDecoder(bytes.NewReader(body)).Decode(v)
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// ollamaCheckKeepAlive accepts what api.Duration does — a number of seconds or a Go duration
// string — and, as Ollama's CLI does, a string holding a number of seconds.
func ollamaCheckKeepAlive(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return ollamaBadRequest("invalid keep_alive: %v", err)
	}
	switch t := v.(type) {
	case float64:
		return nil
	case string:
		if _, err := strconv.ParseFloat(t, 64); err == nil {
			return nil
		}
		if _, err := time.ParseDuration(t); err != nil {
			return ollamaBadRequest("invalid keep_alive: %v: want a duration such as \"5m\" or a number of seconds", err)
		}
		return nil
	}
	return ollamaBadRequest("invalid keep_alive: want a duration such as \"5m\" or a number of seconds")
}

// ollamaCheckFormat accepts what Ollama's runner does (llm/server.go): nothing, "", "json" or
// a JSON schema object.
func ollamaCheckFormat(raw json.RawMessage) error {
	t := bytes.TrimSpace(raw)
	switch {
	case isNull(t), string(t) == `""`, string(t) == `"json"`:
		return nil
	case t[0] == '{':
		var schema map[string]json.RawMessage
		if json.Unmarshal(t, &schema) == nil {
			return nil
		}
	}
	return ollamaBadRequest("invalid format: %q; expected \"json\" or a valid JSON Schema object", string(t))
}

// ollamaCheckThink accepts what api.ThinkValue does.
func ollamaCheckThink(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && (s == "high" || s == "medium" || s == "low") {
		return nil
	}
	return ollamaBadRequest("invalid think value: %s (must be \"high\", \"medium\", \"low\", true, or false)", bytes.TrimSpace(raw))
}

// ollamaParseOptions reads the options with an OpenAI equivalent, type-checked with the
// messages of api.Options.FromMap. Unknown options are ignored, as Ollama does.
func ollamaParseOptions(m map[string]any) (ollamaOptions, error) {
	var o ollamaOptions
	float := func(key string, dst **float64) error {
		v, ok := m[key]
		if !ok || v == nil {
			return nil
		}
		f, ok := v.(float64)
		if !ok {
			return ollamaBadRequest("option %q must be of type float32", key)
		}
		*dst = &f
		return nil
	}
	integer := func(key string) (*int64, error) {
		v, ok := m[key]
		if !ok || v == nil {
			return nil, nil
		}
		f, ok := v.(float64)
		if !ok {
			return nil, ollamaBadRequest("option %q must be of type integer", key)
		}
		if math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return nil, ollamaBadRequest("option %q is out of range", key)
		}
		n := int64(f)
		return &n, nil
	}
	floats := []struct {
		key string
		dst **float64
	}{{"temperature", &o.Temperature}, {"top_p", &o.TopP}, {"min_p", &o.MinP},
		{"presence_penalty", &o.PresencePenalty}, {"frequency_penalty", &o.FrequencyPenalty}}
	for _, f := range floats {
		if err := float(f.key, f.dst); err != nil {
			return o, err
		}
	}
	ints := []struct {
		key string
		dst **int
	}{{"top_k", &o.TopK}, {"num_predict", &o.NumPredict}}
	for _, i := range ints {
		n, err := integer(i.key)
		if err != nil {
			return o, err
		}
		if n != nil {
			v := int(max(min(*n, math.MaxInt32), math.MinInt32))
			*i.dst = &v
		}
	}
	seed, err := integer("seed")
	if err != nil {
		return o, err
	}
	o.Seed = seed
	switch s := m["stop"].(type) {
	case nil:
	case string: // Ollama wants a list; a lone string is what OpenAI clients send
		o.Stop = []string{s}
	case []any:
		for _, v := range s {
			str, ok := v.(string)
			if !ok {
				return o, ollamaBadRequest("option %q must be of an array of strings", "stop")
			}
			o.Stop = append(o.Stop, str)
		}
	default:
		return o, ollamaBadRequest("option %q must be of type array", "stop")
	}
	return o, nil
}

// Info is what routing needs: the model as named, the images, the prompt's text (the first and
// last 16 KiB), a token estimate (1 per 4 bytes, 1024 per image) and the prefix hash.
func (o *OllamaRequest) Info() RequestInfo {
	ri := RequestInfo{Model: o.Model, Embedding: o.Kind == OllamaEmbed}
	var text strings.Builder
	add := func(s string) {
		if s == "" {
			return
		}
		ri.PromptTokens += (len(s) + 3) / 4
		text.WriteString(s)
		text.WriteByte('\n')
	}
	switch o.Kind {
	case OllamaChat:
		turns := make([]taskclass.Turn, len(o.messages))
		for i, m := range o.messages {
			add(m.Content)
			ri.Images += len(m.Images)
			turns[i] = taskclass.Turn{Role: m.Role, Text: m.Content, Images: len(m.Images), Calls: len(m.ToolCalls) > 0}
			for _, tc := range m.ToolCalls {
				turns[i].Text += "\n" + tc.Function.Name + " " + string(tc.Function.Arguments[:min(len(tc.Function.Arguments), 256)])
			}
		}
		ri.Class = taskclass.FromTurns(turns)
	case OllamaGenerate:
		add(o.system)
		add(o.prompt)
		add(o.suffix)
		ri.Images = len(o.images)
		ri.Class = taskclass.Input{Ask: o.prompt, System: o.system}
	case OllamaEmbed:
		for _, s := range o.input {
			add(s)
		}
	}
	ri.PromptTokens += ri.Images * ollamaImageTokens
	ri.Text = ollamaSample(text.String())
	ri.PrefixHash = ollamaPrefixHash(ri.Text)
	return ri
}

// ollamaSample bounds s to its first and last ollamaTextSample bytes, cut on rune boundaries.
func ollamaSample(s string) string {
	if len(s) <= 2*ollamaTextSample {
		return s
	}
	head, tail := ollamaTextSample, len(s)-ollamaTextSample
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + "\n" + s[tail:]
}

// ollamaPrefixHash hashes the prompt's first 256 bytes (0 under 64), as the OpenAI front does,
// so requests sharing a system prompt or a document hash alike.
func ollamaPrefixHash(text string) uint64 {
	if len(text) < 64 {
		return 0
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, text[:min(len(text), 256)])
	return h.Sum64()
}

// LocalResponse answers, without any backend, the requests Ollama treats as "load" or
// "unload" only: a chat without messages, a generate with an empty prompt (done_reason "load",
// or "unload" with keep_alive 0), an embed without input (no embeddings). An OpenAI backend has
// nothing to load, so the front answers these itself; an Ollama backend should still get them
// (Passthrough), since they are how clients preload and evict models. ok is false otherwise.
func (o *OllamaRequest) LocalResponse(publicModel string) (body []byte, ok bool) {
	reason := "load"
	if ollamaKeepAliveZero(o.KeepAlive) {
		reason = "unload"
	}
	now := time.Now().UTC()
	switch {
	case o.Kind == OllamaChat && len(o.messages) == 0:
		b, _ := json.Marshal(ollamaChatOut{Model: publicModel, CreatedAt: now,
			Message: ollamaOutMessage{Role: "assistant"}, DoneReason: reason, Done: true})
		return b, true
	case o.Kind == OllamaGenerate && o.prompt == "":
		b, _ := json.Marshal(ollamaGenerateOut{Model: publicModel, CreatedAt: now, DoneReason: reason, Done: true})
		return b, true
	case o.Kind == OllamaEmbed && len(o.input) == 0:
		b, _ := json.Marshal(map[string]any{"model": publicModel, "embeddings": []any{}})
		return b, true
	}
	return nil, false
}

func ollamaKeepAliveZero(raw json.RawMessage) bool {
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

// Passthrough is the body for an Ollama backend: the request as received, with only the model
// renamed (any case-variant "model" key is replaced). Key order is not preserved.
//
// The values are copied as they stand in the request (views, not decoded), so the new body
// costs its own size and nothing more; keys come out sorted, as json.Marshal writes a map.
func (o *OllamaRequest) Passthrough(upstreamModel string) ([]byte, error) {
	var m map[string]rawView
	if err := decodeFirst(o.Raw, &m); err != nil {
		return nil, fmt.Errorf("re-reading the Ollama request: %w", err)
	}
	if m == nil {
		m = map[string]rawView{}
	}
	for k := range m {
		if strings.EqualFold(k, "model") {
			delete(m, k)
		}
	}
	name, _ := json.Marshal(upstreamModel)
	m["model"] = name
	keys := make([]string, 0, len(m))
	size := 2
	for k, v := range m {
		keys = append(keys, k)
		size += len(k) + len(v) + 8
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kb, _ := json.Marshal(k)
		out = append(append(append(out, kb...), ':'), m[k]...)
	}
	return append(out, '}'), nil
}

// OpenAI request shapes.

type ollamaUpRequest struct {
	Model              string            `json:"model"`
	Messages           []ollamaUpMessage `json:"messages,omitempty"`
	Prompt             *string           `json:"prompt,omitempty"`
	Suffix             string            `json:"suffix,omitempty"`
	Stream             bool              `json:"stream"`
	StreamOptions      *ollamaUpStream   `json:"stream_options,omitempty"`
	MaxTokens          *int              `json:"max_tokens,omitempty"`
	Temperature        *float64          `json:"temperature,omitempty"`
	TopP               *float64          `json:"top_p,omitempty"`
	TopK               *int              `json:"top_k,omitempty"`
	MinP               *float64          `json:"min_p,omitempty"`
	PresencePenalty    *float64          `json:"presence_penalty,omitempty"`
	FrequencyPenalty   *float64          `json:"frequency_penalty,omitempty"`
	Seed               *int64            `json:"seed,omitempty"`
	Stop               []string          `json:"stop,omitempty"`
	ResponseFormat     any               `json:"response_format,omitempty"`
	Tools              json.RawMessage   `json:"tools,omitempty"`
	ReasoningEffort    string            `json:"reasoning_effort,omitempty"`
	ChatTemplateKwargs map[string]any    `json:"chat_template_kwargs,omitempty"`
}

type ollamaUpStream struct {
	IncludeUsage bool `json:"include_usage"`
}

type ollamaUpMessage struct {
	Role       string             `json:"role"`
	Content    any                `json:"content"` // a string, []ollamaUpPart, or nil (null)
	ToolCalls  []ollamaUpToolCall `json:"tool_calls,omitempty"`
	ToolCallID string             `json:"tool_call_id,omitempty"`
}

type ollamaUpPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url,omitempty"`
}

type ollamaUpToolCall struct {
	Index    *int   `json:"index,omitempty"` // stream deltas only
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type ollamaUpEmbed struct {
	Model          string `json:"model"`
	Input          any    `json:"input"`
	Dimensions     int    `json:"dimensions,omitempty"`
	EncodingFormat string `json:"encoding_format"`
}

// ToOpenAI builds the request for an OpenAI-compatible backend serving upstreamModel, and
// the path to send it to:
//
//   - chat → /v1/chat/completions: images become image_url parts with data: URLs; tool calls
//     get string arguments and ids (synthesised, and matched to the tool messages, when
//     Ollama's have none); options map to temperature, top_p, top_k, min_p, penalties,
//     max_tokens (num_predict > 0), stop and seed; format "json" to a json_object
//     response_format, a schema to json_schema; think to chat_template_kwargs.enable_thinking
//     or reasoning_effort; tools pass through.
//   - generate → /v1/chat/completions with the system and prompt as messages, since Ollama
//     applies the model's chat template; with raw (no template) or a suffix (fill-in-the-
//     middle) and no images → /v1/completions with the prompt as is.
//   - embed → /v1/embeddings, floats, with dimensions.
//
// Streaming requests ask for stream_options.include_usage, for the final counts.
func (o *OllamaRequest) ToOpenAI(upstreamModel string) (path string, body []byte, err error) {
	switch o.Kind {
	case OllamaEmbed:
		var input any = o.input
		if o.inputString && len(o.input) == 1 {
			input = o.input[0]
		} else if o.input == nil {
			input = []string{}
		}
		body, err = json.Marshal(ollamaUpEmbed{Model: upstreamModel, Input: input, Dimensions: o.dimensions, EncodingFormat: "float"})
		return "/v1/embeddings", body, err
	case OllamaChat, OllamaGenerate:
	default:
		return "", nil, fmt.Errorf("unknown Ollama request kind %q", o.Kind)
	}
	req := o.upstreamBase(upstreamModel)
	path = "/v1/chat/completions"
	switch {
	case o.Kind == OllamaChat:
		req.Messages = ollamaUpMessages(o.messages)
	case (o.raw || o.suffix != "") && len(o.images) == 0:
		path = "/v1/completions"
		p := o.prompt
		req.Prompt, req.Suffix = &p, o.suffix
		req.Tools, req.ChatTemplateKwargs, req.ReasoningEffort = nil, nil, ""
	default:
		var msgs []ollamaMessage
		if o.system != "" {
			msgs = append(msgs, ollamaMessage{Role: "system", Content: o.system})
		}
		msgs = append(msgs, ollamaMessage{Role: "user", Content: o.prompt, Images: o.images})
		req.Messages = ollamaUpMessages(msgs)
	}
	body, err = json.Marshal(req)
	return path, body, err
}

// upstreamBase fills the fields chat and completions share.
func (o *OllamaRequest) upstreamBase(model string) ollamaUpRequest {
	req := ollamaUpRequest{Model: model, Stream: o.Stream, Tools: o.tools,
		Temperature: o.opts.Temperature, TopP: o.opts.TopP, TopK: o.opts.TopK, MinP: o.opts.MinP,
		PresencePenalty: o.opts.PresencePenalty, FrequencyPenalty: o.opts.FrequencyPenalty,
		Seed: o.opts.Seed, Stop: o.opts.Stop}
	if o.Stream {
		req.StreamOptions = &ollamaUpStream{IncludeUsage: true}
	}
	if n := o.opts.NumPredict; n != nil && *n > 0 { // -1 (unbounded) and -2 (fill the context): no cap
		req.MaxTokens = n
	}
	if f := bytes.TrimSpace(o.format); len(f) > 0 && string(f) != `""` {
		if string(f) == `"json"` {
			req.ResponseFormat = map[string]string{"type": "json_object"}
		} else {
			req.ResponseFormat = map[string]any{"type": "json_schema",
				"json_schema": map[string]any{"name": "response", "schema": json.RawMessage(f)}}
		}
	}
	if o.think != nil {
		var b bool
		if json.Unmarshal(o.think, &b) == nil {
			req.ChatTemplateKwargs = map[string]any{"enable_thinking": b}
		} else {
			_ = json.Unmarshal(o.think, &req.ReasoningEffort)
		}
	}
	return req
}

// ollamaUpMessages converts Ollama messages to OpenAI's. Assistant tool calls without an id get
// one, and a tool message without tool_call_id answers the oldest unanswered call of its
// tool_name (or the oldest unanswered call).
func ollamaUpMessages(msgs []ollamaMessage) []ollamaUpMessage {
	out := make([]ollamaUpMessage, 0, len(msgs))
	type pending struct{ id, name string }
	var open []pending
	for i, m := range msgs {
		u := ollamaUpMessage{Role: m.Role, Content: m.Content}
		if len(m.Images) > 0 {
			parts := make([]ollamaUpPart, 0, len(m.Images)+1)
			for _, img := range m.Images { // Ollama renders images before the text
				p := ollamaUpPart{Type: "image_url"}
				p.ImageURL = &struct {
					URL string `json:"url"`
				}{URL: ollamaDataURL(img)}
				parts = append(parts, p)
			}
			if m.Content != "" {
				parts = append(parts, ollamaUpPart{Type: "text", Text: m.Content})
			}
			u.Content = parts
		}
		for j, tc := range m.ToolCalls {
			c := ollamaUpToolCall{ID: tc.ID, Type: "function"}
			if c.ID == "" {
				c.ID = fmt.Sprintf("call_%d_%d", i, j)
			}
			c.Function.Name = tc.Function.Name
			c.Function.Arguments = ollamaArgumentsString(tc.Function.Arguments)
			u.ToolCalls = append(u.ToolCalls, c)
			open = append(open, pending{c.ID, c.Function.Name})
		}
		if len(u.ToolCalls) > 0 && m.Content == "" && len(m.Images) == 0 {
			u.Content = nil
		}
		if m.Role == "tool" {
			u.ToolCallID = m.ToolCallID
			k := -1
			for n, p := range open {
				if (u.ToolCallID != "" && p.id == u.ToolCallID) || (u.ToolCallID == "" && (m.ToolName == "" || p.name == m.ToolName)) {
					k = n
					break
				}
			}
			if k < 0 && u.ToolCallID == "" && len(open) > 0 {
				k = 0
			}
			if k >= 0 {
				if u.ToolCallID == "" {
					u.ToolCallID = open[k].id
				}
				open = append(open[:k], open[k+1:]...)
			}
		}
		out = append(out, u)
	}
	return out
}

// ollamaArgumentsString is a tool call's arguments as OpenAI carries them: a JSON string.
func ollamaArgumentsString(raw json.RawMessage) string {
	if isNull(raw) {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return "{}"
	}
	return b.String()
}

// ollamaDataURL is an image as a data: URL, its media type sniffed (PNG when unknown).
func ollamaDataURL(img []byte) string {
	mt := http.DetectContentType(img)
	if !strings.HasPrefix(mt, "image/") {
		mt = "image/png"
	}
	return "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(img)
}

// OpenAI response shapes (whole answers and stream chunks).

type ollamaUpResponse struct {
	Error   json.RawMessage `json:"error"`
	Object  string          `json:"object"`
	Message string          `json:"message"` // vLLM < 0.10.1 errors: {"object":"error","message":…,"code":…}
	Code    json.RawMessage `json:"code"`
	Choices []struct {
		Index        int             `json:"index"`
		Message      *ollamaUpDelta  `json:"message"`
		Delta        *ollamaUpDelta  `json:"delta"`
		Text         json.RawMessage `json:"text"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Timings *struct { // llama.cpp
		PromptMS    float64 `json:"prompt_ms"`
		PredictedMS float64 `json:"predicted_ms"`
	} `json:"timings"`
	Data []struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
}

type ollamaUpDelta struct {
	Content          json.RawMessage    `json:"content"`
	ReasoningContent string             `json:"reasoning_content"` // vLLM, SGLang, llama.cpp
	Reasoning        string             `json:"reasoning"`         // newer vLLM
	ToolCalls        []ollamaUpToolCall `json:"tool_calls"`
}

func (d *ollamaUpDelta) thinking() string {
	if d.ReasoningContent != "" {
		return d.ReasoningContent
	}
	return d.Reasoning
}

// ollamaText reads a content or text field: a string, null, or a list of text parts.
func ollamaText(raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// upstreamError reports an error object in an answer or an event: OpenAI's {"error": {…}},
// a bare {"error": "…"}, or vLLM's older {"object": "error", …}.
func (r *ollamaUpResponse) upstreamError() (*OllamaError, bool) {
	status := func(code json.RawMessage) int {
		var n int
		if json.Unmarshal(code, &n) == nil && n >= 400 && n < 600 {
			return n
		}
		return http.StatusBadGateway
	}
	if !isNull(r.Error) {
		var obj struct {
			Message string          `json:"message"`
			Code    json.RawMessage `json:"code"`
		}
		var s string
		switch {
		case json.Unmarshal(r.Error, &s) == nil:
			return &OllamaError{Status: http.StatusBadGateway, Message: s}, true
		case json.Unmarshal(r.Error, &obj) == nil && obj.Message != "":
			return &OllamaError{Status: status(obj.Code), Message: obj.Message}, true
		}
		return &OllamaError{Status: http.StatusBadGateway, Message: string(bytes.TrimSpace(r.Error))}, true
	}
	if r.Object == "error" {
		return &OllamaError{Status: status(r.Code), Message: r.Message}, true
	}
	return nil, false
}

// Ollama response shapes, in api.ChatResponse's and api.GenerateResponse's field order.

type ollamaOutMessage struct {
	Role      string              `json:"role"`
	Content   string              `json:"content"`
	Thinking  string              `json:"thinking,omitempty"`
	ToolCalls []ollamaOutToolCall `json:"tool_calls,omitempty"`
}

type ollamaOutToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     int             `json:"index"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// ollamaMetrics are api.Metrics; durations in nanoseconds. Unlike Ollama, zeros are written:
// the final object always carries all six.
type ollamaMetrics struct {
	TotalDuration      time.Duration `json:"total_duration"`
	LoadDuration       time.Duration `json:"load_duration"`
	PromptEvalCount    int           `json:"prompt_eval_count"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration"`
	EvalCount          int           `json:"eval_count"`
	EvalDuration       time.Duration `json:"eval_duration"`
}

type ollamaChatOut struct {
	Model      string           `json:"model"`
	CreatedAt  time.Time        `json:"created_at"`
	Message    ollamaOutMessage `json:"message"`
	DoneReason string           `json:"done_reason,omitempty"`
	Done       bool             `json:"done"`
	*ollamaMetrics
}

type ollamaGenerateOut struct {
	Model      string    `json:"model"`
	CreatedAt  time.Time `json:"created_at"`
	Response   string    `json:"response"`
	Thinking   string    `json:"thinking,omitempty"`
	Done       bool      `json:"done"`
	DoneReason string    `json:"done_reason,omitempty"`
	*ollamaMetrics
}

type ollamaEmbedOut struct {
	Model           string            `json:"model"`
	Embeddings      []json.RawMessage `json:"embeddings"`
	TotalDuration   time.Duration     `json:"total_duration"`
	LoadDuration    time.Duration     `json:"load_duration"`
	PromptEvalCount int               `json:"prompt_eval_count"`
}

// out is one Ollama object for o's kind.
func (o *OllamaRequest) out(model, content, thinking string, calls []ollamaOutToolCall, reason string, m *ollamaMetrics) any {
	now := time.Now().UTC()
	if o.Kind == OllamaGenerate {
		return ollamaGenerateOut{Model: model, CreatedAt: now, Response: content, Thinking: thinking,
			Done: m != nil, DoneReason: reason, ollamaMetrics: m}
	}
	return ollamaChatOut{Model: model, CreatedAt: now, DoneReason: reason, Done: m != nil, ollamaMetrics: m,
		Message: ollamaOutMessage{Role: "assistant", Content: content, Thinking: thinking, ToolCalls: calls}}
}

// ollamaDoneReason maps finish_reason: Ollama knows "stop" and "length" (tool calls end with
// "stop" there).
func ollamaDoneReason(finish string) string {
	if finish == "length" {
		return "length"
	}
	return "stop"
}

// ollamaSplit divides the time an answer took between prompt evaluation and generation, in
// proportion to their work (a prompt token costs 1/ollamaDecodeCost of a generated one).
func ollamaSplit(total time.Duration, prompt, completion int) (promptEval, eval time.Duration) {
	if completion <= 0 {
		return total, 0
	}
	w := float64(prompt) / ollamaDecodeCost
	promptEval = time.Duration(float64(total) * w / (w + float64(completion)))
	return promptEval, total - promptEval
}

// ollamaOutCalls converts OpenAI tool calls to Ollama's, whose arguments are an object. Calls
// whose arguments are not a JSON object get {} (Ollama's parser would not have produced them).
func ollamaOutCalls(calls []ollamaUpToolCall) []ollamaOutToolCall {
	var out []ollamaOutToolCall
	for i, c := range calls {
		var t ollamaOutToolCall
		t.ID = c.ID
		t.Function.Index = i
		t.Function.Name = c.Function.Name
		t.Function.Arguments = json.RawMessage("{}")
		var obj map[string]json.RawMessage
		if args := strings.TrimSpace(c.Function.Arguments); args != "" && json.Unmarshal([]byte(args), &obj) == nil && obj != nil {
			var b bytes.Buffer
			if json.Compact(&b, []byte(args)) == nil {
				t.Function.Arguments = b.Bytes()
			}
		}
		out = append(out, t)
	}
	return out
}

// OpenAIToOllama translates a whole (non-streaming) OpenAI answer to Ollama's: the final
// /api/chat object (message with content, thinking, tool_calls), the /api/generate one
// (response), or /api/embed's embeddings. Counts come from usage (estimates when absent),
// durations from llama.cpp's timings or else elapsed split by work. publicModel is the name
// to report (OllamaName of the public model). An error object in body is an *OllamaError.
func OpenAIToOllama(o *OllamaRequest, publicModel string, body []byte, elapsed time.Duration) ([]byte, error) {
	var r ollamaUpResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding the upstream answer: %w", err)
	}
	if e, ok := r.upstreamError(); ok {
		return nil, e
	}
	prompt, completion := -1, -1
	if r.Usage != nil {
		prompt, completion = r.Usage.PromptTokens, r.Usage.CompletionTokens
	}
	if prompt < 0 {
		prompt = o.Info().PromptTokens
	}
	if o.Kind == OllamaEmbed {
		data := r.Data
		sort.SliceStable(data, func(i, j int) bool { return data[i].Index < data[j].Index })
		out := ollamaEmbedOut{Model: publicModel, Embeddings: make([]json.RawMessage, 0, len(data)),
			TotalDuration: elapsed, PromptEvalCount: prompt}
		for _, d := range data {
			v, err := ollamaVector(d.Embedding)
			if err != nil {
				return nil, fmt.Errorf("embedding %d: %w", d.Index, err)
			}
			out.Embeddings = append(out.Embeddings, v)
		}
		return json.Marshal(out)
	}
	if len(r.Choices) == 0 {
		return nil, errors.New("the upstream answer has no choices")
	}
	c := r.Choices[0]
	for _, ch := range r.Choices {
		if ch.Index == 0 {
			c = ch
			break
		}
	}
	var content, thinking string
	var calls []ollamaOutToolCall
	if c.Message != nil {
		content, thinking = ollamaText(c.Message.Content), c.Message.thinking()
		if o.Kind == OllamaChat {
			calls = ollamaOutCalls(c.Message.ToolCalls)
		}
	} else {
		content = ollamaText(c.Text)
	}
	if completion < 0 {
		completion = (len(content) + len(thinking) + 3) / 4
	}
	m := &ollamaMetrics{TotalDuration: elapsed, PromptEvalCount: prompt, EvalCount: completion}
	if t := r.Timings; t != nil && t.PromptMS+t.PredictedMS > 0 {
		m.PromptEvalDuration = time.Duration(t.PromptMS * float64(time.Millisecond))
		m.EvalDuration = time.Duration(t.PredictedMS * float64(time.Millisecond))
	} else {
		m.PromptEvalDuration, m.EvalDuration = ollamaSplit(elapsed, prompt, completion)
	}
	var finish string
	if c.FinishReason != nil {
		finish = *c.FinishReason
	}
	return json.Marshal(o.out(publicModel, content, thinking, calls, ollamaDoneReason(finish), m))
}

// ollamaVector is an embedding as a JSON array: as sent when it is one, decoded when it is
// base64 (little-endian float32s).
func ollamaVector(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '[' {
		return t, nil
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return nil, errors.New("want an array of numbers or a base64 string")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b)%4 != 0 {
		return nil, errors.New("the base64 embedding does not decode to float32s")
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return json.Marshal(v)
}

// StreamOpenAIToOllama reads an OpenAI SSE stream from r and writes Ollama's NDJSON to w,
// calling flush after each line: a line per content (or thinking) delta, one with the tool
// calls once they are complete, then the final done:true line with done_reason, the counts
// (from the usage chunk, else estimated) and the durations (prompt evaluation up to the first
// token, generation after; llama.cpp's timings when present). An error event becomes an
// {"error": "…"} line and an *OllamaError; so does a stream that ends without data: [DONE].
// It returns nil after [DONE], or the error reading r or writing w.
func StreamOpenAIToOllama(o *OllamaRequest, publicModel string, r io.Reader, w io.Writer, flush func(), start time.Time) error {
	s := &ollamaStream{o: o, model: publicModel, w: w, flush: flush, start: start, prompt: -1, completion: -1}
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte
	pending := false
	dispatch := func() (bool, error) {
		if !pending {
			return false, nil
		}
		pending = false
		done, err := s.event(data)
		data = data[:0]
		return done, err
	}
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			var done bool
			var err error
			switch {
			case len(line) == 0:
				done, err = dispatch()
			case line[0] == ':': // comment
			default:
				field, value, _ := bytes.Cut(line, []byte(":"))
				if string(field) != "data" {
					break
				}
				value = bytes.TrimPrefix(value, []byte(" "))
				// Events are blank-line separated; a server that omits the blank line still
				// sends one complete JSON value per data line.
				if pending && (json.Valid(data) || string(data) == "[DONE]") {
					if done, err = dispatch(); done || err != nil {
						break
					}
				}
				if pending {
					data = append(data, '\n')
				}
				data = append(data, value...)
				pending = true
			}
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
		if rerr == nil {
			continue
		}
		// The stream ended (or broke): a last event without its blank line still counts if it
		// is whole; a partial one is dropped, and the answer reported incomplete.
		if pending && (json.Valid(data) || string(bytes.TrimSpace(data)) == "[DONE]") {
			if done, err := dispatch(); err != nil {
				return err
			} else if done {
				return nil
			}
		}
		if errors.Is(rerr, io.EOF) {
			return s.fail(&OllamaError{Status: http.StatusBadGateway,
				Message: "the upstream engine closed the stream before it finished (no data: [DONE]); the answer is incomplete: retry the request"})
		}
		// The client's line names no addresses (a connection error has both ends'); the
		// returned error, for the log, has them.
		if err := s.line(map[string]string{"error": "reading the upstream stream failed; the answer is incomplete: retry the request"}); err != nil {
			return err
		}
		return fmt.Errorf("reading the upstream stream: %w", rerr)
	}
}

// ollamaStream is one stream's translation state.
type ollamaStream struct {
	o                  *OllamaRequest
	model              string
	w                  io.Writer
	flush              func()
	start, first       time.Time // first: the first token's arrival
	prompt, completion int       // from usage; -1 until seen
	pieces             int       // content and thinking deltas written
	finish             string
	timings            *struct{ prompt, predicted time.Duration }
	calls              []ollamaUpToolCall // accumulated by index
	callsSent          bool
}

func (s *ollamaStream) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing to the client: %w", err)
	}
	if s.flush != nil {
		s.flush()
	}
	return nil
}

// fail writes e as an error line and returns it (or the write's error).
func (s *ollamaStream) fail(e *OllamaError) error {
	if err := s.line(map[string]string{"error": e.Message}); err != nil {
		return err
	}
	return e
}

// event handles one SSE event's data; done is true after [DONE].
func (s *ollamaStream) event(data []byte) (done bool, err error) {
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		return true, s.end()
	}
	var r ollamaUpResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return false, s.fail(&OllamaError{Status: http.StatusBadGateway,
			Message: fmt.Sprintf("the upstream engine sent an event that is not JSON (%v): %.200q", err, data)})
	}
	if e, ok := r.upstreamError(); ok {
		return false, s.fail(e)
	}
	if r.Usage != nil {
		s.prompt, s.completion = r.Usage.PromptTokens, r.Usage.CompletionTokens
	}
	if t := r.Timings; t != nil && t.PromptMS+t.PredictedMS > 0 {
		s.timings = &struct{ prompt, predicted time.Duration }{
			time.Duration(t.PromptMS * float64(time.Millisecond)), time.Duration(t.PredictedMS * float64(time.Millisecond))}
	}
	for _, c := range r.Choices {
		if c.Index != 0 {
			continue
		}
		var content, thinking string
		if d := c.Delta; d != nil {
			content, thinking = ollamaText(d.Content), d.thinking()
			s.addCalls(d.ToolCalls)
		} else if c.Message != nil {
			content, thinking = ollamaText(c.Message.Content), c.Message.thinking()
			s.addCalls(c.Message.ToolCalls)
		} else {
			content = ollamaText(c.Text)
		}
		if content != "" || thinking != "" {
			s.token()
			s.pieces++
			if err := s.line(s.o.out(s.model, content, thinking, nil, "", nil)); err != nil {
				return false, err
			}
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.finish = *c.FinishReason
			if err := s.sendCalls(); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (s *ollamaStream) token() {
	if s.first.IsZero() {
		s.first = time.Now()
	}
}

// addCalls merges tool-call deltas: the first of an index carries id and name, the rest
// fragments of the arguments.
func (s *ollamaStream) addCalls(deltas []ollamaUpToolCall) {
	for _, d := range deltas {
		if s.o.Kind != OllamaChat {
			return
		}
		s.token()
		k := -1
		for i, c := range s.calls {
			if d.Index != nil && c.Index != nil && *c.Index == *d.Index {
				k = i
				break
			}
		}
		if k < 0 {
			idx := len(s.calls)
			if d.Index != nil {
				idx = *d.Index
			}
			s.calls = append(s.calls, ollamaUpToolCall{Index: &idx})
			k = len(s.calls) - 1
		}
		c := &s.calls[k]
		if d.ID != "" {
			c.ID = d.ID
		}
		if d.Function.Name != "" {
			c.Function.Name = d.Function.Name
		}
		c.Function.Arguments += d.Function.Arguments
	}
}

// sendCalls writes the accumulated tool calls, once, as a line of their own.
func (s *ollamaStream) sendCalls() error {
	if s.callsSent || len(s.calls) == 0 {
		return nil
	}
	s.callsSent = true
	sort.SliceStable(s.calls, func(i, j int) bool { return *s.calls[i].Index < *s.calls[j].Index })
	return s.line(s.o.out(s.model, "", "", ollamaOutCalls(s.calls), "", nil))
}

// end writes the final line.
func (s *ollamaStream) end() error {
	if err := s.sendCalls(); err != nil {
		return err
	}
	now := time.Now()
	m := &ollamaMetrics{TotalDuration: now.Sub(s.start), PromptEvalCount: s.prompt, EvalCount: s.completion}
	if m.PromptEvalCount < 0 {
		m.PromptEvalCount = s.o.Info().PromptTokens
	}
	if m.EvalCount < 0 {
		m.EvalCount = s.pieces + len(s.calls)
	}
	switch {
	case s.timings != nil:
		m.PromptEvalDuration, m.EvalDuration = s.timings.prompt, s.timings.predicted
	case !s.first.IsZero():
		m.PromptEvalDuration, m.EvalDuration = s.first.Sub(s.start), now.Sub(s.first)
	default:
		m.PromptEvalDuration = m.TotalDuration
	}
	return s.line(s.o.out(s.model, "", "", nil, ollamaDoneReason(s.finish), m))
}

// Listing endpoints.

// OllamaModelInfo describes one public model for /api/tags and /api/show. Name is the public
// name (":latest" is added when it has no tag); the rest is optional.
type OllamaModelInfo struct {
	Name                  string
	Family, ParameterSize string // e.g. "qwen2", "7.6B"
	Quantization          string // e.g. "Q4_K_M", "BF16"
	Format                string // "gguf" when empty
	ContextLength         int    // /api/show model_info["<family>.context_length"]
	Capabilities          []string
	Size                  int64
	ModifiedAt            time.Time
}

type ollamaDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

func (m OllamaModelInfo) details() ollamaDetails {
	d := ollamaDetails{Format: m.Format, Family: m.Family, ParameterSize: m.ParameterSize, QuantizationLevel: m.Quantization}
	if d.Format == "" {
		d.Format = "gguf"
	}
	if m.Family != "" {
		d.Families = []string{m.Family}
	}
	return d
}

// ollamaDigest is a stable stand-in for the manifest digest: the sha256 of the name.
func ollamaDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// OllamaTags is the /api/tags body: {"models": [{name, model, modified_at, size, digest,
// details}]}, in the order given.
func OllamaTags(models []OllamaModelInfo) []byte {
	type entry struct {
		Name       string        `json:"name"`
		Model      string        `json:"model"`
		ModifiedAt time.Time     `json:"modified_at"`
		Size       int64         `json:"size"`
		Digest     string        `json:"digest"`
		Details    ollamaDetails `json:"details"`
	}
	list := make([]entry, 0, len(models))
	for _, m := range models {
		name := OllamaName(m.Name)
		list = append(list, entry{Name: name, Model: name, ModifiedAt: m.ModifiedAt.UTC(), Size: m.Size,
			Digest: ollamaDigest(name), Details: m.details()})
	}
	b, _ := json.Marshal(map[string]any{"models": list})
	return b
}

// OllamaPs is the /api/ps body: {"models": [{name, model, size, digest, details, expires_at,
// size_vram, context_length}]}; the gateway does not unload models, so expires_at is far ahead.
func OllamaPs(models []OllamaModelInfo) []byte {
	type entry struct {
		Name          string        `json:"name"`
		Model         string        `json:"model"`
		Size          int64         `json:"size"`
		Digest        string        `json:"digest"`
		Details       ollamaDetails `json:"details"`
		ExpiresAt     time.Time     `json:"expires_at"`
		SizeVRAM      int64         `json:"size_vram"`
		ContextLength int           `json:"context_length"`
	}
	list := make([]entry, 0, len(models))
	for _, m := range models {
		name := OllamaName(m.Name)
		list = append(list, entry{Name: name, Model: name, Size: m.Size, Digest: ollamaDigest(name), Details: m.details(),
			ExpiresAt: time.Date(2318, 1, 1, 0, 0, 0, 0, time.UTC), SizeVRAM: m.Size, ContextLength: m.ContextLength})
	}
	b, _ := json.Marshal(map[string]any{"models": list})
	return b
}

// OllamaShow is the /api/show body for m: modelfile, template, details, model_info,
// capabilities (["completion"] unless given) and modified_at.
func OllamaShow(m OllamaModelInfo) []byte {
	name := OllamaName(m.Name)
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
		Details      ollamaDetails  `json:"details"`
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

// OllamaVersion is the /api/version body, {"version": v}.
func OllamaVersion(v string) []byte {
	b, _ := json.Marshal(map[string]string{"version": v})
	return b
}

// OllamaName is a name as Ollama reports it: with ":latest" when it has no tag (a colon after
// the last slash).
func OllamaName(public string) string {
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

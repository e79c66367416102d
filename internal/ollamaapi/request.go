package ollamaapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request kinds: the endpoint a request came to.
const (
	Chat     = "chat"     // POST /api/chat
	Generate = "generate" // POST /api/generate
	Embed    = "embed"    // POST /api/embed
)

// imageTokens is the prompt-token estimate of one image, as the gateway's OpenAI front counts it.
const imageTokens = 1024

// Error is an error in Ollama's shape: an HTTP status and {"error": Message}.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// JSON is the error's body, {"error": "…"}.
func (e *Error) JSON() []byte {
	b, _ := json.Marshal(map[string]string{"error": e.Message})
	return b
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// Request is a parsed /api/chat, /api/generate or /api/embed request. Parse it with Parse; it
// is read-only afterwards, so a proxy may build upstream bodies from it again for each retry.
type Request struct {
	Kind      string          // Chat, Generate or Embed
	Model     string          // as the client named it ("x" or "x:latest")
	Stream    bool            // default true, as Ollama; always false for embed
	KeepAlive json.RawMessage // as sent (validated); nil when absent
	Raw       []byte          // the body as received, for Passthrough

	messages []Message       // chat
	tools    json.RawMessage // chat: the tool definitions, OpenAI's shape already
	format   json.RawMessage // chat, generate: "json" or a JSON schema; nil for none
	think    json.RawMessage // chat, generate: true, false, "high", "medium" or "low"; nil unset
	opts     options

	// generate
	prompt, system, suffix string
	raw                    bool
	images                 [][]byte

	// embed
	input       []string
	inputString bool // input was one string rather than a list
	dimensions  int
}

// Message is api.Message. Images decode from base64 as api.ImageData ([]byte) does.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking,omitempty"`
	Images     [][]byte   `json:"images,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolName   string     `json:"tool_name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolCall is api.ToolCall: the arguments are a JSON object, not a string.
type ToolCall struct {
	ID       string `json:"id,omitempty"`
	Function struct {
		Index     int             `json:"index"`
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// chatRequest, generateRequest and embedRequest are api.ChatRequest, api.GenerateRequest and
// api.EmbedRequest, as far as the gateway reads them; typeNames gives their names back in
// JSON errors.
type chatRequest struct {
	Model     string          `json:"model"`
	Messages  []Message       `json:"messages"`
	Tools     json.RawMessage `json:"tools"`
	Format    json.RawMessage `json:"format"`
	Options   map[string]any  `json:"options"`
	Stream    *bool           `json:"stream"`
	KeepAlive json.RawMessage `json:"keep_alive"`
	Think     json.RawMessage `json:"think"`
}

type generateRequest struct {
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

type embedRequest struct {
	Model      string          `json:"model"`
	Input      any             `json:"input"`
	Truncate   *bool           `json:"truncate"`
	Dimensions int             `json:"dimensions"`
	Options    map[string]any  `json:"options"`
	KeepAlive  json.RawMessage `json:"keep_alive"`
}

// options are the runtime options that have an OpenAI equivalent; the others (num_ctx,
// mirostat, …) are accepted and dropped for OpenAI upstreams, and kept for Ollama ones.
type options struct {
	Temperature, TopP, MinP           *float64
	PresencePenalty, FrequencyPenalty *float64
	TopK, NumPredict                  *int
	Seed                              *int64
	Stop                              []string
}

// Parse parses the body of an /api/<kind> request. Errors are *Error (400) with Ollama's
// wording where Ollama has one: "missing request body", "model is required", "invalid input
// type", Go's JSON errors (with Ollama's type names), bad base64 image data.
func Parse(kind string, body []byte) (*Request, error) {
	o := &Request{Kind: kind, Raw: body, Stream: true}
	var rawOpts map[string]any
	switch kind {
	case Chat:
		var req chatRequest
		if err := Decode(body, &req); err != nil {
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
					return nil, badRequest("invalid image data: image %d of message %d is empty", j, i)
				}
			}
		}
		if t := bytes.TrimSpace(req.Tools); len(t) > 0 && string(t) != "null" {
			var list []json.RawMessage
			if err := json.Unmarshal(t, &list); err != nil {
				return nil, badRequest("invalid tools: want an array of {\"type\": \"function\", \"function\": {…}} objects")
			}
			if len(list) > 0 {
				o.tools = t
			}
		}
	case Generate:
		var req generateRequest
		if err := Decode(body, &req); err != nil {
			return nil, err
		}
		o.Model, o.KeepAlive, o.format, o.think, rawOpts = req.Model, req.KeepAlive, req.Format, req.Think, req.Options
		o.prompt, o.system, o.suffix, o.raw, o.images = req.Prompt, req.System, req.Suffix, req.Raw, req.Images
		if req.Stream != nil {
			o.Stream = *req.Stream
		}
		for j, img := range req.Images {
			if len(img) == 0 {
				return nil, badRequest("invalid image data: image %d is empty", j)
			}
		}
		if req.Raw && (req.Template != "" || req.System != "" || len(req.Context) > 0) {
			return nil, badRequest("raw mode does not support template, system, or context")
		}
	case Embed:
		var req embedRequest
		if err := Decode(body, &req); err != nil {
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
					return nil, badRequest("invalid input type")
				}
				o.input = append(o.input, s)
			}
		default:
			return nil, badRequest("invalid input type")
		}
		if req.Dimensions < 0 {
			return nil, badRequest("dimensions must be a positive number")
		}
	default:
		return nil, &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown Ollama endpoint /api/%s: this gateway serves /api/chat, /api/generate and /api/embed", kind)}
	}
	if o.Model == "" {
		return nil, badRequest("model is required")
	}
	if err := checkKeepAlive(o.KeepAlive); err != nil {
		return nil, err
	}
	if err := checkFormat(o.format); err != nil {
		return nil, err
	}
	if err := checkThink(o.think); err != nil {
		return nil, err
	}
	opts, err := parseOptions(rawOpts)
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

// Messages are a chat's messages, as sent (nil for other kinds). Read only.
func (o *Request) Messages() []Message { return o.messages }

// Prompt is a generate request's prompt ("" for other kinds).
func (o *Request) Prompt() string { return o.prompt }

// System is a generate request's system prompt.
func (o *Request) System() string { return o.system }

// Suffix is a generate request's suffix (fill-in-the-middle).
func (o *Request) Suffix() string { return o.suffix }

// Images are a generate request's images, decoded (a chat's are in its messages). Read only.
func (o *Request) Images() [][]byte { return o.images }

// Input is an embed request's input, one string per text (nil when empty). Read only.
func (o *Request) Input() []string { return o.input }

// PromptTokens estimates the prompt's size: 1 token per 4 bytes of each text (the messages'
// contents; a generate's system, prompt and suffix; an embed's inputs) and 1,024 per image.
// FromOpenAI and StreamFromOpenAI report it when the upstream gives no usage.
func (o *Request) PromptTokens() int {
	n, images := 0, 0
	add := func(s string) {
		if s != "" {
			n += (len(s) + 3) / 4
		}
	}
	switch o.Kind {
	case Chat:
		for _, m := range o.messages {
			add(m.Content)
			images += len(m.Images)
		}
	case Generate:
		add(o.system)
		add(o.prompt)
		add(o.suffix)
		images = len(o.images)
	case Embed:
		for _, s := range o.input {
			add(s)
		}
	}
	return n + images*imageTokens
}

// typeNames renames this package's request types to Ollama's in JSON type errors, so the
// message reads as Ollama's own ("… into Go struct field ChatRequest.stream of type bool").
var typeNames = strings.NewReplacer(
	"ollamaapi.chatRequest", "api.ChatRequest", "chatRequest", "ChatRequest",
	"ollamaapi.generateRequest", "api.GenerateRequest", "generateRequest", "GenerateRequest",
	"ollamaapi.embedRequest", "api.EmbedRequest", "embedRequest", "EmbedRequest",
	"ollamaapi.Message", "api.Message",
	"ollamaapi.ToolCall", "api.ToolCall",
	"[]uint8", "api.ImageData",
)

// Decode binds a request body as gin's ShouldBindJSON does for Ollama: one JSON value
// (trailing bytes ignored), field names matched case-insensitively. Errors are 400 *Error
// with Ollama's wording.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("missing request body")
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
		return badRequest("invalid JSON: %v", err)
	case errors.As(err, &b64):
		return badRequest("invalid image data: %v: images must be base64-encoded bytes (no data: URL prefix)", err)
	case errors.As(err, &typ):
		return badRequest("%s", typeNames.Replace(err.Error()))
	}
	return badRequest("%v", err)
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

// checkKeepAlive accepts what api.Duration does — a number of seconds or a Go duration
// string — and, as Ollama's CLI does, a string holding a number of seconds.
func checkKeepAlive(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return badRequest("invalid keep_alive: %v", err)
	}
	switch t := v.(type) {
	case float64:
		return nil
	case string:
		if _, err := strconv.ParseFloat(t, 64); err == nil {
			return nil
		}
		if _, err := time.ParseDuration(t); err != nil {
			return badRequest("invalid keep_alive: %v: want a duration such as \"5m\" or a number of seconds", err)
		}
		return nil
	}
	return badRequest("invalid keep_alive: want a duration such as \"5m\" or a number of seconds")
}

// checkFormat accepts what Ollama's runner does (llm/server.go): nothing, "", "json" or a
// JSON schema object.
func checkFormat(raw json.RawMessage) error {
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
	return badRequest("invalid format: %q; expected \"json\" or a valid JSON Schema object", string(t))
}

// checkThink accepts what api.ThinkValue does.
func checkThink(raw json.RawMessage) error {
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
	return badRequest("invalid think value: %s (must be \"high\", \"medium\", \"low\", true, or false)", bytes.TrimSpace(raw))
}

// parseOptions reads the options with an OpenAI equivalent, type-checked with the messages
// of api.Options.FromMap. Unknown options are ignored, as Ollama does.
func parseOptions(m map[string]any) (options, error) {
	var o options
	float := func(key string, dst **float64) error {
		v, ok := m[key]
		if !ok || v == nil {
			return nil
		}
		f, ok := v.(float64)
		if !ok {
			return badRequest("option %q must be of type float32", key)
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
			return nil, badRequest("option %q must be of type integer", key)
		}
		if math.IsNaN(f) || f > math.MaxInt64 || f < math.MinInt64 {
			return nil, badRequest("option %q is out of range", key)
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
				return o, badRequest("option %q must be of an array of strings", "stop")
			}
			o.Stop = append(o.Stop, str)
		}
	default:
		return o, badRequest("option %q must be of type array", "stop")
	}
	return o, nil
}

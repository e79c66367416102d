package ollamaapi

// The request to the upstream: OpenAI's for an OpenAI-compatible engine, Ollama's own (the
// model renamed) for an Ollama.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Passthrough is the body for an Ollama upstream: the request as received, with only the model
// renamed (any case-variant "model" key is replaced). Key order is not preserved.
//
// The values are copied as they stand in the request (views, not decoded), so the new body
// costs its own size and nothing more; keys come out sorted, as json.Marshal writes a map.
func (o *Request) Passthrough(upstreamModel string) ([]byte, error) {
	var m map[string]view
	if err := decodeFirst(o.Raw, &m); err != nil {
		return nil, fmt.Errorf("re-reading the Ollama request: %w", err)
	}
	if m == nil {
		m = map[string]view{}
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

// view is a JSON value as it stands in the request body: unlike json.RawMessage, it keeps
// encoding/json's slice of the input instead of copying it. The body outlives the parse and
// is never written to, so the view stays valid.
type view []byte

func (v *view) UnmarshalJSON(b []byte) error {
	*v = b
	return nil
}

// OpenAI request shapes.

type upRequest struct {
	Model              string          `json:"model"`
	Messages           []upMessage     `json:"messages,omitempty"`
	Prompt             *string         `json:"prompt,omitempty"`
	Suffix             string          `json:"suffix,omitempty"`
	Stream             bool            `json:"stream"`
	StreamOptions      *upStream       `json:"stream_options,omitempty"`
	MaxTokens          *int            `json:"max_tokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"top_p,omitempty"`
	TopK               *int            `json:"top_k,omitempty"`
	MinP               *float64        `json:"min_p,omitempty"`
	PresencePenalty    *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty   *float64        `json:"frequency_penalty,omitempty"`
	Seed               *int64          `json:"seed,omitempty"`
	Stop               []string        `json:"stop,omitempty"`
	ResponseFormat     any             `json:"response_format,omitempty"`
	Tools              json.RawMessage `json:"tools,omitempty"`
	ReasoningEffort    string          `json:"reasoning_effort,omitempty"`
	ChatTemplateKwargs map[string]any  `json:"chat_template_kwargs,omitempty"`
}

type upStream struct {
	IncludeUsage bool `json:"include_usage"`
}

type upMessage struct {
	Role       string       `json:"role"`
	Content    any          `json:"content"` // a string, []upPart, or nil (null)
	ToolCalls  []upToolCall `json:"tool_calls,omitempty"`
	ToolCallID string       `json:"tool_call_id,omitempty"`
}

type upPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url,omitempty"`
}

type upToolCall struct {
	Index    *int   `json:"index,omitempty"` // stream deltas only
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type upEmbed struct {
	Model          string `json:"model"`
	Input          any    `json:"input"`
	Dimensions     int    `json:"dimensions,omitempty"`
	EncodingFormat string `json:"encoding_format"`
}

// ToOpenAI builds the request for an OpenAI-compatible upstream serving upstreamModel, and
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
func (o *Request) ToOpenAI(upstreamModel string) (path string, body []byte, err error) {
	switch o.Kind {
	case Embed:
		var input any = o.input
		if o.inputString && len(o.input) == 1 {
			input = o.input[0]
		} else if o.input == nil {
			input = []string{}
		}
		body, err = json.Marshal(upEmbed{Model: upstreamModel, Input: input, Dimensions: o.dimensions, EncodingFormat: "float"})
		return "/v1/embeddings", body, err
	case Chat, Generate:
	default:
		return "", nil, fmt.Errorf("unknown Ollama request kind %q", o.Kind)
	}
	req := o.upstreamBase(upstreamModel)
	path = "/v1/chat/completions"
	switch {
	case o.Kind == Chat:
		req.Messages = upMessages(o.messages)
	case (o.raw || o.suffix != "") && len(o.images) == 0:
		path = "/v1/completions"
		p := o.prompt
		req.Prompt, req.Suffix = &p, o.suffix
		req.Tools, req.ChatTemplateKwargs, req.ReasoningEffort = nil, nil, ""
	default:
		var msgs []Message
		if o.system != "" {
			msgs = append(msgs, Message{Role: "system", Content: o.system})
		}
		msgs = append(msgs, Message{Role: "user", Content: o.prompt, Images: o.images})
		req.Messages = upMessages(msgs)
	}
	body, err = json.Marshal(req)
	return path, body, err
}

// upstreamBase fills the fields chat and completions share.
func (o *Request) upstreamBase(model string) upRequest {
	req := upRequest{Model: model, Stream: o.Stream, Tools: o.tools,
		Temperature: o.opts.Temperature, TopP: o.opts.TopP, TopK: o.opts.TopK, MinP: o.opts.MinP,
		PresencePenalty: o.opts.PresencePenalty, FrequencyPenalty: o.opts.FrequencyPenalty,
		Seed: o.opts.Seed, Stop: o.opts.Stop}
	if o.Stream {
		req.StreamOptions = &upStream{IncludeUsage: true}
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

// upMessages converts Ollama messages to OpenAI's. Assistant tool calls without an id get
// one, and a tool message without tool_call_id answers the oldest unanswered call of its
// tool_name (or the oldest unanswered call).
func upMessages(msgs []Message) []upMessage {
	out := make([]upMessage, 0, len(msgs))
	type pending struct{ id, name string }
	var open []pending
	for i, m := range msgs {
		u := upMessage{Role: m.Role, Content: m.Content}
		if len(m.Images) > 0 {
			parts := make([]upPart, 0, len(m.Images)+1)
			for _, img := range m.Images { // Ollama renders images before the text
				p := upPart{Type: "image_url"}
				p.ImageURL = &struct {
					URL string `json:"url"`
				}{URL: dataURL(img)}
				parts = append(parts, p)
			}
			if m.Content != "" {
				parts = append(parts, upPart{Type: "text", Text: m.Content})
			}
			u.Content = parts
		}
		for j, tc := range m.ToolCalls {
			c := upToolCall{ID: tc.ID, Type: "function"}
			if c.ID == "" {
				c.ID = fmt.Sprintf("call_%d_%d", i, j)
			}
			c.Function.Name = tc.Function.Name
			c.Function.Arguments = argumentsString(tc.Function.Arguments)
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

// argumentsString is a tool call's arguments as OpenAI carries them: a JSON string.
func argumentsString(raw json.RawMessage) string {
	if isNull(raw) {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return "{}"
	}
	return b.String()
}

// dataURL is an image as a data: URL, its media type sniffed (PNG when unknown).
func dataURL(img []byte) string {
	mt := http.DetectContentType(img)
	if !strings.HasPrefix(mt, "image/") {
		mt = "image/png"
	}
	return "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(img)
}

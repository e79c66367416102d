package gateway

// The OpenAI front: /v1/chat/completions, /v1/completions and /v1/embeddings — reading the
// body (without copying it), what routing needs to know of it, and the model's rename for
// the upstream. Forwarding is proxy.go's.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"reflect"
	"strings"

	"citadel.dev/citadel/internal/taskclass"
)

// openAIBody is the part of an OpenAI request the gateway reads. Its raw fields are views
// into the request body, not copies: parsing a 30 MiB prompt costs no second 30 MiB.
type openAIBody struct {
	Model    modelField `json:"model"`
	Stream   bool       `json:"stream"`
	Messages rawView    `json:"messages"`
	Prompt   rawView    `json:"prompt"`
	Input    rawView    `json:"input"`
	// The answer's bound, for the model's limits.maxTokens (numbers, as engines accept 16.0).
	MaxTokens           *float64 `json:"max_tokens"`
	MaxCompletionTokens *float64 `json:"max_completion_tokens"`
}

// maxTokens is the answer's bound the request asks for (0: none) and the field that says it;
// of max_tokens and max_completion_tokens, the larger.
func (b *openAIBody) maxTokens() (int64, string) {
	var n int64
	var param string
	for _, f := range []struct {
		v    *float64
		name string
	}{{b.MaxTokens, "max_tokens"}, {b.MaxCompletionTokens, "max_completion_tokens"}} {
		if f.v != nil && *f.v > float64(n) {
			n, param = int64(min(math.Ceil(*f.v), math.MaxInt32)), f.name
		}
	}
	return n, param
}

type openAIMessage struct {
	Role      string  `json:"role"`
	Content   rawView `json:"content"`
	ToolCalls rawView `json:"tool_calls"`
}

// rawView is a JSON value as it stands in the request body: unlike json.RawMessage, it keeps
// encoding/json's slice of the input instead of copying it. The body outlives the parse and
// is never written to, so the view stays valid.
type rawView []byte

func (v *rawView) UnmarshalJSON(b []byte) error {
	*v = b
	return nil
}

// modelField is the request's "model": the name, and its JSON value's place in the body (for
// rename).
type modelField struct {
	name string
	raw  []byte
}

func (m *modelField) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &m.name); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Field = "model"
		}
		return err
	}
	m.raw = b
	return nil
}

// jsonText calls add with the length and the first 2*textSample bytes of a JSON string
// value, without copying a string that has no escapes; ok is false for a value that is not a
// string.
func jsonText(raw []byte, add func(n int, prefix string)) (ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	if inner := raw[1 : len(raw)-1]; raw[len(raw)-1] == '"' && bytes.IndexByte(inner, '\\') < 0 {
		add(len(inner), string(inner[:min(len(inner), 2*textSample)]))
		return true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	add(len(s), s)
	return true
}

type openAIPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// clientError is a request the gateway refuses, with the OpenAI error fields.
type clientError struct {
	status    int
	typ, code string
	message   string
	param     string
	// detail goes to the log and the access log, never to the client: backend URLs and
	// their errors. The client's message names the request id to find it.
	detail string
	// retryAfter is an engine's Retry-After, passed on with a 429.
	retryAfter string
}

func (e *clientError) Error() string { return e.message }

func badRequest(code, format string, args ...any) *clientError {
	return &clientError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, message: fmt.Sprintf(format, args...)}
}

const textSample = 16 << 10 // routing reads at most the first and last 16 KiB of a prompt

// parseOpenAI reads what routing needs from an OpenAI request body; invalid input is a
// *clientError.
func parseOpenAI(kind string, body []byte) (openAIBody, RequestInfo, error) {
	var b openAIBody
	if err := json.Unmarshal(body, &b); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return b, RequestInfo{}, badRequest("invalid_json", "We could not parse the JSON body of your request: %v at byte offset %d. (HINT: the body must be a JSON object.)", err, se.Offset)
		}
		return b, RequestInfo{}, badRequest("invalid_json", "We could not parse the JSON body of your request: %s", jsonProblem(err))
	}
	if b.Model.name == "" {
		return b, RequestInfo{}, &clientError{status: 400, typ: "invalid_request_error", code: "missing_required_parameter", param: "model", message: "you must provide a model parameter"}
	}
	ri := RequestInfo{Model: b.Model.name, Embedding: kind == "embeddings"}
	var text strings.Builder
	addN := func(n int, s string) {
		ri.PromptTokens += (n + 3) / 4
		if text.Len() < 2*textSample {
			text.WriteString(s[:min(len(s), 2*textSample-text.Len())])
			text.WriteByte('\n')
		}
	}
	add := func(s string) { addN(len(s), s) }
	switch kind {
	case "chat":
		var msgs []openAIMessage
		if err := json.Unmarshal(b.Messages, &msgs); err != nil || len(msgs) == 0 {
			return b, ri, &clientError{status: 400, typ: "invalid_request_error", code: "invalid_value", param: "messages", message: "messages: want a non-empty array of {role, content} objects"}
		}
		turns := make([]taskclass.Turn, len(msgs))
		for i, m := range msgs {
			c := bytes.TrimSpace(m.Content)
			turn := &turns[i]
			turn.Role = m.Role
			if tc := bytes.TrimSpace(m.ToolCalls); len(tc) > 2 && tc[0] == '[' {
				turn.Calls = true
				turn.Text = string(tc[:min(len(tc), 512)]) // the calls' names and arguments, as context
			}
			switch {
			case len(c) == 0 || string(c) == "null":
			case c[0] == '"':
				jsonText(c, func(n int, s string) {
					addN(n, s)
					turn.Text = s
				})
			case c[0] == '[':
				var parts []openAIPart
				if err := json.Unmarshal(c, &parts); err != nil {
					return b, ri, &clientError{status: 400, typ: "invalid_request_error", code: "invalid_value", param: fmt.Sprintf("messages[%d].content", i), message: fmt.Sprintf("messages[%d].content: want a string or an array of content parts: %s", i, jsonProblem(err))}
				}
				for j, p := range parts {
					switch p.Type {
					case "text":
						add(p.Text)
						if turn.Text != "" {
							turn.Text += "\n"
						}
						turn.Text += p.Text
					case "image_url":
						if p.ImageURL == nil || p.ImageURL.URL == "" {
							return b, ri, &clientError{status: 400, typ: "invalid_request_error", code: "invalid_value", param: fmt.Sprintf("messages[%d].content[%d].image_url", i, j), message: "image_url part without a url"}
						}
						if err := checkDataURL(p.ImageURL.URL); err != nil {
							return b, ri, &clientError{status: 400, typ: "invalid_request_error", code: "invalid_image_format", param: fmt.Sprintf("messages[%d].content[%d].image_url.url", i, j), message: err.Error()}
						}
						ri.Images++
						ri.PromptTokens += 1024
					}
				}
			}
		}
		ri.Class = taskclass.FromTurns(turns)
	case "completions":
		if !jsonText(b.Prompt, func(n int, s string) {
			addN(n, s)
			ri.Class.Ask = s
		}) {
			var list []string
			if json.Unmarshal(b.Prompt, &list) == nil {
				for _, s := range list {
					add(s)
				}
			}
		}
	case "embeddings":
		if !jsonText(b.Input, addN) {
			var list []string
			if json.Unmarshal(b.Input, &list) == nil {
				for _, s := range list {
					add(s)
				}
			}
		}
	}
	ri.Text = text.String()
	ri.PrefixHash = prefixHash(ri.Text)
	return b, ri, nil
}

// jsonProblem says what is wrong with a request's JSON without the decoder's Go type names
// ("Go struct field openAIBody.model of type string").
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	want := "a " + te.Type.Kind().String()
	switch te.Type.Kind() {
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Struct, reflect.Map:
		want = "an object"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Float64, reflect.Float32:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	}
	if te.Field == "" {
		return fmt.Sprintf("got a JSON %s where %s belongs", te.Value, want)
	}
	return fmt.Sprintf("field %q: got a JSON %s, want %s", te.Field, te.Value, want)
}

// checkDataURL validates a data: image URL's base64 payload (other URLs pass through).
func checkDataURL(u string) error {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return errors.New("invalid image data URL: want data:image/<type>;base64,<data>")
	}
	if !strings.HasPrefix(meta, "image/") {
		return fmt.Errorf("invalid image data URL: media type %q is not an image", strings.TrimSuffix(meta, ";base64"))
	}
	if _, err := base64.StdEncoding.DecodeString(data); err != nil {
		return fmt.Errorf("invalid image data: the base64 payload does not decode: %v", err)
	}
	return nil
}

// prefixHash hashes the prompt's first 256 bytes: requests sharing a long prefix (a system
// prompt, a document) hash alike.
func prefixHash(text string) uint64 {
	if len(text) < 64 {
		return 0
	}
	h := fnv.New64a()
	_, _ = io.WriteString(h, text[:min(len(text), 256)])
	return h.Sum64()
}

// openAI handles an OpenAI front endpoint.
func (s *Server) openAI(kind string) http.HandlerFunc {
	path := map[string]string{"chat": "/v1/chat/completions", "completions": "/v1/completions", "embeddings": "/v1/embeddings"}[kind]
	return func(w http.ResponseWriter, r *http.Request) {
		c, body, ok := s.begin(w, r, "openai", kind)
		defer s.finish(c)
		if !ok {
			return
		}
		var req openAIBody
		var err error
		req, c.info, err = parseOpenAI(kind, body)
		if err != nil {
			s.fail(w, c, err)
			return
		}
		c.info.TaskHeader = r.Header.Get("X-Citadel-Task")
		if err := s.admit(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		if c.dec, err = s.resolve(r, c); err != nil {
			s.fail(w, c, err)
			return
		}
		c.maxTokens, c.maxTokensParam = req.maxTokens()
		if err := s.admitModel(c); err != nil {
			s.fail(w, c, err)
			return
		}
		s.forward(w, r, c, func(t *Target) (string, []byte, error) {
			return path, rename(body, req.Model, t.Model), nil
		}, req.Stream, nil)
	}
}

// rename replaces the "model" the client sent with the upstream's name, leaving every other
// field as sent; when the names agree the body goes as it came, without re-encoding. The new
// name is spliced in where the old one stood (one copy of the body, no re-encoding).
func rename(body []byte, sent modelField, model string) []byte {
	if model == "" || model == sent.name {
		return body
	}
	name, _ := json.Marshal(model)
	if raw := sent.raw; len(raw) > 0 && cap(raw) <= cap(body) {
		if i := cap(body) - cap(raw); i+len(raw) <= len(body) && &body[i] == &raw[0] {
			out := make([]byte, 0, len(body)-len(raw)+len(name))
			out = append(append(append(out, body[:i]...), name...), body[i+len(raw):]...)
			return out
		}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	m["model"] = name
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

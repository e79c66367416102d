package ollamaapi

// A whole OpenAI answer, translated to Ollama's final object, and the shapes both share with
// the stream.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"
)

// decodeCost is how many prompt tokens cost as much time as one generated token, to split an
// answer's wall time when the upstream reports no timings.
const decodeCost = 64

// OpenAI response shapes (whole answers and stream chunks).

type upResponse struct {
	Error   json.RawMessage `json:"error"`
	Object  string          `json:"object"`
	Message string          `json:"message"` // vLLM < 0.10.1 errors: {"object":"error","message":…,"code":…}
	Code    json.RawMessage `json:"code"`
	Choices []struct {
		Index        int             `json:"index"`
		Message      *upDelta        `json:"message"`
		Delta        *upDelta        `json:"delta"`
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

type upDelta struct {
	Content          json.RawMessage `json:"content"`
	ReasoningContent string          `json:"reasoning_content"` // vLLM, SGLang, llama.cpp
	Reasoning        string          `json:"reasoning"`         // newer vLLM
	ToolCalls        []upToolCall    `json:"tool_calls"`
}

func (d *upDelta) thinking() string {
	if d.ReasoningContent != "" {
		return d.ReasoningContent
	}
	return d.Reasoning
}

// text reads a content or text field: a string, null, or a list of text parts.
func text(raw json.RawMessage) string {
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
func (r *upResponse) upstreamError() (*Error, bool) {
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
			return &Error{Status: http.StatusBadGateway, Message: s}, true
		case json.Unmarshal(r.Error, &obj) == nil && obj.Message != "":
			return &Error{Status: status(obj.Code), Message: obj.Message}, true
		}
		return &Error{Status: http.StatusBadGateway, Message: string(bytes.TrimSpace(r.Error))}, true
	}
	if r.Object == "error" {
		return &Error{Status: status(r.Code), Message: r.Message}, true
	}
	return nil, false
}

// Ollama response shapes, in api.ChatResponse's and api.GenerateResponse's field order.

// Metrics are api.Metrics as Ollama writes them: durations in nanoseconds, zero fields
// omitted. This package writes AllMetrics instead (see the package comment); Metrics is for
// a writer that must match Ollama's bytes.
type Metrics struct {
	TotalDuration      time.Duration `json:"total_duration,omitempty"`
	LoadDuration       time.Duration `json:"load_duration,omitempty"`
	PromptEvalCount    int           `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration,omitempty"`
	EvalCount          int           `json:"eval_count,omitempty"`
	EvalDuration       time.Duration `json:"eval_duration,omitempty"`
}

// AllMetrics are Metrics with the zeros written: a translated answer's final object always
// carries all six. The two convert to each other (same fields, different tags).
type AllMetrics struct {
	TotalDuration      time.Duration `json:"total_duration"`
	LoadDuration       time.Duration `json:"load_duration"`
	PromptEvalCount    int           `json:"prompt_eval_count"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration"`
	EvalCount          int           `json:"eval_count"`
	EvalDuration       time.Duration `json:"eval_duration"`
}

type chatResponse struct {
	Model      string    `json:"model"`
	CreatedAt  time.Time `json:"created_at"`
	Message    Message   `json:"message"`
	DoneReason string    `json:"done_reason,omitempty"`
	Done       bool      `json:"done"`
	*AllMetrics
}

type generateResponse struct {
	Model      string    `json:"model"`
	CreatedAt  time.Time `json:"created_at"`
	Response   string    `json:"response"`
	Thinking   string    `json:"thinking,omitempty"`
	Done       bool      `json:"done"`
	DoneReason string    `json:"done_reason,omitempty"`
	*AllMetrics
}

type embedResponse struct {
	Model           string            `json:"model"`
	Embeddings      []json.RawMessage `json:"embeddings"`
	TotalDuration   time.Duration     `json:"total_duration"`
	LoadDuration    time.Duration     `json:"load_duration"`
	PromptEvalCount int               `json:"prompt_eval_count"`
}

// out is one Ollama object for o's kind: a partial one (m nil) or the final one.
func (o *Request) out(model, content, thinking string, calls []ToolCall, reason string, m *AllMetrics) any {
	now := time.Now().UTC()
	if o.Kind == Generate {
		return generateResponse{Model: model, CreatedAt: now, Response: content, Thinking: thinking,
			Done: m != nil, DoneReason: reason, AllMetrics: m}
	}
	return chatResponse{Model: model, CreatedAt: now, DoneReason: reason, Done: m != nil, AllMetrics: m,
		Message: Message{Role: "assistant", Content: content, Thinking: thinking, ToolCalls: calls}}
}

// doneReason maps finish_reason: Ollama knows "stop" and "length" (tool calls end with
// "stop" there).
func doneReason(finish string) string {
	if finish == "length" {
		return "length"
	}
	return "stop"
}

// split divides the time an answer took between prompt evaluation and generation, in
// proportion to their work (a prompt token costs 1/decodeCost of a generated one).
func split(total time.Duration, prompt, completion int) (promptEval, eval time.Duration) {
	if completion <= 0 {
		return total, 0
	}
	w := float64(prompt) / decodeCost
	promptEval = time.Duration(float64(total) * w / (w + float64(completion)))
	return promptEval, total - promptEval
}

// outCalls converts OpenAI tool calls to Ollama's, whose arguments are an object. Calls whose
// arguments are not a JSON object get {} (Ollama's parser would not have produced them).
func outCalls(calls []upToolCall) []ToolCall {
	var out []ToolCall
	for i, c := range calls {
		var t ToolCall
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

// FromOpenAI translates a whole (non-streaming) OpenAI answer to Ollama's: the final
// /api/chat object (message with content, thinking, tool_calls), the /api/generate one
// (response), or /api/embed's embeddings. Counts come from usage (estimates when absent:
// Request.PromptTokens, and 1 token per 4 bytes of the answer), durations from llama.cpp's
// timings or else elapsed split by work. publicModel is the name to report (Name of the
// public model). An error object in body is an *Error.
func FromOpenAI(o *Request, publicModel string, body []byte, elapsed time.Duration) ([]byte, error) {
	var r upResponse
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
		prompt = o.PromptTokens()
	}
	if o.Kind == Embed {
		data := r.Data
		sort.SliceStable(data, func(i, j int) bool { return data[i].Index < data[j].Index })
		out := embedResponse{Model: publicModel, Embeddings: make([]json.RawMessage, 0, len(data)),
			TotalDuration: elapsed, PromptEvalCount: prompt}
		for _, d := range data {
			v, err := vector(d.Embedding)
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
	var calls []ToolCall
	if c.Message != nil {
		content, thinking = text(c.Message.Content), c.Message.thinking()
		if o.Kind == Chat {
			calls = outCalls(c.Message.ToolCalls)
		}
	} else {
		content = text(c.Text)
	}
	if completion < 0 {
		completion = (len(content) + len(thinking) + 3) / 4
	}
	m := &AllMetrics{TotalDuration: elapsed, PromptEvalCount: prompt, EvalCount: completion}
	if t := r.Timings; t != nil && t.PromptMS+t.PredictedMS > 0 {
		m.PromptEvalDuration = time.Duration(t.PromptMS * float64(time.Millisecond))
		m.EvalDuration = time.Duration(t.PredictedMS * float64(time.Millisecond))
	} else {
		m.PromptEvalDuration, m.EvalDuration = split(elapsed, prompt, completion)
	}
	var finish string
	if c.FinishReason != nil {
		finish = *c.FinishReason
	}
	return json.Marshal(o.out(publicModel, content, thinking, calls, doneReason(finish), m))
}

// vector is an embedding as a JSON array: as sent when it is one, decoded when it is base64
// (little-endian float32s).
func vector(raw json.RawMessage) (json.RawMessage, error) {
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

package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

type tokenizeRequest struct {
	Model    string        `json:"model"`
	Prompt   *string       `json:"prompt"`
	Messages []chatMessage `json:"messages"`
}

func (s *OpenAI) tokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	var ids []int
	switch {
	case req.Prompt != nil:
		ids = tokenize(*req.Prompt)
	case req.Messages != nil:
		p, err := s.parseMessages(req.Messages)
		if err != nil {
			s.writeError(w, err)
			return
		}
		ids = tokenize(p.text)
		for len(ids) < p.tokens { // the chat template's framing
			ids = append(ids, len(vocabulary)+100000+len(ids))
		}
	default:
		s.writeError(w, badRequest("either prompt or messages is required"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(ids), "max_model_len": s.maxLen, "tokens": ids, "token_strs": nil})
}

func (s *OpenAI) detokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Tokens []int  `json:"tokens"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"prompt": detokenize(req.Tokens)})
}

// chatMessage is one message; content is a string or a list of parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// prompt is a parsed prompt: its text (the generator's key), token counts.
type prompt struct {
	text   string
	tokens int // text tokens including template framing
	vision int
}

// Chat-template framing of the approximate tokenizer (ChatML: <|im_start|>role\n … <|im_end|>\n).
const (
	tokensPerMessage   = 4
	tokensPerAssistant = 3
)

func (s *OpenAI) parseMessages(msgs []chatMessage) (prompt, error) {
	var p prompt
	var text strings.Builder
	if len(msgs) == 0 {
		return p, &apiError{status: 400, message: "messages: at least one message is required", param: "messages"}
	}
	images := 0
	for i, m := range msgs {
		text.WriteString(m.Role)
		text.WriteString(": ")
		p.tokens += tokensPerMessage
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || string(c) == "null":
		case c[0] == '"':
			var str string
			if err := json.Unmarshal(c, &str); err != nil {
				return p, badRequest("messages[%d].content: %v", i, err)
			}
			p.tokens += countTokens(str)
			text.WriteString(str)
		case c[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(c, &parts); err != nil {
				return p, badRequest("messages[%d].content: %v", i, err)
			}
			for _, part := range parts {
				switch part.Type {
				case "text":
					p.tokens += countTokens(part.Text)
					text.WriteString(part.Text)
				case "image_url":
					if part.ImageURL == nil || part.ImageURL.URL == "" {
						return p, badRequest("messages[%d]: image_url part without a url", i)
					}
					images++
					p.vision += visionTokens(part.ImageURL.URL)
					text.WriteString(part.ImageURL.URL[:min(len(part.ImageURL.URL), 256)])
				default:
					return p, badRequest("Unknown part type: %s", part.Type)
				}
			}
		default:
			return p, badRequest("messages[%d].content: want a string or a list of content parts", i)
		}
		text.WriteByte('\n')
	}
	if images > 0 && !s.vision {
		return p, badRequest("%s", s.d.chatError(s, s.cfg.ServedModelNames[0]+" is not a multimodal model"))
	}
	p.tokens += tokensPerAssistant
	p.text = text.String()
	return p, nil
}

// stopList is "stop": a string or a list of strings.
type stopList []string

func (l *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop: want a string or a list of strings")
	}
	*l = many
	return nil
}

// sampling are the request fields shared by chat and completions.
type sampling struct {
	Model               string   `json:"model"`
	MaxTokens           *int     `json:"max_tokens"`
	MaxCompletionTokens *int     `json:"max_completion_tokens"`
	N                   *int     `json:"n"`
	Stop                stopList `json:"stop"`
	Stream              bool     `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS   bool            `json:"ignore_eos"`
	Seed        *int64          `json:"seed"`
	Logprobs    json.RawMessage `json:"logprobs"` // chat: bool; completions: top count
	TopLogprobs *int            `json:"top_logprobs"`
}

// maxLogprobs is vLLM's default --max-logprobs.
const maxLogprobs = 20

// logprobCount is how many top alternatives each token reports: -1 when logprobs are off.
func (smp sampling) logprobCount(chat bool) (int, error) {
	raw := bytes.TrimSpace(smp.Logprobs)
	if chat {
		var on bool
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &on); err != nil {
				return 0, &apiError{status: 400, message: "logprobs: want true or false", param: "logprobs"}
			}
		}
		top := 0
		if smp.TopLogprobs != nil {
			top = *smp.TopLogprobs
		}
		switch {
		case top < 0 || top > maxLogprobs:
			return 0, &apiError{status: 400, message: fmt.Sprintf("top_logprobs must be between 0 and %d, got %d.", maxLogprobs, top), param: "top_logprobs"}
		case top > 0 && !on:
			return 0, &apiError{status: 400, message: "when using `top_logprobs`, `logprobs` must be set to true.", param: "top_logprobs"}
		case !on:
			return -1, nil
		}
		return top, nil
	}
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, &apiError{status: 400, message: "logprobs: want a number of top log probabilities from 0 to 20", param: "logprobs"}
	}
	if n > maxLogprobs {
		return 0, badRequest("Requested sample logprobs of %d, which is greater than max allowed: %d", n, maxLogprobs)
	}
	return n, nil
}

// choice is one output sequence, decided in full before the engine runs it.
type choice struct {
	tokens  int
	finish  string
	stopStr string
	text    string
	ends    []int // text offset after each token
	gen     generator
	tool    string // a tool call's function name: text is its arguments
	toolID  string
}

// job is a validated request, ready for the engine.
type job struct {
	model      string
	chat       bool
	prompt     prompt
	choices    []choice
	stream     bool
	withUsage  bool
	id         string
	completion int
	logprobs   int // top alternatives per token; -1: no logprobs
}

// shape is what a chat request asks the output to be: a tool call, JSON, or text.
type shape struct {
	tools  []toolDef
	forced string // tool_choice naming a function
	call   bool   // answer with a tool call
	format *responseFormat
}

func (s *OpenAI) newJob(smp sampling, p prompt, chat bool, sh shape) (*job, error) {
	model, err := s.checkModel(smp.Model)
	if err != nil {
		return nil, err
	}
	lp, err := smp.logprobCount(chat)
	if err != nil {
		return nil, err
	}
	n := 1
	if smp.N != nil {
		n = *smp.N
	}
	if n < 1 {
		return nil, &apiError{status: 400, message: fmt.Sprintf("n must be at least 1, got %d.", n), param: "n"}
	}
	input := p.tokens + p.vision
	maxTokens := smp.MaxTokens
	if smp.MaxCompletionTokens != nil {
		maxTokens = smp.MaxCompletionTokens
	}
	limit := 0
	if maxTokens == nil {
		if err := s.d.contextError(s, input, 0, chat); err != nil {
			return nil, err
		}
		limit = s.maxLen - input
	} else {
		limit = *maxTokens
		if limit < 1 {
			return nil, &apiError{status: 400, message: fmt.Sprintf("max_tokens must be at least 1, got %d.", limit), param: "max_tokens"}
		}
		if err := s.d.contextError(s, input, limit, chat); err != nil {
			return nil, err
		}
	}
	seed := s.cfg.Seed
	if smp.Seed != nil {
		seed ^= *smp.Seed
	}
	j := &job{model: model, chat: chat, prompt: p, stream: smp.Stream,
		withUsage: smp.StreamOptions != nil && smp.StreamOptions.IncludeUsage, logprobs: lp}
	for i := range n {
		g := newGenerator(seed, p.text, i)
		c := choice{gen: g}
		switch {
		case sh.call:
			t := sh.pick(g)
			c.tool, c.toolID = t.Function.Name, g.toolCallID()
			c.text, c.ends, c.finish = structured(g.fill(t.Function.Parameters), limit, "tool_calls")
			c.tokens = len(c.ends)
		case sh.format != nil && sh.format.Type != "text":
			schema := json.RawMessage(nil)
			if sh.format.JSONSchema != nil {
				schema = sh.format.JSONSchema.Schema
			}
			c.text, c.ends, c.finish = structured(g.fill(schema), limit, "stop")
			c.tokens = len(c.ends)
		default:
			c.tokens, c.finish, c.stopStr = g.plan(limit, smp.IgnoreEOS, smp.Stop)
			c.text, c.ends = g.render(c.tokens, c.stopStr)
		}
		j.choices = append(j.choices, c)
		j.completion += c.tokens
	}
	return j, nil
}

func (s *OpenAI) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		sampling
		Messages       []chatMessage   `json:"messages"`
		Tools          json.RawMessage `json:"tools"`
		ToolChoice     json.RawMessage `json:"tool_choice"`
		ResponseFormat *responseFormat `json:"response_format"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	if _, err := s.checkModel(req.Model); err != nil {
		s.writeError(w, err)
		return
	}
	p, err := s.parseMessages(req.Messages)
	if err != nil {
		s.writeError(w, err)
		return
	}
	sh, err := parseShape(req.Tools, req.ToolChoice, req.ResponseFormat)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if len(sh.tools) > 0 { // the chat template renders the tool definitions into the prompt
		p.tokens += countTokens(string(req.Tools))
		p.text += string(req.Tools)
	}
	j, err := s.newJob(req.sampling, p, true, sh)
	if err != nil {
		s.writeError(w, err)
		return
	}
	j.id = "chatcmpl-" + s.requestID()
	s.run(w, r, j)
}

func (s *OpenAI) completions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		sampling
		Prompt json.RawMessage `json:"prompt"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeError(w, err)
		return
	}
	var text string
	if err := json.Unmarshal(req.Prompt, &text); err != nil {
		var list []string
		if err := json.Unmarshal(req.Prompt, &list); err != nil || len(list) != 1 {
			s.writeError(w, &apiError{status: 400, message: "prompt: want a string (or a list of one string)", param: "prompt"})
			return
		}
		text = list[0]
	}
	p := prompt{text: text, tokens: max(1, countTokens(text))}
	j, err := s.newJob(req.sampling, p, false, shape{})
	if err != nil {
		s.writeError(w, err)
		return
	}
	j.id = "cmpl-" + s.requestID()
	s.run(w, r, j)
}

// Tool calling and structured output.
type (
	toolDef struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	responseFormat struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	toolFunction struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	}
	toolCall struct {
		ID       string       `json:"id"`
		Type     string       `json:"type"`
		Function toolFunction `json:"function"`
	}
	toolCallDelta struct {
		Index    int          `json:"index"`
		ID       string       `json:"id,omitempty"`
		Type     string       `json:"type,omitempty"`
		Function toolFunction `json:"function"`
	}
)

// parseShape reads tools, tool_choice and response_format. With tools and a tool_choice other
// than "none" (unset counts as "auto"), every choice is a call of one tool: the named one, or
// one picked by the request's hash.
func parseShape(rawTools, rawChoice json.RawMessage, format *responseFormat) (shape, error) {
	var sh shape
	if len(rawTools) > 0 && string(rawTools) != "null" {
		if err := json.Unmarshal(rawTools, &sh.tools); err != nil {
			return sh, &apiError{status: 400, message: fmt.Sprintf("tools: %v", err), param: "tools"}
		}
		for i, t := range sh.tools {
			if t.Type != "function" || t.Function.Name == "" {
				return sh, &apiError{status: 400, message: fmt.Sprintf("tools[%d]: want {\"type\": \"function\", \"function\": {\"name\": …}}", i), param: "tools"}
			}
		}
	}
	choice := "auto"
	if c := bytes.TrimSpace(rawChoice); len(c) > 0 && string(c) != "null" {
		var named struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(c, &choice) == nil:
			if choice != "none" && choice != "auto" && choice != "required" {
				return sh, &apiError{status: 400, message: fmt.Sprintf("tool_choice %q: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}", choice), param: "tool_choice"}
			}
		case json.Unmarshal(c, &named) == nil && named.Function.Name != "":
			choice, sh.forced = "named", named.Function.Name
		default:
			return sh, &apiError{status: 400, message: "tool_choice: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}", param: "tool_choice"}
		}
		if choice != "none" && len(sh.tools) == 0 {
			return sh, &apiError{status: 400, message: "When using `tool_choice`, `tools` must be set.", param: "tool_choice"}
		}
	}
	if sh.forced != "" {
		found := false
		for _, t := range sh.tools {
			found = found || t.Function.Name == sh.forced
		}
		if !found {
			return sh, &apiError{status: 400, message: fmt.Sprintf("Tool '%s' has not been passed in `tools`.", sh.forced), param: "tool_choice"}
		}
	}
	sh.call = len(sh.tools) > 0 && choice != "none"
	if format != nil {
		switch format.Type {
		case "text", "json_object":
		case "json_schema":
			if format.JSONSchema == nil || len(format.JSONSchema.Schema) == 0 {
				return sh, &apiError{status: 400, message: "response_format: json_schema needs a json_schema.schema", param: "response_format"}
			}
		default:
			return sh, &apiError{status: 400, message: fmt.Sprintf("response_format type %q: want text, json_object or json_schema", format.Type), param: "response_format"}
		}
		sh.format = format
	}
	return sh, nil
}

// pick is the tool a choice calls.
func (sh shape) pick(g generator) toolDef {
	for _, t := range sh.tools {
		if t.Function.Name == sh.forced {
			return t
		}
	}
	return sh.tools[g.at(-5)%uint64(len(sh.tools))]
}

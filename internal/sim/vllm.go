package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

// DefaultVLLMVersion is the release the personality imitates unless Config.VLLMVersion says.
const DefaultVLLMVersion = "0.11.0"

// vllmDialect is vLLM's OpenAI-compatible server (vllm serve; vllm/entrypoints/openai in
// https://github.com/vllm-project/vllm, as are the vllm/ paths in other comments): the API
// key on /v1 paths only, errors nested or flat by release, the served names only, and /health,
// /ping, /version and /metrics beside the OpenAI routes.
var vllmDialect = &dialect{
	name:         EngineVLLM,
	launch:       Launch{Port: 8000, APIKeyEnv: "VLLM_API_KEY"},
	mode:         perfmodel.VLLM,
	prefixCache:  true,
	routes:       (*OpenAI).vllmRoutes,
	gate:         (*OpenAI).vllmGate,
	errorBody:    (*OpenAI).vllmErrorBody,
	model:        (*OpenAI).vllmModel,
	models:       (*OpenAI).vllmModels,
	contextError: (*OpenAI).vllmContextError,
	chatError:    (*OpenAI).vllmChatError,
	whole:        vllmWhole,
	stream:       streamDialect{chunk: vllmChunk, usage: vllmUsageChunk},
	metrics:      metricsDialect{write: (*metrics).vllm, ttft: ttftBuckets, itl: itlBuckets, e2e: e2eBuckets},
	loadLog:      (*OpenAI).vllmLoadLog,
	servingLog:   (*OpenAI).vllmServingLog,
}

func (s *OpenAI) vllmRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", answerOK)
	mux.HandleFunc("GET /ping", answerOK)
	mux.HandleFunc("POST /ping", answerOK)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.VLLMVersion})
	})
	mux.HandleFunc("GET /metrics", s.serveMetrics)
}

// vllmGate is vLLM's API-key check: paths under /v1 only.
func (s *OpenAI) vllmGate(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.APIKey != "" && r.Method != http.MethodOptions && strings.HasPrefix(r.URL.Path, "/v1") && !bearer(r, s.cfg.APIKey) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
		return true
	}
	return false
}

var errorTypes = map[int]string{
	400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError",
	500: "InternalServerError", 503: "ServiceUnavailableError",
}

// vllmErrorBody is vLLM's error object: nested under "error" from 0.10.1, flat with
// "object":"error" before (https://github.com/vllm-project/vllm/pull/22099).
func (s *OpenAI) vllmErrorBody(e *apiError) any {
	if s.version.less(version{0, 10, 1}) {
		return flatErrorOf(e)
	}
	return struct {
		Error errorInfo `json:"error"`
	}{errorInfo{Message: e.message, Type: errorTypes[e.status], Param: e.paramValue(), Code: e.status}}
}

// flatErrorOf is e as vLLM's pre-0.10.1 ErrorResponse (and SGLang's).
func flatErrorOf(e *apiError) flatError {
	return flatError{Object: "error", Message: e.message, Type: errorTypes[e.status], Param: e.paramValue(), Code: e.status}
}

// errorInfo and flatError are vLLM's ErrorInfo and pre-0.10.1 ErrorResponse, in field order.
type (
	errorInfo struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
	flatError struct {
		Object  string `json:"object"`
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
)

// vllmModel accepts the served names only; no name means the first.
func (s *OpenAI) vllmModel(name string) (string, error) {
	if name == "" {
		return s.cfg.ServedModelNames[0], nil
	}
	for _, n := range s.cfg.ServedModelNames {
		if n == name {
			return name, nil
		}
	}
	return "", &apiError{status: http.StatusNotFound, message: fmt.Sprintf("The model `%s` does not exist.", name), param: "model"}
}

// vllmModels lists every served name as vLLM's ModelCard, with its permission object.
func (s *OpenAI) vllmModels(w http.ResponseWriter, _ *http.Request) {
	type permission struct {
		ID                 string  `json:"id"`
		Object             string  `json:"object"`
		Created            int64   `json:"created"`
		AllowCreateEngine  bool    `json:"allow_create_engine"`
		AllowSampling      bool    `json:"allow_sampling"`
		AllowLogprobs      bool    `json:"allow_logprobs"`
		AllowSearchIndices bool    `json:"allow_search_indices"`
		AllowView          bool    `json:"allow_view"`
		AllowFineTuning    bool    `json:"allow_fine_tuning"`
		Organization       string  `json:"organization"`
		Group              *string `json:"group"`
		IsBlocking         bool    `json:"is_blocking"`
	}
	type card struct {
		ID          string       `json:"id"`
		Object      string       `json:"object"`
		Created     int64        `json:"created"`
		OwnedBy     string       `json:"owned_by"`
		Root        string       `json:"root"`
		Parent      *string      `json:"parent"`
		MaxModelLen int          `json:"max_model_len"`
		Permission  []permission `json:"permission"`
	}
	var data []card
	for i, n := range s.cfg.ServedModelNames {
		data = append(data, card{ID: n, Object: "model", Created: s.created, OwnedBy: "vllm", Root: s.cfg.ModelRoot,
			MaxModelLen: s.maxLen, Permission: []permission{{ID: fmt.Sprintf("modelperm-%032x", i+1), Object: "model_permission",
				Created: s.created, AllowSampling: true, AllowLogprobs: true, AllowView: true, Organization: "*"}}})
	}
	writeJSON(w, http.StatusOK, listOf[card]{Object: "list", Data: data})
}

// vllmContextError is vLLM's refusal of a request that does not fit, in the wording of the
// imitated release.
func (s *OpenAI) vllmContextError(input, maxTokens int, chat bool) *apiError {
	L := s.maxLen
	var e *apiError
	if s.version.less(version{0, 11, 0}) {
		switch {
		case maxTokens == 0 && input >= L:
			e = badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens in the messages, Please reduce the length of the messages.", L, input)
		case maxTokens > 0 && input+maxTokens > L:
			e = badRequest("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
				L, input+maxTokens, input, maxTokens)
		}
	} else {
		switch {
		case input >= L:
			e = badRequest("This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", L, input)
			e.param = "input_tokens"
		case maxTokens > 0 && input+maxTokens > L:
			e = badRequest("'max_tokens' or 'max_completion_tokens' is too large: %d. This model's maximum context length is %d tokens and your request has %d input tokens (%d > %d - %d).",
				maxTokens, L, input, maxTokens, L, input)
			e.param = "max_tokens"
		}
	}
	if e != nil && chat {
		e.message = s.vllmChatError(e.message)
	}
	return e
}

// vllmChatError is a chat request's validation error as vLLM 0.9–0.11 word it: the chat
// handler formats f"{e} {e.__cause__}", leaving a literal " None" on the message.
func (s *OpenAI) vllmChatError(m string) string {
	if !s.version.less(version{0, 9, 0}) && s.version.less(version{0, 12, 0}) {
		return m + " None"
	}
	return m
}

// Wire types, in vLLM's field order.
type (
	chatDelta struct {
		Role      string          `json:"role,omitempty"`
		Content   *string         `json:"content,omitempty"`
		ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
	}
	streamChoice struct {
		Index        int        `json:"index"`
		Delta        *chatDelta `json:"delta,omitempty"`
		Text         *string    `json:"text,omitempty"`
		Logprobs     any        `json:"logprobs"`
		FinishReason any        `json:"finish_reason"`
		StopReason   any        `json:"stop_reason"`
	}
	streamChunk struct {
		ID      string         `json:"id"`
		Object  string         `json:"object"`
		Created int64          `json:"created"`
		Model   string         `json:"model"`
		Choices []streamChoice `json:"choices"`
		Usage   *usage         `json:"usage,omitempty"`
	}
	chatMessageOut struct {
		Role             string `json:"role"`
		Content          any    `json:"content"`
		Refusal          any    `json:"refusal"`
		ToolCalls        []any  `json:"tool_calls"`
		ReasoningContent any    `json:"reasoning_content"`
	}
	wholeChoice struct {
		Index          int             `json:"index"`
		Message        *chatMessageOut `json:"message,omitempty"`
		Text           *string         `json:"text,omitempty"`
		Logprobs       any             `json:"logprobs"`
		FinishReason   string          `json:"finish_reason"`
		StopReason     any             `json:"stop_reason"`
		PromptLogprobs any             `json:"prompt_logprobs,omitempty"`
	}
	wholeResponse struct {
		ID                string        `json:"id"`
		Object            string        `json:"object"`
		Created           int64         `json:"created"`
		Model             string        `json:"model"`
		Choices           []wholeChoice `json:"choices"`
		Usage             usage         `json:"usage"`
		SystemFingerprint any           `json:"system_fingerprint"`
		PromptLogprobs    any           `json:"prompt_logprobs"`
		KVTransferParams  any           `json:"kv_transfer_params"`
	}
)

// vllmWhole writes a non-streaming response in vLLM's shape.
func vllmWhole(o *whole) {
	j := o.j
	r := wholeResponse{ID: j.id, Object: "chat.completion", Created: o.created, Model: j.model, Usage: j.usage()}
	if !j.chat {
		r.Object = "text_completion"
	}
	for i, c := range j.choices {
		wc := wholeChoice{Index: i, FinishReason: c.finish, StopReason: stopReason(c)}
		if j.chat {
			wc.Message = &chatMessageOut{Role: "assistant", Content: c.text, ToolCalls: []any{}}
			if c.tool != "" {
				wc.Message.Content = nil
				wc.Message.ToolCalls = []any{toolCall{ID: c.toolID, Type: "function", Function: toolFunction{Name: c.tool, Arguments: c.text}}}
			}
		} else {
			wc.Text = &c.text
		}
		if j.logprobs >= 0 {
			wc.Logprobs = j.logprobsOf(i, 0, c.tokens)
		}
		r.Choices = append(r.Choices, wc)
	}
	writeJSON(o.w, http.StatusOK, r)
}

// vllmChunk is a vLLM stream chunk: the finish reason (and stop_reason) on a choice's last
// token; "usage": null on every chunk when the request asks for usage, no "usage" otherwise.
func vllmChunk(o *sse, p streamPart) any {
	j := o.j
	ch := j.choices[p.choice]
	sc := streamChoice{Index: p.choice, Logprobs: p.logprobs}
	switch {
	case p.role:
		empty := ""
		sc.Delta = &chatDelta{Role: "assistant", Content: &empty}
	case j.chat && ch.tool != "":
		d := toolCallDelta{Function: toolFunction{Arguments: *p.text}}
		if p.index == 0 {
			d.ID, d.Type, d.Function.Name = ch.toolID, "function", ch.tool
		}
		sc.Delta = &chatDelta{ToolCalls: []toolCallDelta{d}}
	case j.chat:
		sc.Delta = &chatDelta{Content: p.text}
	default:
		sc.Text = p.text
	}
	if p.finish {
		sc.FinishReason, sc.StopReason = ch.finish, stopReason(ch)
	}
	c := streamChunk{ID: j.id, Object: chunkObject(j), Created: o.created, Model: j.model, Choices: []streamChoice{sc}}
	if j.withUsage {
		return withNullUsage{c}
	}
	return c
}

// vllmUsageChunk is the last chunk with include_usage: no choices, the usage.
func vllmUsageChunk(o *sse) any {
	u := o.j.usage()
	return streamChunk{ID: o.j.id, Object: chunkObject(o.j), Created: o.created, Model: o.j.model, Choices: []streamChoice{}, Usage: &u}
}

// withNullUsage is a chunk with "usage": null, as chunks are when include_usage is set.
type withNullUsage struct{ streamChunk }

func (c withNullUsage) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.streamChunk)
	if err != nil {
		return nil, err
	}
	return append(b[:len(b)-1], []byte(`,"usage":null}`)...), nil
}

// vllmLoadLog is what vllm serve logs while it loads: its version, the weights, the KV cache
// and the concurrency it allows.
func (s *OpenAI) vllmLoadLog(out io.Writer) {
	plan := s.cfg.Plan
	ts := s.cfg.Now().Format("01-02 15:04:05")
	fmt.Fprintf(out, "INFO %s [api_server.py] vLLM API server version %s (citadel sim, time scale %g)\n", ts, s.cfg.VLLMVersion, s.cfg.TimeScale)
	fmt.Fprintf(out, "INFO %s [gpu_model_runner.py] Model loading took %.4f GiB\n", ts, gib(plan.WeightBytes))
	fmt.Fprintf(out, "INFO %s [kv_cache_utils.py] GPU KV cache size: %d tokens\n", ts, plan.KVTokens)
	fmt.Fprintf(out, "INFO %s [kv_cache_utils.py] Maximum concurrency for %d tokens per request: %.2fx\n", ts, plan.Options.MaxModelLen, plan.MaxConcurrency())
	fmt.Fprintf(out, "INFO %s [sim] plan: %s\n", ts, plan)
}

func (s *OpenAI) vllmServingLog(out io.Writer, addr net.Addr) {
	fmt.Fprintf(out, "INFO %s [launcher.py] Starting vLLM API server on http://%s\n", s.cfg.Now().Format("01-02 15:04:05"), addr)
}

// gib is b bytes in GiB.
func gib(b int64) float64 { return float64(b) / (1 << 30) }

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

// DefaultSGLangVersion is the SGLang release the personality reports.
const DefaultSGLangVersion = "0.5.3"

// SGLang's histogram buckets (python/sglang/srt/metrics/collector.py TokenizerMetricsCollector).
var (
	sglangTTFTBuckets = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400}
	sglangITLBuckets  = []float64{0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000}
	sglangE2EBuckets  = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400}
)

// sglangDialect is SGLang's OpenAI-compatible server (python -m sglang.launch_server; the
// paths in this file are in https://github.com/sgl-project/sglang, python/sglang/srt/): any model name accepted and echoed, flat errors, the
// API key on every path but /health* and /metrics, its own response and stream shapes (see
// sglangChunk), and its native endpoints (/generate, /health_generate, /get_model_info, …).
var sglangDialect = &dialect{
	name:         EngineSGLang,
	launch:       Launch{Port: 30000, Host: "127.0.0.1"},
	mode:         perfmodel.VLLM,
	prefixCache:  true, // the radix cache
	routes:       (*OpenAI).sglangRoutes,
	gate:         (*OpenAI).sglangGate,
	errorBody:    func(_ *OpenAI, e *apiError) any { return flatErrorOf(e) },
	model:        (*OpenAI).sglangModel,
	models:       (*OpenAI).sglangModels,
	contextError: (*OpenAI).sglangContextError,
	chatError:    plainChatError,
	whole:        sglangWhole,
	stream:       streamDialect{chunk: sglangChunk, chatFinishApart: true, usage: sglangUsageChunk},
	metrics:      metricsDialect{write: (*metrics).sglang, ttft: sglangTTFTBuckets, itl: sglangITLBuckets, e2e: sglangE2EBuckets},
	loadLog:      (*OpenAI).sglangLoadLog,
	servingLog:   (*OpenAI).sglangServingLog,
}

// sglangRoutes adds SGLang's own endpoints (python/sglang/srt/entrypoints/http_server.py).
func (s *OpenAI) sglangRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /health", answerOK)
	mux.HandleFunc("GET /health_generate", s.sglangHealthGenerate)
	mux.HandleFunc("GET /get_model_info", s.sglangModelInfo)
	mux.HandleFunc("GET /model_info", s.sglangModelInfo)
	mux.HandleFunc("GET /get_server_info", s.sglangServerInfo)
	mux.HandleFunc("GET /server_info", s.sglangServerInfo)
	mux.HandleFunc("POST /generate", s.sglangGenerate)
	mux.HandleFunc("POST /flush_cache", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprint(w, "Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n")
	})
	if s.cfg.EnableMetrics {
		mux.HandleFunc("GET /metrics", s.serveMetrics)
	}
}

// sglangGate is SGLang's API-key middleware: every path but /health* and /metrics needs
// "Authorization: Bearer KEY" when a key is set.
func (s *OpenAI) sglangGate(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.APIKey == "" || r.Method == http.MethodOptions ||
		strings.HasPrefix(r.URL.Path, "/health") || strings.HasPrefix(r.URL.Path, "/metrics") || bearer(r, s.cfg.APIKey) {
		return false
	}
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
	return true
}

// sglangModel serves one model whatever a request names, and echoes the name; no name is
// SGLang's DEFAULT_MODEL_NAME, "default".
func (s *OpenAI) sglangModel(name string) (string, error) {
	if name == "" {
		return "default", nil
	}
	return name, nil
}

// sglangContextError is SGLang's refusal of a request that does not fit.
func (s *OpenAI) sglangContextError(input, maxTokens int, _ bool) *apiError {
	L := s.maxLen
	switch {
	case input >= L:
		return badRequest("The input (%d tokens) is longer than the model's context length (%d tokens).", input, L)
	case maxTokens > 0 && input+maxTokens >= L:
		return badRequest("Requested token count exceeds the model's maximum context length of %d tokens. You requested a total of %d tokens: %d tokens from the input messages and %d tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.",
			L, input+maxTokens, input, maxTokens)
	}
	return nil
}

func (s *OpenAI) sglangModels(w http.ResponseWriter, _ *http.Request) {
	type card struct {
		ID          string  `json:"id"`
		Object      string  `json:"object"`
		Created     int64   `json:"created"`
		OwnedBy     string  `json:"owned_by"`
		Root        string  `json:"root"`
		Parent      *string `json:"parent"`
		MaxModelLen int     `json:"max_model_len"`
	}
	name := s.cfg.ServedModelNames[0]
	data := []card{{ID: name, Object: "model", Created: s.created, OwnedBy: "sglang", Root: name, MaxModelLen: s.maxLen}}
	writeJSON(w, http.StatusOK, listOf[card]{Object: "list", Data: data})
}

// sglangHealthGenerate runs a one-token generation through the engine: 200 with an empty
// body when it completes, 503 when the engine cannot serve it.
func (s *OpenAI) sglangHealthGenerate(w http.ResponseWriter, r *http.Request) {
	st, err := s.engine.Submit(r.Context(), 1, 0, []int{1}, []string{"length"})
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	produced, finished := []int{0}, []bool{false}
	for !finished[0] {
		select {
		case <-r.Context().Done():
			s.engine.Abort(st)
			return
		case <-st.notify:
		}
		if err := st.snapshot(produced, finished); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *OpenAI) sglangModelInfo(w http.ResponseWriter, _ *http.Request) {
	m := s.cfg.Plan.Model
	modelType, arch := hfArch(m.Name)
	writeJSON(w, http.StatusOK, map[string]any{
		"model_path": s.cfg.ModelRoot, "tokenizer_path": s.cfg.ModelRoot, "is_generation": true,
		"preferred_sampling_params": nil, "weight_version": "default",
		"has_image_understanding": m.Vision, "has_audio_understanding": false,
		"model_type": modelType, "architectures": []string{arch},
	})
}

func (s *OpenAI) sglangServerInfo(w http.ResponseWriter, _ *http.Request) {
	p := s.cfg.Plan
	s.metrics.mu.Lock()
	gen := s.metrics.genTokens
	s.metrics.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"model_path": s.cfg.ModelRoot, "tokenizer_path": s.cfg.ModelRoot, "served_model_name": s.cfg.ServedModelNames[0],
		"tp_size": p.Options.TP, "mem_fraction_static": p.Options.GPUMemoryUtilization, "context_length": p.Options.MaxModelLen,
		"max_running_requests": p.Options.MaxNumSeqs, "max_total_tokens": p.KVTokens, "chunked_prefill_size": p.Options.MaxNumBatchedTokens,
		"page_size": 1, "enable_metrics": s.cfg.EnableMetrics, "api_key": nil,
		"version":         DefaultSGLangVersion,
		"internal_states": []map[string]any{{"max_total_num_tokens": p.KVTokens, "generation_tokens": gen}},
	})
}

// sglangGenerate is SGLang's native POST /generate: {"text", "sampling_params", "stream"},
// answered with {"text", "meta_info"}; a stream sends the whole text so far in every event.
func (s *OpenAI) sglangGenerate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text           json.RawMessage `json:"text"`
		InputIDs       []int           `json:"input_ids"`
		Stream         bool            `json:"stream"`
		SamplingParams struct {
			MaxNewTokens *int     `json:"max_new_tokens"`
			Stop         stopList `json:"stop"`
			IgnoreEOS    bool     `json:"ignore_eos"`
		} `json:"sampling_params"`
	}
	if err := s.decode(r, &req); err != nil {
		s.writeNativeError(w, err)
		return
	}
	var p prompt
	switch {
	case len(req.Text) > 0:
		if err := json.Unmarshal(req.Text, &p.text); err != nil {
			s.writeNativeError(w, badRequest("text: want a string"))
			return
		}
		p.tokens = max(1, countTokens(p.text))
	case len(req.InputIDs) > 0:
		p.text, p.tokens = detokenize(req.InputIDs), len(req.InputIDs)
	default:
		s.writeNativeError(w, badRequest("Either text or input_ids should be provided."))
		return
	}
	maxNew := 128 // SGLang's default max_new_tokens
	if req.SamplingParams.MaxNewTokens != nil {
		maxNew = *req.SamplingParams.MaxNewTokens
	}
	smp := sampling{MaxTokens: &maxNew, Stop: req.SamplingParams.Stop, IgnoreEOS: req.SamplingParams.IgnoreEOS, Stream: req.Stream}
	j, err := s.newJob(smp, p, false, shape{})
	if err != nil {
		s.writeNativeError(w, err)
		return
	}
	j.id = s.requestID()
	s.runWith(w, r, j, func(st *stream) responder { return &sglangOut{streamBuf: streamBuf{w: w}, j: j, st: st, srv: s} })
}

// writeNativeError is the error of SGLang's native endpoints: {"error": {"message": …}}.
func (s *OpenAI) writeNativeError(w http.ResponseWriter, err error) {
	e, ok := err.(*apiError)
	if !ok {
		e = &apiError{status: http.StatusInternalServerError, message: err.Error()}
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]string{"message": e.message}})
}

// sglangOut writes /generate's response, whole or as SSE events with the text so far.
type sglangOut struct {
	streamBuf
	j   *job
	st  *stream
	srv *OpenAI
}

// sglangResult is /generate's answer, in SGLang's field order.
type sglangResult struct {
	Text     string     `json:"text"`
	MetaInfo sglangMeta `json:"meta_info"`
}

type sglangMeta struct {
	ID               string   `json:"id"`
	FinishReason     any      `json:"finish_reason"`
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
	CachedTokens     int      `json:"cached_tokens"`
	E2ELatency       *float64 `json:"e2e_latency,omitempty"` // once finished
}

// result is the response after n tokens; done adds the finish reason and latency.
func (o *sglangOut) result(n int, done bool) sglangResult {
	c := o.j.choices[0]
	r := sglangResult{MetaInfo: sglangMeta{ID: o.j.id, PromptTokens: o.j.prompt.tokens, CompletionTokens: n}}
	if n > 0 {
		r.Text = c.text[:c.ends[n-1]]
	}
	if done {
		type lengthReason struct {
			Type   string `json:"type"`
			Length int    `json:"length"`
		}
		type stopReason struct {
			Type    string `json:"type"`
			Matched any    `json:"matched"`
		}
		r.MetaInfo.FinishReason = lengthReason{"length", n}
		if c.finish == "stop" {
			// The stop string, or the EOS token id SGLang reports for a natural end.
			var matched any = qwenEOS
			if c.stopStr != "" {
				matched = c.stopStr
			}
			r.MetaInfo.FinishReason = stopReason{"stop", matched}
		}
		_, e2e := o.st.timings(0)
		secs := e2e.Seconds()
		r.MetaInfo.E2ELatency = &secs
	}
	return r
}

// qwenEOS is <|im_end|>, the token id a Qwen chat model stops on.
const qwenEOS = 151645

// token queues a stream event with the text so far (the last token's comes with done).
func (o *sglangOut) token(_, index int) {
	if o.j.stream && index < o.j.choices[0].tokens-1 {
		o.event(o.result(index+1, false))
	}
}

func (o *sglangOut) flush() error {
	if !o.j.stream {
		return nil
	}
	o.begin("text/event-stream; charset=utf-8")
	return o.send()
}

func (o *sglangOut) event(v any) { o.data(marshalJSON(v)) }

func (o *sglangOut) done() {
	v := o.result(o.j.choices[0].tokens, true)
	if !o.j.stream {
		writeJSON(o.w, http.StatusOK, v)
		return
	}
	o.event(v)
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.flush()
}

func (o *sglangOut) fail(e *apiError) {
	if !o.started {
		o.srv.writeNativeError(o.w, e)
		return
	}
	o.event(map[string]any{"error": map[string]string{"message": e.message}})
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.send()
}

// sglang writes SGLang's metrics (python/sglang/srt/metrics/collector.py): the scheduler's
// gauges labelled by engine type and ranks, the tokenizer's series by model name only.
func (m *metrics) sglang() string {
	sched := newPromWriter(label{"model_name", m.model}, label{"engine_type", "unified"}, label{"tp_rank", "0"}, label{"pp_rank", "0"})
	sched.gauge("sglang:num_running_reqs", "The number of running requests.", float64(m.running))
	sched.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", float64(m.waiting+m.held))
	sched.gauge("sglang:token_usage", "The token usage.", m.kvUsage)
	var tput float64
	if m.itl.sum > 0 && m.running > 0 {
		tput = float64(m.running) * float64(m.itl.count) / m.itl.sum
	}
	sched.gauge("sglang:gen_throughput", "The generation throughput (token/s).", tput)
	sched.gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", 0)
	tok := newPromWriter(label{"model_name", m.model})
	tok.counter("sglang:prompt_tokens", "Number of prefill tokens processed.", float64(m.promptTokens))
	tok.counter("sglang:generation_tokens", "Number of generation tokens processed.", float64(m.genTokens))
	tok.counter("sglang:cached_tokens", "Number of cached prompt tokens.", 0)
	tok.counter("sglang:num_requests", "Number of requests processed.", float64(m.requests))
	tok.counter("sglang:num_aborted_requests", "Number of requests aborted.", float64(m.aborted))
	tok.hist("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft)
	tok.hist("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.itl)
	tok.hist("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", m.e2eLatency)
	return sched.b.String() + tok.b.String()
}

// hfArch is the Hugging Face model_type and architecture of a catalogue model.
func hfArch(name string) (modelType, arch string) {
	name = strings.ToLower(name)
	switch {
	case strings.HasPrefix(name, "mimo-vl"):
		return "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"
	case strings.HasPrefix(name, "llama"):
		return "llama", "LlamaForCausalLM"
	case strings.HasPrefix(name, "mixtral"):
		return "mixtral", "MixtralForCausalLM"
	}
	return "qwen2", "Qwen2ForCausalLM"
}

// SGLang's OpenAI-compatible non-streaming chat and completion responses
// (python/sglang/srt/entrypoints/openai/protocol.py ChatCompletionResponse,
// CompletionResponse). They differ from vLLM's where a client can tell: the id is the
// request's hex id without "chatcmpl-"/"cmpl-"; a choice says matched_stop (the stop string,
// or the EOS token id) instead of stop_reason; the message has reasoning_content and
// tool_calls null when there are none, and no refusal; usage carries reasoning_tokens; the
// response has metadata and neither system_fingerprint, prompt_logprobs nor
// kv_transfer_params.
type (
	sglangMessage struct {
		Role             string `json:"role"`
		Content          any    `json:"content"`
		ReasoningContent any    `json:"reasoning_content"`
		ToolCalls        []any  `json:"tool_calls"`
	}
	sglangChoice struct {
		Index        int            `json:"index"`
		Message      *sglangMessage `json:"message,omitempty"`
		Text         *string        `json:"text,omitempty"`
		Logprobs     any            `json:"logprobs"`
		FinishReason string         `json:"finish_reason"`
		MatchedStop  any            `json:"matched_stop"`
	}
	sglangUsage struct {
		PromptTokens     int  `json:"prompt_tokens"`
		TotalTokens      int  `json:"total_tokens"`
		CompletionTokens int  `json:"completion_tokens"`
		Details          *any `json:"prompt_tokens_details"`
		ReasoningTokens  int  `json:"reasoning_tokens"`
	}
	sglangResponse struct {
		ID       string         `json:"id"`
		Object   string         `json:"object"`
		Created  int64          `json:"created"`
		Model    string         `json:"model"`
		Choices  []sglangChoice `json:"choices"`
		Usage    sglangUsage    `json:"usage"`
		Metadata any            `json:"metadata"`
	}
)

// sglangMatchedStop is what SGLang reports a choice stopped on: the stop string, the EOS
// token id, or null (length, tool calls).
func sglangMatchedStop(c choice) any {
	switch {
	case c.stopStr != "":
		return c.stopStr
	case c.finish == "stop":
		return qwenEOS
	}
	return nil
}

// sglangID is the id SGLang gives a response: the request's hex id, without vLLM's
// "chatcmpl-" or "cmpl-".
func sglangID(j *job) string {
	return strings.TrimPrefix(strings.TrimPrefix(j.id, "chatcmpl-"), "cmpl-")
}

// sglangUsageOf is j's usage in SGLang's UsageInfo.
func sglangUsageOf(j *job) sglangUsage {
	u := j.usage()
	return sglangUsage{PromptTokens: u.PromptTokens, TotalTokens: u.TotalTokens, CompletionTokens: u.CompletionTokens}
}

// sglangWhole writes a non-streaming response in SGLang's shape.
func sglangWhole(o *whole) {
	j := o.j
	r := sglangResponse{ID: sglangID(j), Object: "chat.completion", Created: o.created, Model: j.model, Usage: sglangUsageOf(j)}
	if !j.chat {
		r.Object = "text_completion"
	}
	for i, c := range j.choices {
		sc := sglangChoice{Index: i, FinishReason: c.finish, MatchedStop: sglangMatchedStop(c)}
		if j.chat {
			sc.Message = &sglangMessage{Role: "assistant", Content: c.text}
			if c.tool != "" {
				sc.Message.Content = nil
				sc.Message.ToolCalls = []any{toolCall{ID: c.toolID, Type: "function", Function: toolFunction{Name: c.tool, Arguments: c.text}}}
			}
		} else {
			sc.Text = &c.text
		}
		if j.logprobs >= 0 {
			sc.Logprobs = j.logprobsOf(i, 0, c.tokens)
		}
		r.Choices = append(r.Choices, sc)
	}
	writeJSON(o.w, http.StatusOK, r)
}

// SGLang's stream chunks (protocol.py ChatCompletionStreamResponse, CompletionStreamResponse,
// serialised by pydantic's model_dump_json, so unset fields are null rather than left out).
// They differ from vLLM's where a client can tell: the id is the request's hex id, as in the
// whole response; a choice says matched_stop instead of stop_reason; every delta carries
// role, content, reasoning_content and tool_calls (null when unset); every chunk carries
// "usage" (null but in the usage chunk); and a chat choice's finish reason comes in a chunk of
// its own with an empty delta after the last token (serving_chat.py "Send finish_reason
// chunks for each index that completed"), where a completion carries it on its last token
// (serving_completions.py). The usage chunk has SGLang's UsageInfo (reasoning_tokens); a
// completion's is written with exclude_none, so it has no prompt_tokens_details.
type (
	sglangDelta struct {
		Role             *string          `json:"role"`
		Content          *string          `json:"content"`
		ReasoningContent *string          `json:"reasoning_content"`
		ToolCalls        []sglangToolCall `json:"tool_calls"`
	}
	sglangToolCall struct {
		ID       *string            `json:"id"`
		Index    int                `json:"index"`
		Type     string             `json:"type"`
		Function sglangToolFunction `json:"function"`
	}
	sglangToolFunction struct {
		Name      *string `json:"name"`
		Arguments string  `json:"arguments"`
	}
	sglangStreamChoice struct {
		Index        int          `json:"index"`
		Delta        *sglangDelta `json:"delta,omitempty"`
		Text         *string      `json:"text,omitempty"`
		Logprobs     any          `json:"logprobs"`
		FinishReason any          `json:"finish_reason"`
		MatchedStop  any          `json:"matched_stop"`
	}
	sglangStreamResponse struct {
		ID      string               `json:"id"`
		Object  string               `json:"object"`
		Created int64                `json:"created"`
		Model   string               `json:"model"`
		Choices []sglangStreamChoice `json:"choices"`
		Usage   any                  `json:"usage"`
	}
	// sglangUsageBrief is UsageInfo written with exclude_none.
	sglangUsageBrief struct {
		PromptTokens     int `json:"prompt_tokens"`
		TotalTokens      int `json:"total_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		ReasoningTokens  int `json:"reasoning_tokens"`
	}
)

// sglangChunk is SGLang's chunk for p (see the wire types above). A tool call streams its
// id and name with its first token's arguments, then arguments alone, as SGLang's ToolCall
// with "index" 0.
func sglangChunk(o *sse, p streamPart) any {
	j := o.j
	ch := j.choices[p.choice]
	sc := sglangStreamChoice{Index: p.choice, Logprobs: p.logprobs}
	if j.chat {
		d := &sglangDelta{}
		switch {
		case p.role:
			role, empty := "assistant", ""
			d.Role, d.Content = &role, &empty
		case p.text != nil && ch.tool != "":
			tc := sglangToolCall{Type: "function", Function: sglangToolFunction{Arguments: *p.text}}
			if p.index == 0 {
				tc.ID, tc.Function.Name = &ch.toolID, &ch.tool
			}
			d.ToolCalls = []sglangToolCall{tc}
		case p.text != nil:
			d.Content = p.text
		}
		sc.Delta = d
	} else {
		sc.Text = p.text
	}
	if p.finish {
		sc.FinishReason, sc.MatchedStop = ch.finish, sglangMatchedStop(ch)
	}
	return sglangStreamResponse{ID: sglangID(j), Object: chunkObject(j), Created: o.created, Model: j.model, Choices: []sglangStreamChoice{sc}}
}

// sglangUsageChunk is the last chunk with include_usage: no choices, the usage.
func sglangUsageChunk(o *sse) any {
	j := o.j
	c := sglangStreamResponse{ID: sglangID(j), Object: chunkObject(j), Created: o.created, Model: j.model, Choices: []sglangStreamChoice{}}
	u := sglangUsageOf(j)
	if j.chat {
		c.Usage = u
	} else {
		c.Usage = sglangUsageBrief{PromptTokens: u.PromptTokens, TotalTokens: u.TotalTokens, CompletionTokens: u.CompletionTokens}
	}
	return c
}

// sglangLoadLog is what sglang.launch_server logs while it loads: the weights, the KV cache
// and the limits it runs with.
func (s *OpenAI) sglangLoadLog(out io.Writer) {
	plan := s.cfg.Plan
	ts := s.cfg.Now().Format("2006-01-02 15:04:05")
	fmt.Fprintf(out, "[%s] Load weight end. type=%s, dtype=%s, avail mem=%.2f GB, mem usage=%.2f GB.\n", ts, plan.Model.Name, plan.Options.Quant,
		gib(plan.BudgetBytes-plan.WeightBytes), gib(plan.WeightBytes))
	fmt.Fprintf(out, "[%s] KV Cache is allocated. #tokens: %d\n", ts, plan.KVTokens)
	fmt.Fprintf(out, "[%s] max_total_num_tokens=%d, max_running_requests=%d, context_len=%d (citadel sim %s, time scale %g)\n",
		ts, plan.KVTokens, plan.Options.MaxNumSeqs, plan.Options.MaxModelLen, DefaultSGLangVersion, s.cfg.TimeScale)
	fmt.Fprintf(out, "[%s] sim plan: %s\n", ts, plan)
}

func (s *OpenAI) sglangServingLog(out io.Writer, addr net.Addr) {
	fmt.Fprintf(out, "INFO:     Uvicorn running on http://%s (Press CTRL+C to quit)\n", addr)
	fmt.Fprintf(out, "[%s] The server is fired up and ready to roll!\n", s.cfg.Now().Format("2006-01-02 15:04:05"))
}

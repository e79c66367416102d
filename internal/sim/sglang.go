package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// DefaultSGLangVersion is the SGLang release the personality reports.
const DefaultSGLangVersion = "0.5.3"

// SGLang's histogram buckets (python/sglang/srt/metrics/collector.py TokenizerMetricsCollector).
var (
	sglangTTFTBuckets = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400}
	sglangITLBuckets  = []float64{0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000}
	sglangE2EBuckets  = []float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400}
)

// sglangRoutes adds SGLang's own endpoints (python/sglang/srt/entrypoints/http_server.py).
func (s *VLLM) sglangRoutes(mux *http.ServeMux) {
	empty := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	mux.HandleFunc("GET /health", empty)
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

// sglangAuthorized is SGLang's API-key middleware: every path but /health* and /metrics
// needs "Authorization: Bearer KEY" when a key is set.
func (s *VLLM) sglangAuthorized(r *http.Request) bool {
	if s.cfg.APIKey == "" || r.Method == http.MethodOptions ||
		strings.HasPrefix(r.URL.Path, "/health") || strings.HasPrefix(r.URL.Path, "/metrics") {
		return true
	}
	return bearer(r, s.cfg.APIKey)
}

func (s *VLLM) sglangModels(w http.ResponseWriter, _ *http.Request) {
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
func (s *VLLM) sglangHealthGenerate(w http.ResponseWriter, r *http.Request) {
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

func (s *VLLM) sglangModelInfo(w http.ResponseWriter, _ *http.Request) {
	m := s.cfg.Plan.Model
	modelType, arch := hfArch(m.Name)
	writeJSON(w, http.StatusOK, map[string]any{
		"model_path": s.cfg.ModelRoot, "tokenizer_path": s.cfg.ModelRoot, "is_generation": true,
		"preferred_sampling_params": nil, "weight_version": "default",
		"has_image_understanding": m.Vision, "has_audio_understanding": false,
		"model_type": modelType, "architectures": []string{arch},
	})
}

func (s *VLLM) sglangServerInfo(w http.ResponseWriter, _ *http.Request) {
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
func (s *VLLM) sglangGenerate(w http.ResponseWriter, r *http.Request) {
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
	j.id = fmt.Sprintf("%032x", s.nextID.Add(1))
	s.runWith(w, r, j, func(st *stream) responder { return &sglangOut{streamBuf: streamBuf{w: w}, j: j, st: st, srv: s} })
}

// writeNativeError is the error of SGLang's native endpoints: {"error": {"message": …}}.
func (s *VLLM) writeNativeError(w http.ResponseWriter, err error) {
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
	srv *VLLM
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
	sched.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", float64(m.waiting))
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

// sglangWhole writes a non-streaming response in SGLang's shape.
func (o *whole) sglangWhole() {
	j := o.j
	u := j.usage()
	r := sglangResponse{ID: strings.TrimPrefix(strings.TrimPrefix(j.id, "chatcmpl-"), "cmpl-"), Object: "chat.completion",
		Created: o.created, Model: j.model,
		Usage: sglangUsage{PromptTokens: u.PromptTokens, TotalTokens: u.TotalTokens, CompletionTokens: u.CompletionTokens}}
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

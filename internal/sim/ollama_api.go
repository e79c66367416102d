package sim

// The simulated Ollama's endpoints: tags, ps, show, chat, generate, embed, pull, and its
// OpenAI-compatible /v1.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/perfmodel"
)

func (r *ollamaRunner) arch() string {
	if r.Family != "" {
		return r.Family
	}
	n := r.Plan.Model.Name
	switch {
	case strings.HasPrefix(n, "mimo-vl"):
		return "qwen25vl"
	case strings.HasPrefix(n, "llama"), strings.HasPrefix(n, "mixtral"):
		return "llama"
	}
	return "qwen2"
}

func (r *ollamaRunner) quantLevel() string {
	if r.QuantizationLevel != "" {
		return r.QuantizationLevel
	}
	switch r.Plan.Options.Quant {
	case perfmodel.QuantFP8:
		return "F8_E4M3"
	case perfmodel.QuantAWQInt4:
		return "Q4_0"
	case perfmodel.QuantQ4KM:
		return "Q4_K_M"
	}
	return "BF16"
}

type ollamaDetails struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

func (r *ollamaRunner) details() ollamaDetails {
	a := r.arch()
	size := r.ParameterSize
	if size == "" {
		size = fmt.Sprintf("%.1fB", float64(r.Plan.Model.Params)/1e9)
	}
	return ollamaDetails{Format: "gguf", Family: a, Families: []string{a}, ParameterSize: size, QuantizationLevel: r.quantLevel()}
}

// weightBytes is the weights' size over all GPUs, as the performance model costs them.
func (r *ollamaRunner) weightBytes() int64 {
	return r.Plan.WeightBytes * int64(r.Plan.Options.TP)
}

// diskSize is /api/tags' size: the store's blobs, else the weights.
func (r *ollamaRunner) diskSize() int64 {
	if r.Size > 0 {
		return r.Size
	}
	return r.weightBytes()
}

// memory is /api/ps' size and size_vram: with an offload plan, what Ollama allocates on the
// GPUs and in host memory; else the weights and the slots' KV cache.
func (r *ollamaRunner) memory() (size, vram int64) {
	if len(r.Offload.GPUBytes) > 0 {
		for _, b := range r.Offload.GPUBytes {
			vram += b
		}
		return vram + r.Offload.CPUBytes, vram
	}
	p := r.Plan
	vram = r.weightBytes() + p.KVBytesPerToken*int64(p.Options.Parallel)*int64(p.Options.MaxModelLen)*int64(p.Options.TP)
	return vram, vram
}

type ollamaModel struct {
	Name          string        `json:"name"`
	Model         string        `json:"model"`
	ModifiedAt    *time.Time    `json:"modified_at,omitempty"`
	Size          int64         `json:"size"`
	Digest        string        `json:"digest"`
	Details       ollamaDetails `json:"details"`
	ExpiresAt     *time.Time    `json:"expires_at,omitempty"`
	SizeVRAM      *int64        `json:"size_vram,omitempty"`
	ContextLength int           `json:"context_length,omitempty"`
}

func (s *Ollama) tags(w http.ResponseWriter, _ *http.Request) {
	s.rescan()
	runners := s.list()
	models := make([]ollamaModel, 0, len(runners))
	for _, r := range runners {
		mod := r.Modified.UTC()
		models = append(models, ollamaModel{Name: r.name, Model: r.name, ModifiedAt: &mod, Size: r.diskSize(), Digest: r.Digest, Details: r.details()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Ollama) ps(w http.ResponseWriter, _ *http.Request) {
	models := []ollamaModel{}
	for _, r := range s.list() {
		ok, exp := s.resident(r)
		if !ok {
			continue
		}
		size, vram := r.memory()
		exp = exp.UTC()
		models = append(models, ollamaModel{Name: r.name, Model: r.name, Size: size, Digest: r.Digest, Details: r.details(),
			ExpiresAt: &exp, SizeVRAM: &vram, ContextLength: r.Plan.Options.MaxModelLen})
	}
	// Ollama lists the longest remaining first.
	slices.SortStableFunc(models, func(a, b ollamaModel) int { return b.ExpiresAt.Compare(*a.ExpiresAt) })
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Ollama) show(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string `json:"model"`
		Name  string `json:"name"` // deprecated alias
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	rn, err := s.lookup(req.Model)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	m, a := rn.Plan.Model, rn.arch()
	caps := []string{"completion", "tools"}
	if m.Vision {
		caps = append(caps, "vision")
	}
	info := map[string]any{
		"general.architecture":         a,
		"general.parameter_count":      m.Params,
		"general.basename":             m.Name,
		a + ".context_length":          m.MaxContext,
		a + ".embedding_length":        m.Hidden,
		a + ".block_count":             m.Layers,
		a + ".feed_forward_length":     m.Intermediate,
		a + ".attention.head_count":    m.Heads,
		a + ".attention.head_count_kv": m.KVHeads,
		a + ".vocab_size":              m.Vocab,
		"general.file_type":            15,
		"general.size_label":           rn.details().ParameterSize,
	}
	if rn.StandIn {
		info[modelinfo.StandInParameterCountKey] = m.Params
	}
	resp := map[string]any{
		"license":      "Apache License 2.0",
		"modelfile":    fmt.Sprintf("# Modelfile generated by \"ollama show\"\nFROM %s\nTEMPLATE {{ .Prompt }}\n", rn.name),
		"parameters":   "stop                           \"<|im_start|>\"\nstop                           \"<|im_end|>\"",
		"template":     "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
		"details":      rn.details(),
		"model_info":   info,
		"capabilities": caps,
		"modified_at":  rn.Modified.UTC(),
	}
	if m.Vision {
		resp["projector_info"] = map[string]any{"clip.has_vision_encoder": true, "general.architecture": "clip",
			"clip.vision.image_size": 560, "clip.vision.patch_size": 14}
	}
	writeJSON(w, http.StatusOK, resp)
}

// Generation.

// ollamaOptions are the runtime options the simulator honours; the rest are accepted.
type ollamaOptions struct {
	NumPredict *int     `json:"num_predict"`
	Stop       stopList `json:"stop"`
	Seed       *int64   `json:"seed"`
}

type ollamaMessage struct {
	Role    string   `json:"role"`
	Content string   `json:"content"`
	Images  []string `json:"images,omitempty"`
}

type ollamaMetrics struct {
	TotalDuration      time.Duration `json:"total_duration,omitempty"`
	LoadDuration       time.Duration `json:"load_duration,omitempty"`
	PromptEvalCount    int           `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration time.Duration `json:"prompt_eval_duration,omitempty"`
	EvalCount          int           `json:"eval_count,omitempty"`
	EvalDuration       time.Duration `json:"eval_duration,omitempty"`
}

// ollamaResponse is ChatResponse and GenerateResponse in Ollama's field order.
type ollamaResponse struct {
	Model      string         `json:"model"`
	CreatedAt  time.Time      `json:"created_at"`
	Message    *ollamaMessage `json:"message,omitempty"`
	Response   *string        `json:"response,omitempty"`
	DoneReason string         `json:"done_reason,omitempty"`
	Done       bool           `json:"done"`
	Context    []int          `json:"context,omitempty"`
	ollamaMetrics
}

// ollamaJob is a validated chat or generate request.
type ollamaJob struct {
	r      *ollamaRunner
	model  string
	chat   bool
	stream bool
	keep   time.Duration
	prompt prompt
	choice choice
	empty  bool // an empty prompt: load (or unload) only
}

func (s *Ollama) newJob(model string, p prompt, opts ollamaOptions, chat bool, stream *bool, k keepAlive) (*ollamaJob, error) {
	r, err := s.lookup(model)
	if err != nil {
		return nil, err
	}
	j := &ollamaJob{r: r, model: model, chat: chat, stream: stream == nil || *stream, keep: s.keepFor(k), prompt: p}
	if p.tokens == 0 {
		j.empty = true
		return j, nil
	}
	if p.vision > 0 && !r.Plan.Model.Vision {
		return nil, &ollamaError{http.StatusBadRequest, fmt.Sprintf("model %q does not support images", model)}
	}
	ctxLen := r.Plan.Options.MaxModelLen
	if p.tokens+p.vision >= ctxLen {
		return nil, &ollamaError{http.StatusBadRequest, fmt.Sprintf("the input length (%d tokens) exceeds the context length (%d tokens)", p.tokens+p.vision, ctxLen)}
	}
	limit := ctxLen - p.tokens - p.vision
	if opts.NumPredict != nil && *opts.NumPredict > 0 {
		limit = min(limit, *opts.NumPredict)
	}
	seed := s.cfg.Seed
	if opts.Seed != nil {
		seed ^= *opts.Seed
	}
	g := newGenerator(seed, p.text, 0)
	c := choice{}
	c.tokens, c.finish, c.stopStr = g.plan(limit, false, opts.Stop)
	c.text, c.ends = g.render(c.tokens, c.stopStr)
	j.choice = c
	return j, nil
}

func (s *Ollama) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string          `json:"model"`
		Messages  []ollamaMessage `json:"messages"`
		Stream    *bool           `json:"stream"`
		KeepAlive keepAlive       `json:"keep_alive"`
		Options   ollamaOptions   `json:"options"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	var p prompt
	var text strings.Builder
	for _, m := range req.Messages {
		text.WriteString(m.Role + ": " + m.Content + "\n")
		p.tokens += tokensPerMessage + countTokens(m.Content)
		for _, img := range m.Images {
			p.vision += visionTokens("data:image/png;base64," + img)
		}
	}
	if len(req.Messages) > 0 {
		p.tokens += tokensPerAssistant
	}
	p.text = text.String()
	j, err := s.newJob(req.Model, p, req.Options, true, req.Stream, req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	s.run(w, r, j)
}

func (s *Ollama) generate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string        `json:"model"`
		Prompt    string        `json:"prompt"`
		System    string        `json:"system"`
		Images    []string      `json:"images"`
		Raw       bool          `json:"raw"`
		Stream    *bool         `json:"stream"`
		KeepAlive keepAlive     `json:"keep_alive"`
		Options   ollamaOptions `json:"options"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	var p prompt
	if req.Prompt != "" || len(req.Images) > 0 {
		p.text = req.System + "\n" + req.Prompt
		p.tokens = max(1, countTokens(req.System)+countTokens(req.Prompt))
		if !req.Raw { // the template's framing
			p.tokens += tokensPerMessage + tokensPerAssistant
			if req.System != "" {
				p.tokens += tokensPerMessage
			}
		}
		for _, img := range req.Images {
			p.vision += visionTokens("data:image/png;base64," + img)
		}
	}
	j, err := s.newJob(req.Model, p, req.Options, false, req.Stream, req.KeepAlive)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	s.run(w, r, j)
}

// prefillTime is the simulated time of a lone prefill of n tokens (v of them image tokens).
func (r *ollamaRunner) prefillTime(n, v int) time.Duration {
	return r.Plan.StepTime(perfmodel.Batch{Tokens: n, Sampled: 1, ContextTokens: int64(n),
		AttentionWork: float64(n) * float64(n+1) / 2, VisionTokens: v})
}

// promptEvalTime is prompt_eval_duration of n prompt tokens (v of them image tokens), in
// simulated time with the slowdown: a lone prefill's, or in fixed-latency mode FixedTTFT.
func (r *ollamaRunner) promptEvalTime(n, v int) time.Duration {
	if ttft, _, ok := r.engine.Fixed(); ok {
		return r.engine.simTime(ttft)
	}
	return r.engine.simTime(r.prefillTime(n, v))
}

// run loads the model, generates j's tokens on the engine and writes NDJSON (or one object).
func (s *Ollama) run(w http.ResponseWriter, r *http.Request, j *ollamaJob) {
	ctx, rn := r.Context(), j.r
	if j.empty && j.keep == 0 {
		s.unload(rn)
		s.finalOnly(w, j, "unload", ollamaMetrics{})
		return
	}
	load, err := s.acquire(ctx, rn)
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	if j.empty {
		s.release(rn, j.keep)
		s.finalOnly(w, j, "load", ollamaMetrics{TotalDuration: load, LoadDuration: load})
		return
	}
	defer func() { s.release(rn, j.keep) }()
	c := j.choice
	st, err := rn.engine.Submit(ctx, j.prompt.tokens, j.prompt.vision, []int{c.tokens}, []string{c.finish})
	if err != nil {
		writeOllamaError(w, &ollamaError{http.StatusServiceUnavailable, "server busy, please try again: " + err.Error()})
		return
	}
	nd := &ndjson{streamBuf{w: w}}
	produced, finished := make([]int, 1), make([]bool, 1)
	sent := 0
	for {
		select {
		case <-ctx.Done():
			rn.engine.Abort(st)
			return
		case <-st.notify:
		}
		if err := st.snapshot(produced, finished); err != nil {
			msg := "llama runner process has terminated: " + err.Error()
			if errors.Is(err, perfmodel.ErrTooLong) || errors.Is(err, perfmodel.ErrInvalid) || errors.Is(err, perfmodel.ErrNoVision) {
				msg = err.Error()
			}
			if j.stream && nd.started {
				nd.line(map[string]string{"error": msg})
				_ = nd.flush()
			} else {
				writeOllamaError(w, &ollamaError{http.StatusInternalServerError, msg})
			}
			return
		}
		for ; sent < produced[0]; sent++ {
			if !j.stream {
				continue
			}
			from := 0
			if sent > 0 {
				from = c.ends[sent-1]
			}
			if piece := c.text[from:c.ends[sent]]; piece != "" {
				nd.line(s.partial(j, piece))
			}
		}
		if j.stream {
			if err := nd.flush(); err != nil {
				rn.engine.Abort(st)
				return
			}
		}
		if finished[0] {
			break
		}
	}
	// The driver wrote arrival and last before publishing finished under st.mu, and never
	// writes them again: reading them here is ordered by snapshot's lock.
	span := rn.engine.simTime(st.last[0] - st.arrival)
	pe := min(rn.promptEvalTime(j.prompt.tokens+j.prompt.vision, j.prompt.vision), span)
	m := ollamaMetrics{TotalDuration: load + span, LoadDuration: load, PromptEvalCount: j.prompt.tokens + j.prompt.vision,
		PromptEvalDuration: pe, EvalCount: c.tokens, EvalDuration: span - pe}
	final := s.final(j, c.finish, m)
	if !j.stream {
		if j.chat {
			final.Message.Content = c.text
		} else {
			*final.Response = c.text
		}
		writeJSON(w, http.StatusOK, final)
		return
	}
	nd.line(final)
	_ = nd.flush()
}

func (s *Ollama) partial(j *ollamaJob, piece string) ollamaResponse {
	r := ollamaResponse{Model: j.model, CreatedAt: s.cfg.Now().UTC()}
	if j.chat {
		r.Message = &ollamaMessage{Role: "assistant", Content: piece}
	} else {
		r.Response = &piece
	}
	return r
}

func (s *Ollama) final(j *ollamaJob, reason string, m ollamaMetrics) ollamaResponse {
	r := s.partial(j, "")
	r.Done, r.DoneReason, r.ollamaMetrics = true, reason, m
	if !j.chat && !j.empty {
		r.Context = tokenize(j.prompt.text + " " + j.choice.text)
	}
	return r
}

// finalOnly answers a load or unload request: one final object, streamed or not.
func (s *Ollama) finalOnly(w http.ResponseWriter, j *ollamaJob, reason string, m ollamaMetrics) {
	f := s.final(j, reason, m)
	if !j.stream {
		writeJSON(w, http.StatusOK, f)
		return
	}
	nd := &ndjson{streamBuf{w: w}}
	nd.line(f)
	_ = nd.flush()
}

// ndjson writes application/x-ndjson, one object per line, flushed per batch.
type ndjson struct{ streamBuf }

func (o *ndjson) line(v any) {
	b, _ := json.Marshal(v)
	o.buf.Write(b)
	o.buf.WriteByte('\n')
}

func (o *ndjson) flush() error {
	o.begin("application/x-ndjson")
	return o.send()
}

// embed returns deterministic unit vectors of the model's hidden size (or dimensions).
func (s *Ollama) embed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions"`
		KeepAlive  keepAlive       `json:"keep_alive"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	rn, err := s.lookup(req.Model)
	if err != nil {
		writeOllamaError(w, err)
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil {
		writeOllamaError(w, &ollamaError{http.StatusBadRequest, "invalid input type: want a string or a list of strings"})
		return
	}
	dims := rn.Plan.Model.Hidden
	if req.Dimensions > 0 && req.Dimensions < dims {
		dims = req.Dimensions
	}
	load, err := s.acquire(r.Context(), rn)
	if err != nil {
		var e *ollamaError
		if errors.As(err, &e) { // else the client went away
			writeOllamaError(w, e)
		}
		return
	}
	defer func() { s.release(rn, s.keepFor(req.KeepAlive)) }()
	tokens := 0
	embeddings := make([][]float32, len(inputs))
	for i, in := range inputs {
		tokens += max(1, countTokens(in))
		embeddings[i] = unitVector(s.cfg.Seed, in, dims)
	}
	pe := rn.promptEvalTime(tokens, 0)
	if wait := time.Duration(s.cfg.TimeScale * float64(pe)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": req.Model, "embeddings": embeddings,
		"total_duration": load + pe, "load_duration": load, "prompt_eval_count": tokens})
}

// pull streams Ollama's progress for a served model; other names are not in the "registry".
func (s *Ollama) pull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Name   string `json:"name"`
		Stream *bool  `json:"stream"`
	}
	if err := decodeOllama(r, &req); err != nil {
		writeOllamaError(w, err)
		return
	}
	if req.Model == "" {
		req.Model = req.Name
	}
	stream := req.Stream == nil || *req.Stream
	rn, err := s.lookup(req.Model)
	if err != nil {
		msg := "pull model manifest: file does not exist"
		if !stream {
			writeOllamaError(w, &ollamaError{http.StatusInternalServerError, msg})
			return
		}
		nd := &ndjson{streamBuf{w: w}}
		nd.line(map[string]string{"status": "pulling manifest"})
		nd.line(map[string]string{"error": msg})
		_ = nd.flush()
		return
	}
	if !stream {
		writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
		return
	}
	type progress struct {
		Status    string `json:"status"`
		Digest    string `json:"digest,omitempty"`
		Total     int64  `json:"total,omitempty"`
		Completed int64  `json:"completed,omitempty"`
	}
	nd := &ndjson{streamBuf{w: w}}
	nd.line(progress{Status: "pulling manifest"})
	layers := []struct {
		kind string
		size int64
	}{{"model", rn.diskSize()}, {"template", 1482}, {"license", 11343}, {"params", 148}}
	for _, l := range layers {
		sum := sha256.Sum256([]byte(rn.Digest + l.kind))
		d := "sha256:" + hex.EncodeToString(sum[:])
		status := "pulling " + d[7:19]
		steps := int64(1)
		if l.size > 1<<20 {
			steps = 4
		}
		for k := int64(0); k <= steps; k++ {
			nd.line(progress{Status: status, Digest: d, Total: l.size, Completed: l.size * k / steps})
		}
		if err := nd.flush(); err != nil {
			return
		}
	}
	nd.line(progress{Status: "verifying sha256 digest"})
	nd.line(progress{Status: "writing manifest"})
	nd.line(progress{Status: "success"})
	_ = nd.flush()
}

// openAI routes a /v1 request of the shared vLLM code to the model its body names, with model
// residency. An unknown model gets Ollama's 404 in OpenAI's error shape (middleware/openai.go).
func (s *Ollama) openAI(h func(*ollamaRunner) http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
		if err != nil {
			writeOpenAIError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal(body, &req) // the handler reports a malformed body
		runners := s.list()
		var rn *ollamaRunner
		if req.Model == "" && len(runners) == 1 {
			rn = runners[0]
		} else {
			if rn, err = s.lookup(req.Model); err != nil {
				var e *ollamaError
				errors.As(err, &e)
				writeOpenAIError(w, e.status, e.message)
				return
			}
		}
		if _, err := s.acquire(r.Context(), rn); err != nil {
			var e *ollamaError
			if errors.As(err, &e) { // else the client went away
				rn.compat.writeError(w, &apiError{status: e.status, message: e.message})
			}
			return
		}
		defer s.release(rn, s.cfg.KeepAlive)
		h(rn)(w, r)
	}
}

// writeOpenAIError is Ollama's OpenAI-compatible error (openai.NewError).
func writeOpenAIError(w http.ResponseWriter, status int, message string) {
	typ := "api_error"
	switch status {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	}
	type openAIError struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   any     `json:"param"`
		Code    *string `json:"code"`
	}
	writeJSON(w, status, struct {
		Error openAIError `json:"error"`
	}{openAIError{Message: message, Type: typ}})
}

func (s *Ollama) openAIModels(w http.ResponseWriter, _ *http.Request) {
	s.rescan()
	runners := s.list()
	data := make([]map[string]any, 0, len(runners))
	for _, r := range runners {
		data = append(data, map[string]any{"id": r.name, "object": "model", "created": r.Modified.Unix(), "owned_by": "library"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

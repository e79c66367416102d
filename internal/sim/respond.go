package sim

import (
	"encoding/json"
	"errors"
	"net/http"

	"citadel.dev/citadel/internal/perfmodel"
)

// run submits j to the engine and writes its OpenAI response as the tokens come.
func (s *OpenAI) run(w http.ResponseWriter, r *http.Request, j *job) {
	s.runWith(w, r, j, func(*stream) responder {
		if j.stream {
			return newSSE(w, j, s.cfg.Now().Unix(), s)
		}
		return &whole{w: w, j: j, created: s.cfg.Now().Unix(), srv: s}
	})
}

// runWith submits j to the engine and writes its response with the responder newOut makes
// for the request's stream.
func (s *OpenAI) runWith(w http.ResponseWriter, r *http.Request, j *job, newOut func(*stream) responder) {
	ctx := r.Context()
	tokens := make([]int, len(j.choices))
	finish := make([]string, len(j.choices))
	for i, c := range j.choices {
		tokens[i], finish[i] = c.tokens, c.finish
	}
	// A cached prefix is not prefilled again (usage still counts the whole prompt).
	prefill := max(j.prompt.tokens-s.prefix.hit(j.prompt.text), 1)
	st, err := s.engine.Submit(ctx, prefill, j.prompt.vision, tokens, finish)
	if err != nil {
		s.writeError(w, &apiError{status: http.StatusServiceUnavailable, message: "The engine is not accepting requests: " + err.Error()})
		return
	}
	out := newOut(st)
	produced := make([]int, len(j.choices))
	finished := make([]bool, len(j.choices))
	sent := make([]int, len(j.choices))
	for {
		select {
		case <-ctx.Done():
			s.engine.Abort(st)
			return
		case <-st.notify:
		}
		err := st.snapshot(produced, finished)
		if err != nil {
			out.fail(s.submitError(err))
			return
		}
		all := true
		for i := range j.choices {
			for ; sent[i] < produced[i]; sent[i]++ {
				out.token(i, sent[i])
			}
			all = all && finished[i]
		}
		if err := out.flush(); err != nil {
			s.engine.Abort(st)
			return
		}
		if all {
			out.done()
			return
		}
	}
}

// submitError turns an engine error into vLLM's.
func (s *OpenAI) submitError(err error) *apiError {
	switch {
	case errors.Is(err, perfmodel.ErrTooLong):
		return badRequest("This model's maximum context length is %d tokens. %v", s.maxLen, err)
	case errors.Is(err, perfmodel.ErrNoVision):
		return badRequest("%s is not a multimodal model", s.cfg.ServedModelNames[0])
	case errors.Is(err, perfmodel.ErrInvalid):
		return badRequest("%v", err)
	}
	return &apiError{status: http.StatusServiceUnavailable, message: "The engine stopped before the request finished: " + err.Error()}
}

// responder writes one response, streamed or whole.
type responder interface {
	token(choice, index int)
	flush() error
	done()
	fail(*apiError)
}

type usage struct {
	PromptTokens     int  `json:"prompt_tokens"`
	TotalTokens      int  `json:"total_tokens"`
	CompletionTokens int  `json:"completion_tokens"`
	Details          *any `json:"prompt_tokens_details"`
}

func (j *job) usage() usage {
	p := j.prompt.tokens + j.prompt.vision
	return usage{PromptTokens: p, CompletionTokens: j.completion, TotalTokens: p + j.completion}
}

// delta is the text token index adds to choice c.
func (j *job) delta(c, index int) string {
	ch := &j.choices[c]
	from := 0
	if index > 0 {
		from = ch.ends[index-1]
	}
	return ch.text[from:ch.ends[index]]
}

func stopReason(c choice) any {
	if c.stopStr != "" {
		return c.stopStr
	}
	return nil
}

// whole collects a non-streaming response.
type whole struct {
	w       http.ResponseWriter
	j       *job
	created int64
	srv     *OpenAI
}

func (o *whole) token(int, int)   {}
func (o *whole) flush() error     { return nil }
func (o *whole) fail(e *apiError) { o.srv.writeError(o.w, e) }
func (o *whole) done()            { o.srv.d.whole(o) }

// sse writes a streamed response: data: <json>\n\n per chunk, data: [DONE] last. It decides
// what each chunk carries and when (dialect.stream words them): a chat choice's role first,
// then each token's text, the finish reason on a choice's last token or, where the dialect
// says, in a chunk of its own after all tokens, and the usage last when the request asks.
type sse struct {
	streamBuf
	j       *job
	created int64
	srv     *OpenAI
}

func newSSE(w http.ResponseWriter, j *job, created int64, srv *OpenAI) *sse {
	return &sse{streamBuf: streamBuf{w: w}, j: j, created: created, srv: srv}
}

func (o *sse) start() {
	if o.started {
		return
	}
	o.w.Header().Set("Cache-Control", "no-cache")
	o.begin("text/event-stream; charset=utf-8")
	if o.j.chat { // the role-first chunk of every choice
		for i := range o.j.choices {
			o.emit(streamPart{choice: i, role: true})
		}
	}
}

// finishApart reports whether the finish reasons come in chunks of their own.
func (o *sse) finishApart() bool { return o.j.chat && o.srv.d.stream.chatFinishApart }

func (o *sse) event(v any) {
	b, _ := json.Marshal(v)
	o.data(b)
}

// emit queues the dialect's chunk for p.
func (o *sse) emit(p streamPart) { o.event(o.srv.d.stream.chunk(o, p)) }

func (o *sse) token(c, index int) {
	o.start()
	ch := o.j.choices[c]
	last := index == ch.tokens-1
	text := o.j.delta(c, index)
	if text == "" && (!last || o.finishApart()) {
		return // text swallowed by a stop string
	}
	p := streamPart{choice: c, index: index, text: &text, finish: last && !o.finishApart()}
	if o.j.logprobs >= 0 {
		p.logprobs = o.j.logprobsOf(c, index, index+1)
	}
	o.emit(p)
}

func (o *sse) flush() error {
	o.start()
	return o.send()
}

func (o *sse) done() {
	if o.finishApart() {
		for i := range o.j.choices {
			o.emit(streamPart{choice: i, finish: true})
		}
	}
	if o.j.withUsage {
		o.event(o.srv.d.stream.usage(o))
	}
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.flush()
}

// fail reports an error: as the whole response before the stream starts, else as a data
// event followed by [DONE], as vLLM does mid-stream.
func (o *sse) fail(e *apiError) {
	if !o.started {
		o.srv.writeError(o.w, e)
		return
	}
	o.event(o.srv.errorBody(e))
	o.buf.WriteString("data: [DONE]\n\n")
	_ = o.flush()
}

// chunkObject is the "object" of j's stream chunks.
func chunkObject(j *job) string {
	if j.chat {
		return "chat.completion.chunk"
	}
	return "text_completion"
}

var _ responder = (*sse)(nil)
var _ responder = (*whole)(nil)

// Log probabilities, in the chat shape {"content": [...]} or the completions shape.
type (
	topLogprob struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	}
	logprobContent struct {
		topLogprob
		TopLogprobs []topLogprob `json:"top_logprobs"`
	}
	completionLogprobs struct {
		TextOffset    []int                `json:"text_offset"`
		TokenLogprobs []float64            `json:"token_logprobs"`
		Tokens        []string             `json:"tokens"`
		TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	}
)

// logprobsOf is choice c's logprobs for tokens [from, to) that appear in the output (a token
// swallowed by a stop string does not, as in the stream).
func (j *job) logprobsOf(c, from, to int) any {
	ch := &j.choices[c]
	content := []logprobContent{}
	cl := completionLogprobs{TextOffset: []int{}, TokenLogprobs: []float64{}, Tokens: []string{}, TopLogprobs: []map[string]float64{}}
	for i := from; i < to; i++ {
		text := j.delta(c, i)
		if text == "" && i != ch.tokens-1 {
			continue
		}
		lp := ch.gen.logprob(i)
		alts := []topLogprob{{Token: text, Logprob: lp, Bytes: tokenBytes(text)}}
		for k := 1; k < j.logprobs; k++ {
			alt := " " + vocabulary[ch.gen.at(i<<5|k+1<<24)%uint64(len(vocabulary))]
			alts = append(alts, topLogprob{Token: alt, Logprob: lp - 0.75*float64(k), Bytes: tokenBytes(alt)})
		}
		if j.chat {
			content = append(content, logprobContent{topLogprob: alts[0], TopLogprobs: alts[:j.logprobs]})
			continue
		}
		from := 0
		if i > 0 {
			from = ch.ends[i-1]
		}
		top := map[string]float64{}
		for _, a := range alts {
			if _, ok := top[a.Token]; !ok {
				top[a.Token] = a.Logprob
			}
		}
		cl.TextOffset = append(cl.TextOffset, from)
		cl.TokenLogprobs = append(cl.TokenLogprobs, lp)
		cl.Tokens = append(cl.Tokens, text)
		cl.TopLogprobs = append(cl.TopLogprobs, top)
	}
	if j.chat {
		return map[string]any{"content": content}
	}
	return cl
}

func tokenBytes(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

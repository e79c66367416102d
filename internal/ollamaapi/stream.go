package ollamaapi

// An OpenAI SSE stream, translated to Ollama's NDJSON line by line.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"
)

// StreamFromOpenAI reads an OpenAI SSE stream from r and writes Ollama's NDJSON to w,
// calling flush after each line: a line per content (or thinking) delta, one with the tool
// calls once they are complete, then the final done:true line with done_reason, the counts
// (from the usage chunk, else estimated) and the durations (prompt evaluation up to the first
// token, generation after; llama.cpp's timings when present). An error event becomes an
// {"error": "…"} line and an *Error; so does a stream that ends without data: [DONE].
// It returns nil after [DONE], or the error reading r or writing w.
func StreamFromOpenAI(o *Request, publicModel string, r io.Reader, w io.Writer, flush func(), start time.Time) error {
	s := &stream{o: o, model: publicModel, w: w, flush: flush, start: start, prompt: -1, completion: -1}
	br := bufio.NewReaderSize(r, 64<<10)
	var data []byte
	pending := false
	dispatch := func() (bool, error) {
		if !pending {
			return false, nil
		}
		pending = false
		done, err := s.event(data)
		data = data[:0]
		return done, err
	}
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimRight(line, "\r\n")
			var done bool
			var err error
			switch {
			case len(line) == 0:
				done, err = dispatch()
			case line[0] == ':': // comment
			default:
				field, value, _ := bytes.Cut(line, []byte(":"))
				if string(field) != "data" {
					break
				}
				value = bytes.TrimPrefix(value, []byte(" "))
				// Events are blank-line separated; a server that omits the blank line still
				// sends one complete JSON value per data line.
				if pending && (json.Valid(data) || string(data) == "[DONE]") {
					if done, err = dispatch(); done || err != nil {
						break
					}
				}
				if pending {
					data = append(data, '\n')
				}
				data = append(data, value...)
				pending = true
			}
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
		if rerr == nil {
			continue
		}
		// The stream ended (or broke): a last event without its blank line still counts if it
		// is whole; a partial one is dropped, and the answer reported incomplete.
		if pending && (json.Valid(data) || string(bytes.TrimSpace(data)) == "[DONE]") {
			if done, err := dispatch(); err != nil {
				return err
			} else if done {
				return nil
			}
		}
		if errors.Is(rerr, io.EOF) {
			return s.fail(&Error{Status: http.StatusBadGateway,
				Message: "the upstream engine closed the stream before it finished (no data: [DONE]); the answer is incomplete: retry the request"})
		}
		// The client's line names no addresses (a connection error has both ends'); the
		// returned error, for the log, has them.
		if err := s.line(map[string]string{"error": "reading the upstream stream failed; the answer is incomplete: retry the request"}); err != nil {
			return err
		}
		return fmt.Errorf("reading the upstream stream: %w", rerr)
	}
}

// stream is one stream's translation state.
type stream struct {
	o                  *Request
	model              string
	w                  io.Writer
	flush              func()
	start, first       time.Time // first: the first token's arrival
	prompt, completion int       // from usage; -1 until seen
	pieces             int       // content and thinking deltas written
	finish             string
	timings            *struct{ prompt, predicted time.Duration }
	calls              []upToolCall // accumulated by index
	callsSent          bool
}

func (s *stream) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing to the client: %w", err)
	}
	if s.flush != nil {
		s.flush()
	}
	return nil
}

// fail writes e as an error line and returns it (or the write's error).
func (s *stream) fail(e *Error) error {
	if err := s.line(map[string]string{"error": e.Message}); err != nil {
		return err
	}
	return e
}

// event handles one SSE event's data; done is true after [DONE].
func (s *stream) event(data []byte) (done bool, err error) {
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		return true, s.end()
	}
	var r upResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return false, s.fail(&Error{Status: http.StatusBadGateway,
			Message: fmt.Sprintf("the upstream engine sent an event that is not JSON (%v): %.200q", err, data)})
	}
	if e, ok := r.upstreamError(); ok {
		return false, s.fail(e)
	}
	if r.Usage != nil {
		s.prompt, s.completion = r.Usage.PromptTokens, r.Usage.CompletionTokens
	}
	if t := r.Timings; t != nil && t.PromptMS+t.PredictedMS > 0 {
		s.timings = &struct{ prompt, predicted time.Duration }{
			time.Duration(t.PromptMS * float64(time.Millisecond)), time.Duration(t.PredictedMS * float64(time.Millisecond))}
	}
	for _, c := range r.Choices {
		if c.Index != 0 {
			continue
		}
		var content, thinking string
		if d := c.Delta; d != nil {
			content, thinking = text(d.Content), d.thinking()
			s.addCalls(d.ToolCalls)
		} else if c.Message != nil {
			content, thinking = text(c.Message.Content), c.Message.thinking()
			s.addCalls(c.Message.ToolCalls)
		} else {
			content = text(c.Text)
		}
		if content != "" || thinking != "" {
			s.token()
			s.pieces++
			if err := s.line(s.o.out(s.model, content, thinking, nil, "", nil)); err != nil {
				return false, err
			}
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			s.finish = *c.FinishReason
			if err := s.sendCalls(); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (s *stream) token() {
	if s.first.IsZero() {
		s.first = time.Now()
	}
}

// addCalls merges tool-call deltas: the first of an index carries id and name, the rest
// fragments of the arguments.
func (s *stream) addCalls(deltas []upToolCall) {
	for _, d := range deltas {
		if s.o.Kind != Chat {
			return
		}
		s.token()
		k := -1
		for i, c := range s.calls {
			if d.Index != nil && c.Index != nil && *c.Index == *d.Index {
				k = i
				break
			}
		}
		if k < 0 {
			idx := len(s.calls)
			if d.Index != nil {
				idx = *d.Index
			}
			s.calls = append(s.calls, upToolCall{Index: &idx})
			k = len(s.calls) - 1
		}
		c := &s.calls[k]
		if d.ID != "" {
			c.ID = d.ID
		}
		if d.Function.Name != "" {
			c.Function.Name = d.Function.Name
		}
		c.Function.Arguments += d.Function.Arguments
	}
}

// sendCalls writes the accumulated tool calls, once, as a line of their own.
func (s *stream) sendCalls() error {
	if s.callsSent || len(s.calls) == 0 {
		return nil
	}
	s.callsSent = true
	sort.SliceStable(s.calls, func(i, j int) bool { return *s.calls[i].Index < *s.calls[j].Index })
	return s.line(s.o.out(s.model, "", "", outCalls(s.calls), "", nil))
}

// end writes the final line.
func (s *stream) end() error {
	if err := s.sendCalls(); err != nil {
		return err
	}
	now := time.Now()
	m := &AllMetrics{TotalDuration: now.Sub(s.start), PromptEvalCount: s.prompt, EvalCount: s.completion}
	if m.PromptEvalCount < 0 {
		m.PromptEvalCount = s.o.PromptTokens()
	}
	if m.EvalCount < 0 {
		m.EvalCount = s.pieces + len(s.calls)
	}
	switch {
	case s.timings != nil:
		m.PromptEvalDuration, m.EvalDuration = s.timings.prompt, s.timings.predicted
	case !s.first.IsZero():
		m.PromptEvalDuration, m.EvalDuration = s.first.Sub(s.start), now.Sub(s.first)
	default:
		m.PromptEvalDuration = m.TotalDuration
	}
	return s.line(s.o.out(s.model, "", "", nil, doneReason(s.finish), m))
}

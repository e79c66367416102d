package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// line returns the next line without its line ending, valid until the next call. A line
// longer than the reader's buffer is assembled in *long.
func line(rd *bufio.Reader, long *[]byte) ([]byte, error) {
	l, err := rd.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		*long = append((*long)[:0], l...)
		for err == bufio.ErrBufferFull {
			l, err = rd.ReadSlice('\n')
			*long = append(*long, l...)
		}
		l = *long
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(l) == 0 && err == io.EOF {
		return nil, io.EOF
	}
	for len(l) > 0 && (l[len(l)-1] == '\n' || l[len(l)-1] == '\r') {
		l = l[:len(l)-1]
	}
	return l, nil
}

// itlCap sizes the ITL slice: one gap per token after the first, plus one for a leading
// role-only chunk (chat).
func itlCap(outputLen int) int { return min(max(outputLen, 0), 8192) }

// chunkTimer times a stream's token-bearing chunks as vLLM does: TTFT at the first, an ITL
// gap for every later one, latency at the last.
type chunkTimer struct {
	last   time.Duration
	chunks int
}

func (ct *chunkTimer) tick(out *Output, now time.Duration) {
	if ct.chunks == 0 {
		out.TTFT = now - out.Start
	} else {
		out.ITL = append(out.ITL, now-ct.last)
	}
	ct.last = now
	ct.chunks++
}

// finish settles the outcome once the stream has ended; notDone is the error of a stream
// that ended without its terminator.
func (ct *chunkTimer) finish(out *Output, text []byte, done bool, notDone string) {
	out.GeneratedText = string(text)
	switch {
	case out.Error != "":
	case ct.chunks == 0:
		out.Error = "Never received a valid chunk to calculate TTFT."
	case !done:
		out.Error = notDone
	default:
		out.Success = true
		out.Latency = ct.last - out.Start
		if !out.UsageFromAPI {
			out.OutputLen = ct.chunks // documented fallback: one token per chunk
		}
	}
}

// readSSE reads an OpenAI stream (chat or completions) as vLLM's request functions do:
// TTFT at the first data message with non-empty choices, an ITL gap for every later one,
// latency at the last such message (the trailing usage chunk does not extend it), token
// counts from the usage chunk. An error event, a stream without [DONE] or without any
// choices chunk fails the request.
func readSSE(ctx context.Context, rd *bufio.Reader, runStart time.Time, outputLen int, out *Output) {
	var (
		long     []byte
		text     []byte
		in       chunkInfo
		ct       chunkTimer
		done     bool
		errEvent bool
	)
	out.ITL = make([]time.Duration, 0, itlCap(outputLen))
	for {
		l, err := line(rd, &long)
		if err != nil {
			if err != io.EOF {
				out.Error = requestError(ctx, err)
				return
			}
			break
		}
		if len(l) == 0 || l[0] == ':' {
			continue // event separator, comment (keep-alive ping)
		}
		var data []byte
		switch {
		case bytes.HasPrefix(l, []byte("data:")):
			data = bytes.TrimLeft(l[5:], " ")
		case l[0] == '{':
			data = l // a bare JSON line: an error body sent with status 200
		default:
			if bytes.HasPrefix(l, []byte("event:")) && bytes.Equal(bytes.TrimSpace(l[6:]), []byte("error")) {
				errEvent = true
			}
			continue // event:, id:, retry:
		}
		if done || out.Error != "" {
			continue // after [DONE] or an error: only drain
		}
		if bytes.Equal(data, []byte("[DONE]")) {
			done = true
			continue
		}
		now := time.Since(runStart)
		if err := in.parse(data); err != nil {
			out.Error = fmt.Sprintf("invalid stream chunk: %v: %.200s", err, data)
			continue
		}
		if in.err != "" || errEvent {
			msg := in.err
			if msg == "" {
				msg = string(data)
			}
			out.Error = "error event: " + msg
			continue
		}
		if in.choices {
			ct.tick(out, now)
			text = in.appendText(text)
		}
		if in.usage {
			if in.completionTokens >= 0 {
				out.OutputLen, out.UsageFromAPI = in.completionTokens, true
			}
			if in.promptTokens >= 0 {
				out.PromptLen = in.promptTokens
			}
		}
	}
	ct.finish(out, text, done, "stream ended without data: [DONE]")
}

// readNDJSON reads Ollama's /api/chat stream: TTFT at the first line with non-empty
// message.content (or message.thinking), an ITL gap for every later such line, latency at
// the last one; the final line's eval_count and prompt_eval_count are the token counts.
func readNDJSON(ctx context.Context, rd *bufio.Reader, runStart time.Time, outputLen int, out *Output) {
	var (
		long []byte
		text []byte
		in   ollamaLine
		ct   chunkTimer
		done bool
	)
	out.ITL = make([]time.Duration, 0, itlCap(outputLen))
	for {
		l, err := line(rd, &long)
		if err != nil {
			if err != io.EOF {
				out.Error = requestError(ctx, err)
				return
			}
			break
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 || done || out.Error != "" {
			continue
		}
		now := time.Since(runStart)
		if err := in.parse(l); err != nil {
			out.Error = fmt.Sprintf("invalid stream line: %v: %.200s", err, l)
			continue
		}
		if in.err != "" {
			out.Error = "error event: " + in.err
			continue
		}
		if in.tokens {
			ct.tick(out, now)
			text = appendUnescaped(text, in.content, in.contentEsc)
		}
		if in.done {
			done = true
			if in.evalCount >= 0 {
				out.OutputLen, out.UsageFromAPI = in.evalCount, true
			}
			if in.promptEvalCount >= 0 {
				out.PromptLen = in.promptEvalCount
			}
		}
	}
	ct.finish(out, text, done, `stream ended without a "done":true line`)
}

// readEmbeddings reads a whole /v1/embeddings response: TTFT = latency = the time the body
// was read; usage.prompt_tokens is the prompt length; OutputLen is 0.
func readEmbeddings(ctx context.Context, rd *bufio.Reader, runStart time.Time, out *Output) {
	buf := bodyPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); bodyPool.Put(buf) }()
	buf.Reset()
	_, err := buf.ReadFrom(rd)
	now := time.Since(runStart)
	if err != nil {
		out.Error = requestError(ctx, err)
		return
	}
	b := bytes.TrimSpace(buf.Bytes())
	var in chunkInfo
	if !in.parseTrailingUsage(b) {
		if err := in.parse(b); err != nil {
			out.Error = fmt.Sprintf("invalid embeddings response: %v", err)
			return
		}
	}
	if in.err != "" {
		out.Error = in.err
		return
	}
	if in.usage && in.promptTokens >= 0 {
		out.PromptLen = in.promptTokens
	}
	out.Success = true
	out.TTFT = now - out.Start
	out.Latency = out.TTFT
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

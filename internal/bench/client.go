package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Client sends benchmark requests to one Target. It holds one shared HTTP transport (HTTP/1.1
// keep-alive, as vllm bench serve's aiohttp session, with an idle pool sized to the run's
// concurrency) and measures every time on one monotonic clock: time.Since(runStart).
//
// Per request it allocates the request body, the ITL slice and the generated text; the
// stream itself is read with a pooled bufio.Reader and scanned in place (no encoding/json,
// no per-chunk allocation).
type Client struct {
	t      Target
	api    string
	url    string
	header http.Header // shared, read-only
	tr     *http.Transport
}

// API names (Target.API).
const (
	APIChat       = "openai-chat"
	APICompletion = "openai"
	APIEmbeddings = "openai-embeddings"
	APIOllama     = "ollama"
)

// NewClient returns a client for t (API "" or unknown: openai-chat; "vllm": openai
// completions, as vllm bench serve's backend of that name). concurrency sizes the idle connection pool (the run's
// --max-concurrency; ≤ 0: unbounded runs, 1024 idle connections are kept).
func NewClient(t Target, concurrency int) *Client {
	api := t.API
	switch api {
	case APICompletion, "vllm": // vllm bench serve's "vllm" backend posts to /v1/completions
		api = APICompletion
	case APIEmbeddings, APIOllama:
	default:
		api = APIChat
	}
	idle := concurrency
	if idle <= 0 {
		idle = 1024
	}
	tr := &http.Transport{
		// No proxy from the environment (aiohttp's trust_env is off in vllm bench serve too):
		// a benchmark must hit the target directly.
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no global cap; per host below
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // a gzip layer would batch SSE events and skew ITL
		ForceAttemptHTTP2:   false,
		TLSHandshakeTimeout: 30 * time.Second,
	}
	base := strings.TrimRight(t.BaseURL, "/")
	var path string
	switch api {
	case APICompletion:
		path = "/v1/completions"
	case APIEmbeddings:
		path = "/v1/embeddings"
	case APIOllama:
		path = "/api/chat"
	default:
		path = "/v1/chat/completions"
	}
	if strings.HasPrefix(path, "/v1/") && strings.HasSuffix(base, "/v1") {
		base = strings.TrimSuffix(base, "/v1") // BaseURL given as http://host:8000/v1
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if api != APIEmbeddings && api != APIOllama {
		h.Set("Accept", "text/event-stream")
	}
	if t.APIKey != "" {
		h.Set("Authorization", "Bearer "+t.APIKey)
	}
	for k, v := range t.Headers {
		h.Set(k, v)
	}
	return &Client{t: t, api: api, url: base + path, header: h, tr: tr}
}

// Close releases idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// URL is the endpoint requests go to.
func (c *Client) URL() string { return c.url }

// Do sends r and measures it against runStart (vLLM's RequestFuncOutput). It never returns
// an error: failures are Output.Success=false with Output.Error.
func (c *Client) Do(ctx context.Context, r Request, runStart time.Time) Output {
	out := Output{PromptLen: r.PromptLen}
	body := c.body(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		out.Error = err.Error()
		return out
	}
	req.Header = c.header
	out.Start = time.Since(runStart)
	// The transport directly: http.Client's redirect bookkeeping (a header copy per request)
	// is of no use to a benchmark, and a redirect is reported as the status it is.
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		out.Error = requestError(ctx, err)
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		out.Error = httpError(resp.StatusCode, b)
		return out
	}
	rd := readerPool.Get().(*bufio.Reader)
	rd.Reset(resp.Body)
	defer func() { rd.Reset(nil); readerPool.Put(rd) }()
	switch c.api {
	case APIEmbeddings:
		readEmbeddings(ctx, rd, runStart, &out)
	case APIOllama:
		readNDJSON(ctx, rd, runStart, r.OutputLen, &out)
	default:
		readSSE(ctx, rd, runStart, r.OutputLen, &out)
	}
	// Drain what is left (at most a little) so that the connection is reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	return out
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

func requestError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return ctx.Err().Error()
	}
	return err.Error()
}

// httpError is "HTTP 500: message", with the message taken from an OpenAI ({"error":{"message"}}),
// flat ({"object":"error","message"}) or Ollama ({"error":"…"}) error body when there is one.
func httpError(status int, body []byte) string {
	msg := strings.TrimSpace(string(body))
	var in chunkInfo
	if len(body) > 0 && body[0] == '{' && in.parse(body) == nil && in.err != "" {
		msg = in.err
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	if msg == "" {
		return fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
	}
	return fmt.Sprintf("HTTP %d: %s", status, msg)
}

// ---- request bodies ----

func (c *Client) body(r Request) []byte {
	b := make([]byte, 0, len(r.Prompt)+256+imagesLen(r.Images))
	b = append(b, `{"model":`...)
	b = appendJSONString(b, c.t.Model)
	switch c.api {
	case APIEmbeddings:
		b = append(b, `,"input":`...)
		b = appendJSONString(b, r.Prompt)
		return append(b, '}')
	case APIOllama:
		b = append(b, `,"messages":[{"role":"user","content":`...)
		b = appendJSONString(b, r.Prompt)
		if len(r.Images) > 0 {
			b = append(b, `,"images":[`...)
			for i, img := range r.Images {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, ollamaImage(img))
			}
			b = append(b, ']')
		}
		b = append(b, `}],"stream":true`...)
		if r.OutputLen > 0 {
			b = append(b, `,"options":{"num_predict":`...)
			b = appendInt(b, r.OutputLen)
			b = append(b, '}')
		}
		return append(b, '}')
	case APICompletion:
		b = append(b, `,"prompt":`...)
		b = appendJSONString(b, r.Prompt)
	default:
		b = append(b, `,"messages":[{"role":"user","content":`...)
		if len(r.Images) == 0 {
			b = appendJSONString(b, r.Prompt)
		} else {
			b = append(b, `[{"type":"text","text":`...)
			b = appendJSONString(b, r.Prompt)
			b = append(b, '}')
			for _, img := range r.Images {
				b = append(b, `,{"type":"image_url","image_url":{"url":`...)
				b = appendJSONString(b, img)
				b = append(b, `}}`...)
			}
			b = append(b, ']')
		}
		b = append(b, `}]`...)
	}
	// vllm bench serve sends temperature 0 (greedy) on both OpenAI paths; ignore_eos makes
	// the engine produce exactly max_tokens (a vLLM extension; other servers ignore it).
	b = append(b, `,"temperature":0`...)
	if r.OutputLen > 0 {
		b = append(b, `,"max_tokens":`...)
		b = appendInt(b, r.OutputLen)
		b = append(b, `,"ignore_eos":true`...)
	}
	return append(b, `,"stream":true,"stream_options":{"include_usage":true}}`...)
}

func imagesLen(imgs []string) int {
	n := 0
	for _, s := range imgs {
		n += len(s) + 48
	}
	return n
}

// ollamaImage is a data URL's base64 payload, as Ollama's messages[].images wants it.
func ollamaImage(s string) string {
	if strings.HasPrefix(s, "data:") {
		if i := strings.Index(s, ";base64,"); i >= 0 {
			return s[i+len(";base64,"):]
		}
	}
	return s
}

func appendInt(b []byte, v int) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (invalid UTF-8 becomes U+FFFD, as encoding/json does).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// ---- response readers ----

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

// parseTrailingUsage reads the "usage" object of a large response whose last top-level key it
// is (OpenAI's embeddings: {"id",…,"data":[…vectors…],"usage":{…}}), without scanning the
// vectors. A key cannot hide inside a string (its quotes would be escaped), and the object
// must close the response, so a nested "usage" is not taken. It reports false when the shape
// is not that one; then the whole response is parsed.
func (in *chunkInfo) parseTrailingUsage(b []byte) bool {
	const key = `"usage"`
	if len(b) < 4096 || b[0] != '{' {
		return false
	}
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 || !bytes.Contains(b[:i], []byte(`"data"`)) || bytes.Contains(b[:min(i, 256)], []byte(`"error"`)) {
		return false
	}
	// Re-use parse on a synthetic object: {"usage":…} followed by the response's closing brace.
	s := scanner{b: b, i: i + len(key)}
	s.ws()
	if s.i >= len(b) || b[s.i] != ':' {
		return false
	}
	s.i++
	start := s.i
	if !s.skip() {
		return false
	}
	end := s.i
	s.ws()
	if s.i != len(b)-1 || b[s.i] != '}' {
		return false // not the last key
	}
	var u chunkInfo
	obj := make([]byte, 0, 10+end-start)
	obj = append(append(append(obj, `{"usage":`...), b[start:end]...), '}')
	if u.parse(obj) != nil {
		return false
	}
	*in = u
	return true
}

// ---- in-place JSON scanning ----

// chunkInfo is what one OpenAI stream chunk (or error body) holds for the benchmark.
type chunkInfo struct {
	choices          bool   // a non-empty "choices" array
	text             []byte // choices[0].delta.content or choices[0].text, raw (inside the quotes)
	textEsc          bool   // text holds escapes
	usage            bool   // a non-null "usage" object
	promptTokens     int    // -1: absent
	completionTokens int    // -1: absent
	err              string // "error" (string or {"message"}), or "message" of an "object":"error" body
}

var errSyntax = errors.New("malformed JSON")

// parse scans one JSON object. Only the keys the benchmark needs are looked at; the rest
// are skipped without allocating.
func (in *chunkInfo) parse(b []byte) error {
	*in = chunkInfo{promptTokens: -1, completionTokens: -1}
	s := scanner{b: b}
	if !s.begin('{') {
		return errSyntax
	}
	var flatErr bool
	var message []byte
	var messageEsc bool
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "choices":
			if s.null() {
				continue
			}
			if !s.begin('[') {
				return errSyntax
			}
			first := true
			for s.more(']') {
				if first {
					in.choices = true
					first = false
					if !in.choice(&s) {
						return errSyntax
					}
				} else if !s.skip() {
					return errSyntax
				}
			}
		case "usage":
			if s.null() {
				continue
			}
			in.usage = true
			if !s.begin('{') {
				return errSyntax
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				switch string(k) {
				case "prompt_tokens":
					in.promptTokens = s.int()
				case "completion_tokens":
					in.completionTokens = s.int()
				default:
					if !s.skip() {
						return errSyntax
					}
				}
			}
		case "error":
			if s.null() {
				continue
			}
			in.err = s.errorValue()
			if in.err == "" {
				in.err = "error"
			}
		case "object":
			v, _, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			flatErr = string(v) == "error"
		case "message":
			v, esc, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			message, messageEsc = v, esc
		default:
			if !s.skip() {
				return errSyntax
			}
		}
		if s.bad {
			return errSyntax
		}
	}
	if s.bad {
		return errSyntax
	}
	if flatErr && in.err == "" {
		in.err = string(appendUnescaped(nil, message, messageEsc))
		if in.err == "" {
			in.err = "error"
		}
	}
	return nil
}

// choice scans choices[0]: {"delta":{"content":…}} (chat) or {"text":…} (completions).
func (in *chunkInfo) choice(s *scanner) bool {
	if s.null() {
		return true
	}
	if !s.begin('{') {
		return false
	}
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "delta", "message":
			if s.null() {
				continue
			}
			if !s.begin('{') {
				return false
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				if string(k) == "content" {
					if v, esc, ok := s.str(); ok {
						in.text, in.textEsc = v, esc
						continue
					}
				}
				if !s.skip() {
					return false
				}
			}
		case "text":
			if v, esc, ok := s.str(); ok {
				in.text, in.textEsc = v, esc
				continue
			}
			if !s.skip() {
				return false
			}
		default:
			if !s.skip() {
				return false
			}
		}
	}
	return !s.bad
}

func (in *chunkInfo) appendText(b []byte) []byte { return appendUnescaped(b, in.text, in.textEsc) }

// ollamaLine is what one line of Ollama's NDJSON stream holds for the benchmark.
type ollamaLine struct {
	tokens          bool // non-empty message.content or message.thinking (or /api/generate's response)
	content         []byte
	contentEsc      bool
	done            bool
	evalCount       int // -1: absent
	promptEvalCount int // -1: absent
	err             string
}

func (in *ollamaLine) parse(b []byte) error {
	*in = ollamaLine{evalCount: -1, promptEvalCount: -1}
	s := scanner{b: b}
	if !s.begin('{') {
		return errSyntax
	}
	for {
		k, ok := s.key()
		if !ok {
			break
		}
		switch string(k) {
		case "message":
			if s.null() {
				continue
			}
			if !s.begin('{') {
				return errSyntax
			}
			for {
				k, ok := s.key()
				if !ok {
					break
				}
				switch string(k) {
				case "content", "thinking":
					v, esc, ok := s.str()
					if !ok {
						if !s.skip() {
							return errSyntax
						}
						continue
					}
					if len(v) > 0 {
						in.tokens = true
					}
					if string(k) == "content" {
						in.content, in.contentEsc = v, esc
					}
				default:
					if !s.skip() {
						return errSyntax
					}
				}
			}
		case "response":
			v, esc, ok := s.str()
			if !ok {
				if !s.skip() {
					return errSyntax
				}
				continue
			}
			if len(v) > 0 {
				in.tokens = true
			}
			in.content, in.contentEsc = v, esc
		case "done":
			in.done = s.literal("true")
			if !in.done && !s.literal("false") && !s.skip() {
				return errSyntax
			}
		case "eval_count":
			in.evalCount = s.int()
		case "prompt_eval_count":
			in.promptEvalCount = s.int()
		case "error":
			if s.null() {
				continue
			}
			in.err = s.errorValue()
			if in.err == "" {
				in.err = "error"
			}
		default:
			if !s.skip() {
				return errSyntax
			}
		}
		if s.bad {
			return errSyntax
		}
	}
	if s.bad {
		return errSyntax
	}
	return nil
}

// scanner walks JSON in place. Methods that fail set bad.
type scanner struct {
	b   []byte
	i   int
	bad bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// begin consumes the opening c ('{' or '[').
func (s *scanner) begin(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	s.bad = true
	return false
}

// more reports whether another element of the array follows (consuming the comma), or
// consumes the closing bracket and reports false.
func (s *scanner) more(end byte) bool {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return false
	}
	switch s.b[s.i] {
	case end:
		s.i++
		return false
	case ',':
		s.i++
		s.ws()
		return true
	}
	return !s.bad
}

// key returns the next key of the current object and consumes its colon, or consumes the
// closing brace and returns false.
func (s *scanner) key() ([]byte, bool) {
	if s.bad || !s.more('}') {
		return nil, false
	}
	k, _, ok := s.str()
	if !ok {
		s.bad = true
		return nil, false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		s.bad = true
		return nil, false
	}
	s.i++
	s.ws()
	return k, true
}

// null consumes a null literal.
func (s *scanner) null() bool { return s.literal("null") }

func (s *scanner) literal(lit string) bool {
	s.ws()
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str consumes a string and returns its raw content (between the quotes) and whether it holds
// escapes. It returns ok=false without consuming anything when the value is not a string.
func (s *scanner) str() (raw []byte, esc, ok bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false
	}
	j := s.i + 1
	q := bytes.IndexByte(s.b[j:], '"')
	if q >= 0 && bytes.IndexByte(s.b[j:j+q], '\\') < 0 {
		// Fast path: no escapes.
		raw = s.b[j : j+q]
		s.i = j + q + 1
		return raw, false, true
	}
	for j < len(s.b) {
		switch s.b[j] {
		case '"':
			raw = s.b[s.i+1 : j]
			s.i = j + 1
			return raw, esc, true
		case '\\':
			esc = true
			j += 2
			continue
		}
		j++
	}
	s.bad = true
	return nil, false, false
}

// int consumes an integer (or null: -1).
func (s *scanner) int() int {
	s.ws()
	if s.null() {
		return -1
	}
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	start, v := s.i, 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + int(s.b[s.i]-'0')
		s.i++
	}
	if s.i == start {
		s.bad = true
		return -1
	}
	// A fraction or exponent (not expected): skip it.
	for s.i < len(s.b) && strings.IndexByte(".eE+-0123456789", s.b[s.i]) >= 0 {
		s.i++
	}
	if neg {
		v = -v
	}
	return v
}

// skip consumes any value.
func (s *scanner) skip() bool {
	s.ws()
	if s.i >= len(s.b) {
		s.bad = true
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		// Count brackets outside strings.
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			}
			s.i++
		}
		s.bad = true
		return false
	default:
		// number, true, false, null
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if s.i == start {
					s.bad = true
				}
				return !s.bad
			}
			s.i++
		}
		return s.i > start
	}
}

// errorValue reads an "error" value: a string, or an object's "message" (else its raw JSON).
func (s *scanner) errorValue() string {
	if v, esc, ok := s.str(); ok {
		return string(appendUnescaped(nil, v, esc))
	}
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '{' {
		sub := scanner{b: s.b, i: s.i}
		sub.begin('{')
		for {
			k, ok := sub.key()
			if !ok {
				break
			}
			if string(k) == "message" {
				if v, esc, ok := sub.str(); ok {
					msg := string(appendUnescaped(nil, v, esc))
					s.skip()
					return msg
				}
			}
			if !sub.skip() {
				break
			}
		}
	}
	if !s.skip() {
		return ""
	}
	return string(s.b[start:s.i])
}

// appendUnescaped appends the JSON string content raw (as str returned it), decoding escapes.
func appendUnescaped(b, raw []byte, esc bool) []byte {
	if !esc {
		return append(b, raw...)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'u':
			r, n := hex4(raw[i+1:])
			if n == 0 {
				b = append(b, '\\', 'u')
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2, n2 := hex4(raw[i+3:]); n2 > 0 {
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							r = d
							i += 2 + n2
						}
					}
				}
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default: // " \ /
			b = append(b, raw[i])
		}
	}
	return b
}

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

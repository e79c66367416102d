package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Client sends benchmark requests to one Target. It holds one shared HTTP transport (HTTP/1.1
// keep-alive, as vllm bench serve's aiohttp session, with an idle pool sized to the run's
// concurrency) and measures every time on one monotonic clock: time.Since(runStart).
//
// Per request it allocates the request body, the ITL slice and the generated text; the
// stream itself is read with a pooled bufio.Reader (stream.go) and scanned in place
// (jsonscan.go: no encoding/json, no per-chunk allocation).
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

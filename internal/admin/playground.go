package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	v1 "citadel.dev/citadel/api/v1"
)

// playgroundHeader must be on POST /api/v1/playground: the dashboard's script sets it, and
// a page on another site cannot send it without the browser asking this server first
// (which it never allows), so the dashboard cookie cannot be used to post from there.
const playgroundHeader = "X-Citadel-Dashboard"

// playgroundTimeout bounds one playground request through the gateway.
const playgroundTimeout = 2 * time.Minute

// maxPlaygroundBody bounds the playground's request (an image is a data: URL in it) and the
// gateway's answer read back.
const maxPlaygroundBody = 16 << 20

type playgroundRequest struct {
	Model        string `json:"model"`
	Prompt       string `json:"prompt"`
	ImageDataURL string `json:"imageDataURL,omitempty"`
	Key          string `json:"key,omitempty"`
}

type playgroundResult struct {
	Status       int     `json:"status"`            // the gateway's HTTP status, 0 when none came
	Route        string  `json:"route,omitempty"`   // the x-citadel-route header
	Task         string  `json:"task,omitempty"`    // from the route header
	Service      string  `json:"service,omitempty"` // from the route header
	TTFTMs       float64 `json:"ttftMs"`            // to the first streamed chunk with text, 0 when none came
	TotalMs      float64 `json:"totalMs"`           // to the stream's end
	Answer       string  `json:"answer,omitempty"`
	InputTokens  int     `json:"inputTokens,omitempty"`  // from the stream's usage chunk
	OutputTokens int     `json:"outputTokens,omitempty"` // from the stream's usage chunk
	// TokensPerSec is the decode rate: the output tokens after the first over the time
	// from the first text to the end (0 without usage or with fewer than 2 tokens).
	TokensPerSec float64 `json:"tokensPerSec,omitempty"`
	Error        string  `json:"error,omitempty"`
}

// playground is POST /api/v1/playground: it sends one chat request (a prompt, and an image
// as an image_url part) through this server's gateway, as a client would, and answers what
// the gateway decided, how long it took and what the model said.
func (s *Server) playground(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(playgroundHeader) == "" {
		writeError(w, http.StatusForbidden, v1.ReasonUnauthorized,
			"POST /api/v1/playground needs the header "+playgroundHeader+": 1 (the dashboard's script sends it; it keeps other sites from posting with the dashboard's cookie)", nil)
		return
	}
	if s.opts.GatewayAddr == "" {
		writeError(w, http.StatusNotFound, v1.ReasonNotFound, "this server runs no gateway (citadel serve --gateway-addr off), so the playground has nothing to send to", nil)
		return
	}
	var in playgroundRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPlaygroundBody)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "decoding the playground request: "+err.Error()+
			` (send {"model": "auto", "prompt": "…", "imageDataURL": "data:image/png;base64,…", "key": "…"})`, nil)
		return
	}
	in.Model = strings.TrimSpace(in.Model)
	if in.Model == "" {
		in.Model = "auto"
	}
	if strings.TrimSpace(in.Prompt) == "" && in.ImageDataURL == "" {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "the prompt is empty: write a question, or attach an image", nil)
		return
	}
	if in.ImageDataURL != "" && !strings.HasPrefix(in.ImageDataURL, "data:image/") {
		writeError(w, http.StatusBadRequest, v1.ReasonBadRequest, "imageDataURL is not a data:image/… URL: attach a PNG, JPEG, GIF or WebP image", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), playgroundTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, s.sendPlayground(ctx, in))
}

// sendPlayground sends the request to the gateway as a stream (with the usage chunk asked
// for) and reads the answer as it comes, timing its first text.
func (s *Server) sendPlayground(ctx context.Context, in playgroundRequest) playgroundResult {
	var content any = in.Prompt
	if in.ImageDataURL != "" {
		content = []map[string]any{
			{"type": "text", "text": in.Prompt},
			{"type": "image_url", "image_url": map[string]string{"url": in.ImageDataURL}},
		}
	}
	body, err := json.Marshal(map[string]any{"model": in.Model, "stream": true,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []map[string]any{{"role": "user", "content": content}}})
	if err != nil {
		return playgroundResult{Error: "encoding the request: " + err.Error()}
	}
	url := "http://" + loopback(s.opts.GatewayAddr) + "/v1/chat/completions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return playgroundResult{Error: "building the request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if in.Key != "" {
		req.Header.Set("Authorization", "Bearer "+in.Key)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return playgroundResult{Error: "sending the request to the gateway at " + url + ": " + timeoutSaid(err)}
	}
	defer resp.Body.Close()
	out := playgroundResult{Status: resp.StatusCode, Route: resp.Header.Get("X-Citadel-Route")}
	out.Task, out.Service = routeField(out.Route, "task"), routeField(out.Route, "service")
	body2 := io.LimitReader(resp.Body, maxPlaygroundBody)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 == 2 && mt == "text/event-stream" {
		readPlaygroundStream(body2, start, &out)
		return out
	}
	// An error before the stream (401, 404, 429, 503 …) comes as one JSON body; so would a
	// whole answer from a gateway that does not stream.
	raw, err := io.ReadAll(body2)
	out.TotalMs = millis(time.Since(start))
	if err != nil {
		out.Error = "reading the gateway's answer: " + timeoutSaid(err)
		return out
	}
	var answer struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage *chatUsage     `json:"usage"`
		Error *playgroundErr `json:"error"`
	}
	jerr := json.Unmarshal(raw, &answer)
	switch {
	case resp.StatusCode == http.StatusUnauthorized && in.Key == "":
		out.Error = "the gateway needs an API key: fill in Key"
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		out.Error = "the gateway refused the key" + answer.Error.suffix()
	case resp.StatusCode >= 300:
		out.Error = fmt.Sprintf("the gateway answered %s", resp.Status) + answer.Error.suffix()
		if answer.Error == nil && len(bytes.TrimSpace(raw)) > 0 && jerr != nil {
			out.Error += ": " + shorten(string(bytes.TrimSpace(raw)), 300)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			out.Error += " (retry after " + ra + " s)"
		}
	case jerr != nil:
		out.Error = fmt.Sprintf("the gateway's answer is neither an event stream nor a chat completion (Content-Type %q): %v", resp.Header.Get("Content-Type"), jerr)
	case len(answer.Choices) == 0:
		out.Error = "the gateway's answer has no choices"
	default:
		// Not streamed: the text came whole, so its first byte is its last.
		out.Answer, out.TTFTMs = answer.Choices[0].Message.Content, out.TotalMs
		out.usage(answer.Usage, out.TotalMs)
	}
	return out
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// playgroundErr is an OpenAI error object: {"message", "type", "code"}.
type playgroundErr struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    any    `json:"code"`
}

func (e *playgroundErr) suffix() string {
	if e == nil || e.Message == "" {
		return ""
	}
	return ": " + e.Message
}

// usage records the usage the gateway reported, and the decode rate from it.
func (out *playgroundResult) usage(u *chatUsage, firstMs float64) {
	if u == nil {
		return
	}
	out.InputTokens, out.OutputTokens = u.PromptTokens, u.CompletionTokens
	if d := out.TotalMs - firstMs; out.OutputTokens > 1 && d > 0 {
		out.TokensPerSec = math.Round(float64(out.OutputTokens-1)/(d/1000)*10) / 10
	}
}

// readPlaygroundStream reads an OpenAI chat completion stream (server-sent events, each
// data: a chunk, the last data: [DONE]) into out: the answer's text, the time to the first
// chunk that carries text (content, or reasoning_content for a model that thinks first),
// the usage chunk, and an error event or a stream cut short as the error.
func readPlaygroundStream(r io.Reader, start time.Time, out *playgroundResult) {
	var (
		text  strings.Builder
		first time.Time
		u     *chatUsage
	)
	defer func() {
		end := time.Now()
		out.TotalMs = millis(end.Sub(start))
		out.Answer = text.String()
		firstMs := out.TotalMs
		if !first.IsZero() {
			out.TTFTMs = millis(first.Sub(start))
			firstMs = out.TTFTMs
		}
		out.usage(u, firstMs)
	}()
	// dispatch handles one event; it reports whether the stream is over ([DONE] or an error).
	dispatch := func(event, payload string) bool {
		if payload == "" {
			return false
		}
		if payload == "[DONE]" {
			return true
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content          string `json:"content"`
					ReasoningContent string `json:"reasoning_content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *chatUsage     `json:"usage"`
			Error *playgroundErr `json:"error"`
		}
		if err := json.Unmarshal([]byte(payload), &chunk); err != nil {
			out.Error = fmt.Sprintf("the gateway's stream carries an event that is not a chat completion chunk (%v): %s", err, shorten(payload, 200))
			return true
		}
		if chunk.Error != nil || event == "error" {
			msg := shorten(payload, 300)
			if chunk.Error != nil && chunk.Error.Message != "" {
				msg = chunk.Error.Message
			}
			out.Error = "the stream failed after " + strconv.Itoa(text.Len()) + " bytes of answer: " + msg
			return true
		}
		for _, c := range chunk.Choices {
			if first.IsZero() && (c.Delta.Content != "" || c.Delta.ReasoningContent != "") {
				first = time.Now()
			}
			text.WriteString(c.Delta.Content)
		}
		if chunk.Usage != nil {
			u = chunk.Usage
		}
		return false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxPlaygroundBody)
	var event string
	var data []string
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
			continue
		}
		// A blank line ends an event.
		over := dispatch(event, strings.Join(data, "\n"))
		event, data = "", nil
		if over {
			return
		}
	}
	if sc.Err() == nil && dispatch(event, strings.Join(data, "\n")) { // the last event, without its blank line
		return
	}
	if sc.Err() != nil {
		out.Error = "reading the gateway's stream: " + timeoutSaid(sc.Err())
	} else {
		out.Error = "the gateway's stream ended without data: [DONE]: the answer may be cut short"
	}
}

// timeoutSaid is err's message, or what the playground's deadline means when it passed.
func timeoutSaid(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no complete answer within %s", playgroundTimeout)
	}
	return err.Error()
}

// shorten cuts s to about n bytes, on a rune boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loopback is addr with an unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") made
// 127.0.0.1, so that the admin server reaches its own gateway.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// routeField reads one field of an x-citadel-route header: `task=vision model=mimo-vl
// service=default/mimo-vl-7b-rl reason=image_url replica=… attempts=1`.
func routeField(route, name string) string {
	for f := range strings.FieldsSeq(route) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

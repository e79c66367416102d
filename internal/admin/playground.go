package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"time"

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
	Status  int     `json:"status"`            // the gateway's HTTP status, 0 when none came
	Route   string  `json:"route,omitempty"`   // the x-citadel-route header
	Task    string  `json:"task,omitempty"`    // from the route header
	Service string  `json:"service,omitempty"` // from the route header
	TTFTMs  float64 `json:"ttftMs"`            // to the answer's first byte
	TotalMs float64 `json:"totalMs"`           // to its last byte
	Answer  string  `json:"answer,omitempty"`
	Error   string  `json:"error,omitempty"`
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

// sendPlayground sends the request to the gateway and reads its answer.
func (s *Server) sendPlayground(ctx context.Context, in playgroundRequest) playgroundResult {
	var content any = in.Prompt
	if in.ImageDataURL != "" {
		content = []map[string]any{
			{"type": "text", "text": in.Prompt},
			{"type": "image_url", "image_url": map[string]string{"url": in.ImageDataURL}},
		}
	}
	body, err := json.Marshal(map[string]any{"model": in.Model, "stream": false,
		"messages": []map[string]any{{"role": "user", "content": content}}})
	if err != nil {
		return playgroundResult{Error: "encoding the request: " + err.Error()}
	}
	url := "http://" + loopback(s.opts.GatewayAddr) + "/v1/chat/completions"
	start := time.Now()
	var first time.Time
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return playgroundResult{Error: "building the request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	if in.Key != "" {
		req.Header.Set("Authorization", "Bearer "+in.Key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("no answer within %s", playgroundTimeout)
		}
		return playgroundResult{Error: "sending the request to the gateway at " + url + ": " + msg}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxPlaygroundBody))
	end := time.Now()
	out := playgroundResult{Status: resp.StatusCode, Route: resp.Header.Get("X-Citadel-Route"), TotalMs: millis(end.Sub(start))}
	if !first.IsZero() {
		out.TTFTMs = millis(first.Sub(start))
	}
	out.Task, out.Service = routeField(out.Route, "task"), routeField(out.Route, "service")
	if err != nil {
		out.Error = "reading the gateway's answer: " + err.Error()
		return out
	}
	var answer struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	jerr := json.Unmarshal(raw, &answer)
	switch {
	case resp.StatusCode == http.StatusUnauthorized && in.Key == "":
		out.Error = "the gateway needs an API key: fill in Key"
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		out.Error = "the gateway refused the key"
		if answer.Error != nil {
			out.Error += ": " + answer.Error.Message
		}
	case resp.StatusCode >= 300:
		out.Error = fmt.Sprintf("the gateway answered %s", resp.Status)
		if answer.Error != nil {
			out.Error += ": " + answer.Error.Message
		}
	case jerr != nil:
		out.Error = "the gateway's answer is not a chat completion: " + jerr.Error()
	case len(answer.Choices) == 0:
		out.Error = "the gateway's answer has no choices"
	default:
		out.Answer = answer.Choices[0].Message.Content
	}
	return out
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

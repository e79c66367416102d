package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeFirstText is how long fakeChat's stream waits, after its first (empty) chunk, before
// the first chunk with text; fakeGap is the wait between the chunks with text.
const (
	fakeFirstText = 80 * time.Millisecond
	fakeGap       = 15 * time.Millisecond
)

// fakeChat is a gateway that streams chat completions as the gateway does (an SSE chunk per
// piece of text, the usage chunk, data: [DONE]) and records what it was sent. The prompt
// picks a failure: "busy" (429 before the stream), "fail midway" (an error event after the
// first text), "cut" (no data: [DONE]).
func fakeChat(t *testing.T, wantKey string) (*httptest.Server, *[]map[string]any) {
	t.Helper()
	var got []map[string]any
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
			http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if wantKey != "" && r.Header.Get("Authorization") != "Bearer "+wantKey {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"message":"missing or unknown API key","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		got = append(got, body)
		prompt := mustJSON(t, body["messages"])
		switch {
		case body["model"] == "nope":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"the model nope does not exist: the models are auto, qwen","type":"invalid_request_error","code":"model_not_found"}}`)
			return
		case strings.Contains(prompt, "busy"):
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"message":"the key default/team-a is over its 10 requests per minute","type":"rate_limit_error","code":"rate_limit_exceeded"}}`)
			return
		}
		task, svc := "general", "default/qwen"
		if strings.Contains(prompt, "image_url") {
			task, svc = "vision", "default/mimo-vl-7b-rl"
		}
		w.Header().Set("X-Citadel-Route", "task="+task+" model=auto service="+svc+" reason=classifier general=0.9 replica=r0 attempts=1")
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(data string) {
			_, _ = io.WriteString(w, "data: "+data+"\n\n")
			w.(http.Flusher).Flush()
		}
		send(`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}`)
		time.Sleep(fakeFirstText)
		for i, piece := range []string{"A ", "<b>cat</b>", "."} {
			if i > 0 {
				time.Sleep(fakeGap)
			}
			send(fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q}}],"usage":null}`, piece))
			if strings.Contains(prompt, "fail midway") {
				send(`{"error":{"message":"the replica r0 stopped answering (idle for 60s)","type":"server_error","code":"upstream_stream_error"}}`)
				send("[DONE]")
				return
			}
		}
		if strings.Contains(prompt, "cut") {
			return
		}
		send(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`)
		send(`{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`)
		send("[DONE]")
	}))
	t.Cleanup(gw.Close)
	return gw, &got
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func postPlayground(t *testing.T, url string, in playgroundRequest, header bool, cookie *http.Cookie) (int, playgroundResult, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/api/v1/playground", bytes.NewReader([]byte(mustJSON(t, in))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if header {
		req.Header.Set(playgroundHeader, "1")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, body := getPage(t, http.DefaultClient, req)
	var out playgroundResult
	_ = json.Unmarshal([]byte(body), &out)
	return resp.StatusCode, out, body
}

const pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

func TestPlayground(t *testing.T) {
	gw, sent := fakeChat(t, "")
	_, srv := liveServer(t, Options{GatewayAddr: gw.Listener.Addr().String()})

	code, out, body := postPlayground(t, srv.URL, playgroundRequest{Prompt: "name a cat"}, true, nil)
	if code != http.StatusOK || out.Status != 200 || out.Task != "general" || out.Service != "default/qwen" || out.Answer != "A <b>cat</b>." ||
		!strings.HasPrefix(out.Route, "task=general model=auto") || out.Error != "" {
		t.Fatalf("text request: %d %s", code, body)
	}
	if got := mustJSON(t, (*sent)[0]); got != `{"messages":[{"content":"name a cat","role":"user"}],"model":"auto","stream":true,"stream_options":{"include_usage":true}}` {
		t.Errorf("the gateway got %s", got)
	}
	// TTFT is the time to the first text, not to the stream's first (empty) chunk; the
	// total takes in the text that follows.
	if out.TTFTMs < millis(fakeFirstText) || out.TotalMs-out.TTFTMs < millis(2*fakeGap) {
		t.Errorf("TTFT %.1f ms, total %.1f ms: want TTFT ≥ %v (the first text's wait) and the total ≥ TTFT + %v", out.TTFTMs, out.TotalMs, fakeFirstText, 2*fakeGap)
	}
	// The usage chunk gives the tokens; the rate is the tokens after the first over the time after it.
	want := float64(out.OutputTokens-1) / ((out.TotalMs - out.TTFTMs) / 1000)
	if out.InputTokens != 9 || out.OutputTokens != 3 || math.Abs(out.TokensPerSec-want) > 0.1 {
		t.Errorf("tokens: %d in, %d out, %.1f/s, want 9 in, 3 out, %.1f/s: %s", out.InputTokens, out.OutputTokens, out.TokensPerSec, want, body)
	}
	// An image goes as an image_url part, so that auto routes it to the vision model.
	_, out, body = postPlayground(t, srv.URL, playgroundRequest{Model: "auto", Prompt: "what is this?", ImageDataURL: pixel}, true, nil)
	if out.Task != "vision" || out.Service != "default/mimo-vl-7b-rl" || out.Answer == "" {
		t.Errorf("image request: %s", body)
	}
	if got, want := mustJSON(t, (*sent)[1]["messages"]), `[{"content":[{"text":"what is this?","type":"text"},{"image_url":{"url":"`+pixel+`"},"type":"image_url"}],"role":"user"}]`; got != want {
		t.Errorf("the gateway got %s\nwant %s", got, want)
	}
	// Mistakes are said plainly.
	for _, tt := range []struct {
		in   playgroundRequest
		want string
	}{
		{playgroundRequest{}, "the prompt is empty"},
		{playgroundRequest{Prompt: "x", ImageDataURL: "data:text/plain;base64,eA=="}, "not a data:image/"},
	} {
		if code, _, body := postPlayground(t, srv.URL, tt.in, true, nil); code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("%+v: %d %s, want 400 %q", tt.in, code, body, tt.want)
		}
	}
}

func TestPlaygroundGatewayErrors(t *testing.T) {
	gw, _ := fakeChat(t, "sk-right")
	_, srv := liveServer(t, Options{GatewayAddr: gw.Listener.Addr().String()})
	for _, tt := range []struct {
		name   string
		in     playgroundRequest
		status int
		error  string // the whole error, or a part of it after "…"
		answer string
	}{
		{"no key", playgroundRequest{Prompt: "hi"}, 401, "the gateway needs an API key: fill in Key", ""},
		{"wrong key", playgroundRequest{Prompt: "hi", Key: "sk-wrong"}, 401, "…the gateway refused the key: missing or unknown API key", ""},
		{"right key", playgroundRequest{Prompt: "hi", Key: "sk-right"}, 200, "", "A <b>cat</b>."},
		{"unknown model", playgroundRequest{Model: "nope", Prompt: "hi", Key: "sk-right"}, 404,
			"the gateway answered 404 Not Found: the model nope does not exist: the models are auto, qwen", ""},
		{"over a limit", playgroundRequest{Prompt: "busy?", Key: "sk-right"}, 429,
			"the gateway answered 429 Too Many Requests: the key default/team-a is over its 10 requests per minute (retry after 3 s)", ""},
		{"an error event", playgroundRequest{Prompt: "fail midway", Key: "sk-right"}, 200,
			"the stream failed after 2 bytes of answer: the replica r0 stopped answering (idle for 60s)", "A "},
		{"no [DONE]", playgroundRequest{Prompt: "cut", Key: "sk-right"}, 200,
			"the gateway's stream ended without data: [DONE]: the answer may be cut short", "A <b>cat</b>."},
	} {
		_, out, body := postPlayground(t, srv.URL, tt.in, true, nil)
		wantErr, part := strings.CutPrefix(tt.error, "…")
		if out.Status != tt.status || out.Answer != tt.answer || (part && !strings.Contains(out.Error, wantErr)) || (!part && out.Error != wantErr) {
			t.Errorf("%s: %s\nwant status %d, error %q, answer %q", tt.name, body, tt.status, tt.error, tt.answer)
		}
	}
	// A gateway that is down.
	addr := gw.Listener.Addr().String()
	gw.Close()
	_, out, body := postPlayground(t, srv.URL, playgroundRequest{Prompt: "hi"}, true, nil)
	if out.Status != 0 || !strings.Contains(out.Error, "sending the request to the gateway at http://"+addr) {
		t.Errorf("gateway down: %s", body)
	}
	// No gateway at all.
	_, srv = liveServer(t, Options{})
	if code, _, body := postPlayground(t, srv.URL, playgroundRequest{Prompt: "hi"}, true, nil); code != http.StatusNotFound || !strings.Contains(body, "runs no gateway") {
		t.Errorf("no gateway: %d %s", code, body)
	}
}

// A stream read from text: events split over lines, comments, an event without its
// trailing blank line, a thinking model's reasoning_content (its first text too).
func TestReadPlaygroundStream(t *testing.T) {
	for _, tt := range []struct {
		name, stream, answer, err string
		out                       int
	}{
		{"whole", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n: keep-alive\n\ndata:{\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":4}}\n\ndata: [DONE]", "Hi", "", 4},
		{"reasoning", "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n", "ok", "", 0},
		{"event: error", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\nevent: error\ndata: {\"message\":\"engine crashed\"}\n\n", "Hi", `the stream failed after 2 bytes of answer: {"message":"engine crashed"}`, 0},
		{"not JSON", "data: <html>\n\n", "", "the gateway's stream carries an event that is not a chat completion chunk (invalid character '<' looking for beginning of value): <html>", 0},
	} {
		var out playgroundResult
		readPlaygroundStream(strings.NewReader(tt.stream), time.Now(), &out)
		if out.Answer != tt.answer || out.Error != tt.err || out.OutputTokens != tt.out || (tt.answer != "" && out.TTFTMs <= 0) {
			t.Errorf("%s: %+v, want answer %q, error %q, %d output tokens and a TTFT", tt.name, out, tt.answer, tt.err, tt.out)
		}
	}
}

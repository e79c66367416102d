package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/taskclass"
)

// ollamaPNG is the start of a PNG (signature and IHDR), enough to sniff as image/png.
var ollamaPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6")

var ollamaPNG64 = base64.StdEncoding.EncodeToString(ollamaPNG)

func mustParseOllama(t *testing.T, kind, body string) *OllamaRequest {
	t.Helper()
	o, err := ParseOllama(kind, []byte(body))
	if err != nil {
		t.Fatalf("ParseOllama(%s, %s): %v", kind, body, err)
	}
	return o
}

// ollamaJSON decodes b into a generic value, for cmp.
func ollamaJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func TestOllamaToOpenAI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, kind, body string
		wantPath         string
		want             string
	}{
		{
			name: "chat with options, streaming by default",
			kind: "chat",
			body: `{"model":"qwen:latest","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],
				"options":{"temperature":0.2,"top_p":0.9,"top_k":40,"min_p":0.05,"num_predict":128,"stop":["\n\n","END"],"seed":42,
				"presence_penalty":0.5,"frequency_penalty":0.25,"num_ctx":8192,"mirostat":1}}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],
				"stream":true,"stream_options":{"include_usage":true},"max_tokens":128,"temperature":0.2,"top_p":0.9,"top_k":40,
				"min_p":0.05,"presence_penalty":0.5,"frequency_penalty":0.25,"seed":42,"stop":["\n\n","END"]}`,
		},
		{
			name:     "chat not streaming, num_predict -1 is no cap, stop as a string",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}],"options":{"num_predict":-1,"stop":"x"}}`,
			wantPath: "/v1/chat/completions",
			want:     `{"model":"up","messages":[{"role":"user","content":"hi"}],"stream":false,"stop":["x"]}`,
		},
		{
			name:     "chat images become data URL parts before the text",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"messages":[{"role":"user","content":"what is this?","images":["` + ollamaPNG64 + `","AAAA"]}]}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,"messages":[{"role":"user","content":[
				{"type":"image_url","image_url":{"url":"data:image/png;base64,` + ollamaPNG64 + `"}},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
				{"type":"text","text":"what is this?"}]}]}`,
		},
		{
			name:     "format json",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"format":"json","messages":[{"role":"user","content":"x"}]}`,
			wantPath: "/v1/chat/completions",
			want:     `{"model":"up","stream":false,"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`,
		},
		{
			name:     "format schema",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"format":{"type":"object","properties":{"age":{"type":"integer"}}},"messages":[{"role":"user","content":"x"}]}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,"messages":[{"role":"user","content":"x"}],
				"response_format":{"type":"json_schema","json_schema":{"name":"response","schema":{"type":"object","properties":{"age":{"type":"integer"}}}}}}`,
		},
		{
			name: "tools pass through; Ollama tool calls get string arguments and ids matched to the tool messages",
			kind: "chat",
			body: `{"model":"m","stream":false,
				"tools":[{"type":"function","function":{"name":"weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
				"messages":[{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":"","tool_calls":[{"function":{"name":"weather","arguments":{"city": "Paris"}}},{"function":{"name":"weather","arguments":{"city":"Rome"}}}]},
				{"role":"tool","content":"12C","tool_name":"weather"},
				{"role":"tool","content":"20C","tool_name":"weather"},
				{"role":"assistant","content":"ok","tool_calls":[{"id":"call_x","function":{"name":"weather","arguments":{}}}]},
				{"role":"tool","content":"1C","tool_call_id":"call_x"}]}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,
				"tools":[{"type":"function","function":{"name":"weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
				"messages":[{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_1_0","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"call_1_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
				{"role":"tool","content":"12C","tool_call_id":"call_1_0"},
				{"role":"tool","content":"20C","tool_call_id":"call_1_1"},
				{"role":"assistant","content":"ok","tool_calls":[{"id":"call_x","type":"function","function":{"name":"weather","arguments":"{}"}}]},
				{"role":"tool","content":"1C","tool_call_id":"call_x"}]}`,
		},
		{
			name:     "think true",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"think":true,"messages":[{"role":"user","content":"x"}]}`,
			wantPath: "/v1/chat/completions",
			want:     `{"model":"up","stream":false,"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"enable_thinking":true}}`,
		},
		{
			name:     "think level",
			kind:     "chat",
			body:     `{"model":"m","stream":false,"think":"high","messages":[{"role":"user","content":"x"}]}`,
			wantPath: "/v1/chat/completions",
			want:     `{"model":"up","stream":false,"messages":[{"role":"user","content":"x"}],"reasoning_effort":"high"}`,
		},
		{
			name:     "generate is a chat with the system and the prompt (Ollama applies the template)",
			kind:     "generate",
			body:     `{"model":"m","prompt":"why is the sky blue?","system":"be brief","options":{"temperature":0,"num_predict":10},"format":"json"}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"why is the sky blue?"}],
				"stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"temperature":0,"response_format":{"type":"json_object"}}`,
		},
		{
			name:     "generate raw is a completion",
			kind:     "generate",
			body:     `{"model":"m","prompt":"<|im_start|>user\nhi","raw":true,"stream":false,"options":{"stop":["<|im_end|>"],"seed":7}}`,
			wantPath: "/v1/completions",
			want:     `{"model":"up","prompt":"<|im_start|>user\nhi","stream":false,"seed":7,"stop":["<|im_end|>"]}`,
		},
		{
			name:     "generate with a suffix is a completion",
			kind:     "generate",
			body:     `{"model":"m","prompt":"def f(","suffix":"    return x","stream":true}`,
			wantPath: "/v1/completions",
			want:     `{"model":"up","prompt":"def f(","suffix":"    return x","stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name:     "generate with images is a chat",
			kind:     "generate",
			body:     `{"model":"m","prompt":"describe","images":["` + ollamaPNG64 + `"],"stream":false}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,"messages":[{"role":"user","content":[
				{"type":"image_url","image_url":{"url":"data:image/png;base64,` + ollamaPNG64 + `"}},{"type":"text","text":"describe"}]}]}`,
		},
		{
			name:     "embed one string",
			kind:     "embed",
			body:     `{"model":"e","input":"hello","keep_alive":"10m"}`,
			wantPath: "/v1/embeddings",
			want:     `{"model":"up","input":"hello","encoding_format":"float"}`,
		},
		{
			name:     "embed a list with dimensions",
			kind:     "embed",
			body:     `{"model":"e","input":["a","b"],"dimensions":256,"truncate":false}`,
			wantPath: "/v1/embeddings",
			want:     `{"model":"up","input":["a","b"],"dimensions":256,"encoding_format":"float"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := mustParseOllama(t, tt.kind, tt.body)
			path, body, err := o.ToOpenAI("up")
			if err != nil {
				t.Fatal(err)
			}
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
			if diff := cmp.Diff(ollamaJSON(t, []byte(tt.want)), ollamaJSON(t, body)); diff != "" {
				t.Errorf("body (-want +got):\n%s\ngot %s", diff, body)
			}
		})
	}
}

func TestOllamaParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, kind, body string
		status           int
		want             string // the message, or its start when it ends with "…"
	}{
		{"empty body", "chat", "", 400, "missing request body"},
		{"blank body", "generate", " \n", 400, "missing request body"},
		{"truncated JSON", "chat", `{"model":"m","messages":[`, 400, "invalid JSON: unexpected EOF"},
		{"malformed JSON", "chat", `{"model":"m",}`, 400, "invalid JSON: invalid character '}' looking for beginning of object key string"},
		{"not an object", "generate", `[1]`, 400, "json: cannot unmarshal array into Go value of type api.GenerateRequest"},
		{"wrong field type", "chat", `{"model":"m","stream":"yes"}`, 400, "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool"},
		{"content as parts", "chat", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`, 400,
			"json: cannot unmarshal array into Go struct field Message.messages.content of type string"},
		{"no model", "chat", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model is required"},
		{"no model (generate)", "generate", `{"prompt":"x"}`, 400, "model is required"},
		{"no model (embed)", "embed", `{"input":"x"}`, 400, "model is required"},
		{"invalid image base64 (chat)", "chat", `{"model":"m","messages":[{"role":"user","content":"x","images":["not base64!"]}]}`, 400,
			"invalid image data: illegal base64 data at input byte 3: images must be base64-encoded bytes (no data: URL prefix)"},
		{"data URL image (generate)", "generate", `{"model":"m","prompt":"x","images":["data:image/png;base64,` + ollamaPNG64 + `"]}`, 400,
			"invalid image data: illegal base64 data at input byte 4…"},
		{"empty image", "generate", `{"model":"m","prompt":"x","images":[""]}`, 400, "invalid image data: image 0 is empty"},
		{"image not a string", "chat", `{"model":"m","messages":[{"role":"user","content":"x","images":[1]}]}`, 400,
			"json: cannot unmarshal number into Go struct field Message.messages.images of type api.ImageData"},
		{"bad format", "chat", `{"model":"m","format":"xml"}`, 400, `invalid format: "\"xml\""; expected "json" or a valid JSON Schema object`},
		{"bad think", "chat", `{"model":"m","think":"max"}`, 400, `invalid think value: "max" (must be "high", "medium", "low", true, or false)`},
		{"bad keep_alive", "chat", `{"model":"m","keep_alive":"soon"}`, 400, `invalid keep_alive: time: invalid duration "soon"…`},
		{"keep_alive object", "embed", `{"model":"m","keep_alive":{}}`, 400, "invalid keep_alive…"},
		{"float option type", "chat", `{"model":"m","options":{"temperature":"hot"}}`, 400, `option "temperature" must be of type float32`},
		{"int option type", "generate", `{"model":"m","options":{"num_predict":"10"}}`, 400, `option "num_predict" must be of type integer`},
		{"stop option type", "generate", `{"model":"m","options":{"stop":[1]}}`, 400, `option "stop" must be of an array of strings`},
		{"tools not a list", "chat", `{"model":"m","tools":{"type":"function"}}`, 400, "invalid tools…"},
		{"embed input number", "embed", `{"model":"m","input":5}`, 400, "invalid input type"},
		{"embed input mixed", "embed", `{"model":"m","input":["a",1]}`, 400, "invalid input type"},
		{"raw with system", "generate", `{"model":"m","prompt":"x","raw":true,"system":"s"}`, 400, "raw mode does not support template, system, or context"},
		{"unknown kind", "pull", `{"model":"m"}`, 404, "unknown Ollama endpoint /api/pull…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseOllama(tt.kind, []byte(tt.body))
			var oe *OllamaError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v (%T), want an *OllamaError", err, err)
			}
			if oe.Status != tt.status {
				t.Errorf("status = %d, want %d", oe.Status, tt.status)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(oe.Message, prefix) {
					t.Errorf("message = %q, want it to start with %q", oe.Message, prefix)
				}
			} else if oe.Message != tt.want {
				t.Errorf("message = %q, want %q", oe.Message, tt.want)
			}
			if got, want := string(oe.JSON()), `{"error":`+string(must(json.Marshal(oe.Message)))+`}`; got != want {
				t.Errorf("JSON() = %s, want %s", got, want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOllamaParseDefaults(t *testing.T) {
	t.Parallel()
	o := mustParseOllama(t, "chat", `{"Model":"m","messages":[],"keep_alive":-1} trailing bytes are ignored, as by gin`)
	if o.Model != "m" || !o.Stream || string(o.KeepAlive) != "-1" {
		t.Errorf("got model %q stream %v keep_alive %s; want m, true, -1 (field names match case-insensitively)", o.Model, o.Stream, o.KeepAlive)
	}
	if o := mustParseOllama(t, "embed", `{"model":"m","input":"x"}`); o.Stream {
		t.Error("embed: Stream = true, want false (embeddings never stream)")
	}
	for _, ka := range []string{`"5m"`, `"300"`, `300`, `0`, `"-1s"`, `null`} {
		mustParseOllama(t, "generate", `{"model":"m","keep_alive":`+ka+`}`)
	}
	for _, f := range []string{`""`, `null`, `"json"`, `{}`} {
		mustParseOllama(t, "chat", `{"model":"m","format":`+f+`}`)
	}
}

func TestOllamaInfo(t *testing.T) {
	t.Parallel()
	o := mustParseOllama(t, "chat", `{"model":"qwen:latest","messages":[{"role":"system","content":"You are a coder."},
		{"role":"user","content":"def fib(n):","images":["`+ollamaPNG64+`","`+ollamaPNG64+`"]}]}`)
	got := o.Info()
	want := RequestInfo{Model: "qwen:latest", Images: 2, Text: "You are a coder.\ndef fib(n):\n",
		Class:        taskclass.Input{Ask: "def fib(n):", System: "You are a coder."},
		PromptTokens: (16+3)/4 + (11+3)/4 + 2*1024}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chat Info (-want +got):\n%s", diff)
	}

	g := mustParseOllama(t, "generate", `{"model":"m","system":"s","prompt":"`+strings.Repeat("é", 40<<10)+`"}`).Info()
	if len(g.Text) > 2*ollamaTextSample+1 || !utf8Valid(g.Text) {
		t.Errorf("generate Info.Text is %d bytes (valid UTF-8: %v), want at most 32 KiB of whole runes", len(g.Text), utf8Valid(g.Text))
	}
	if !strings.HasPrefix(g.Text, "s\néé") || !strings.HasSuffix(g.Text, "éé\n") {
		t.Errorf("generate Info.Text does not keep the head and the tail: %.20q … %q", g.Text, g.Text[len(g.Text)-10:])
	}
	if want := (1+3)/4 + (80<<10+3)/4; g.PromptTokens != want {
		t.Errorf("generate PromptTokens = %d, want %d (counted on the whole prompt)", g.PromptTokens, want)
	}
	if g.PrefixHash == 0 {
		t.Error("generate PrefixHash = 0, want the hash of the prompt's start")
	}

	e := mustParseOllama(t, "embed", `{"model":"e","input":["one","two"]}`).Info()
	if !e.Embedding || e.Text != "one\ntwo\n" || e.PromptTokens != 2 {
		t.Errorf("embed Info = %+v, want Embedding, text one/two, 2 tokens", e)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestOllamaPassthrough(t *testing.T) {
	t.Parallel()
	body := `{"MODEL":"llama3","messages":[{"role":"user","content":"x","images":["` + ollamaPNG64 + `"]}],"keep_alive":"1h","options":{"num_ctx":8192},"stream":false}`
	o := mustParseOllama(t, "chat", body)
	out, err := o.Passthrough("llama3.1:8b")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"llama3.1:8b","messages":[{"role":"user","content":"x","images":["` + ollamaPNG64 + `"]}],"keep_alive":"1h","options":{"num_ctx":8192},"stream":false}`
	if diff := cmp.Diff(ollamaJSON(t, []byte(want)), ollamaJSON(t, out)); diff != "" {
		t.Errorf("Passthrough (-want +got):\n%s", diff)
	}
}

func TestOllamaLocalResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, body string
		want       string // "" when the request needs a backend
	}{
		{"chat", `{"model":"m","messages":[]}`, `{"model":"m:latest","message":{"role":"assistant","content":""},"done_reason":"load","done":true}`},
		{"chat", `{"model":"m","keep_alive":0}`, `{"model":"m:latest","message":{"role":"assistant","content":""},"done_reason":"unload","done":true}`},
		{"generate", `{"model":"m"}`, `{"model":"m:latest","response":"","done":true,"done_reason":"load"}`},
		{"generate", `{"model":"m","prompt":"","keep_alive":"0s"}`, `{"model":"m:latest","response":"","done":true,"done_reason":"unload"}`},
		{"embed", `{"model":"m","input":""}`, `{"model":"m:latest","embeddings":[]}`},
		{"embed", `{"model":"m","input":[]}`, `{"model":"m:latest","embeddings":[]}`},
		{"chat", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, ""},
		{"generate", `{"model":"m","prompt":"x"}`, ""},
		{"embed", `{"model":"m","input":"x"}`, ""},
	}
	for _, tt := range tests {
		got, ok := mustParseOllama(t, tt.kind, tt.body).LocalResponse("m:latest")
		if ok != (tt.want != "") {
			t.Errorf("%s %s: ok = %v", tt.kind, tt.body, ok)
			continue
		}
		if !ok {
			continue
		}
		g := ollamaJSON(t, got).(map[string]any)
		if _, err := time.Parse(time.RFC3339Nano, str(g["created_at"])); tt.kind != "embed" && err != nil {
			t.Errorf("%s: created_at: %v", tt.kind, err)
		}
		delete(g, "created_at")
		if diff := cmp.Diff(ollamaJSON(t, []byte(tt.want)), any(g)); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tt.kind, tt.body, diff)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }

// ollamaObject decodes one Ollama object, checks created_at and removes it; durations are
// checked by the callers.
func ollamaObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, ok := ollamaJSON(t, b).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", b)
	}
	if c, ok := m["created_at"]; ok {
		ts, err := time.Parse(time.RFC3339Nano, str(c))
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
			t.Errorf("created_at = %v (%v), want a recent UTC RFC 3339 time", c, err)
		}
		delete(m, "created_at")
	}
	return m
}

func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

func TestOpenAIToOllama(t *testing.T) {
	t.Parallel()
	chatBody := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,
		"message":{"role":"assistant","content":"Paris.","reasoning_content":"The capital…","tool_calls":[]},"finish_reason":"stop"}],
		"usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100}}`
	tests := []struct {
		name, kind, req, body string
		want                  string // without created_at and the durations
		prompt, eval          time.Duration
	}{
		{
			name: "chat", kind: "chat", req: `{"model":"m","stream":false,"messages":[{"role":"user","content":"capital of France?"}]}`,
			body: chatBody,
			want: `{"model":"m:latest","message":{"role":"assistant","content":"Paris.","thinking":"The capital…"},"done_reason":"stop","done":true,
				"prompt_eval_count":1000,"eval_count":100,"load_duration":0}`,
			// 1000 prompt tokens weigh 1000/64 generated ones: 15.625/115.625 of 1.156 s.
			prompt: 156250 * time.Microsecond, eval: time.Second,
		},
		{
			name: "chat tool calls", kind: "chat", req: `{"model":"m","stream":false,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"weather"}}]}`,
			body: `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
				{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\": \"Paris\"}"}},
				{"id":"call_2","type":"function","function":{"name":"weather","arguments":"not json"}}]},"finish_reason":"tool_calls"}],
				"usage":{"prompt_tokens":10,"completion_tokens":0}}`,
			want: `{"model":"m:latest","message":{"role":"assistant","content":"","tool_calls":[
				{"id":"call_1","function":{"index":0,"name":"weather","arguments":{"city":"Paris"}}},
				{"id":"call_2","function":{"index":1,"name":"weather","arguments":{}}}]},"done_reason":"stop","done":true,
				"prompt_eval_count":10,"eval_count":0,"load_duration":0}`,
			prompt: 1156250 * time.Microsecond,
		},
		{
			name: "generate from a completion, cut by length", kind: "generate", req: `{"model":"m","prompt":"x","raw":true,"stream":false}`,
			body: `{"object":"text_completion","choices":[{"index":0,"text":"once upon","finish_reason":"length"}],"usage":{"prompt_tokens":64,"completion_tokens":1}}`,
			want: `{"model":"m:latest","response":"once upon","done":true,"done_reason":"length","prompt_eval_count":64,"eval_count":1,"load_duration":0}`,
			// 64 prompt tokens weigh as much as the one generated token.
			prompt: 578125 * time.Microsecond, eval: 578125 * time.Microsecond,
		},
		{
			name: "generate from a chat, with llama.cpp timings", kind: "generate", req: `{"model":"m","prompt":"x","stream":false}`,
			body: `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4},
				"timings":{"prompt_n":3,"prompt_ms":1.5,"predicted_n":4,"predicted_ms":5.25}}`,
			want:   `{"model":"m:latest","response":"hi","done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":4,"load_duration":0}`,
			prompt: 1500 * time.Microsecond, eval: 5250 * time.Microsecond,
		},
	}
	const elapsed = 1156250 * time.Microsecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := mustParseOllama(t, tt.kind, tt.req)
			out, err := OpenAIToOllama(o, "m:latest", []byte(tt.body), elapsed)
			if err != nil {
				t.Fatal(err)
			}
			got := ollamaObject(t, out)
			if d := time.Duration(num(got["total_duration"])); d != elapsed {
				t.Errorf("total_duration = %v, want %v", d, elapsed)
			}
			if d := time.Duration(num(got["prompt_eval_duration"])); d != tt.prompt {
				t.Errorf("prompt_eval_duration = %v, want %v", d, tt.prompt)
			}
			if d := time.Duration(num(got["eval_duration"])); d != tt.eval {
				t.Errorf("eval_duration = %v, want %v", d, tt.eval)
			}
			for _, k := range []string{"total_duration", "prompt_eval_duration", "eval_duration"} {
				delete(got, k)
			}
			if diff := cmp.Diff(ollamaJSON(t, []byte(tt.want)), any(got)); diff != "" {
				t.Errorf("(-want +got):\n%s\ngot %s", diff, out)
			}
		})
	}
}

func TestOpenAIToOllamaEmbed(t *testing.T) {
	t.Parallel()
	o := mustParseOllama(t, "embed", `{"model":"e","input":["a","b"]}`)
	var raw bytes.Buffer
	for _, f := range []float32{0.5, -0.25} {
		_ = binary.Write(&raw, binary.LittleEndian, math.Float32bits(f))
	}
	body := `{"object":"list","data":[{"object":"embedding","index":1,"embedding":"` + base64.StdEncoding.EncodeToString(raw.Bytes()) + `"},
		{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`
	out, err := OpenAIToOllama(o, "e:latest", []byte(body), 25*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"e:latest","embeddings":[[0.1,0.2],[0.5,-0.25]],"total_duration":25000000,"load_duration":0,"prompt_eval_count":2}`
	if diff := cmp.Diff(ollamaJSON(t, []byte(want)), ollamaJSON(t, out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestOpenAIToOllamaErrors(t *testing.T) {
	t.Parallel()
	o := mustParseOllama(t, "chat", `{"model":"m","stream":false,"messages":[{"role":"user","content":"x"}]}`)
	for _, tt := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"error":{"message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}}`, 400, "This model's maximum context length is 4096 tokens."},
		{`{"object":"error","message":"The model does not exist.","type":"NotFoundError","param":null,"code":404}`, 404, "The model does not exist."},
		{`{"error":"boom"}`, 502, "boom"},
		{`{"error":{"message":"rate limited","code":"rate_limit_exceeded"}}`, 502, "rate limited"},
	} {
		_, err := OpenAIToOllama(o, "m", []byte(tt.body), time.Second)
		var oe *OllamaError
		if !errors.As(err, &oe) || oe.Status != tt.status || oe.Message != tt.msg {
			t.Errorf("%s: err = %v, want *OllamaError{%d, %q}", tt.body, err, tt.status, tt.msg)
		}
	}
	for _, body := range []string{`not json`, `{"choices":[]}`} {
		if _, err := OpenAIToOllama(o, "m", []byte(body), time.Second); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

// vllmChatStream is a vLLM chat stream with stream_options.include_usage, recorded from
// internal/sim (testdata/chat_stream.golden): the role chunk, content chunks, the finish
// chunk, the usage chunk, [DONE].
const vllmChatStream = `data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":"green"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":" made"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[{"index":0,"delta":{"content":" development"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null}

data: {"id":"ID","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-7b","choices":[],"usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3,"prompt_tokens_details":null}}

data: [DONE]

`

// ollamaStreamRun translates stream for a request, returning the lines (created_at removed),
// how many times flush was called, and the error.
func ollamaStreamRun(t *testing.T, kind, req string, stream io.Reader) ([]map[string]any, int, error) {
	t.Helper()
	o := mustParseOllama(t, kind, req)
	var out bytes.Buffer
	flushes := 0
	err := StreamOpenAIToOllama(o, "qwen:latest", stream, &out, func() { flushes++ }, time.Now().Add(-time.Second))
	var lines []map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		lines = append(lines, ollamaObject(t, sc.Bytes()))
	}
	return lines, flushes, err
}

// checkFinal checks the final line's durations add up and strips them.
func checkFinal(t *testing.T, final map[string]any) {
	t.Helper()
	total := time.Duration(num(final["total_duration"]))
	pe, ev := time.Duration(num(final["prompt_eval_duration"])), time.Duration(num(final["eval_duration"]))
	if total < time.Second || total > time.Minute {
		t.Errorf("total_duration = %v, want about 1 s (nanoseconds since start)", total)
	}
	if pe < 0 || ev < 0 || pe+ev > total {
		t.Errorf("prompt_eval_duration %v + eval_duration %v do not fit in total_duration %v", pe, ev, total)
	}
	for _, k := range []string{"total_duration", "prompt_eval_duration", "eval_duration"} {
		if _, ok := final[k]; !ok {
			t.Errorf("final line has no %s", k)
		}
		delete(final, k)
	}
}

func TestStreamOpenAIToOllamaChat(t *testing.T) {
	t.Parallel()
	// One byte per read: the SSE parser must not depend on how the body is chunked.
	lines, flushes, err := ollamaStreamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`,
		iotest.OneByteReader(strings.NewReader(vllmChatStream)))
	if err != nil {
		t.Fatal(err)
	}
	if flushes != len(lines) {
		t.Errorf("flush called %d times for %d lines, want once per line", flushes, len(lines))
	}
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"green"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":" made"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":" development"},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":""},"done_reason":"length","done":true,
			"load_duration":0,"prompt_eval_count":10,"eval_count":3}`,
	}
	ollamaCompareLines(t, want, lines)
}

func ollamaCompareLines(t *testing.T, want []string, got []map[string]any) {
	t.Helper()
	var w []any
	for _, s := range want {
		w = append(w, ollamaJSON(t, []byte(s)))
	}
	var g []any
	for _, m := range got {
		g = append(g, m)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestStreamOpenAIToOllamaGenerate(t *testing.T) {
	t.Parallel()
	// A completion stream without usage, CRLF line ends, a comment, and events without the
	// blank line between them; thinking deltas become "thinking".
	stream := ": keep-alive\r\n" +
		`data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}]}` + "\r\n\r\n" +
		`data: {"choices":[{"index":0,"text":"once","finish_reason":null}]}` + "\r\n" +
		`data: {"choices":[{"index":0,"text":" upon","finish_reason":"stop"}]}` + "\r\n" +
		"data: [DONE]\r\n"
	lines, _, err := ollamaStreamRun(t, "generate", `{"model":"qwen","prompt":"tell me a story"}`, strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","response":"","thinking":"hmm","done":false}`,
		`{"model":"qwen:latest","response":"once","done":false}`,
		`{"model":"qwen:latest","response":" upon","done":false}`,
		// No usage: the prompt is estimated (15 bytes → 4 tokens), the output counted in deltas.
		`{"model":"qwen:latest","response":"","done":true,"done_reason":"stop","load_duration":0,"prompt_eval_count":4,"eval_count":3}`,
	}
	ollamaCompareLines(t, want, lines)
}

func TestStreamOpenAIToOllamaToolCalls(t *testing.T) {
	t.Parallel()
	stream := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: {"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":12}}

data: [DONE]

`
	lines, _, err := ollamaStreamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"weather"}}]}`, strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	checkFinal(t, lines[len(lines)-1])
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"","tool_calls":[
			{"id":"call_a","function":{"index":0,"name":"weather","arguments":{"city":"Paris"}}},
			{"id":"call_b","function":{"index":1,"name":"time","arguments":{}}}]},"done":false}`,
		`{"model":"qwen:latest","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"load_duration":0,"prompt_eval_count":20,"eval_count":12}`,
	}
	ollamaCompareLines(t, want, lines)
}

func TestStreamOpenAIToOllamaErrorEvent(t *testing.T) {
	t.Parallel()
	stream := `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}

data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}

data: {"error":{"message":"CUDA out of memory","type":"InternalServerError","param":null,"code":500}}

data: [DONE]

`
	lines, flushes, err := ollamaStreamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`, strings.NewReader(stream))
	var oe *OllamaError
	if !errors.As(err, &oe) || oe.Status != 500 || oe.Message != "CUDA out of memory" {
		t.Errorf("err = %v, want *OllamaError{500, CUDA out of memory}", err)
	}
	want := []string{
		`{"model":"qwen:latest","message":{"role":"assistant","content":"Hel"},"done":false}`,
		`{"error":"CUDA out of memory"}`,
	}
	ollamaCompareLines(t, want, lines)
	if flushes != 2 {
		t.Errorf("flushes = %d, want 2", flushes)
	}
}

func TestStreamOpenAIToOllamaTruncated(t *testing.T) {
	t.Parallel()
	// The usage chunk arrived but not [DONE]; and a stream cut inside an event.
	for name, stream := range map[string]string{
		"no [DONE]":    strings.TrimSuffix(vllmChatStream, "data: [DONE]\n\n"),
		"cut mid-line": vllmChatStream[:400],
		"empty":        "",
	} {
		t.Run(name, func(t *testing.T) {
			lines, _, err := ollamaStreamRun(t, "chat", `{"model":"qwen","messages":[{"role":"user","content":"x"}]}`, strings.NewReader(stream))
			var oe *OllamaError
			if !errors.As(err, &oe) || oe.Status != http.StatusBadGateway {
				t.Errorf("err = %v, want a 502 *OllamaError", err)
			}
			if len(lines) == 0 {
				t.Fatal("no lines")
			}
			last := lines[len(lines)-1]
			if msg := str(last["error"]); !strings.Contains(msg, "closed the stream before it finished") {
				t.Errorf("last line = %v, want an error line about the stream ending early", last)
			}
			for _, l := range lines {
				if l["done"] == true {
					t.Errorf("a done:true line was written for an unfinished stream: %v", l)
				}
			}
		})
	}
}

type ollamaFailingReader struct{ r io.Reader }

func (f ollamaFailingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, context.DeadlineExceeded
	}
	return n, err
}

type ollamaFailingWriter struct{}

func (ollamaFailingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStreamOpenAIToOllamaIOErrors(t *testing.T) {
	t.Parallel()
	lines, _, err := ollamaStreamRun(t, "chat", `{"model":"qwen","messages":[]}`,
		ollamaFailingReader{strings.NewReader(vllmChatStream[:700])})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read error: err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if len(lines) == 0 || !strings.Contains(str(lines[len(lines)-1]["error"]), "reading the upstream stream") {
		t.Errorf("read error: lines = %v, want an error line last", lines)
	}

	o := mustParseOllama(t, "chat", `{"model":"qwen","messages":[]}`)
	err = StreamOpenAIToOllama(o, "q", strings.NewReader(vllmChatStream), ollamaFailingWriter{}, nil, time.Now())
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("write error: err = %v, want the write's error", err)
	}
}

func TestOllamaListing(t *testing.T) {
	t.Parallel()
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	models := []OllamaModelInfo{
		{Name: "qwen2.5-7b", Family: "qwen2", ParameterSize: "7.6B", Quantization: "BF16", ContextLength: 32768,
			Capabilities: []string{"completion", "tools", "vision"}, Size: 15 << 30, ModifiedAt: mod},
		{Name: "llama3:8b"},
	}
	var tags struct {
		Models []struct {
			Name, Model, Digest string
			ModifiedAt          time.Time `json:"modified_at"`
			Size                int64
			Details             map[string]any
		}
	}
	if err := json.Unmarshal(OllamaTags(models), &tags); err != nil {
		t.Fatal(err)
	}
	if len(tags.Models) != 2 {
		t.Fatalf("tags has %d models, want 2", len(tags.Models))
	}
	m0, m1 := tags.Models[0], tags.Models[1]
	if m0.Name != "qwen2.5-7b:latest" || m0.Model != m0.Name || m1.Name != "llama3:8b" {
		t.Errorf("names %q/%q, %q; want qwen2.5-7b:latest twice, llama3:8b", m0.Name, m0.Model, m1.Name)
	}
	if len(m0.Digest) != 64 || m0.Digest == m1.Digest || !m0.ModifiedAt.Equal(mod) || m0.Size != 15<<30 {
		t.Errorf("model 0 = %+v, want a sha256 digest, the modified time and size", m0)
	}
	wantDetails := map[string]any{"parent_model": "", "format": "gguf", "family": "qwen2", "families": []any{"qwen2"},
		"parameter_size": "7.6B", "quantization_level": "BF16"}
	if diff := cmp.Diff(wantDetails, m0.Details); diff != "" {
		t.Errorf("details (-want +got):\n%s", diff)
	}
	if got := string(OllamaTags(nil)); got != `{"models":[]}` {
		t.Errorf("OllamaTags(nil) = %s", got)
	}

	var show map[string]any
	if err := json.Unmarshal(OllamaShow(models[0]), &show); err != nil {
		t.Fatal(err)
	}
	info, _ := show["model_info"].(map[string]any)
	if info["general.architecture"] != "qwen2" || info["qwen2.context_length"] != 32768.0 {
		t.Errorf("model_info = %v, want the architecture and qwen2.context_length", info)
	}
	if diff := cmp.Diff([]any{"completion", "tools", "vision"}, show["capabilities"]); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
	if !strings.Contains(str(show["modelfile"]), "FROM qwen2.5-7b:latest") {
		t.Errorf("modelfile = %q", show["modelfile"])
	}
	show = nil
	if err := json.Unmarshal(OllamaShow(models[1]), &show); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"completion"}, show["capabilities"]); diff != "" {
		t.Errorf("default capabilities (-want +got):\n%s", diff)
	}
	if got := string(OllamaVersion("0.12.6")); got != `{"version":"0.12.6"}` {
		t.Errorf("OllamaVersion = %s", got)
	}
}

func TestOllamaNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"qwen2.5-7b": "qwen2.5-7b:latest", "llama3:8b": "llama3:8b", "x:latest": "x:latest",
		"registry:5000/ns/model": "registry:5000/ns/model:latest", "hf.co/org/repo:Q4_K_M": "hf.co/org/repo:Q4_K_M", "": "",
	} {
		if got := OllamaName(in); got != want {
			t.Errorf("OllamaName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"x:latest": "x", "x": "x", "x:8b": "x:8b"} {
		if got := StripLatest(in); got != want {
			t.Errorf("StripLatest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOllamaThroughSimulatedVLLM sends translated requests to the simulated vLLM (which
// validates messages, image parts, tools and response_format as vLLM does) and translates its
// answers back.
func TestOllamaThroughSimulatedVLLM(t *testing.T) {
	t.Parallel()
	g, err := perfmodel.LookupGPU("h100-sxm")
	if err != nil {
		t.Fatal(err)
	}
	m, err := perfmodel.LookupModel("mimo-vl-7b")
	if err != nil {
		t.Fatal(err)
	}
	p, err := perfmodel.NewPlan(g, m, perfmodel.Options{MaxModelLen: 8192})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.NewVLLM(sim.Config{Plan: p, ServedModelNames: []string{"mimo"}, EmbeddingDim: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); cancel(); <-done })

	send := func(t *testing.T, o *OllamaRequest) *http.Response {
		t.Helper()
		path, body, err := o.ToOpenAI("mimo")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(ts.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s", path, body, resp.StatusCode, b)
		}
		return resp
	}
	reqs := map[string]struct{ kind, body string }{
		"chat with an image, options and a schema": {"chat", `{"model":"mimo","messages":[{"role":"system","content":"s"},
			{"role":"user","content":"what is it?","images":["` + ollamaPNG64 + `"]}],
			"format":{"type":"object","properties":{"a":{"type":"string"}}},"options":{"temperature":0.1,"num_predict":12,"seed":3}}`},
		"chat with tools": {"chat", `{"model":"mimo","messages":[{"role":"user","content":"weather?"}],
			"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`},
		"generate": {"generate", `{"model":"mimo","prompt":"hello","system":"s","options":{"num_predict":5}}`},
		"raw":      {"generate", `{"model":"mimo","prompt":"hello","raw":true,"options":{"num_predict":5}}`},
	}
	for name, r := range reqs {
		for _, stream := range []bool{true, false} {
			t.Run(name+map[bool]string{true: " streaming", false: ""}[stream], func(t *testing.T) {
				body := strings.Replace(r.body, `{"model":"mimo",`, `{"model":"mimo","stream":`+map[bool]string{true: "true", false: "false"}[stream]+`,`, 1)
				o := mustParseOllama(t, r.kind, body)
				resp := send(t, o)
				var out bytes.Buffer
				if !stream {
					b, _ := io.ReadAll(resp.Body)
					final, err := OpenAIToOllama(o, "mimo:latest", b, time.Second)
					if err != nil {
						t.Fatalf("%v: %s", err, b)
					}
					out.Write(final)
					out.WriteByte('\n')
				} else if err := StreamOpenAIToOllama(o, "mimo:latest", resp.Body, &out, nil, time.Now()); err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				var text strings.Builder
				var calls int
				for i, l := range lines {
					m := ollamaObject(t, []byte(l))
					if m["model"] != "mimo:latest" || m["done"] != (i == len(lines)-1) {
						t.Errorf("line %d = %s", i, l)
					}
					if r.kind == "chat" {
						msg := m["message"].(map[string]any)
						text.WriteString(str(msg["content"]))
						if tc, ok := msg["tool_calls"].([]any); ok {
							calls += len(tc)
							args := tc[0].(map[string]any)["function"].(map[string]any)["arguments"]
							if _, ok := args.(map[string]any); !ok {
								t.Errorf("tool call arguments = %v, want an object", args)
							}
						}
					} else {
						text.WriteString(str(m["response"]))
					}
				}
				final := ollamaObject(t, []byte(lines[len(lines)-1]))
				if num(final["prompt_eval_count"]) <= 0 || num(final["eval_count"]) <= 0 || num(final["total_duration"]) <= 0 {
					t.Errorf("final line %s lacks counts or durations", lines[len(lines)-1])
				}
				switch {
				case name == "chat with tools" && calls == 0:
					t.Errorf("no tool calls in %s", out.String())
				case name == "chat with an image, options and a schema" && !json.Valid([]byte(text.String())):
					t.Errorf("format schema: content %q is not JSON", text.String())
				case name != "chat with tools" && text.Len() == 0:
					t.Errorf("no text in %s", out.String())
				}
			})
		}
	}
	t.Run("embed", func(t *testing.T) {
		o := mustParseOllama(t, "embed", `{"model":"mimo","input":["a","b c"]}`)
		b, _ := io.ReadAll(send(t, o).Body)
		out, err := OpenAIToOllama(o, "mimo:latest", b, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Embeddings      [][]float32 `json:"embeddings"`
			PromptEvalCount int         `json:"prompt_eval_count"`
		}
		if err := json.Unmarshal(out, &e); err != nil || len(e.Embeddings) != 2 || len(e.Embeddings[0]) != 8 || e.PromptEvalCount == 0 {
			t.Errorf("embed = %s (%v), want 2 vectors of 8 and a count", out, err)
		}
	})
}

func FuzzParseOllama(f *testing.F) {
	seeds := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","images":["` + ollamaPNG64 + `"]}],"options":{"temperature":0.5,"stop":["x"]}}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}],"format":{"type":"object"},"think":"low"}`,
		`{"model":"m","prompt":"p","system":"s","raw":false,"images":["AAAA"],"keep_alive":"5m","format":"json"}`,
		`{"model":"m","prompt":"p","raw":true,"suffix":"s","options":{"num_predict":3,"seed":1}}`,
		`{"model":"m","input":["a","b"],"dimensions":3}`,
		`{"model":"m","input":"a","keep_alive":0}`,
		`{"model":"m",}`, ``, `null`, `{"model":"m","messages":[{"images":["x"]}]}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	kinds := []string{OllamaChat, OllamaGenerate, OllamaEmbed}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := kinds[int(k)%len(kinds)]
		o, err := ParseOllama(kind, body)
		if err != nil {
			var oe *OllamaError
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || oe.Message == "" {
				t.Fatalf("error %v (%T) is not a 400 *OllamaError", err, err)
			}
			return
		}
		if o.Model == "" || o.Kind != kind {
			t.Fatalf("parsed without a model or with kind %q", o.Kind)
		}
		ri := o.Info()
		if len(ri.Text) > 2*ollamaTextSample+1 || ri.PromptTokens < 0 || ri.Images < 0 {
			t.Fatalf("Info out of bounds: %d bytes of text, %d tokens, %d images", len(ri.Text), ri.PromptTokens, ri.Images)
		}
		path, up, err := o.ToOpenAI("up")
		if err != nil || !json.Valid(up) || !strings.HasPrefix(path, "/v1/") {
			t.Fatalf("ToOpenAI: %s %s %v", path, up, err)
		}
		var upm struct{ Model string }
		if json.Unmarshal(up, &upm) != nil || upm.Model != "up" {
			t.Fatalf("ToOpenAI body %s does not name the upstream model", up)
		}
		pt, err := o.Passthrough("up:1")
		if err != nil {
			t.Fatalf("Passthrough: %v", err)
		}
		again, err := ParseOllama(kind, pt)
		if err != nil || again.Model != "up:1" {
			t.Fatalf("Passthrough body %s does not parse back with the new model: %v", pt, err)
		}
		_, _ = o.LocalResponse("m")
	})
}

package ollamaapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/ollamaapi"
)

func TestFromOpenAI(t *testing.T) {
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
			o := mustParse(t, tt.kind, tt.req)
			out, err := ollamaapi.FromOpenAI(o, "m:latest", []byte(tt.body), elapsed)
			if err != nil {
				t.Fatal(err)
			}
			got := object(t, out)
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
			if diff := cmp.Diff(decodeJSON(t, []byte(tt.want)), any(got)); diff != "" {
				t.Errorf("(-want +got):\n%s\ngot %s", diff, out)
			}
		})
	}
}

func TestFromOpenAIEmbed(t *testing.T) {
	t.Parallel()
	o := mustParse(t, "embed", `{"model":"e","input":["a","b"]}`)
	var raw bytes.Buffer
	for _, f := range []float32{0.5, -0.25} {
		_ = binary.Write(&raw, binary.LittleEndian, math.Float32bits(f))
	}
	body := `{"object":"list","data":[{"object":"embedding","index":1,"embedding":"` + base64.StdEncoding.EncodeToString(raw.Bytes()) + `"},
		{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`
	out, err := ollamaapi.FromOpenAI(o, "e:latest", []byte(body), 25*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"e:latest","embeddings":[[0.1,0.2],[0.5,-0.25]],"total_duration":25000000,"load_duration":0,"prompt_eval_count":2}`
	if diff := cmp.Diff(decodeJSON(t, []byte(want)), decodeJSON(t, out)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFromOpenAIErrors(t *testing.T) {
	t.Parallel()
	o := mustParse(t, "chat", `{"model":"m","stream":false,"messages":[{"role":"user","content":"x"}]}`)
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
		_, err := ollamaapi.FromOpenAI(o, "m", []byte(tt.body), time.Second)
		var oe *ollamaapi.Error
		if !errors.As(err, &oe) || oe.Status != tt.status || oe.Message != tt.msg {
			t.Errorf("%s: err = %v, want *ollamaapi.Error{%d, %q}", tt.body, err, tt.status, tt.msg)
		}
	}
	for _, body := range []string{`not json`, `{"choices":[]}`} {
		if _, err := ollamaapi.FromOpenAI(o, "m", []byte(body), time.Second); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

// TestMetricsShapes: Metrics is Ollama's shape (zeros omitted), AllMetrics the translated
// answer's (all six written), and the two convert to each other.
func TestMetricsShapes(t *testing.T) {
	t.Parallel()
	m := ollamaapi.Metrics{TotalDuration: 5, EvalCount: 3}
	if got, want := string(must(json.Marshal(m))), `{"total_duration":5,"eval_count":3}`; got != want {
		t.Errorf("Metrics = %s, want %s", got, want)
	}
	want := `{"total_duration":5,"load_duration":0,"prompt_eval_count":0,"prompt_eval_duration":0,"eval_count":3,"eval_duration":0}`
	if got := string(must(json.Marshal(ollamaapi.AllMetrics(m)))); got != want {
		t.Errorf("AllMetrics = %s, want %s", got, want)
	}
}

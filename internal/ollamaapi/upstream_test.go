package ollamaapi_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestToOpenAI(t *testing.T) {
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
			body:     `{"model":"m","stream":false,"messages":[{"role":"user","content":"what is this?","images":["` + png64 + `","AAAA"]}]}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,"messages":[{"role":"user","content":[
				{"type":"image_url","image_url":{"url":"data:image/png;base64,` + png64 + `"}},
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
			body:     `{"model":"m","prompt":"describe","images":["` + png64 + `"],"stream":false}`,
			wantPath: "/v1/chat/completions",
			want: `{"model":"up","stream":false,"messages":[{"role":"user","content":[
				{"type":"image_url","image_url":{"url":"data:image/png;base64,` + png64 + `"}},{"type":"text","text":"describe"}]}]}`,
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
			o := mustParse(t, tt.kind, tt.body)
			path, body, err := o.ToOpenAI("up")
			if err != nil {
				t.Fatal(err)
			}
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
			if diff := cmp.Diff(decodeJSON(t, []byte(tt.want)), decodeJSON(t, body)); diff != "" {
				t.Errorf("body (-want +got):\n%s\ngot %s", diff, body)
			}
		})
	}
}

func TestPassthrough(t *testing.T) {
	t.Parallel()
	body := `{"MODEL":"llama3","messages":[{"role":"user","content":"x","images":["` + png64 + `"]}],"keep_alive":"1h","options":{"num_ctx":8192},"stream":false}`
	o := mustParse(t, "chat", body)
	out, err := o.Passthrough("llama3.1:8b")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"llama3.1:8b","messages":[{"role":"user","content":"x","images":["` + png64 + `"]}],"keep_alive":"1h","options":{"num_ctx":8192},"stream":false}`
	if diff := cmp.Diff(decodeJSON(t, []byte(want)), decodeJSON(t, out)); diff != "" {
		t.Errorf("Passthrough (-want +got):\n%s", diff)
	}
}

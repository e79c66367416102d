package sim

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSGLangChatShape: SGLang answers chat in its own JSON shape, not vLLM's
// (protocol.py ChatCompletionResponse): the keys a client sees differ, so a client or a
// gateway written against one is tested against the other.
func TestSGLangChatShape(t *testing.T) {
	keys := func(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
	tests := []struct {
		engine                         string
		top, choice, message, usage    []string
		idPrefix                       string
		matchedStopOnEOS, stopOnString any
	}{
		{engine: EngineSGLang,
			top:      []string{"choices", "created", "id", "metadata", "model", "object", "usage"},
			choice:   []string{"finish_reason", "index", "logprobs", "matched_stop", "message"},
			message:  []string{"content", "reasoning_content", "role", "tool_calls"},
			usage:    []string{"completion_tokens", "prompt_tokens", "prompt_tokens_details", "reasoning_tokens", "total_tokens"},
			idPrefix: "", matchedStopOnEOS: float64(qwenEOS)},
		{engine: EngineVLLM,
			top:      []string{"choices", "created", "id", "kv_transfer_params", "model", "object", "prompt_logprobs", "system_fingerprint", "usage"},
			choice:   []string{"finish_reason", "index", "logprobs", "message", "stop_reason"},
			message:  []string{"content", "reasoning_content", "refusal", "role", "tool_calls"},
			usage:    []string{"completion_tokens", "prompt_tokens", "prompt_tokens_details", "total_tokens"},
			idPrefix: "chatcmpl-"},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			url := startEngine(t, Config{Engine: tt.engine, TimeScale: 0, ServedModelNames: []string{"qwen"}})
			status, _, body := request(t, "POST", url+"/v1/chat/completions", `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":3000}`,
				"Content-Type", "application/json")
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			c := r["choices"].([]any)[0].(map[string]any)
			for _, k := range []struct {
				what      string
				want, got []string
			}{
				{"response", tt.top, keys(r)}, {"choice", tt.choice, keys(c)},
				{"message", tt.message, keys(c["message"].(map[string]any))}, {"usage", tt.usage, keys(r["usage"].(map[string]any))},
			} {
				if diff := cmp.Diff(k.want, k.got); diff != "" {
					t.Errorf("%s keys (-want +got):\n%s", k.what, diff)
				}
			}
			id := r["id"].(string)
			if !strings.HasPrefix(id, tt.idPrefix) || (tt.idPrefix == "" && strings.Contains(id, "-")) {
				t.Errorf("id %q, want the prefix %q", id, tt.idPrefix)
			}
			if tt.engine == EngineSGLang {
				if c["finish_reason"] != "stop" || c["matched_stop"] != tt.matchedStopOnEOS {
					t.Errorf("finish_reason %v matched_stop %v, want stop on the EOS token %v", c["finish_reason"], c["matched_stop"], tt.matchedStopOnEOS)
				}
				if m := c["message"].(map[string]any); m["tool_calls"] != nil {
					t.Errorf("tool_calls %v, want null without tools", m["tool_calls"])
				}
			}
		})
	}
}

// TestSGLangStreamShape: SGLang streams chat and completions in its own chunks, not vLLM's
// (protocol.py ChatCompletionStreamResponse, CompletionStreamResponse; serving_chat.py,
// serving_completions.py): the id without "chatcmpl-", matched_stop instead of stop_reason,
// every delta key present (null when unset), "usage" on every chunk, and a chat choice's
// finish reason in a chunk of its own, after every choice's last token, with an empty delta.
func TestSGLangStreamShape(t *testing.T) {
	keys := func(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }
	url := startEngine(t, Config{Engine: EngineSGLang, TimeScale: 0, Seed: 7, ServedModelNames: []string{"qwen"}})
	chat := `{"model":"qwen","messages":[{"role":"user","content":"hi"}],"max_tokens":3000,"n":2,"stream_options":{"include_usage":true}`
	status, _, body := request(t, "POST", url+"/v1/chat/completions", chat+`,"stream":true}`, "Content-Type", "application/json")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	evs := events(t, []byte(body))
	if evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("last event %q, want [DONE]", evs[len(evs)-1])
	}
	var content [2]string
	role, finished := map[int]bool{}, map[int]any{}
	for i, ev := range evs[:len(evs)-2] {
		c := decodeJSON[map[string]any](t, []byte(ev))
		if diff := cmp.Diff([]string{"choices", "created", "id", "model", "object", "usage"}, keys(c)); diff != "" {
			t.Fatalf("event %d keys (-want +got):\n%s", i, diff)
		}
		if id := c["id"].(string); strings.Contains(id, "-") || c["usage"] != nil || c["object"] != "chat.completion.chunk" || c["model"] != "qwen" {
			t.Errorf("event %d: id %q usage %v object %v model %v; want a hex id, null usage, chat.completion.chunk, qwen", i, id, c["usage"], c["object"], c["model"])
		}
		ch := c["choices"].([]any)[0].(map[string]any)
		if diff := cmp.Diff([]string{"delta", "finish_reason", "index", "logprobs", "matched_stop"}, keys(ch)); diff != "" {
			t.Fatalf("event %d choice keys (-want +got):\n%s", i, diff)
		}
		d := ch["delta"].(map[string]any)
		if diff := cmp.Diff([]string{"content", "reasoning_content", "role", "tool_calls"}, keys(d)); diff != "" {
			t.Fatalf("event %d delta keys (-want +got):\n%s", i, diff)
		}
		n := int(ch["index"].(float64))
		switch {
		case !role[n]:
			if d["role"] != "assistant" || d["content"] != "" || ch["finish_reason"] != nil {
				t.Errorf("first chunk of choice %d = %s, want role assistant with empty content", n, ev)
			}
			role[n] = true
		case ch["finish_reason"] != nil:
			if d["role"] != nil || d["content"] != nil {
				t.Errorf("finish chunk of choice %d = %s, want an empty delta", n, ev)
			}
			finished[n] = ch["matched_stop"]
		default:
			if len(finished) > 0 {
				t.Errorf("event %d = %s: content after a finish chunk; SGLang sends the finish reasons last", i, ev)
			}
			if d["role"] != nil || ch["matched_stop"] != nil {
				t.Errorf("content chunk %s: want role and matched_stop null", ev)
			}
			content[n] += d["content"].(string)
		}
	}
	if len(finished) != 2 || finished[0] != float64(qwenEOS) {
		t.Errorf("finish chunks %v, want both choices, matched_stop the EOS token %d", finished, qwenEOS)
	}
	usage := decodeJSON[map[string]any](t, []byte(evs[len(evs)-2]))
	if ch := usage["choices"].([]any); len(ch) != 0 {
		t.Errorf("usage chunk has choices %v", ch)
	}
	u := usage["usage"].(map[string]any)
	if diff := cmp.Diff([]string{"completion_tokens", "prompt_tokens", "prompt_tokens_details", "reasoning_tokens", "total_tokens"}, keys(u)); diff != "" {
		t.Errorf("usage keys (-want +got):\n%s", diff)
	}
	// The streamed text is the whole response's.
	_, _, whole := request(t, "POST", url+"/v1/chat/completions", chat+`}`, "Content-Type", "application/json")
	r := decodeJSON[chatResponse](t, []byte(whole))
	for i := range 2 {
		if r.Choices[i].Message.Content != content[i] {
			t.Errorf("choice %d: streamed %q, whole %q", i, content[i], r.Choices[i].Message.Content)
		}
	}

	// Completions carry the finish reason on the last token, and their usage chunk is written
	// without nulls.
	status, _, body = request(t, "POST", url+"/v1/completions",
		`{"prompt":"Once upon a time","max_tokens":4,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`, "Content-Type", "application/json")
	if status != 200 {
		t.Fatalf("completions: status %d: %s", status, body)
	}
	evs = events(t, []byte(body))
	if len(evs) != 4+2 {
		t.Fatalf("completions: %d events, want 4 tokens, usage and [DONE]: %q", len(evs), evs)
	}
	for i, ev := range evs[:4] {
		ch := decodeJSON[map[string]any](t, []byte(ev))["choices"].([]any)[0].(map[string]any)
		if diff := cmp.Diff([]string{"finish_reason", "index", "logprobs", "matched_stop", "text"}, keys(ch)); diff != "" {
			t.Fatalf("completion event %d choice keys (-want +got):\n%s", i, diff)
		}
		if want := any(nil); i == 3 {
			if ch["finish_reason"] != "length" || ch["matched_stop"] != nil {
				t.Errorf("last token %s: want finish_reason length, matched_stop null", ev)
			}
		} else if ch["finish_reason"] != want {
			t.Errorf("token %d %s: want finish_reason null", i, ev)
		}
	}
	u = decodeJSON[map[string]any](t, []byte(evs[4]))["usage"].(map[string]any)
	if diff := cmp.Diff([]string{"completion_tokens", "prompt_tokens", "reasoning_tokens", "total_tokens"}, keys(u)); diff != "" {
		t.Errorf("completion usage keys (-want +got):\n%s", diff)
	}

	// A tool call streams as SGLang's ToolCall: id and name first, then arguments alone, and
	// finish_reason tool_calls apart.
	status, _, body = request(t, "POST", url+"/v1/chat/completions", `{"messages":[{"role":"user","content":"weather?"}],"stream":true,`+
		`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`,
		"Content-Type", "application/json")
	if status != 200 {
		t.Fatalf("tools: status %d: %s", status, body)
	}
	evs = events(t, []byte(body))
	var args string
	for i, ev := range evs[1 : len(evs)-2] {
		d := decodeJSON[map[string]any](t, []byte(ev))["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)
		tc := d["tool_calls"].([]any)[0].(map[string]any)
		if diff := cmp.Diff([]string{"function", "id", "index", "type"}, keys(tc)); diff != "" {
			t.Fatalf("tool call keys (-want +got):\n%s", diff)
		}
		f := tc["function"].(map[string]any)
		if named := f["name"] == "get_weather" && tc["id"] != nil; named != (i == 0) {
			t.Errorf("tool call chunk %d %s: want the id and name on the first only", i, ev)
		}
		args += f["arguments"].(string)
	}
	if !json.Valid([]byte(args)) {
		t.Errorf("streamed arguments %q are not JSON", args)
	}
	if ch := decodeJSON[map[string]any](t, []byte(evs[len(evs)-2]))["choices"].([]any)[0].(map[string]any); ch["finish_reason"] != "tool_calls" {
		t.Errorf("last chunk %s, want finish_reason tool_calls", evs[len(evs)-2])
	}
}

// TestSGLangStreamGolden pins SGLang's chat stream byte for byte.
func TestSGLangStreamGolden(t *testing.T) {
	url := startEngine(t, Config{Engine: EngineSGLang, TimeScale: 0, Seed: 7})
	status, _, body := request(t, "POST", url+"/v1/chat/completions",
		`{"model":"qwen2.5-7b","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8,"stop":[" compute"],"stream":true,"stream_options":{"include_usage":true}}`,
		"Content-Type", "application/json")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	golden(t, "sglang_chat_stream.golden", regexpSGLangID.ReplaceAll([]byte(body), []byte(`"id":"ID"`)))
}

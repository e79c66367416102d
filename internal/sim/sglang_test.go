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

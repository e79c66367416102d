package gateway_test

import (
	"fmt"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/sim"
	"citadel.dev/citadel/internal/taskclass"
)

// TestTaskRoutingFromUsersInputs sends what users and agents really send — system prompts,
// conversations that change topic, tool results, other languages, the Ollama front — to a
// virtual name, and checks the task each one reaches and the reason the header gives.
func TestTaskRoutingFromUsersInputs(t *testing.T) {
	general := simVLLM(t, sim.Faults{}, "qwen")
	coder := simVLLM(t, sim.Faults{}, "deepcoder")
	thinker := simVLLM(t, sim.Faults{}, "r1")
	vision := simModel(t, "mimo-vl-7b", sim.Faults{}, "mimo")
	gw, url := startGateway(t, fmt.Sprintf(`apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: lab}
spec:
  models:
  - {name: qwen, targets: [{url: %[1]q, model: qwen}]}
  - {name: coder, targets: [{url: %[2]q, model: deepcoder}]}
  - {name: r1, targets: [{url: %[3]q, model: r1}]}
  - {name: mimo-vl, targets: [{url: %[4]q, model: mimo}]}
  - name: auto
    tasks:
    - {task: vision, model: mimo-vl}
    - {task: code, model: coder, keywords: [git]}
    - {task: reasoning, model: r1}
    - {task: general, model: qwen}
  - name: cautious
    minConfidence: 1 # nothing short of certain wins over the default
    tasks:
    - {task: code, model: coder}
    - {task: general, model: qwen}
  - name: team
    tasks:
    - task: code
      model: coder
      examples: ["the zephyr bot says the lease is held by another runner again, how do I clear it?"]
    - {task: general, model: qwen}
`, general.URL, coder.URL, thinker.URL, vision.URL), gateway.Options{})

	tests := []struct {
		name, path, body string
		want             []string // in x-citadel-route
	}{
		{"a system prompt asking for code does not make a travel question code", "/v1/chat/completions",
			`{"model":"auto","max_tokens":4,"messages":[{"role":"system","content":"You are a coding assistant. Always answer with fenced code blocks."},{"role":"user","content":"what should I pack for a long weekend in Lisbon in March?"}]}`,
			[]string{"task=general", "model=qwen", "reason=classifier general="}},
		{"the last turn decides: a coding chat that turns to dinner", "/v1/chat/completions",
			`{"model":"auto","max_tokens":4,"messages":[{"role":"user","content":"why does my useEffect run twice?"},{"role":"assistant","content":"StrictMode mounts components twice in development."},{"role":"user","content":"thanks! unrelated: an easy vegetarian dinner for six people?"}]}`,
			[]string{"task=general", "model=qwen"}},
		{"an agent's tool result", "/v1/chat/completions",
			`{"model":"auto","max_tokens":4,"messages":[{"role":"system","content":"You are an autonomous agent."},{"role":"user","content":"make it pass"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"run","arguments":"{\"cmd\":\"npm test\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"FAIL src/cart.test.ts\n  ● total › applies discount\n    expect(received).toBe(expected)\n    Expected: 90\n    Received: 100"}]}`,
			[]string{"task=code", "model=coder"}},
		{"a whole-word keyword", "/v1/chat/completions", chat("auto", "how do i squash my last three commits with git before pushing"),
			[]string{"task=code", `reason=keyword "git"`}},
		{"a keyword inside another word does not match", "/v1/chat/completions", chat("auto", "my bank wants the three-digit code on the back of my card, is it safe to read it out on the phone?"),
			[]string{"task=general"}},
		{"a word problem without symbols", "/v1/chat/completions", chat("auto", "Two trains leave stations 300 miles apart at noon, one at forty and one at sixty miles an hour. When do they meet?"),
			[]string{"task=reasoning", "model=r1"}},
		{"German code question on the Ollama front", "/api/chat",
			`{"model":"auto","stream":false,"messages":[{"role":"user","content":"Wie sortiere ich in Python eine Liste von Dictionaries nach dem Wert eines Schlüssels?"}]}`,
			[]string{"task=code", "model=coder"}},
		{"a recipe step by step is not reasoning", "/api/generate",
			`{"model":"auto","stream":false,"prompt":"step by step, how do I make a sourdough starter from scratch?"}`,
			[]string{"task=general"}},
		{"an image decides whatever the text says", "/v1/chat/completions",
			`{"model":"auto","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"fix this stack trace"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`,
			[]string{"task=vision", "reason=image_url"}},
		{"under minConfidence the default wins and says why", "/v1/chat/completions", chat("cautious", unsureCode(t)),
			[]string{"task=general", "reason=low-confidence"}},
		{"a route's example leans toward its task", "/v1/chat/completions", chat("team", "zephyr bot again: lease is held by another runner. how to clear it?"),
			[]string{"task=code", "example=0."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, url+tt.path, tt.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			route := resp.Header.Get("X-Citadel-Route")
			for _, w := range tt.want {
				if !strings.Contains(route, w) {
					t.Errorf("x-citadel-route %q lacks %q", route, w)
				}
			}
		})
	}

	// the same request explained, as the admin API and citadel route explain show it
	x, err := gw.Explain([]byte(chat("team", "zephyr bot again: lease is held by another runner. how to clear it?")), "openai")
	if err != nil {
		t.Fatal(err)
	}
	if x.Task != "code" || x.Rule != "team: tasks[0] (code)" || x.Nearest["code"] < 0.3 || len(x.Features) == 0 || x.Scores["code"] == 0 {
		t.Errorf("explain: %+v", x)
	}
	if _, err := gw.Explain([]byte(chat("nope", "hi")), "openai"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("explain of an unknown model: %v", err)
	}

	_, metrics := get(t, url+"/metrics")
	for _, want := range []string{
		`citadel_gateway_task_decisions_total{how="classifier",model="auto",task="code"}`,
		`citadel_gateway_task_decisions_total{how="rule",model="auto",task="code"} 1`,
		`citadel_gateway_task_decisions_total{how="image",model="auto",task="vision"} 1`,
		`citadel_gateway_task_decisions_total{how="low-confidence",model="cautious",task="general"} 1`,
		`citadel_gateway_task_decision_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// unsureCode is a request the built-in classifier calls code, but not with certainty.
func unsureCode(t *testing.T) string {
	for _, q := range []string{"what's the difference between TCP and UDP?", "which is faster, Go or Java?", "tabs or spaces?",
		"what is a race condition", "is GraphQL better than REST for a small team?"} {
		task, p := taskclass.Builtin().Classify(taskclass.Input{Ask: q}).Best()
		if task == "code" && p < 1 {
			return q
		}
	}
	t.Fatal("no candidate is code with a score under 1: pick others")
	return ""
}

package ollamaapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"citadel.dev/citadel/internal/ollamaapi"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
)

// TestThroughSimulatedVLLM sends translated requests to the simulated vLLM (which
// validates messages, image parts, tools and response_format as vLLM does) and translates its
// answers back.
func TestThroughSimulatedVLLM(t *testing.T) {
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
	s, err := sim.NewOpenAI(sim.Config{Plan: p, ServedModelNames: []string{"mimo"}, EmbeddingDim: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); cancel(); <-done })

	send := func(t *testing.T, o *ollamaapi.Request) *http.Response {
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
			{"role":"user","content":"what is it?","images":["` + png64 + `"]}],
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
				o := mustParse(t, r.kind, body)
				resp := send(t, o)
				var out bytes.Buffer
				if !stream {
					b, _ := io.ReadAll(resp.Body)
					final, err := ollamaapi.FromOpenAI(o, "mimo:latest", b, time.Second)
					if err != nil {
						t.Fatalf("%v: %s", err, b)
					}
					out.Write(final)
					out.WriteByte('\n')
				} else if err := ollamaapi.StreamFromOpenAI(o, "mimo:latest", resp.Body, &out, nil, time.Now()); err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				var text strings.Builder
				var calls int
				for i, l := range lines {
					m := object(t, []byte(l))
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
				final := object(t, []byte(lines[len(lines)-1]))
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
		o := mustParse(t, "embed", `{"model":"mimo","input":["a","b c"]}`)
		b, _ := io.ReadAll(send(t, o).Body)
		out, err := ollamaapi.FromOpenAI(o, "mimo:latest", b, time.Second)
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

package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes f allocates on the heap (TotalAlloc's growth; the package's
// tests do not run in parallel with this one, so the count is f's, give or take a little).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Reading, parsing and renaming a request body does not multiply it: a 16 MiB prompt costs
// its own buffer and one renamed copy, not a copy per decoding step (before: about 6×).
func TestParsingDoesNotAmplify(t *testing.T) {
	prompt := strings.Repeat("lorem ipsum dolor sit amet ", 16<<20/27)
	for _, tc := range []struct {
		kind, body string
	}{
		{"chat", `{"model":"qwen","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"` + prompt + `"}],"max_tokens":4}`},
		{"completions", `{"model":"qwen","prompt":"` + prompt + `","max_tokens":4}`},
		{"embeddings", `{"model":"qwen","input":"` + prompt + `"}`},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			s := New(Options{})
			n := uint64(len(tc.body))
			var out []byte
			var ri RequestInfo
			got := allocated(func() {
				req := httptest.NewRequest(http.MethodPost, "/v1/x", strings.NewReader(tc.body))
				body, err := s.readBody(httptest.NewRecorder(), req)
				if err != nil {
					t.Fatal(err)
				}
				b, info, err := parseOpenAI(tc.kind, body)
				if err != nil {
					t.Fatal(err)
				}
				ri = info
				out = rename(body, b.Model, "Qwen/Qwen2.5-7B-Instruct")
			})
			t.Logf("%s: %.2f× the body allocated", tc.kind, float64(got)/float64(n))
			// The body (1×) and the renamed copy (1×), with room for the small things.
			if got > 2*n+n/2 {
				t.Errorf("reading, parsing and renaming a %d MiB body allocated %.1f× its size; want at most 2.5×", n>>20, float64(got)/float64(n))
			}
			if ri.PromptTokens < len(prompt)/4 || len(ri.Text) > 2*textSample+16 {
				t.Errorf("prompt tokens %d (want ≥ %d), %d bytes of text", ri.PromptTokens, len(prompt)/4, len(ri.Text))
			}
			var m map[string]any
			if err := json.Unmarshal(out, &m); err != nil || m["model"] != "Qwen/Qwen2.5-7B-Instruct" || !bytes.Contains(out, []byte(`"max_tokens":4`)) && tc.kind != "embeddings" {
				t.Errorf("renamed body: model %v, err %v", m["model"], err)
			}
		})
	}
}

// The Ollama front parses a body in place too, and builds the body for an Ollama upstream
// from views of it (before: 5× to parse, 7× to pass through).
func TestOllamaParsingDoesNotAmplify(t *testing.T) {
	prompt := strings.Repeat("lorem ipsum dolor sit amet ", 16<<20/27)
	body := []byte(`{"model":"qwen","messages":[{"role":"user","content":"` + prompt + `"}],"stream":false,"options":{"temperature":0}}`)
	n := uint64(len(body))
	var o *OllamaRequest
	var err error
	// The parsed request holds the prompt as a string: one copy.
	if got := allocated(func() { o, err = ParseOllama("chat", body) }); err != nil || got > n+n/2 {
		t.Errorf("parsing a %d MiB Ollama body allocated %.1f× its size (err %v); want at most 1.5×", n>>20, float64(got)/float64(n), err)
	}
	var out []byte
	if got := allocated(func() { out, err = o.Passthrough("up:1") }); err != nil || got > n+n/2 {
		t.Errorf("passing a %d MiB Ollama body through allocated %.1f× its size (err %v); want at most 1.5×", n>>20, float64(got)/float64(n), err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil || m["model"] != "up:1" || m["stream"] != false || len(m["messages"].([]any)) != 1 {
		t.Errorf("passthrough body: model %v stream %v, err %v", m["model"], m["stream"], err)
	}
}

// rename keeps every other byte as sent, duplicate keys and escapes included, and falls back
// to re-encoding when it does not know where the name stands.
func TestRenameSplices(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"model":"a","messages":[]}`, `{"model":"up","messages":[]}`},
		{`{ "stream" : true, "model" : "a" , "x":"\u00e9"}`, `{ "stream" : true, "model" : "up" , "x":"\u00e9"}`},
		{`{"model":"a","model":"b"}`, `{"model":"a","model":"up"}`},
		{`{"model":"\u0061"}`, `{"model":"up"}`},
	} {
		body := []byte(tc.body)
		b, _, err := parseOpenAI("completions", body)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(rename(body, b.Model, "up")); got != tc.want {
			t.Errorf("rename(%s) = %s, want %s", tc.body, got, tc.want)
		}
	}
	// A model field that is not a view of this body: re-encoded.
	got := rename([]byte(`{"model":"a","n":1}`), modelField{name: "a", raw: []byte(`"a"`)}, "up")
	var m map[string]any
	if json.Unmarshal(got, &m) != nil || m["model"] != "up" || m["n"] != 1.0 {
		t.Errorf("fallback rename: %s", got)
	}
}

package bench

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/quick"
	"time"
)

func TestChunkParse(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		choices, usage     bool
		text               string
		prompt, completion int
		err                string
	}{
		{`{"choices":[{"delta":{"content":"hi"}}]}`, true, false, "hi", -1, -1, ""},
		{`{"choices":[{"delta":{"role":"assistant"}}],"usage":null}`, true, false, "", -1, -1, ""},
		{`{"choices":[{"delta":{"content":null,"tool_calls":[{"function":{"arguments":"{\"a\":[1,2]}"}}]}}]}`, true, false, "", -1, -1, ""},
		{`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"prompt_tokens_details":{"cached_tokens":0}}}`, false, true, "", 12, 34, ""},
		{`{"choices":null}`, false, false, "", -1, -1, ""},
		{` { "choices" : [ { "index" : 0 , "text" : "a b" } , { "index" : 1 , "text" : "zz" } ] } `, true, false, "a b", -1, -1, ""},
		{`{"id":"[{\"choices\":[1]}]","choices":[]}`, false, false, "", -1, -1, ""},
		{`{"error":{"code":500,"message":"m \u00e9"}}`, false, false, "", -1, -1, "m é"},
		{`{"error":"plain"}`, false, false, "", -1, -1, "plain"},
		{`{"error":{"code":1}}`, false, false, "", -1, -1, `{"code":1}`},
		{`{"object":"error","message":"flat"}`, false, false, "", -1, -1, "flat"},
		{`{"object":"chat.completion.chunk","message":"not an error","choices":[{"delta":{"content":"x"}}]}`, true, false, "x", -1, -1, ""},
		{`{"usage":{"prompt_tokens":1.0e1,"completion_tokens":-0}}`, false, true, "", 1, 0, ""},
	} {
		var in chunkInfo
		if err := in.parse([]byte(tc.in)); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if in.choices != tc.choices || in.usage != tc.usage || string(in.appendText(nil)) != tc.text ||
			in.promptTokens != tc.prompt || in.completionTokens != tc.completion || in.err != tc.err {
			t.Errorf("%s: %+v text %q", tc.in, in, in.appendText(nil))
		}
	}
	for _, bad := range []string{``, `[]`, `{"choices":[{"delta":{"content":"x}}]}`, `{"choices":[`, `{"usage":{"prompt_tokens":x}}`, `{"a" 1}`} {
		var in chunkInfo
		if err := in.parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed: %+v", bad, in)
		}
	}
}

// TestJSONStringsRoundTrip: appendJSONString's output decodes (encoding/json) to the input
// (invalid UTF-8 as U+FFFD), and appendUnescaped decodes encoding/json's output.
func TestJSONStringsRoundTrip(t *testing.T) {
	check := func(s string) bool {
		std, _ := json.Marshal(s) // invalid UTF-8: U+FFFD per byte
		var want string
		json.Unmarshal(std, &want)
		enc := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil || got != want {
			t.Logf("%q → %s → %q (%v)", s, enc, got, err)
			return false
		}
		var sc scanner
		sc.b = std
		raw, esc, ok := sc.str()
		if !ok || string(appendUnescaped(nil, raw, esc)) != want {
			t.Logf("%s unescaped to %q", std, appendUnescaped(nil, raw, esc))
			return false
		}
		return true
	}
	for _, s := range []string{"", "plain", "q\"b\\s/", "\x00\x1f\t\n\r\b\f", "é😀\u2028\u2029", "\xff\xfeok", "<&>"} {
		if !check(s) {
			t.Errorf("%q", s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	if err := quick.Check(check, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
	// Random bytes, including invalid UTF-8 and control characters.
	for range 2000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		if !check(string(b)) {
			t.Fatalf("%q", b)
		}
	}
}

// TestParseAllocs: scanning a chunk allocates nothing.
func TestParseAllocs(t *testing.T) {
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}`)
	var in chunkInfo
	if n := testing.AllocsPerRun(1000, func() { _ = in.parse(chunk) }); n != 0 {
		t.Errorf("%v allocations per chunk", n)
	}
	line := []byte(`{"model":"m","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":" as"},"done":false}`)
	var ol ollamaLine
	if n := testing.AllocsPerRun(1000, func() { _ = ol.parse(line) }); n != 0 {
		t.Errorf("%v allocations per Ollama line", n)
	}
}

// TestTrailingUsage: a large embeddings response's usage is read from its end; other shapes
// fall back to the full parse.
func TestTrailingUsage(t *testing.T) {
	vec := strings.Repeat("0.0123456789,", 800) + "1.0"
	body := `{"id":"embd-1","object":"list","created":1,"model":"m","data":[{"index":0,"object":"embedding","embedding":[` + vec + `]}],"usage":{"prompt_tokens":7,"total_tokens":7,"completion_tokens":0,"prompt_tokens_details":null}}`
	var in chunkInfo
	if !in.parseTrailingUsage([]byte(body)) || !in.usage || in.promptTokens != 7 || in.err != "" {
		t.Errorf("trailing usage: %+v", in)
	}
	for _, b := range []string{
		`{"data":[{"embedding":[` + vec + `],"usage":{"prompt_tokens":1}}],"model":"m"}`, // nested, not last
		`{"error":{"message":"x"},"data":[` + vec + `],"usage":{"prompt_tokens":1}}`,
		`{"usage":{"prompt_tokens":1}}`, // small
	} {
		if in.parseTrailingUsage([]byte(b)) {
			t.Errorf("taken: %.80s", b)
		}
	}
	// Through Do: the full parse handles the error shape.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"error":{"message":"embedding failed"},"data":[`+vec+`],"usage":{"prompt_tokens":1}}`)
	}))
	defer ts.Close()
	out := NewClient(Target{BaseURL: ts.URL, Model: "m", API: APIEmbeddings}, 1).Do(t.Context(), Request{Prompt: "p"}, time.Now())
	if out.Success || out.Error != "embedding failed" {
		t.Errorf("%+v", out)
	}
}

// BenchmarkParseChunk: the client's cost per SSE chunk (scan only).
func BenchmarkParseChunk(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}`)
	var in chunkInfo
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := in.parse(chunk); err != nil || !in.choices {
			b.Fatal(err)
		}
	}
}

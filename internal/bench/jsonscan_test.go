package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/quick"
	"time"
	"unicode/utf8"
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

// ---- differential fuzzing against encoding/json ----

// field is one member of a JSON object, read by encoding/json in document order.
type field struct {
	key string
	val json.RawMessage
}

// members reads the members of a JSON object in order with encoding/json's tokenizer (keys
// unescaped, values raw); ok is false when raw is not an object.
func members(raw []byte) (fs []field, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		fs = append(fs, field{tok.(string), v})
	}
	return fs, true
}

// rawKind is the first byte of a raw value: '{', '[', '"', 'n' (null), 't', 'f', or '0' (a number).
func rawKind(v json.RawMessage) byte {
	switch c := v[0]; c {
	case '{', '[', '"', 'n', 't', 'f':
		return c
	}
	return '0'
}

func jsonString(v json.RawMessage) string {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		panic(err) // a raw string value always decodes
	}
	return s
}

// intValue is the scanner's contract for a token count: null is -1, an integer literal its
// value; exact is false for a number with a fraction or an exponent, or one out of int's
// range, which the scanner reads only approximately (no server sends one). ok is false for
// any other type: the scanner refuses it.
func intValue(v json.RawMessage) (n int, exact, ok bool) {
	switch rawKind(v) {
	case 'n':
		return -1, true, true
	case '0':
		i, err := strconv.Atoi(string(v))
		return i, err == nil, true
	}
	return 0, false, false
}

// errorValue is the scanner's contract for an "error" member: a string, or an object's first
// string "message", else the value's JSON as written; "" becomes "error".
func errorValue(v json.RawMessage) string {
	msg := string(v)
	switch rawKind(v) {
	case '"':
		msg = jsonString(v)
	case '{':
		fs, _ := members(v)
		for _, f := range fs {
			if f.key == "message" && rawKind(f.val) == '"' {
				msg = jsonString(f.val)
				break
			}
		}
	}
	if msg == "" {
		return "error"
	}
	return msg
}

// wantChunk reads an OpenAI chunk with encoding/json by the rules chunkInfo.parse states;
// ok is false when parse must refuse it, exact false when a token count is not comparable.
func wantChunk(b []byte) (want chunkInfo, text string, exact, ok bool) {
	want = chunkInfo{promptTokens: -1, completionTokens: -1}
	exact = true
	top, isObj := members(b)
	if !isObj {
		return want, "", exact, false
	}
	var flatErr bool
	var message string
	for _, f := range top {
		switch f.key {
		case "choices":
			switch rawKind(f.val) {
			case 'n':
				continue
			case '[':
			default:
				return want, "", exact, false
			}
			var elems []json.RawMessage
			if err := json.Unmarshal(f.val, &elems); err != nil {
				panic(err)
			}
			if len(elems) == 0 {
				continue
			}
			want.choices = true
			switch rawKind(elems[0]) {
			case 'n':
				continue
			case '{':
			default:
				return want, "", exact, false
			}
			choice, _ := members(elems[0])
			for _, c := range choice {
				switch c.key {
				case "delta", "message":
					switch rawKind(c.val) {
					case 'n':
						continue
					case '{':
					default:
						return want, "", exact, false
					}
					inner, _ := members(c.val)
					for _, d := range inner {
						if d.key == "content" && rawKind(d.val) == '"' {
							text = jsonString(d.val)
						}
					}
				case "text":
					if rawKind(c.val) == '"' {
						text = jsonString(c.val)
					}
				}
			}
		case "usage":
			switch rawKind(f.val) {
			case 'n':
				continue
			case '{':
			default:
				return want, "", exact, false
			}
			want.usage = true
			u, _ := members(f.val)
			for _, m := range u {
				var dst *int
				switch m.key {
				case "prompt_tokens":
					dst = &want.promptTokens
				case "completion_tokens":
					dst = &want.completionTokens
				default:
					continue
				}
				n, ex, isInt := intValue(m.val)
				if !isInt {
					return want, "", exact, false
				}
				*dst, exact = n, exact && ex
			}
		case "error":
			if rawKind(f.val) != 'n' {
				want.err = errorValue(f.val)
			}
		case "object":
			if rawKind(f.val) == '"' {
				flatErr = jsonString(f.val) == "error"
			}
		case "message":
			if rawKind(f.val) == '"' {
				message = jsonString(f.val)
			}
		}
	}
	if flatErr && want.err == "" {
		want.err = message
		if want.err == "" {
			want.err = "error"
		}
	}
	return want, text, exact, true
}

// wantOllama reads an Ollama NDJSON line with encoding/json by the rules ollamaLine.parse
// states.
func wantOllama(b []byte) (want ollamaLine, content string, exact, ok bool) {
	want = ollamaLine{evalCount: -1, promptEvalCount: -1}
	exact = true
	top, isObj := members(b)
	if !isObj {
		return want, "", exact, false
	}
	for _, f := range top {
		switch f.key {
		case "message":
			switch rawKind(f.val) {
			case 'n':
				continue
			case '{':
			default:
				return want, "", exact, false
			}
			msg, _ := members(f.val)
			for _, m := range msg {
				if (m.key == "content" || m.key == "thinking") && rawKind(m.val) == '"' {
					s := jsonString(m.val)
					want.tokens = want.tokens || s != ""
					if m.key == "content" {
						content = s
					}
				}
			}
		case "response":
			if rawKind(f.val) == '"' {
				content = jsonString(f.val)
				want.tokens = want.tokens || content != ""
			}
		case "done":
			want.done = rawKind(f.val) == 't'
		case "eval_count", "prompt_eval_count":
			n, ex, isInt := intValue(f.val)
			if !isInt {
				return want, "", exact, false
			}
			if f.key == "eval_count" {
				want.evalCount = n
			} else {
				want.promptEvalCount = n
			}
			exact = exact && ex
		case "error":
			if rawKind(f.val) != 'n' {
				want.err = errorValue(f.val)
			}
		}
	}
	return want, content, exact, true
}

// fuzzable reports whether b is in the scanner's contract: valid JSON (what encoding/json
// accepts) in valid UTF-8. The scanner passes invalid UTF-8 through where encoding/json
// substitutes U+FFFD, and it is not a validator: on malformed input it may return anything
// but must not panic or run past the input.
func fuzzable(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }

var scannerSeeds = []string{
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null}],"usage":null}`,
	`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"prompt_tokens_details":{"cached_tokens":0}}}`,
	`{"choices":[{"index":0,"text":"a \"b\" \u00e9 \ud83d\ude00 \ud800"},{"text":"zz"}]}`,
	`{"error":{"code":500,"message":"m \u00e9"}}`,
	`{"error":{"code":1, "type" : "x"}}`,
	`{"object":"error","message":"flat"}`,
	`{"obj\u0065ct":"\u0065rror","m\u0065ssage":"escaped keys"}`,
	`{"choices":[{"message":{"content":"full"}}],"usage":{"prompt_tokens":1.5e1,"completion_tokens":-0}}`,
	`{"choices":"no"}`,
	`{"usage":{"prompt_tokens":"12"}}`,
	`{"model":"m","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":" as","thinking":""},"done":false}`,
	`{"model":"m","done":true,"eval_count":128,"prompt_eval_count":null,"response":"r"}`,
	`{"error":"model \"x\" not found"}`,
	` [1,2] `,
}

// FuzzChunkInfoMatchesEncodingJSON: for every valid JSON document, chunkInfo.parse reads what
// encoding/json reads, and accepts exactly the documents whose members have the types it
// needs.
func FuzzChunkInfoMatchesEncodingJSON(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got chunkInfo
		err := got.parse(b) // any input: no panic, no read past the end
		if !fuzzable(b) {
			return
		}
		want, text, exact, ok := wantChunk(b)
		if ok != (err == nil) {
			t.Fatalf("%s: parse error %v, want accepted=%v", b, err, ok)
		}
		if !ok {
			return
		}
		if !exact {
			got.promptTokens, got.completionTokens = want.promptTokens, want.completionTokens
		}
		gotText := string(got.appendText(nil))
		got.text, got.textEsc = nil, false
		if got.choices != want.choices || got.usage != want.usage || got.promptTokens != want.promptTokens ||
			got.completionTokens != want.completionTokens || got.err != want.err || gotText != text {
			t.Fatalf("%s:\n got %+v text %q\nwant %+v text %q", b, got, gotText, want, text)
		}
	})
}

// FuzzOllamaLineMatchesEncodingJSON: the same for ollamaLine.parse.
func FuzzOllamaLineMatchesEncodingJSON(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got ollamaLine
		err := got.parse(b)
		if !fuzzable(b) {
			return
		}
		want, content, exact, ok := wantOllama(b)
		if ok != (err == nil) {
			t.Fatalf("%s: parse error %v, want accepted=%v", b, err, ok)
		}
		if !ok {
			return
		}
		if !exact {
			got.evalCount, got.promptEvalCount = want.evalCount, want.promptEvalCount
		}
		gotContent := string(appendUnescaped(nil, got.content, got.contentEsc))
		got.content, got.contentEsc = nil, false
		if got.tokens != want.tokens || got.done != want.done || got.evalCount != want.evalCount ||
			got.promptEvalCount != want.promptEvalCount || got.err != want.err || gotContent != content {
			t.Fatalf("%s:\n got %+v content %q\nwant %+v content %q", b, got, gotContent, want, content)
		}
	})
}

// FuzzTrailingUsage: when parseTrailingUsage takes a response's last "usage" member, the full
// parse reads the same usage.
func FuzzTrailingUsage(f *testing.F) {
	pad := `[` + strings.Repeat(`0.125,`, 700) + `1]`
	f.Add(`"embd-1"`, pad, `{"prompt_tokens":7,"total_tokens":7}`, `usage`)
	f.Add(`"x"`, pad, `{"prompt_tokens":7}`, `x\"usage`) // a key that ends in an escaped quote and usage
	f.Fuzz(func(t *testing.T, id, data, usage, key string) {
		b := []byte(`{"id":` + id + `,"data":` + data + `,"` + key + `":` + usage + `}`)
		var tail chunkInfo
		if !tail.parseTrailingUsage(b) || !fuzzable(b) {
			return
		}
		var full chunkInfo
		if err := full.parse(b); err != nil {
			t.Fatalf("trailing usage taken from %.200s, which parse refuses: %v", b, err)
		}
		if tail.usage != full.usage || tail.promptTokens != full.promptTokens || tail.completionTokens != full.completionTokens {
			t.Fatalf("%.200s…%s:\ntrailing %+v\n    full %+v", b, b[max(0, len(b)-100):], tail, full)
		}
	})
}

// BenchmarkParseChunkEncodingJSON: the same chunk decoded by encoding/json into a struct of
// only the fields the benchmark reads: the alternative the scanner is measured against
// (docs/design/bench-json-scanner.md).
func BenchmarkParseChunkEncodingJSON(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}`)
	type stdChunk struct {
		Choices []struct {
			Delta *struct {
				Content *string `json:"content"`
			} `json:"delta"`
			Text *string `json:"text"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     *int `json:"prompt_tokens"`
			CompletionTokens *int `json:"completion_tokens"`
		} `json:"usage"`
		Error   json.RawMessage `json:"error"`
		Object  string          `json:"object"`
		Message string          `json:"message"`
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		var c stdChunk
		if err := json.Unmarshal(chunk, &c); err != nil || len(c.Choices) == 0 {
			b.Fatal(err)
		}
	}
}

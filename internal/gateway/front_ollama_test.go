package gateway

// The Ollama front's own part: what routing reads from a request (Info). The protocol's tests
// are internal/ollamaapi's; the HTTP's are in gateway_test.go, edges_test.go and node_test.go.

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// FuzzOllamaInfo: what parses gives an Info within its bounds (ollamaapi's FuzzParse covers
// the parsing and the translation).
func FuzzOllamaInfo(f *testing.F) {
	for i, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","images":["` + ollamaPNG64 + `"]}]}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"r"}]}`,
		`{"model":"m","prompt":"p","system":"s","images":["AAAA"]}`,
		`{"model":"m","input":["a","b"]}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	kinds := []string{OllamaChat, "generate", "embed"}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		o, err := ParseOllama(kinds[int(k)%len(kinds)], body)
		if err != nil {
			return
		}
		ri := o.Info()
		if len(ri.Text) > 2*ollamaTextSample+1 || ri.PromptTokens < 0 || ri.Images < 0 || ri.Model != o.Model {
			t.Fatalf("Info out of bounds: %d bytes of text, %d tokens, %d images, model %q", len(ri.Text), ri.PromptTokens, ri.Images, ri.Model)
		}
	})
}

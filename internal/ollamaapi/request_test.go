package ollamaapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/ollamaapi"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, kind, body string
		status           int
		want             string // the message, or its start when it ends with "…"
	}{
		{"empty body", "chat", "", 400, "missing request body"},
		{"blank body", "generate", " \n", 400, "missing request body"},
		{"truncated JSON", "chat", `{"model":"m","messages":[`, 400, "invalid JSON: unexpected EOF"},
		{"malformed JSON", "chat", `{"model":"m",}`, 400, "invalid JSON: invalid character '}' looking for beginning of object key string"},
		{"not an object", "generate", `[1]`, 400, "json: cannot unmarshal array into Go value of type api.GenerateRequest"},
		{"wrong field type", "chat", `{"model":"m","stream":"yes"}`, 400, "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool"},
		{"content as parts", "chat", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`, 400,
			"json: cannot unmarshal array into Go struct field Message.messages.content of type string"},
		{"no model", "chat", `{"messages":[{"role":"user","content":"x"}]}`, 400, "model is required"},
		{"no model (generate)", "generate", `{"prompt":"x"}`, 400, "model is required"},
		{"no model (embed)", "embed", `{"input":"x"}`, 400, "model is required"},
		{"invalid image base64 (chat)", "chat", `{"model":"m","messages":[{"role":"user","content":"x","images":["not base64!"]}]}`, 400,
			"invalid image data: illegal base64 data at input byte 3: images must be base64-encoded bytes (no data: URL prefix)"},
		{"data URL image (generate)", "generate", `{"model":"m","prompt":"x","images":["data:image/png;base64,` + png64 + `"]}`, 400,
			"invalid image data: illegal base64 data at input byte 4…"},
		{"empty image", "generate", `{"model":"m","prompt":"x","images":[""]}`, 400, "invalid image data: image 0 is empty"},
		{"image not a string", "chat", `{"model":"m","messages":[{"role":"user","content":"x","images":[1]}]}`, 400,
			"json: cannot unmarshal number into Go struct field Message.messages.images of type api.ImageData"},
		{"bad format", "chat", `{"model":"m","format":"xml"}`, 400, `invalid format: "\"xml\""; expected "json" or a valid JSON Schema object`},
		{"bad think", "chat", `{"model":"m","think":"max"}`, 400, `invalid think value: "max" (must be "high", "medium", "low", true, or false)`},
		{"bad keep_alive", "chat", `{"model":"m","keep_alive":"soon"}`, 400, `invalid keep_alive: time: invalid duration "soon"…`},
		{"keep_alive object", "embed", `{"model":"m","keep_alive":{}}`, 400, "invalid keep_alive…"},
		{"float option type", "chat", `{"model":"m","options":{"temperature":"hot"}}`, 400, `option "temperature" must be of type float32`},
		{"int option type", "generate", `{"model":"m","options":{"num_predict":"10"}}`, 400, `option "num_predict" must be of type integer`},
		{"stop option type", "generate", `{"model":"m","options":{"stop":[1]}}`, 400, `option "stop" must be of an array of strings`},
		{"tools not a list", "chat", `{"model":"m","tools":{"type":"function"}}`, 400, "invalid tools…"},
		{"embed input number", "embed", `{"model":"m","input":5}`, 400, "invalid input type"},
		{"embed input mixed", "embed", `{"model":"m","input":["a",1]}`, 400, "invalid input type"},
		{"raw with system", "generate", `{"model":"m","prompt":"x","raw":true,"system":"s"}`, 400, "raw mode does not support template, system, or context"},
		{"unknown kind", "pull", `{"model":"m"}`, 404, "unknown Ollama endpoint /api/pull…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ollamaapi.Parse(tt.kind, []byte(tt.body))
			var oe *ollamaapi.Error
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v (%T), want an *ollamaapi.Error", err, err)
			}
			if oe.Status != tt.status {
				t.Errorf("status = %d, want %d", oe.Status, tt.status)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(oe.Message, prefix) {
					t.Errorf("message = %q, want it to start with %q", oe.Message, prefix)
				}
			} else if oe.Message != tt.want {
				t.Errorf("message = %q, want %q", oe.Message, tt.want)
			}
			if got, want := string(oe.JSON()), `{"error":`+string(must(json.Marshal(oe.Message)))+`}`; got != want {
				t.Errorf("JSON() = %s, want %s", got, want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	o := mustParse(t, "chat", `{"Model":"m","messages":[],"keep_alive":-1} trailing bytes are ignored, as by gin`)
	if o.Model != "m" || !o.Stream || string(o.KeepAlive) != "-1" {
		t.Errorf("got model %q stream %v keep_alive %s; want m, true, -1 (field names match case-insensitively)", o.Model, o.Stream, o.KeepAlive)
	}
	if o := mustParse(t, "embed", `{"model":"m","input":"x"}`); o.Stream {
		t.Error("embed: Stream = true, want false (embeddings never stream)")
	}
	for _, ka := range []string{`"5m"`, `"300"`, `300`, `0`, `"-1s"`, `null`} {
		mustParse(t, "generate", `{"model":"m","keep_alive":`+ka+`}`)
	}
	for _, f := range []string{`""`, `null`, `"json"`, `{}`} {
		mustParse(t, "chat", `{"model":"m","format":`+f+`}`)
	}
}

// FuzzParse: any body parses or is a 400 *Error; what parses builds valid upstream bodies, and
// the passthrough body parses back with the new model.
func FuzzParse(f *testing.F) {
	seeds := []string{
		`{"model":"m","messages":[{"role":"user","content":"hi","images":["` + png64 + `"]}],"options":{"temperature":0.5,"stop":["x"]}}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}],"format":{"type":"object"},"think":"low"}`,
		`{"model":"m","prompt":"p","system":"s","raw":false,"images":["AAAA"],"keep_alive":"5m","format":"json"}`,
		`{"model":"m","prompt":"p","raw":true,"suffix":"s","options":{"num_predict":3,"seed":1}}`,
		`{"model":"m","input":["a","b"],"dimensions":3}`,
		`{"model":"m","input":"a","keep_alive":0}`,
		`{"model":"m",}`, ``, `null`, `{"model":"m","messages":[{"images":["x"]}]}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	kinds := []string{ollamaapi.Chat, ollamaapi.Generate, ollamaapi.Embed}
	f.Fuzz(func(t *testing.T, k uint8, body []byte) {
		kind := kinds[int(k)%len(kinds)]
		o, err := ollamaapi.Parse(kind, body)
		if err != nil {
			var oe *ollamaapi.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || oe.Message == "" {
				t.Fatalf("error %v (%T) is not a 400 *ollamaapi.Error", err, err)
			}
			return
		}
		if o.Model == "" || o.Kind != kind {
			t.Fatalf("parsed without a model or with kind %q", o.Kind)
		}
		if n := o.PromptTokens(); n < 0 {
			t.Fatalf("PromptTokens = %d", n)
		}
		path, up, err := o.ToOpenAI("up")
		if err != nil || !json.Valid(up) || !strings.HasPrefix(path, "/v1/") {
			t.Fatalf("ToOpenAI: %s %s %v", path, up, err)
		}
		var upm struct{ Model string }
		if json.Unmarshal(up, &upm) != nil || upm.Model != "up" {
			t.Fatalf("ToOpenAI body %s does not name the upstream model", up)
		}
		pt, err := o.Passthrough("up:1")
		if err != nil {
			t.Fatalf("Passthrough: %v", err)
		}
		again, err := ollamaapi.Parse(kind, pt)
		if err != nil || again.Model != "up:1" {
			t.Fatalf("Passthrough body %s does not parse back with the new model: %v", pt, err)
		}
		_, _ = o.LocalResponse("m")
	})
}

func TestPromptTokens(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		kind, body string
		want       int
	}{
		// 1 token per 4 bytes of each text, rounded up; 1,024 per image.
		{"chat", `{"model":"m","messages":[{"role":"system","content":"You are a coder."},{"role":"user","content":"def fib(n):","images":["` + png64 + `"]},{"role":"assistant","content":""}]}`, 4 + 3 + 1024},
		{"generate", `{"model":"m","system":"s","prompt":"hello","suffix":"world!!!","images":["` + png64 + `","` + png64 + `"]}`, 1 + 2 + 2 + 2048},
		{"embed", `{"model":"m","input":["one","two",""]}`, 2},
		{"embed", `{"model":"m","input":"hello"}`, 2},
	} {
		if got := mustParse(t, tt.kind, tt.body).PromptTokens(); got != tt.want {
			t.Errorf("%s %s: PromptTokens = %d, want %d", tt.kind, tt.body, got, tt.want)
		}
	}
}

package ollamaapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"citadel.dev/citadel/internal/ollamaapi"
)

// pngHead is the start of a PNG (signature and IHDR), enough to sniff as image/png.
var pngHead = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6")

var png64 = base64.StdEncoding.EncodeToString(pngHead)

func mustParse(t *testing.T, kind, body string) *ollamaapi.Request {
	t.Helper()
	o, err := ollamaapi.Parse(kind, []byte(body))
	if err != nil {
		t.Fatalf("ollamaapi.Parse(%s, %s): %v", kind, body, err)
	}
	return o
}

// decodeJSON decodes b into a generic value, for cmp.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

// object decodes one Ollama object, checks created_at and removes it; durations are
// checked by the callers.
func object(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, ok := decodeJSON(t, b).(map[string]any)
	if !ok {
		t.Fatalf("%s is not an object", b)
	}
	if c, ok := m["created_at"]; ok {
		ts, err := time.Parse(time.RFC3339Nano, str(c))
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
			t.Errorf("created_at = %v (%v), want a recent UTC RFC 3339 time", c, err)
		}
		delete(m, "created_at")
	}
	return m
}

func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

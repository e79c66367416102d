package gateway

import (
	"errors"
	"testing"
)

// FuzzParseOpenAI: any body gives a RequestInfo or a client error (never a panic, never a
// server error).
func FuzzParseOpenAI(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`,
		`{"model":"m","prompt":["a","b"]}`, `{"model":"m","input":"x"}`, `{"model":`, `[]`, `null`, `{"model":"m","messages":"x"}`,
	} {
		f.Add("chat", []byte(s))
		f.Add("completions", []byte(s))
		f.Add("embeddings", []byte(s))
	}
	f.Fuzz(func(t *testing.T, kind string, body []byte) {
		_, ri, err := parseOpenAI(kind, body)
		var ce *clientError
		if err != nil && (!errors.As(err, &ce) || ce.status >= 500) {
			t.Fatalf("error %v is not a client error", err)
		}
		if err == nil && ri.Model == "" {
			t.Fatal("parsed without a model")
		}
	})
}

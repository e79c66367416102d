package store

import (
	"encoding/json"
	"strconv"
	"testing"
)

// BenchmarkApply measures one durable update (a spec change: new generation, new resourceVersion).
func BenchmarkApply(b *testing.B) {
	s := openStore(b, "", Options{})
	ctx := b.Context()
	obj := withLabels(service("prod", "llm", ""), map[string]string{"app": "llm"})
	i := 0
	for b.Loop() {
		i++
		obj.Spec = json.RawMessage(`{"replicas":` + strconv.Itoa(i) + `,"model":"llama-3-8b"}`)
		if _, err := s.Apply(ctx, []Object{obj}, ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet measures a point read among 1000 objects.
func BenchmarkGet(b *testing.B) {
	s := openStore(b, "", Options{})
	ctx := b.Context()
	objs := make([]Object, 1000)
	for i := range objs {
		objs[i] = service("prod", "svc-"+strconv.Itoa(i), `{"replicas":1,"model":"llama-3-8b"}`)
	}
	apply(b, s, objs...)
	for b.Loop() {
		if _, err := s.Get(ctx, "InferenceService", "prod", "svc-500"); err != nil {
			b.Fatal(err)
		}
	}
}

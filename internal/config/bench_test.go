package config

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	v1 "citadel.dev/citadel/api/v1"
)

// The strict decoder against the conventional Kubernetes path on the same
// input (YAML → generic value → JSON → encoding/json into the type, which
// is what sigs.k8s.io/yaml does), measured in the same run:
//
//	go test -run='^$' -bench=Decode -benchmem ./internal/config/
//
// The ratio of the two is the price of line numbers, every-error-at-once
// reporting, defaults and validation.
func benchInput(b *testing.B) []byte {
	data, err := os.ReadFile("testdata/good/ome/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkDecodeStrict(b *testing.B) {
	data := benchInput(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		items, errs := Decode(bytes.NewReader(data), "rt.yaml")
		if len(items) != 1 || errs.Err() != nil {
			b.Fatal(errs)
		}
	}
}

func BenchmarkDecodeBaselineYAMLJSON(b *testing.B) {
	data := benchInput(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var generic any
		if err := yaml.Unmarshal(data, &generic); err != nil {
			b.Fatal(err)
		}
		j, err := json.Marshal(generic)
		if err != nil {
			b.Fatal(err)
		}
		var rt v1.ClusterServingRuntime
		if err := json.Unmarshal(j, &rt); err != nil {
			b.Fatal(err)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCRDsAreCurrent fails while charts/citadel/crds differs from what crdgen writes from
// api/v1: run go generate ./internal/crdgen after changing a type.
func TestCRDsAreCurrent(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", crdDir)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s/%s is not what api/v1 gives (%v): run go generate ./internal/crdgen", crdDir, name, err)
		}
	}
	on, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(on) != len(files) {
		t.Errorf("%s has %d files, crdgen writes %d: run go generate ./internal/crdgen", crdDir, len(on), len(files))
	}
}

// TestCRDsFitClientSideApply: kubectl apply (client-side, as docs/kubernetes.md says)
// copies the whole object into an annotation of at most 256 KiB.
func TestCRDsFitClientSideApply(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if len(j) > 256<<10-4096 {
			t.Errorf("%s is %d bytes as JSON: kubectl apply would refuse its last-applied-configuration annotation (256 KiB)", name, len(j))
		}
	}
}

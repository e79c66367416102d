package examples

import (
	"io/fs"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
)

// load decodes every file of fsys as citadel apply would, failing on any
// problem, warnings included: shipped files must apply cleanly.
func load(t *testing.T, fsys fs.FS) []config.Item {
	t.Helper()
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no files: %v", err)
	}
	var items []config.Item
	for _, n := range names {
		f, err := fsys.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		its, errs := config.Decode(f, n)
		f.Close()
		if len(errs) > 0 {
			t.Errorf("%s:\n%v", n, errs)
		}
		items = append(items, its...)
	}
	if errs := config.Duplicates(items); len(errs) > 0 {
		t.Error(errs)
	}
	return items
}

func keys(items []config.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key().String())
	}
	sort.Strings(out)
	return out
}

func TestRuntimesLoad(t *testing.T) {
	items := load(t, Runtimes())
	want := []string{`ClusterServingRuntime "llamacpp"`, `ClusterServingRuntime "ollama"`, `ClusterServingRuntime "sglang"`, `ClusterServingRuntime "vllm"`}
	if diff := cmp.Diff(want, keys(items)); diff != "" {
		t.Errorf("runtimes (-want +got):\n%s", diff)
	}
	for _, it := range items {
		r := it.Object.(*v1.ClusterServingRuntime)
		if r.Spec.Engine == nil || r.Spec.Engine.Name != r.Name {
			t.Errorf("%s: engine %+v, want engine: {name: %s} (the adapter builds the command line)", r.Name, r.Spec.Engine, r.Name)
		}
		if len(r.Annotations) > 0 {
			t.Errorf("%s: the file carries annotations %v; citadel serve adds the built-in ones", r.Name, r.Annotations)
		}
	}
}

func TestSeed001Loads(t *testing.T) {
	items := load(t, Seed001())
	if len(items) == 0 {
		t.Fatal("no objects")
	}
	if errs := config.Check(items, nil); errs.Err() != nil {
		t.Errorf("Check: %v", errs)
	}
}

package apidoc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fields walks kind and returns its fields by path.
func fields(t *testing.T, p *Package, kind string) map[string]*Field {
	t.Helper()
	out := map[string]*Field{}
	if err := p.Walk(kind, func(path string, f *Field) bool { out[path] = f; return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAPI(t *testing.T) {
	p, err := LoadAPI()
	if err != nil {
		t.Fatal(err)
	}
	model := fields(t, p, "ClusterBaseModel")
	isvc := fields(t, p, "InferenceService")
	route := fields(t, p, "Route")
	for _, c := range []struct {
		name     string
		f        *Field
		yaml     string
		required string // "" : optional
		enum     []string
		doc      string
	}{
		{"apiVersion, inline from TypeMeta", model["apiVersion"], "string", "tag", nil, ""},
		{"metadata.labels", model["metadata.labels"], "map[string]string", "", nil, ""},
		{"storage, required by Validate", model["spec.storage"], "StorageSpec", "validation", nil, ""},
		{"storageUri, documented", model["spec.storage.storageUri"], "string", "validation", nil, "hf://org/repo"},
		{"downloadPolicy, oneOf", model["spec.storage.downloadPolicy"], "string", "", []string{"AlwaysDownload", "ReuseIfExists"}, ""},
		{"modelFormat.operator, oneOf a list variable", model["spec.modelFormat.operator"], "string", "", []string{"Equal", "GreaterThan", "GreaterThanOrEqual"}, ""},
		{"conditions status, typed constants", model["status.conditions[].status"], "string", "tag", []string{"True", "False", "Unknown"}, ""},
		{"model.name, required by Validate", isvc["spec.model.name"], "string", "tag", nil, ""},
		{"acceleratorSelector.policy", isvc["spec.acceleratorSelector.policy"], "string", "", []string{"BestFit", "Cheapest", "MostCapable", "FirstAvailable"}, ""},
		{"a probe port", isvc["spec.engine.containers[].readinessProbe.httpGet.port"], "integer or string", "tag", nil, ""},
		{"a url target's engine: EngineNames but sim", route["spec.models[].targets[].engine"], "string", "", []string{"vllm", "sglang", "llamacpp", "ollama"}, "engine"},
		{"task, from a constant list", route["spec.models[].tasks[].task"], "string", "tag", []string{"vision", "code", "reasoning", "general", "embedding"}, ""},
	} {
		if c.f == nil {
			t.Errorf("%s: no such field", c.name)
			continue
		}
		if c.f.YAML != c.yaml {
			t.Errorf("%s: YAML type %q, want %q", c.name, c.f.YAML, c.yaml)
		}
		if c.f.RequiredBy != c.required || c.f.Required != (c.required != "") {
			t.Errorf("%s: required %v by %q, want by %q", c.name, c.f.Required, c.f.RequiredBy, c.required)
		}
		if !slices.Equal(c.f.Enum, c.enum) {
			t.Errorf("%s: enum %q, want %q", c.name, c.f.Enum, c.enum)
		}
		if !strings.Contains(c.f.Doc, c.doc) {
			t.Errorf("%s: doc %q lacks %q", c.name, c.f.Doc, c.doc)
		}
	}
	if f := model["apiVersion"]; f != nil && (!f.Inline || f.InlineFrom != "TypeMeta") {
		t.Errorf("apiVersion: inline %v from %q, want from TypeMeta", f.Inline, f.InlineFrom)
	}
	if _, ok := route["spec.models[].targets"]; !ok {
		t.Error("Route: no spec.models[].targets")
	}
	if err := p.Walk("NoSuchKind", func(string, *Field) bool { return true }); err == nil {
		t.Error("Walk of an unknown type: no error")
	}
	if ty, err := p.Kind("APIKey"); err != nil || !strings.HasPrefix(ty.Summary(), "APIKey (citadel.dev/v1alpha1, cluster-scoped) is a client key") {
		t.Errorf("Kind(APIKey) = %v, %v", ty, err)
	}
}

// TestLoadRejectsUnknownScalarStruct: a struct with its own UnmarshalJSON may be a scalar in
// YAML; Load refuses to guess.
func TestLoadRejectsUnknownScalarStruct(t *testing.T) {
	dir := t.TempDir()
	src := "package v1\n\n// Size is 7B or 500M.\ntype Size struct{ n int64 }\n\nfunc (s *Size) UnmarshalJSON(b []byte) error { return nil }\n"
	if err := os.WriteFile(filepath.Join(dir, "size.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "Size") || !strings.Contains(err.Error(), "scalarStructs") {
		t.Fatalf("Load = %v, want an error naming Size and scalarStructs", err)
	}
}

func TestTags(t *testing.T) {
	dir := t.TempDir()
	src := `package v1

// Mode is how it runs.
type Mode string

// Modes.
const (
	ModeFast Mode = "fast"
	ModeSlow Mode = "slow"
)

// Thing is a thing.
type Thing struct {
	// Name names it.
	Name  string            ` + "`json:\"name\"`" + `
	Mode  *Mode             ` + "`json:\"mode,omitempty\"`" + `
	Parts []Part            ` + "`json:\"parts,omitzero\"`" + `
	Extra map[string][]Part ` + "`json:\"extra,omitempty\"`" + `
	Skip  string            ` + "`json:\"-\"`" + `
	hidden string
}

// Part is a part.
type Part struct {
	Size int64 ` + "`json:\"size\"`" + ` // Size in bytes.
}
`
	if err := os.WriteFile(filepath.Join(dir, "thing.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = p.Walk("Thing", func(path string, f *Field) bool {
		got = append(got, strings.Join([]string{path, f.YAML, f.RequiredBy, strings.Join(f.Enum, "|"), f.Doc}, ";"))
		return true
	})
	want := []string{
		"name;string;tag;;Name names it.",
		"mode;string;;fast|slow;",
		"parts;[]Part;;;",
		"parts[].size;integer;tag;;Size in bytes.",
		"extra;map[string][]Part;;;",
		"extra.*[].size;integer;tag;;Size in bytes.",
	}
	if !slices.Equal(got, want) {
		t.Errorf("fields:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
)

// store is a Lookup over a fixed set of objects.
type store struct {
	objects map[ObjectKey]bool
	routes  []*v1.Route
}

func (s store) Exists(kind, namespace, name string) bool {
	return s.objects[ObjectKey{kind, namespace, name}]
}
func (s store) Routes() []*v1.Route { return s.routes }

func mustDecode(t *testing.T, name, doc string) []Item {
	t.Helper()
	items, errs := Decode(strings.NewReader(doc), name)
	if len(errs) != 0 {
		t.Fatalf("Decode(%s): %v", name, errs)
	}
	return items
}

const isvcYAML = `apiVersion: ome.io/v1beta1
kind: InferenceService
metadata:
  name: mimo-vl-7b-rl
  namespace: lab
spec:
  model:
    name: mimo-vl-7b-rl
  runtime:
    name: srt-mimo-vl-7b-rl
`

const routeYAML = `apiVersion: citadel.dev/v1alpha1
kind: Route
metadata:
  name: lab
  namespace: lab
spec:
  models:
    - name: mimo-vl
      aliases: [vision]
      targets:
        - service: mimo-vl-7b-rl
`

func storedRoute(ns, name string, public ...string) *v1.Route {
	r := &v1.Route{ObjectMeta: v1.ObjectMeta{Name: name, Namespace: ns}}
	r.Default()
	for _, p := range public {
		r.Spec.Models = append(r.Spec.Models, v1.RouteModel{Name: p, Targets: []v1.RouteTarget{{URL: "http://127.0.0.1:11434"}}})
	}
	return r
}

func TestCheck(t *testing.T) {
	t.Parallel()
	served := map[ObjectKey]bool{
		{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"}:          true,
		{v1.KindClusterServingRuntime, "", "srt-mimo-vl-7b-rl"}: true,
		{v1.KindInferenceService, "lab", "mimo-vl-7b-rl"}:       true,
	}
	tests := []struct {
		name   string
		docs   []string
		lookup Lookup
		want   []problem // Message and Fix are substrings
	}{
		{name: "references found in the store", docs: []string{isvcYAML, routeYAML}, lookup: store{objects: served}},
		{name: "a namespaced model in the service's namespace counts", docs: []string{isvcYAML}, lookup: store{objects: map[ObjectKey]bool{
			{v1.KindBaseModel, "lab", "mimo-vl-7b-rl"}:          true,
			{v1.KindServingRuntime, "lab", "srt-mimo-vl-7b-rl"}: true,
		}}},
		{name: "a namespaced model in another namespace does not", docs: []string{isvcYAML}, lookup: store{objects: map[ObjectKey]bool{
			{v1.KindBaseModel, "default", "mimo-vl-7b-rl"}:      true,
			{v1.KindServingRuntime, "lab", "srt-mimo-vl-7b-rl"}: true,
		}}, want: []problem{{1, 8, "spec.model.name", `model "mimo-vl-7b-rl" not found`, ""}}},
		{name: "nil lookup", docs: []string{routeYAML}, want: []problem{{1, 11, "spec.models[0].targets[0].service", `service "mimo-vl-7b-rl" not found`, "citadel get isvc -A"}}},
		{name: "name claimed by a stored route", docs: []string{routeYAML}, lookup: store{objects: served, routes: []*v1.Route{storedRoute("lab", "ollama", "llava", "vision")}},
			want: []problem{{1, 9, "spec.models[0].aliases[0]", `public model name "vision" is already exposed by Route "lab/ollama" (on the server)`, "each public name belongs to one route"}}},
		{name: "a stored route being replaced does not conflict", docs: []string{routeYAML}, lookup: store{objects: served, routes: []*v1.Route{storedRoute("lab", "lab", "mimo-vl", "vision")}}},
		{name: "the same name in another namespace conflicts", docs: []string{routeYAML}, lookup: store{objects: served, routes: []*v1.Route{storedRoute("other", "lab", "mimo-vl")}},
			want: []problem{{1, 8, "spec.models[0].name", `public model name "mimo-vl" is already exposed by Route "other/lab"`, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var items []Item
			for _, d := range tt.docs {
				items = append(items, mustDecode(t, "in.yaml", d)...)
			}
			got := Check(items, tt.lookup)
			if diff := cmp.Diff(tt.want, match(got, tt.want)); diff != "" {
				t.Errorf("Check (-want +got):\n%s\n%v", diff, got)
			}
		})
	}
}

func TestCheckSecretWarning(t *testing.T) {
	t.Parallel()
	model := `apiVersion: ome.io/v1beta1
kind: BaseModel
metadata:
  name: qwen
  namespace: lab
spec:
  storage:
    storageUri: hf://Qwen/Qwen2.5-7B-Instruct
    key: hf-token
`
	items := mustDecode(t, "m.yaml", model)
	got := Check(items, nothing{})
	if got.Err() != nil || len(got.Warnings()) != 1 {
		t.Fatalf("want one warning and no error, got:\n%v", got)
	}
	want := `m.yaml:9:10: warning: document 1 (BaseModel "qwen"): spec.storage.key: secret "hf-token" not found (looked for Secret "lab/hf-token"); the object is accepted and will wait for it (fix: create it: citadel secret create hf-token -n lab --from-literal token=hf_...)`
	if diff := cmp.Diff(want, got.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The secret in the same apply satisfies it; one in another namespace does not.
	for ns, want := range map[string]int{"lab": 0, "default": 1} {
		secret := mustDecode(t, "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: hf-token, namespace: "+ns+"}\nstringData: {token: hf_x}\n")
		if got := Check(append(secret, items...), nil); len(got) != want {
			t.Errorf("secret in %q: got %d problems, want %d:\n%v", ns, len(got), want, got)
		}
	}
}

// TestLocate fills the position of problems the server reports (it knows
// the file, document and path, not the text).
func TestLocate(t *testing.T) {
	t.Parallel()
	items := mustDecode(t, "isvc.yaml", isvcYAML)
	errs := Errors{{File: "isvc.yaml", Document: 1, Kind: v1.KindInferenceService, Name: "mimo-vl-7b-rl", Path: "spec.runtime.name", Message: "not found"}}
	Locate(items, errs)
	if errs[0].Line != 10 || errs[0].Column != 11 {
		t.Errorf("Locate: got %d:%d, want 10:11", errs[0].Line, errs[0].Column)
	}
}

package resource

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
)

func decode(t *testing.T, raw string) v1.Object {
	t.Helper()
	var tm v1.TypeMeta
	if err := json.Unmarshal([]byte(raw), &tm); err != nil {
		t.Fatal(err)
	}
	info, ok := v1.KindByName(tm.Kind)
	if !ok {
		t.Fatalf("kind %q", tm.Kind)
	}
	o := info.New()
	if err := json.Unmarshal([]byte(raw), o); err != nil {
		t.Fatal(err)
	}
	return o
}

func toStore(t *testing.T, o v1.Object) store.Object {
	t.Helper()
	so, err := ToStore(o)
	if err != nil {
		t.Fatal(err)
	}
	return so
}

// The same InferenceService written three ways: keys in another order, other whitespace,
// with server-set metadata and a status, as `citadel get -o json` prints it.
const (
	isvcA = `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"chat","namespace":"prod"},
	  "spec":{"model":{"name":"qwen"},"engine":{"minReplicas":1,"maxReplicas":2}}}`
	isvcB = `{
	  "spec": {"engine": {"maxReplicas": 2, "minReplicas": 1}, "model": {"name": "qwen"}},
	  "metadata": {"namespace": "prod", "name": "chat"},
	  "kind": "InferenceService", "apiVersion": "ome.io/v1beta1"}`
	isvcC = `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService",
	  "metadata":{"name":"chat","namespace":"prod","uid":"u-1","generation":7,"creationTimestamp":"2026-01-02T03:04:05Z"},
	  "spec":{"model":{"name":"qwen"},"engine":{"minReplicas":1,"maxReplicas":2}},
	  "status":{"phase":"Ready","message":"1 of 1 replicas ready"}}`
	isvcChanged = `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"chat","namespace":"prod"},
	  "spec":{"model":{"name":"qwen"},"engine":{"minReplicas":1,"maxReplicas":3}}}`
)

// TestUnchangedSpecComparesEqual is the package's promise: an unchanged spec is stored as the
// same bytes however it was written, so applying it again is "unchanged" and does not bump the
// generation; a changed spec does.
func TestUnchangedSpecComparesEqual(t *testing.T) {
	a := toStore(t, decode(t, isvcA))
	for _, raw := range []string{isvcB, isvcC} {
		if got := toStore(t, decode(t, raw)); !bytes.Equal(got.Spec, a.Spec) {
			t.Errorf("spec of the same object written another way:\n%s\nwant\n%s", got.Spec, a.Spec)
		}
	}
	if changed := toStore(t, decode(t, isvcChanged)); bytes.Equal(changed.Spec, a.Spec) {
		t.Errorf("a changed spec compares equal: %s", changed.Spec)
	}
	if bytes.Contains(a.Spec, []byte(`"metadata"`)) || bytes.Contains(a.Spec, []byte(`"kind"`)) {
		t.Errorf("spec %s carries metadata or type fields", a.Spec)
	}

	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply := func(raw string) store.Result {
		t.Helper()
		res, err := st.Apply(t.Context(), []store.Object{toStore(t, decode(t, raw))}, store.ApplyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if r := apply(isvcA); r.Action != store.ActionCreated || r.Object.Generation != 1 {
		t.Fatalf("create: %s at generation %d", r.Action, r.Object.Generation)
	}
	for _, raw := range []string{isvcA, isvcB, isvcC} {
		if r := apply(raw); r.Action != store.ActionUnchanged || r.Object.Generation != 1 {
			t.Errorf("re-apply of an unchanged spec: %s at generation %d, want unchanged at 1", r.Action, r.Object.Generation)
		}
	}
	if r := apply(isvcChanged); r.Action != store.ActionConfigured || r.Object.Generation != 2 {
		t.Errorf("apply of a changed spec: %s at generation %d, want configured at 2", r.Action, r.Object.Generation)
	}
}

// TestRoundTrip: FromStore rebuilds the object ToStore took apart, with the store's metadata.
func TestRoundTrip(t *testing.T) {
	in := decode(t, isvcC).(*v1.InferenceService)
	in.Labels = map[string]string{"team": "lab"}
	in.ResourceVersion = "42"
	so := toStore(t, in)
	if so.ResourceVersion != 42 || so.Kind != v1.KindInferenceService || so.Namespace != "prod" || so.Labels["team"] != "lab" {
		t.Fatalf("ToStore = %+v", so)
	}
	so.UID, so.Generation = "u-2", 3
	out, err := FromStore(so)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1.InferenceService)
	if got.Kind != v1.KindInferenceService || got.APIVersion == "" || got.UID != "u-2" || got.Generation != 3 || got.ResourceVersion != "42" {
		t.Errorf("metadata from the store: %+v %+v", got.TypeMeta, got.ObjectMeta)
	}
	if got.Spec.Model == nil || got.Spec.Model.Name != "qwen" || got.Status.Phase != "Ready" || got.Labels["team"] != "lab" {
		t.Errorf("spec/status/labels lost: %+v %+v %v", got.Spec, got.Status, got.Labels)
	}
	st, err := StatusJSON(got)
	if err != nil || !strings.Contains(string(st), `"phase":"Ready"`) {
		t.Errorf("StatusJSON = %s, %v", st, err)
	}
}

func TestToStoreScopeAndErrors(t *testing.T) {
	m := decode(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m","namespace":"ignored"},"spec":{}}`)
	if so := toStore(t, m); so.Namespace != "" {
		t.Errorf("a cluster-scoped object kept namespace %q", so.Namespace)
	}
	m.GetObjectMeta().ResourceVersion = "abc"
	if _, err := ToStore(m); err == nil || !strings.Contains(err.Error(), `metadata.resourceVersion "abc"`) {
		t.Errorf("bad resourceVersion: %v", err)
	}
	m.GetTypeMeta().Kind = "Gizmo"
	if _, err := ToStore(m); err == nil || !strings.Contains(err.Error(), `unknown kind "Gizmo"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := FromStore(store.Object{Kind: "Gizmo"}); err == nil {
		t.Error("FromStore of an unknown kind: no error")
	}
}

// TestKeepFilled: fields the agent filled from the model's files survive a re-apply of the
// file that leaves them out, so that re-apply is unchanged too.
func TestKeepFilled(t *testing.T) {
	stored := decode(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel",
	  "metadata":{"name":"m","annotations":{"`+v1.AnnotationFilledFromFiles+`":"modelArchitecture,maxTokens"}},
	  "spec":{"storage":{"storageUri":"hf://org/m"},"modelArchitecture":"Qwen2ForCausalLM","maxTokens":32768}}`)
	file := decode(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},
	  "spec":{"storage":{"storageUri":"hf://org/m"},"maxTokens":4096}}`)
	merged, err := KeepFilled(file, stored)
	if err != nil {
		t.Fatal(err)
	}
	spec := merged.(*v1.ClusterBaseModel).Spec
	if spec.ModelArchitecture == nil || *spec.ModelArchitecture != "Qwen2ForCausalLM" {
		t.Errorf("the filled architecture was dropped: %+v", spec)
	}
	if spec.MaxTokens == nil || *spec.MaxTokens != 4096 {
		t.Errorf("the user's maxTokens was overwritten: %+v", spec)
	}
	if merged.GetObjectMeta().Annotations[v1.AnnotationFilledFromFiles] == "" {
		t.Error("the annotation was not carried")
	}
	plain := decode(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{}}`)
	if same, err := KeepFilled(file, plain); err != nil || same != file {
		t.Errorf("with nothing filled KeepFilled must return incoming: %v, %v", same, err)
	}
}

func TestRedact(t *testing.T) {
	s := decode(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"hf","namespace":"default"},"stringData":{"token":"hf_secret"}}`)
	b, err := json.Marshal(Redact(s))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hf_secret") {
		t.Errorf("redacted secret shows its value: %s", b)
	}
	m := decode(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{}}`)
	if Redact(m) != m {
		t.Error("Redact changed a model")
	}
}

package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		keys []ObjectKey
		want []problem // Message and Fix are substrings
	}{
		{
			name: "an anchor reused by an alias",
			in: `apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: sglang}
spec:
  supportedModelFormats: [{modelFormat: {name: safetensors}}]
  engineConfig:
    tolerations: &gpu
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
    runner: {command: [python3, -m, sglang.launch_server]}
  routerConfig:
    tolerations: *gpu
`,
			keys: []ObjectKey{{v1.KindClusterServingRuntime, "", "sglang"}},
		},
		{
			name: "status and server-set metadata of an export are dropped",
			in: `apiVersion: ome.io/v1beta1
kind: InferenceService
metadata:
  name: mimo-vl-7b-rl
  namespace: mimo-vl-7b-rl
  uid: 0b6f3d2e-0000-4000-8000-000000000000
  resourceVersion: "42"
  managedFields: [{manager: kubectl}]
spec:
  model: {name: mimo-vl-7b-rl}
status:
  url: http://mimo-vl-7b-rl.mimo-vl-7b-rl
  address: {url: http://mimo-vl-7b-rl.mimo-vl-7b-rl.svc.cluster.local}
  components: {engine: {latestReadyRevision: x}}
`,
			keys: []ObjectKey{{v1.KindInferenceService, "mimo-vl-7b-rl", "mimo-vl-7b-rl"}},
		},
		{
			name: "empty documents are not counted",
			in:   "---\n# nothing here\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\n~\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: B}\n",
			keys: []ObjectKey{{v1.KindSecret, "default", "a"}},
			want: []problem{{2, 12, "metadata.name", `invalid name "B": must be lower case`, ""}},
		},
		{
			name: "a document that is not a mapping",
			in:   "- apiVersion: v1\n  kind: Secret\n",
			want: []problem{{1, 1, "", "a document must be a mapping with apiVersion, kind, metadata and spec, got a list", ""}},
		},
		{
			name: "a List with an unknown field and a bad item",
			in:   "apiVersion: v1\nkind: List\nmetadata: {}\nextra: 1\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: a, namespace: A}\n",
			keys: []ObjectKey{{v1.KindSecret, "default", "a"}},
			want: []problem{
				{1, 4, "extra", `unknown field "extra"`, "a List has apiVersion, kind and items"},
				{1, 11, "items[1].metadata.namespace", `invalid namespace "A": must be lower case`, ""},
			},
		},
		{
			name: "a string where a bool belongs",
			in:   "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nimmutable: \"true\"\n",
			want: []problem{{1, 4, "immutable", `expected true or false, got string "true"`, "remove the quotes: true"}},
		},
		{
			name: "a mapping where a string belongs",
			in:   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {first: a}\n",
			want: []problem{{1, 4, "metadata.name", "expected a string, got a mapping", ""}},
		},
		{
			name: "an integer out of range",
			in:   "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: a}\nspec:\n  maxTokens: 9999999999\n  storage: {storageUri: hf://a/b}\n",
			want: []problem{{1, 5, "spec.maxTokens", "integer 9999999999 is out of range for this field", ""}},
		},
		{
			// encoding/json writes U+0080 raw and YAML cannot read it raw:
			// the JSON that apply sends would not decode.
			name: "a control character written as a YAML escape",
			in:   "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  annotations: {note: \"a\\x80b\", \"k\\uFFFE\": b}\n---\napiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: m}\nspec:\n  storage: {storageUri: hf://a/b}\n  modelConfiguration: {note: \"\\x7f\"}\n",
			want: []problem{
				{1, 5, "metadata.annotations.note", "contains the control character U+0080", "remove it"},
				{1, 5, "metadata.annotations.k\uFFFE", "key contains the control character U+FFFE", "remove it"},
				{2, 12, "spec.modelConfiguration", "contains the control character U+007F", ""},
			},
		},
		{
			name: "a value that does not decode does not hide the other problems",
			in:   "apiVersion: ome.io/v1beta1\nkind: InferenceService\nmetadata: {name: a}\nspec:\n  model: [mimo-vl-7b-rl]\n  engine: {minReplicas: \"1\", maxReplicas: -1}\n",
			want: []problem{
				{1, 5, "spec.model", "expected a mapping (key: value pairs), got a list", `remove the "- "`},
				{1, 6, "spec.engine.minReplicas", `expected an integer, got string "1"`, "remove the quotes: 1"},
				{1, 6, "spec.engine.maxReplicas", "must not be negative, got -1", ""},
			},
		},
		{
			name: "a plaintext token is only a warning",
			in:   "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: a}\nspec:\n  storage:\n    storageUri: hf://a/b\n    parameters: {token: hf_x}\n",
			keys: []ObjectKey{{v1.KindClusterBaseModel, "", "a"}},
			want: []problem{{1, 7, "spec.storage.parameters.token", "holds a plaintext token in the resource", "move it into a Secret"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			items, errs := Decode(strings.NewReader(tt.in), "in.yaml")
			if diff := cmp.Diff(tt.keys, keys(items)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, match(errs, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%v", diff, errs)
			}
		})
	}
}

// TestDecodeAliasBomb: a few kilobytes of aliases that expand into millions
// of values are refused instead of taking all memory.
func TestDecodeAliasBomb(t *testing.T) {
	t.Parallel()
	const n = 100
	var b strings.Builder
	b.WriteString("apiVersion: citadel.dev/v1alpha1\nkind: Route\nmetadata: {name: lab}\nspec:\n  models:\n  - name: m0\n    targets: &t [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("{service: a}")
	}
	b.WriteString("]\n    tasks: &k [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{task: code, keywords: [k%d], targets: *t}", i)
	}
	b.WriteString("]\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: m%d, tasks: *k}\n", i)
	}
	if b.Len() > 10_000 {
		t.Fatalf("the bomb is %d bytes; it should be small", b.Len())
	}
	items, errs := Decode(strings.NewReader(b.String()), "bomb.yaml")
	if len(items) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Message, "expands to more than 100000 values through YAML aliases") {
		t.Fatalf("got %d items and problems:\n%v", len(items), errs)
	}
}

// TestDecodeItem is the server's side of apply: one object as JSON, with
// the place the client read it from, which every problem carries.
func TestDecodeItem(t *testing.T) {
	t.Parallel()
	src := Source{File: "models/mimo.yaml", Document: 2, Line: 17}
	tests := []struct {
		name string
		raw  string
		key  *ObjectKey
		want []*Error
	}{
		{
			name: "valid",
			raw:  `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"mimo-vl-7b-rl"},"spec":{"storage":{"storageUri":"hf://XiaomiMiMo/MiMo-VL-7B-RL"}}}`,
			key:  &ObjectKey{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"},
		},
		{
			name: "invalid: the line is the source's",
			raw:  `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"mimo-vl-7b-rl"},"spec":{"storage":{"storageUri":"s4://x"}}}`,
			want: []*Error{{File: "models/mimo.yaml", Document: 2, Line: 17, Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl", Path: "spec.storage.storageUri",
				Message: `unsupported scheme "s4": use hf://org/repo[@revision], ollama://name[:tag], file:///abs/dir or local:///abs/dir`}},
		},
		{
			name: "not JSON",
			raw:  `{"apiVersion": `,
			want: []*Error{{File: "models/mimo.yaml", Document: 2, Line: 17, Message: "invalid JSON: line 1: did not find expected node content"}},
		},
		{
			name: "empty",
			raw:  ``,
			want: []*Error{{File: "models/mimo.yaml", Document: 2, Line: 17, Message: "empty object"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			it, errs := DecodeItem([]byte(tt.raw), src)
			if diff := cmp.Diff(tt.want, []*Error(errs)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			switch {
			case tt.key == nil && it != nil:
				t.Errorf("got item %s, want none", it.Key())
			case tt.key != nil && (it == nil || it.Key() != *tt.key || it.Source != src):
				t.Errorf("got item %+v, want %s from %v", it, *tt.key, src)
			}
		})
	}
}

package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
)

// TestWarnConfigs: files that apply, with warnings a user reads: values
// OME's CRD accepts but Citadel does not know, and documents of kinds
// Citadel does not manage.
func TestWarnConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		items []ObjectKey
		want  []problem
	}{
		{file: "model-capability-unknown", items: []ObjectKey{{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"}}, want: []problem{
			{1, 8, "spec.modelCapabilities[0]", `"image-text-to-text" is not a capability Citadel knows; accepted as written (OME accepts any value here)`, `did you mean "IMAGE_TEXT_TO_TEXT"?`},
			{1, 9, "spec.modelCapabilities[1]", `"VISION_LANGUAGE" is not a capability Citadel knows`, "known values: TEXT_GENERATION,"},
		}},
		{file: "protocol-version-case", items: []ObjectKey{{v1.KindClusterServingRuntime, "", "srt-mimo-vl-7b-rl"}}, want: []problem{
			{1, 18, "spec.protocolVersions[0]", `"openai" is not a protocol version Citadel knows`, `did you mean "openAI"?`},
		}},
		// Q4_K_M is q4_k_m: no warning for it.
		{file: "quantization-case", items: []ObjectKey{{v1.KindClusterBaseModel, "", "qwen-gguf"}, {v1.KindClusterServingRuntime, "", "llamacpp-new"}}, want: []problem{
			{1, 8, "spec.servingMode[0]", `"Serverless" is not a serving mode Citadel knows`, "known values: On-demand, Dedicated"},
			{2, 19, "spec.supportedModelFormats[0].quantization", `"tq1_0" is not a quantization Citadel knows`, "known values: fp8,"},
		}},
		{file: "namespace-and-configmap", items: []ObjectKey{{v1.KindInferenceService, "mimo-vl-7b-rl", "mimo-vl-7b-rl"}}, want: []problem{
			{1, 2, "", "not managed by Citadel; skipped", "namespaces exist implicitly in Citadel"},
			{2, 7, "", "not managed by Citadel; skipped", "apply this object to Kubernetes if you need it"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join("testdata", "warn", tt.file+".warn.yaml")
			items, errs := Load([]string{file}, LoadOptions{})
			if err := errs.Err(); err != nil {
				t.Fatalf("Load: fatal problems:\n%v", err)
			}
			if diff := cmp.Diff(tt.items, keys(items)); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, match(errs, tt.want)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\nall:\n%v", diff, errs)
			}
		})
	}
}

// TestSkippedNote pins the words a user reads for a skipped document, and
// that Skipped returns only such notes (the client prints them; the server
// echoes the others).
func TestSkippedNote(t *testing.T) {
	t.Parallel()
	_, errs := Load([]string{"testdata/warn/namespace-and-configmap.warn.yaml", "testdata/warn/quantization-case.warn.yaml"}, LoadOptions{})
	var got []string
	for _, e := range errs.Skipped() {
		got = append(got, e.Error())
	}
	want := []string{
		`testdata/warn/namespace-and-configmap.warn.yaml:2:1: warning: document 1 (v1/Namespace "mimo-vl-7b-rl"): not managed by Citadel; skipped (fix: nothing to do: namespaces exist implicitly in Citadel, as soon as an object names one)`,
		`testdata/warn/namespace-and-configmap.warn.yaml:7:1: warning: document 2 (v1/ConfigMap "settings"): not managed by Citadel; skipped (fix: Citadel manages ClusterBaseModel, BaseModel, ClusterServingRuntime, ServingRuntime, InferenceService, Route and Secret; apply this object to Kubernetes if you need it)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
}

// TestUnmanagedKinds: which documents are skipped with a note and which stay
// errors (a kind missing from Citadel's own groups is a typo).
func TestUnmanagedKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		apiVersion, kind string
		skipped          bool
	}{
		{"v1", "Namespace", true},
		{"v1", "ConfigMap", true},
		{"v1", "ServiceAccount", true},
		{"v1", "Service", true}, // a Kubernetes Service, not an InferenceService
		{"apps/v1", "Deployment", true},
		{"rbac.authorization.k8s.io/v1", "ClusterRole", true},
		{"kustomize.config.k8s.io/v1beta1", "Kustomization", true},
		{"ome.io/v1beta1", "BenchmarkJob", true},
		{"ome.io/v1beta1", "AcceleratorClass", true},
		{"ome.io/v1beta1", "ClusterBaseModle", false},
		{"ome.io/v1beta1", "clusterbasemodel", false},
		{"citadel.dev/v1alpha1", "Routes", false},
		{"", "Namespace", false},
	}
	for _, tt := range tests {
		t.Run(tt.apiVersion+"/"+tt.kind, func(t *testing.T) {
			t.Parallel()
			doc := "apiVersion: " + tt.apiVersion + "\nkind: " + tt.kind + "\nmetadata:\n  name: x\n"
			items, errs := Decode(strings.NewReader(doc), "x.yaml")
			if len(items) != 0 {
				t.Fatalf("decoded %v", keys(items))
			}
			skipped := len(errs) == 1 && len(errs.Skipped()) == 1
			if skipped != tt.skipped || (!tt.skipped && errs.Err() == nil) {
				t.Errorf("skipped = %v, want %v; problems:\n%v", skipped, tt.skipped, errs)
			}
		})
	}
	// The admin API decodes one object at a time: it skips with the same note.
	it, errs := DecodeItem([]byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"lab"}}`), Source{File: "ns.yaml", Document: 1})
	if it != nil || errs.Err() != nil || len(errs.Skipped()) != 1 {
		t.Errorf("DecodeItem(v1/Namespace) = %v, %v; want nothing and one note", it, errs)
	}
}

// TestOMEUpstream applies real OME files (testdata/ome-upstream, copied
// unchanged from OME at 17b77eda): every model, runtime and service loads,
// the Namespace, Kustomization and BenchmarkJob documents are skipped with a
// note, the multi-node runtimes are stored with a warning naming the field,
// and nothing is fatal, references included.
func TestOMEUpstream(t *testing.T) {
	t.Parallel()
	items, errs := Load([]string{"testdata/ome-upstream"}, LoadOptions{Recursive: true})
	if err := errs.Err(); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []ObjectKey{
		{v1.KindClusterBaseModel, "", "gme-qwen2-vl-2b-instruct"},
		{v1.KindClusterBaseModel, "", "qwen3-4b"},
		{v1.KindClusterBaseModel, "", "qwen3-embedding-0-6b"},
		{v1.KindClusterBaseModel, "", "qwen3-vl-235b-a22b-instruct"},
		{v1.KindClusterBaseModel, "", "skywork-reward-llama-3-1-8b-v0-2"},
		{v1.KindClusterServingRuntime, "", "srt-qwen3-4b"},
		{v1.KindClusterServingRuntime, "", "srt-deepseek-rdma"},
		{v1.KindClusterServingRuntime, "", "srt-kimi-k2-pd"},
		{v1.KindInferenceService, "qwen3-4b", "qwen3-4b"},
	}
	if diff := cmp.Diff(want, keys(items)); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	type note struct{ File, Kind, Path, Message string }
	var got []note
	for _, e := range append(errs, Check(items, nothing{})...) {
		msg, _, _ := strings.Cut(e.Message, ":")
		got = append(got, note{strings.TrimPrefix(e.File, "testdata/ome-upstream/"), e.Kind, e.Path, msg})
	}
	wantNotes := []note{
		{"models/kustomization.yaml", "kustomize.config.k8s.io/v1beta1/Kustomization", "", "not managed by Citadel; skipped"},
		{"runtimes/srt/deepseek-rdma-rt.yaml", v1.KindClusterServingRuntime, "spec.engineConfig.leader", "multi-node serving (engineConfig.leader/worker) is not supported on one host"},
		{"runtimes/srt/kimi-k2-pd-rt.yaml", v1.KindClusterServingRuntime, "spec.engineConfig.leader", "multi-node serving (engineConfig.leader/worker) is not supported on one host"},
		{"samples/benchmark/e5-mistral-7b-instruct.yaml", "ome.io/v1beta1/BenchmarkJob", "", "not managed by Citadel; skipped"},
		{"samples/isvc/Qwen/qwen3-4b.yaml", "v1/Namespace", "", "not managed by Citadel; skipped"},
		// The one warning Check adds: the token secret OME's model names.
		{"models/Qwen/Qwen3-Embedding-0.6B.yaml", v1.KindClusterBaseModel, "spec.storage.key", `secret "hf-token" not found (looked for Secret "ome/hf-token"); the object is accepted and will wait for it`},
	}
	if diff := cmp.Diff(wantNotes, got); diff != "" {
		t.Errorf("notes and warnings (-want +got):\n%s", diff)
	}
	for _, e := range errs {
		if !e.Warning {
			t.Errorf("fatal: %v", e)
		}
	}
}

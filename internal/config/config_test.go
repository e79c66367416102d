package config

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
)

// omeFixtures are the OME files Citadel must accept unchanged, relative to
// shared/fixtures/ome/config and to its copy, testdata/good/ome.
var omeFixtures = []string{
	"models/XiaomiMiMo/MiMo-VL-7B-RL.yaml",
	"runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml",
	"samples/isvc/XiaomiMiMo/mimo-vl-7b-rl.yaml",
}

const (
	// sharedOME is where CI checks out shared/ beside the repository.
	sharedOME = "../../../shared/fixtures/ome/config"
	// goodOME is the copy of sharedOME (the CLI tests apply it too).
	goodOME = "testdata/good/ome"
)

// nothing is a store with no objects and no routes.
type nothing struct{}

func (nothing) Exists(kind, namespace, name string) bool { return false }
func (nothing) Routes() []*v1.Route                      { return nil }

var _ Lookup = nothing{}

func keys(items []Item) []ObjectKey {
	if len(items) == 0 {
		return nil
	}
	out := make([]ObjectKey, len(items))
	for i, it := range items {
		out[i] = it.Key()
	}
	return out
}

func TestGoodConfigs(t *testing.T) {
	t.Parallel()
	mimo := []ObjectKey{{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"}}
	tests := []struct {
		path string
		want []ObjectKey
		// warnings Check reports for the file on its own.
		warnings []string // paths
	}{
		{path: goodOME + "/models", want: mimo, warnings: []string{"spec.storage.key"}},
		{path: goodOME + "/runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml", want: []ObjectKey{{v1.KindClusterServingRuntime, "", "srt-mimo-vl-7b-rl"}}},
		{path: goodOME + "/samples", want: []ObjectKey{{v1.KindInferenceService, "mimo-vl-7b-rl", "mimo-vl-7b-rl"}}},
		{path: "testdata/good/lab.yaml", want: []ObjectKey{
			{v1.KindSecret, "lab", "hf-token"},
			{v1.KindBaseModel, "lab", "qwen2-5-7b-instruct"},
			{v1.KindServingRuntime, "lab", "vllm-qwen"},
			{v1.KindInferenceService, "lab", "qwen-7b"},
			{v1.KindRoute, "lab", "lab"},
		}},
		{path: "testdata/good/ollama-model.json", want: []ObjectKey{{v1.KindClusterBaseModel, "", "qwen2-5-7b-ollama"}}},
		{path: "testdata/good/list.yaml", want: []ObjectKey{
			{v1.KindClusterServingRuntime, "", "llamacpp-gguf"},
			{v1.KindClusterBaseModel, "", "tinyllama-local"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			items, errs := Load([]string{tt.path}, LoadOptions{Recursive: true})
			if len(errs) != 0 {
				t.Fatalf("Load(%s) problems:\n%v", tt.path, errs)
			}
			if diff := cmp.Diff(tt.want, keys(items)); diff != "" {
				t.Errorf("Load(%s) keys (-want +got):\n%s", tt.path, diff)
			}
			if strings.HasPrefix(tt.path, goodOME+"/runtimes") || strings.HasPrefix(tt.path, goodOME+"/samples") {
				return // they reference objects in other files
			}
			problems := Check(items, nothing{})
			if err := problems.Err(); err != nil {
				t.Fatalf("Check(%s): %v", tt.path, err)
			}
			var got []string
			for _, w := range problems.Warnings() {
				got = append(got, w.Path)
			}
			if diff := cmp.Diff(tt.warnings, got); diff != "" {
				t.Errorf("Check(%s) warnings (-want +got):\n%s\n%v", tt.path, diff, problems)
			}
		})
	}

	t.Run("all", func(t *testing.T) {
		t.Parallel()
		items, errs := Load([]string{"testdata/good"}, LoadOptions{Recursive: true})
		if len(errs) != 0 {
			t.Fatalf("Load(testdata/good) problems:\n%v", errs)
		}
		var want []ObjectKey
		for _, tt := range tests {
			want = append(want, tt.want...)
		}
		sortKeys := cmp.Transformer("sort", func(in []ObjectKey) []ObjectKey {
			out := append([]ObjectKey(nil), in...)
			sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
			return out
		})
		if diff := cmp.Diff(want, keys(items), sortKeys); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
		if problems := Check(items, nothing{}); len(problems) != 1 || !problems[0].Warning {
			t.Errorf("Check: want only the hf-token warning, got:\n%v", problems)
		}
	})
}

// TestGoodConfigDefaults checks what a user relies on after loading: the
// defaults are filled in and secrets are folded and never printed.
func TestGoodConfigDefaults(t *testing.T) {
	t.Parallel()
	items, errs := Load([]string{"testdata/good/lab.yaml", goodOME + "/models"}, LoadOptions{Recursive: true})
	if len(errs) != 0 {
		t.Fatalf("Load: %v", errs)
	}
	byKey := map[ObjectKey]v1.Object{}
	for _, it := range items {
		byKey[it.Key()] = it.Object
	}
	secret := byKey[ObjectKey{v1.KindSecret, "lab", "hf-token"}].(*v1.Secret)
	if v, ok := secret.Value("token"); !ok || v != "hf_exampleexampleexample" {
		t.Errorf("secret token = %q, %v; want the stringData value", v, ok)
	}
	if secret.StringData != nil || secret.Type != "Opaque" {
		t.Errorf("secret not defaulted: stringData=%v type=%q", secret.StringData, secret.Type)
	}
	if s := secret.String(); strings.Contains(s, "hf_example") {
		t.Errorf("Secret.String() leaks the token: %s", s)
	}
	model := byKey[ObjectKey{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl"}].(*v1.ClusterBaseModel)
	if p := model.Spec.Storage.DownloadPolicy; p == nil || *p != "AlwaysDownload" {
		t.Errorf("downloadPolicy = %v; want the default AlwaysDownload", p)
	}
	isvc := byKey[ObjectKey{v1.KindInferenceService, "lab", "qwen-7b"}].(*v1.InferenceService)
	if k := isvc.Spec.Model.Kind; k == nil || *k != v1.KindBaseModel {
		t.Errorf("spec.model.kind = %v; want BaseModel as written", k)
	}
	if g := isvc.Spec.Model.APIGroup; g == nil || *g != "ome.io" {
		t.Errorf("spec.model.apiGroup = %v; want the default ome.io", g)
	}
}

// TestOMEFixtures keeps testdata/good/ome in step with the shared OME fixtures
// and checks the three together: the only problem is the missing token
// secret, which is a warning.
func TestOMEFixtures(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, root string) {
		var paths []string
		for _, f := range omeFixtures {
			paths = append(paths, filepath.Join(root, f))
		}
		items, errs := Load(paths, LoadOptions{})
		if len(errs) != 0 {
			t.Fatalf("Load: %v", errs)
		}
		problems := Check(items, nil)
		model := filepath.Join(root, omeFixtures[0])
		want := []*Error{{File: model, Document: 1, Line: 15, Column: 10, Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl", Path: "spec.storage.key", Warning: true}}
		ignoreText := cmp.FilterPath(func(p cmp.Path) bool {
			n := p.Last().String()
			return n == ".Message" || n == ".Fix"
		}, cmp.Ignore())
		if diff := cmp.Diff(want, []*Error(problems), ignoreText); diff != "" {
			t.Fatalf("Check (-want +got):\n%s", diff)
		}
		if !strings.Contains(problems[0].Message, `secret "hf-token" not found (looked for Secret "ome/hf-token")`) ||
			!strings.Contains(problems[0].Fix, "citadel secret create hf-token -n ome") {
			t.Errorf("warning does not say what is missing and how to create it: %v", problems[0])
		}
	}
	t.Run("testdata", func(t *testing.T) {
		t.Parallel()
		if diff := cmp.Diff(omeFixtures, filesUnder(t, goodOME)); diff != "" {
			t.Errorf("%s holds other files (-want +got):\n%s", goodOME, diff)
		}
		check(t, goodOME)
	})
	t.Run("shared", func(t *testing.T) {
		t.Parallel()
		if _, err := os.Stat(sharedOME); err != nil {
			t.Skipf("no shared fixtures beside the repository: %v", err)
		}
		found := filesUnder(t, sharedOME)
		if diff := cmp.Diff(omeFixtures, found); diff != "" {
			t.Errorf("shared fixtures changed (-testdata +shared):\n%s", diff)
		}
		for _, f := range found {
			shared, err1 := os.ReadFile(filepath.Join(sharedOME, f))
			copied, err2 := os.ReadFile(filepath.Join(goodOME, f))
			if err1 != nil || err2 != nil {
				t.Errorf("%s: %v %v", f, err1, err2)
				continue
			}
			if !bytes.Equal(shared, copied) {
				t.Errorf("%s/%s differs from the shared fixture: copy it again", goodOME, f)
			}
		}
		if _, errs := Load([]string{sharedOME}, LoadOptions{Recursive: true}); errs.Err() != nil {
			t.Errorf("Load(shared): %v", errs)
		}
		check(t, sharedOME)
	})
}

// filesUnder lists the files below root, relative to it, sorted.
func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		found = append(found, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(found)
	return found
}

// problem is the part of an Error a bad fixture pins down: Message and Fix
// are substrings.
type problem struct {
	Doc, Line int
	Path      string
	Message   string
	Fix       string
}

func TestBadConfigs(t *testing.T) {
	t.Parallel()
	const (
		schemes = "use hf://org/repo[@revision], ollama://name[:tag], file:///abs/dir or local:///abs/dir"
		lower   = "use lower-case letters, digits"
	)
	tests := []struct {
		file string
		// check: the file loads clean and Check (against an empty store) fails.
		check bool
		// items is how many objects Load still returns (the valid ones).
		items int
		want  []problem
	}{
		// Unknown fields.
		{file: "unknown-field-top-level", want: []problem{{1, 6, "labels", `unknown field "labels"`, "known fields here: apiVersion, kind, metadata, spec"}}},
		{file: "unknown-field-nested-case", want: []problem{{1, 14, "spec.storage.storageURI", `unknown field "storageURI"`, `did you mean "storageUri"? (field names are case-sensitive)`}}},
		{file: "unknown-field-list-item", want: []problem{
			{1, 15, "spec.supportedModelFormats[0].autoselect", `unknown field "autoselect"`, `did you mean "autoSelect"?`},
			{1, 16, "spec.supportedModelFormats[0].autoSelection", `unknown field "autoSelection"`, "known fields here: acceleratorConfig, autoSelect,"},
		}},
		{file: "unknown-field-typo", want: []problem{{1, 8, "spec.modle", `unknown field "modle"`, `did you mean "model"?`}}},
		// Wrong types.
		{file: "type-version-number", want: []problem{{1, 12, "spec.version", "expected a string, got number 1.0", `quote it: "1.0"`}}},
		{file: "type-int-given-string", want: []problem{{1, 13, "spec.engine.minReplicas", `expected an integer, got string "1"`, "remove the quotes: 1"}}},
		{file: "type-int-given-word", want: []problem{{1, 16, "spec.supportedModelFormats[0].priority", `expected an integer, got string "high"`, ""}}},
		{file: "type-list-given-scalar", want: []problem{{1, 7, "spec.modelCapabilities", `expected a list, got string "IMAGE_TEXT_TO_TEXT"`, "write a list: [IMAGE_TEXT_TO_TEXT]"}}},
		{file: "type-mapping-given-list", want: []problem{{1, 14, "spec.storage", "expected a mapping (key: value pairs), got a list", `remove the "- "`}}},
		{file: "type-bool-yes", want: []problem{{1, 11, "spec.disabled", `expected true or false, got string "yes"`, "write true or false"}}},
		// Values outside an enum.
		{file: "enum-format-operator", want: []problem{{1, 14, "spec.supportedModelFormats[0].modelFormat.operator", `unsupported value ">="`, "use one of: Equal, GreaterThan, GreaterThanOrEqual"}}},
		{file: "enum-download-policy", want: []problem{{1, 17, "spec.storage.downloadPolicy", `unsupported value "IfNotPresent"`, "use one of: AlwaysDownload, ReuseIfExists"}}},
		{file: "enum-task-class", want: []problem{{1, 21, "spec.models[1].tasks[1].task", `unsupported value "coding"`, "use one of: vision, code, reasoning, general, embedding"}}},
		{file: "enum-balancing-policy", want: []problem{{1, 9, "spec.balancing.policy", `unsupported value "least_outstanding"`, `did you mean "least-outstanding"?`}}},
		{file: "enum-toleration-operator", want: []problem{{1, 25, "spec.engineConfig.tolerations[0].operator", `unsupported value "Exist"`, "use one of: Exists, Equal"}}},
		// Quantities and parameter counts.
		{file: "quantity-memory-gb", want: []problem{
			{1, 38, "spec.engineConfig.runner.resources.requests.memory", `invalid quantity "30GB", unknown suffix "GB": Kubernetes quantities have no "GB" suffix; write 30Gi (binary) or 30G (decimal)`, ""},
			{1, 42, "spec.engineConfig.runner.resources.limits.memory", `invalid quantity "30GB"`, ""},
		}},
		{file: "quantity-cpu-suffix", want: []problem{{1, 37, "spec.engineConfig.runner.resources.requests.cpu", `invalid quantity "10x", unknown suffix "x"`, ""}}},
		{file: "size-range-bytes", want: []problem{{1, 20, "spec.modelSizeRange.min", `invalid parameter count "30Gi": this looks like a byte size`, ""}}},
		{file: "parameter-size-number", want: []problem{{1, 9, "spec.modelParameterSize", `expected a parameter count string such as "7B"`, ""}}},
		{file: "size-range-inverted", want: []problem{{1, 20, "spec.modelSizeRange", "min 8B is greater than max 6B", "swap them"}}},
		// Storage URIs.
		{file: "storage-scheme-s4", want: []problem{{1, 14, "spec.storage.storageUri", `unsupported scheme "s4": ` + schemes, ""}}},
		{file: "storage-scheme-s3", want: []problem{{1, 14, "spec.storage.storageUri", `scheme "s3" is not supported by Citadel yet (S3 downloads are not implemented): ` + schemes, ""}}},
		{file: "storage-scheme-pvc", want: []problem{{1, 14, "spec.storage.storageUri", `scheme "pvc" is not supported by Citadel yet (PersistentVolumeClaims exist only on Kubernetes)`, ""}}},
		{file: "storage-no-scheme", want: []problem{{1, 14, "spec.storage.storageUri", `"XiaomiMiMo/MiMo-VL-7B-RL" has no scheme: ` + schemes, ""}}},
		{file: "storage-hf-too-many-parts", want: []problem{{1, 14, "spec.storage.storageUri", "is not a Hugging Face repository: write hf://org/name", ""}}},
		{file: "storage-file-relative", want: []problem{{1, 14, "spec.storage.storageUri", `the path "models/MiMo-VL-7B-RL" is not absolute: write file:///abs/dir (three slashes)`, ""}}},
		// Missing required fields.
		{file: "missing-name", want: []problem{{1, 5, "metadata.name", "is required", "give the object a name"}}},
		{file: "missing-kind", want: []problem{{1, 2, "kind", "is missing", "e.g. kind: ClusterBaseModel"}}},
		{file: "missing-apiversion", want: []problem{{1, 2, "apiVersion", "is missing", "add apiVersion: ome.io/v1beta1"}}},
		{file: "missing-storage", want: []problem{{1, 7, "spec.storage", "is required", "storage: {storageUri: hf://org/repo}"}}},
		{file: "missing-storage-uri", want: []problem{{1, 14, "spec.storage.storageUri", "is required", "storageUri: hf://XiaomiMiMo/MiMo-VL-7B-RL"}}},
		{file: "missing-model-name", want: []problem{{1, 9, "spec.model.name", "is required", "name the model to serve"}}},
		{file: "missing-model-format-name", want: []problem{{1, 12, "spec.supportedModelFormats[0].modelFormat.name", "is required", "modelFormat: {name: safetensors"}}},
		{file: "missing-runner-command", want: []problem{{1, 28, "spec.engineConfig.runner.command", "is empty: nothing to run", "give the engine's command line"}}},
		// Identity: apiVersion, kind, name, namespace.
		{file: "wrong-apiversion", want: []problem{{1, 2, "apiVersion", `ClusterBaseModel is not served as "ome.io/v1"`, "use apiVersion: ome.io/v1beta1"}}},
		{file: "unknown-kind", want: []problem{{1, 3, "kind", `unknown kind "ClusterBaseModle"`, "known kinds: ClusterBaseModel, BaseModel,"}}},
		{file: "unknown-kind-lower-case", want: []problem{{1, 3, "kind", `unknown kind "clusterbasemodel"`, "did you mean kind: ClusterBaseModel?"}}},
		{file: "namespace-on-cluster-kind", want: []problem{{1, 6, "metadata.namespace", `is set to "models" but this kind is cluster-scoped`, "remove metadata.namespace"}}},
		{file: "name-upper-case", want: []problem{{1, 5, "metadata.name", `invalid name "MiMo-VL-7B-RL": must be lower case`, lower}}},
		{file: "duplicate-name", items: 2, want: []problem{{2, 21, "metadata.name", `duplicate: ClusterBaseModel "mimo-vl-7b-rl" is also declared at testdata/bad/duplicate-name.bad.yaml:2 (document 1)`, "rename one of them"}}},
		{file: "duplicate-key", want: []problem{{1, 11, "spec.vendor", `duplicate field "vendor"`, "remove one of them"}}},
		// YAML syntax.
		{file: "tab-indentation", want: []problem{{1, 14, "", "invalid YAML: found character that cannot start any token", "YAML does not allow tabs for indentation: use spaces"}}},
		// yaml.v3 names the line before the mapping that holds the broken
		// value (the quote opens on line 10), not the line of the problem.
		{file: "yaml-unclosed-quote", want: []problem{{1, 6, "", "invalid YAML: did not find expected key", "check the indentation and quoting"}}},
		// Containers.
		{file: "probe-unknown-port-name", want: []problem{{1, 47, "spec.engineConfig.runner.readinessProbe.httpGet.port", `names port "http", which the container does not declare`, "use a number or the name of one of the container's ports"}}},
		// Routes.
		{file: "route-tasks-and-targets", want: []problem{{1, 17, "spec.models[1]", "sets both tasks and targets", "split it in two"}}},
		{file: "route-task-unknown-model", want: []problem{{1, 20, "spec.models[1].tasks[0].model", `names "mimo-vl-7b", which is not a model of this route`, "use one of the route's model names"}}},
		{file: "route-invalid-regex", want: []problem{{1, 23, "spec.models[1].tasks[1].patterns[0]", "invalid regular expression: error parsing regexp: missing closing )", "use Go RE2 syntax"}}},
		// Secrets.
		{file: "secret-bad-base64", want: []problem{{1, 8, "data.token", "is not valid base64", "put plain text under stringData"}}},
		// Cross-object problems, found by Check.
		{file: "dangling-references", check: true, items: 1, want: []problem{
			{1, 9, "spec.model.name", `model "mimo-vl-7b-rl" not found: there is no BaseModel "mimo-vl-7b-rl/mimo-vl-7b-rl" and no ClusterBaseModel "mimo-vl-7b-rl" in this apply or on the server`, "apply the model first"},
			{1, 11, "spec.runtime.name", `runtime "srt-mimo-vl-7b-rl" not found: there is no ServingRuntime "mimo-vl-7b-rl/srt-mimo-vl-7b-rl" and no ClusterServingRuntime "srt-mimo-vl-7b-rl"`, "remove spec.runtime to select one automatically"},
		}},
		{file: "route-public-name-conflict", check: true, items: 2, want: []problem{
			{1, 12, "spec.models[0].targets[0].service", `service "mimo-vl-7b-rl" not found: there is no InferenceService "mimo-vl-7b-rl/mimo-vl-7b-rl"`, "apply the InferenceService first"},
			{2, 26, "spec.models[0].aliases[0]", `public model name "mimo-vl" is already exposed by Route "mimo-vl-7b-rl/lab" (at testdata/bad/route-public-name-conflict.bad.yaml:2 (document 1))`, "each public name belongs to one route"},
		}},
		// Everything at once: every document is decoded and validated, a
		// model that does not decode included; "storageUri: is required" is
		// not repeated after "unknown field storageURI".
		{file: "many-errors", want: []problem{
			{1, 7, "spec.version", "expected a string, got number 1.0", `quote it: "1.0"`},
			{1, 8, "spec.disabled", `expected true or false, got string "yes"`, ""},
			{1, 10, "spec.storage.storageURI", `unknown field "storageURI"`, `did you mean "storageUri"?`},
			{1, 11, "spec.storage.downloadPolicy", `unsupported value "Always"`, "use one of: AlwaysDownload, ReuseIfExists"},
			{2, 23, "spec.modelSizeRange.min", `invalid parameter count "30Gi"`, ""},
			{2, 28, "spec.engineConfig.tolerations[0].operator", `unsupported value "Exist"`, ""},
			{2, 36, "spec.engineConfig.runner.resources.requests.memory", `invalid quantity "30GB"`, ""},
			{2, 40, "spec.engineConfig.runner.readinessProbe.httpGet.port", `names port "http"`, ""},
			{3, 45, "metadata.name", `invalid name "MiMo-VL": must be lower case`, ""},
			{3, 48, "spec.model.name", "is required", ""},
			{4, 56, "spec.models[0]", "sets both tasks and targets", ""},
			{4, 60, "spec.models[0].tasks[0].task", `unsupported value "coding"`, ""},
			{4, 61, "spec.models[0].tasks[0].patterns[0]", "invalid regular expression", ""},
			{4, 62, "spec.models[0].tasks[0].model", "points at its own model", ""},
		}},
	}

	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join("testdata", "bad", tt.file+".bad.yaml")
			items, errs := Load([]string{file}, LoadOptions{})
			if len(items) != tt.items {
				t.Errorf("Load returned %d items, want %d: %v", len(items), tt.items, keys(items))
			}
			got := errs
			if tt.check {
				if len(errs) != 0 {
					t.Fatalf("Load: want no problems before Check, got:\n%v", errs)
				}
				got = Check(items, nothing{})
			}
			// The caller contract: any fatal problem means apply nothing.
			if got.Err() == nil {
				t.Fatalf("no fatal problem reported; got:\n%v", got)
			}
			for _, e := range got {
				if e.File != file || e.Warning {
					t.Errorf("problem with file %q (want %q), warning %v: %v", e.File, file, e.Warning, e)
				}
			}
			if diff := cmp.Diff(tt.want, match(got, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nall problems:\n%v", diff, got)
			}
		})
	}

	t.Run("every fixture is in the table", func(t *testing.T) {
		t.Parallel()
		files, err := filepath.Glob("testdata/bad/*.bad.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml"); !seen[name] {
				t.Errorf("%s has no entry in TestBadConfigs", f)
			}
		}
		if len(files) != len(tests) {
			t.Errorf("%d fixtures, %d table entries", len(files), len(tests))
		}
	})
}

// match turns the problems into the shape of want, sorted by document and
// line: where a problem matches a wanted one (same document, line and path,
// and the wanted message and fix are substrings of its own) it takes the
// wanted text, so that cmp.Diff shows only the differences.
func match(got Errors, want []problem) []problem {
	if len(got) == 0 {
		return nil
	}
	out := make([]problem, len(got))
	used := make([]bool, len(want))
	for i, e := range got {
		p := problem{e.Document, e.Line, e.Path, e.Message, e.Fix}
		for j, w := range want {
			if !used[j] && w.Doc == p.Doc && w.Line == p.Line && w.Path == p.Path &&
				strings.Contains(p.Message, w.Message) && strings.Contains(p.Fix, w.Fix) {
				used[j] = true
				p.Message, p.Fix = w.Message, w.Fix
				break
			}
		}
		out[i] = p
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Doc != out[j].Doc {
			return out[i].Doc < out[j].Doc
		}
		return out[i].Line < out[j].Line
	})
	return out
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	_, errs := Load([]string{"testdata/bad/type-version-number.bad.yaml"}, LoadOptions{})
	want := `testdata/bad/type-version-number.bad.yaml:12:12: document 1 (ClusterBaseModel "mimo-vl-7b-rl"): spec.version: expected a string, got number 1.0 (fix: quote it: "1.0")`
	if diff := cmp.Diff(want, errs.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"warning", Error{File: "m.yaml", Document: 2, Line: 15, Column: 10, Kind: "ClusterBaseModel", Name: "mimo-vl-7b-rl", Path: "spec.storage.key", Message: `secret "hf-token" not found`, Fix: "create it", Warning: true},
			`m.yaml:15:10: warning: document 2 (ClusterBaseModel "mimo-vl-7b-rl"): spec.storage.key: secret "hf-token" not found (fix: create it)`},
		{"no name", Error{File: "-", Document: 1, Line: 3, Column: 7, Kind: "Route", Path: "metadata.name", Message: "is required"},
			`-:3:7: document 1 (Route): metadata.name: is required`},
		{"no position", Error{File: "models/", Message: "no such file or directory"},
			`models/: no such file or directory`},
		{"syntax", Error{File: "m.yaml", Document: 1, Line: 14, Message: "invalid YAML: found character that cannot start any token", Fix: "use spaces"},
			`m.yaml:14: document 1: invalid YAML: found character that cannot start any token (fix: use spaces)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.err.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadPaths(t *testing.T) {
	t.Parallel()
	model, err := os.ReadFile(filepath.Join(goodOME, omeFixtures[0]))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		paths []string
		opts  LoadOptions
		keys  int
		want  string // substring of the only problem; "" for none
	}{
		{name: "stdin", paths: []string{"-"}, opts: LoadOptions{Stdin: bytes.NewReader(model)}, keys: 1},
		{name: "stdin missing", paths: []string{"-"}, want: "-: no standard input"},
		{name: "nested without -R", paths: []string{goodOME}, want: "only subdirectories (testdata/good/ome/models, testdata/good/ome/runtimes, testdata/good/ome/samples): pass -R to descend into them"},
		{name: "nested with -R", paths: []string{goodOME}, opts: LoadOptions{Recursive: true}, keys: 3},
		{name: "top level only without -R", paths: []string{"testdata/good"}, keys: 8},
		{name: "missing", paths: []string{"testdata/nope.yaml"}, want: "testdata/nope.yaml: no such file or directory"},
		{name: "same file twice", paths: []string{"testdata/good/list.yaml", "testdata/good/list.yaml"}, keys: 4, want: "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			items, errs := Load(tt.paths, tt.opts)
			if len(items) != tt.keys {
				t.Errorf("got %d items, want %d", len(items), tt.keys)
			}
			switch {
			case tt.want == "" && len(errs) != 0:
				t.Errorf("unexpected problems:\n%v", errs)
			case tt.want != "" && (errs.Err() == nil || !strings.Contains(errs.Error(), tt.want)):
				t.Errorf("problems = %v; want one containing %q", errs, tt.want)
			}
		})
	}
}

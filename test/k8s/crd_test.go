package k8s

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
)

// TestCRDs installs the generated CRDs with kubectl as docs/kubernetes.md says, applies
// Citadel's examples and OME's own files to them verbatim, and checks that every object
// comes back as Citadel reads the file, that the status Citadel writes is kept, that
// kubectl get shows the printer columns, and that a wrong manifest is refused with the
// path of its wrong field.
func TestCRDs(t *testing.T) {
	root := RepoRoot(t)
	e := Start(t)

	start := time.Now()
	e.MustKubectl(nil, "apply", "-f", filepath.Join(root, "charts/citadel/crds/"))
	e.MustKubectl(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "app.kubernetes.io/part-of=citadel")
	t.Logf("CRDs installed and established in %v", time.Since(start).Round(time.Millisecond))

	var files []string
	for _, pattern := range []string{"examples/seed-001/*.yaml", "examples/runtimes/*.yaml", "test/k8s/testdata/ome/*/*/*.yaml", "test/k8s/testdata/ome/*/*/*/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("found %d files to apply, expected the examples and OME's files", len(files))
	}

	t.Run("apply", func(t *testing.T) {
		applied := 0
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			items := decode(t, f)
			for _, it := range items { // OME's samples name namespaces that may not exist yet
				if ns := it.Object.GetObjectMeta().Namespace; ns != "" && ns != v1.DefaultNamespace {
					e.Kubectl(nil, "create", "namespace", ns) // AlreadyExists is fine
				}
			}
			if _, err := e.Kubectl(nil, "apply", "-f", f); err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			for _, it := range items {
				checkStored(t, e, rel, it.Object)
				applied++
			}
		}
		t.Logf("%d objects from %d files applied and read back", applied, len(files))
	})

	t.Run("status and columns", func(t *testing.T) {
		now := v1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
		st := v1.ModelStatus{
			Status: v1.Status{
				Phase: v1.ModelDownloading, Reason: v1.ReasonDownloading, Message: "3/7 files, 1.20 GB of 7.40 GB at 50.0 MB/s", ObservedGeneration: 1,
				Conditions: []v1.Condition{{Type: "Ready", Status: v1.ConditionFalse, Reason: v1.ReasonDownloading, Message: "downloading", LastTransitionTime: now}},
			},
			BytesDone: 1_200_000_000, BytesTotal: 7_400_000_000, BytesPerSecond: 50_000_000, FilesDone: 3, FilesTotal: 7, LastProgressTime: now,
			Nodes: []v1.NodeModelStatus{
				{Node: "gpu-a", Phase: v1.ModelReady, Path: "/raid/models/XiaomiMiMo/MiMo-VL-7B-RL", BytesDone: 7_400_000_000, BytesTotal: 7_400_000_000},
				{Node: "gpu-b", Phase: v1.ModelFailed, Reason: "SecretNotFound", Message: `secret "hf-token" not found in namespace "ome"`,
					LastFailure: &v1.DownloadFailure{Reason: "SecretNotFound", Secret: &v1.FailureSecret{Namespace: "ome", Name: "hf-token", Key: "token"}, Attempt: 2}},
			},
			State: "In_Transit", NodesReady: []string{"gpu-a"}, NodesFailed: []string{"gpu-b"},
		}
		patchStatus(t, e, "clusterbasemodels.ome.io", "", "mimo-vl-7b-rl", st)
		var got v1.ClusterBaseModel
		getJSON(t, e, &got, "clusterbasemodels.ome.io", "mimo-vl-7b-rl")
		if d := cmp.Diff(st, got.Status); d != "" {
			t.Errorf("the status Citadel writes did not come back whole (-sent +stored):\n%s", d)
		}

		checkTable(t, e, []string{"get", "clusterbasemodels"},
			[]string{"NAME", "PHASE", "SIZE", "DOWNLOADED", "TOTAL", "NODES READY", "REASON", "AGE"},
			map[string]map[string]string{
				"mimo-vl-7b-rl":        {"PHASE": "Downloading", "DOWNLOADED": "1200000000", "TOTAL": "7400000000", "NODES READY": `["gpu-a"]`, "REASON": v1.ReasonDownloading},
				"qwen3-embedding-0-6b": {"PHASE": "", "SIZE": "0.6B"},
			})
		checkTable(t, e, []string{"get", "clusterbasemodel", "mimo-vl-7b-rl", "-o", "wide"},
			[]string{"NAME", "PHASE", "SIZE", "DOWNLOADED", "TOTAL", "NODES READY", "REASON", "AGE", "STATE", "NODES FAILED", "URI", "MESSAGE"},
			map[string]map[string]string{
				"mimo-vl-7b-rl": {"STATE": "In_Transit", "NODES FAILED": `["gpu-b"]`, "URI": "hf://XiaomiMiMo/MiMo-VL-7B-RL", "MESSAGE": st.Message},
			})

		ist := v1.InferenceServiceStatus{
			Status:  v1.Status{Phase: v1.ServiceStarting, Reason: "EngineStarting", Message: "1 of 2 replicas ready"},
			Runtime: "srt-mimo-vl-7b-rl", Replicas: 2, ReadyReplicas: 1, URL: "http://mimo-vl-7b-rl.mimo-vl-7b-rl.svc:8080",
			Runtimes:  []v1.RuntimeCandidate{{Name: "srt-mimo-vl-7b-rl", Score: 2, Selected: true}, {Name: "vllm", Reason: "autoSelect is false"}},
			Endpoints: []v1.Endpoint{{Replica: 0, Address: "10.0.0.7:8080", Engine: "sglang", Ready: true, Phase: "Ready", GPUs: []int{0}}},
		}
		patchStatus(t, e, "inferenceservices.ome.io", "mimo-vl-7b-rl", "mimo-vl-7b-rl", ist)
		var gotIsvc v1.InferenceService
		getJSON(t, e, &gotIsvc, "inferenceservices.ome.io", "mimo-vl-7b-rl", "-n", "mimo-vl-7b-rl")
		if d := cmp.Diff(ist, gotIsvc.Status); d != "" {
			t.Errorf("InferenceService status did not come back whole (-sent +stored):\n%s", d)
		}
		checkTable(t, e, []string{"get", "isvc", "-n", "mimo-vl-7b-rl", "-o", "wide"},
			[]string{"NAME", "PHASE", "MODEL", "RUNTIME", "READY", "REASON", "AGE", "REPLICAS", "URL", "MESSAGE"},
			map[string]map[string]string{
				"mimo-vl-7b-rl": {"PHASE": "Starting", "MODEL": "mimo-vl-7b-rl", "RUNTIME": "srt-mimo-vl-7b-rl", "READY": "1", "REASON": "EngineStarting", "REPLICAS": "2", "URL": ist.URL, "MESSAGE": ist.Message},
			})

		e.MustKubectl([]byte(`
apiVersion: citadel.dev/v1alpha1
kind: APIKey
metadata: {name: lab}
spec:
  hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  prefix: ck-Ab12c
  models: [mimo-vl, auto]
  expiresAt: "2027-01-02T15:04:05Z"
`), "apply", "-f", "-")
		checkTable(t, e, []string{"get", "clusterservingruntimes"},
			[]string{"NAME", "DISABLED", "ENGINE", "MIN SIZE", "MAX SIZE", "AGE"},
			map[string]map[string]string{
				"srt-mimo-vl-7b-rl": {"DISABLED": "false", "ENGINE": "", "MIN SIZE": "6B", "MAX SIZE": "8B"},
				"vllm":              {"DISABLED": "", "ENGINE": "vllm"},
			})
		checkTable(t, e, []string{"get", "routes"}, []string{"NAME", "PHASE", "REASON", "AGE"},
			map[string]map[string]string{"seed-001": {"PHASE": ""}})
		checkTable(t, e, []string{"get", "apikeys"}, []string{"NAME", "PREFIX", "MODELS", "DISABLED", "EXPIRES", "AGE"},
			map[string]map[string]string{"lab": {"PREFIX": "ck-Ab12c", "MODELS": `["mimo-vl","auto"]`, "DISABLED": "", "EXPIRES": "2027-01-02T15:04:05Z"}})
		if out := e.MustKubectl(nil, "get", "citadel", "-A"); !strings.Contains(out, "clusterbasemodel.ome.io/mimo-vl-7b-rl") || !strings.Contains(out, "apikey.citadel.dev/lab") {
			t.Errorf("kubectl get citadel -A does not list every kind:\n%s", out)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			name, manifest string
			want           []string // in kubectl's error
		}{
			{"wrong type", `
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: bad-type}
spec:
  maxTokens: lots
  storage: {storageUri: hf://org/repo}`, []string{"spec.maxTokens", "integer"}},
			{"unknown field", `
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata: {name: bad-field}
spec:
  storage: {storageURI: hf://org/repo}`, []string{`unknown field "spec.storage.storageURI"`}},
			{"missing required field", `
apiVersion: ome.io/v1beta1
kind: InferenceService
metadata: {name: bad-required, namespace: default}
spec:
  model: {kind: ClusterBaseModel}`, []string{"spec.model.name", "Required value"}},
			{"quantity that is a list", `
apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: bad-quantity}
spec:
  engineConfig:
    runner:
      resources: {limits: {cpu: [1]}}`, []string{"spec.engineConfig.runner.resources.limits.cpu"}},
			{"route weight", `
apiVersion: citadel.dev/v1alpha1
kind: Route
metadata: {name: bad-weight, namespace: default}
spec:
  models:
  - name: m
    targets: [{service: s, weight: heavy}]`, []string{"spec.models[0].targets[0].weight", "integer"}},
		} {
			_, err := e.Kubectl([]byte(c.manifest), "apply", "-f", "-")
			if err == nil {
				t.Errorf("%s: applied, want it refused", c.name)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: the error does not name %q:\n%v", c.name, w, err)
				}
			}
		}
	})

	t.Run("fields api/v1 does not model are kept", func(t *testing.T) {
		e.MustKubectl([]byte(`
apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: open-fields}
spec:
  engineConfig:
    activeDeadlineSeconds: 60
    runner:
      name: r
      stdinOnce: true
      volumeMounts: [{name: v, mountPath: /m, recursiveReadOnly: Disabled}]
`), "apply", "-f", "-")
		out := e.MustKubectl(nil, "get", "clusterservingruntime", "open-fields", "-o", "jsonpath={.spec.engineConfig.activeDeadlineSeconds} {.spec.engineConfig.runner.stdinOnce} {.spec.engineConfig.runner.volumeMounts[0].recursiveReadOnly}")
		if out != "60 true Disabled" {
			t.Errorf("kept fields = %q, want %q", out, "60 true Disabled")
		}
	})
}

// decode reads a file as Citadel does, keeping the kinds it has a CRD for.
func decode(t *testing.T, path string) []config.Item {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items, errs := config.Decode(f, path)
	for _, e := range errs {
		if !e.Warning {
			t.Fatalf("Citadel does not read %s: %v", path, errs)
		}
	}
	return items
}

// checkStored reads obj back from the API server and compares its spec with the file's,
// so that a field the CRD's schema lacks (and the server would drop) is found.
func checkStored(t *testing.T, e *Env, file string, want v1.Object) {
	t.Helper()
	k, _ := v1.KindByName(want.GetTypeMeta().Kind)
	group, _, _ := strings.Cut(k.APIVersion, "/")
	m := want.GetObjectMeta()
	args := []string{k.Plural + "." + group, m.Name}
	if k.Namespaced {
		args = append(args, "-n", m.Namespace)
	}
	got := k.New()
	getJSON(t, e, got, args...)
	got.Default()
	if d := cmp.Diff(specOf(t, want), specOf(t, got)); d != "" {
		t.Errorf("%s: %s %s came back changed (-file +stored):\n%s", file, k.Kind, m.Name, d)
	}
}

func specOf(t *testing.T, o v1.Object) any {
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m["spec"]
}

func getJSON(t *testing.T, e *Env, into any, args ...string) {
	t.Helper()
	out := e.MustKubectl(nil, append([]string{"get", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("kubectl get %s: %v", strings.Join(args, " "), err)
	}
}

func patchStatus(t *testing.T, e *Env, resource, namespace, name string, status any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"patch", resource, name, "--subresource=status", "--type=merge", "-p", string(b)}
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	e.MustKubectl(nil, args...)
}

// checkTable runs kubectl get and checks its header and, for each named row, the cells given.
func checkTable(t *testing.T, e *Env, args []string, header []string, rows map[string]map[string]string) {
	t.Helper()
	out := e.MustKubectl(nil, args...)
	gotHeader, got := table(out)
	if !slices.Equal(gotHeader, header) {
		t.Errorf("kubectl %s: columns %q, want %q", strings.Join(args, " "), gotHeader, header)
		return
	}
	for name, cells := range rows {
		row, ok := got[name]
		if !ok {
			t.Errorf("kubectl %s: no row %s:\n%s", strings.Join(args, " "), name, out)
			continue
		}
		for col, want := range cells {
			if row[col] != want {
				t.Errorf("kubectl %s: %s's %s is %q, want %q:\n%s", strings.Join(args, " "), name, col, row[col], want, out)
			}
		}
	}
}

// table parses kubectl get's output: the column names, and each row's cells by column
// name, the rows by their first cell. kubectl starts each cell where its column's name
// starts; names are separated by at least two spaces.
func table(out string) ([]string, map[string]map[string]string) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var names []string
	var starts []int
	h := lines[0]
	for i := 0; i < len(h); i++ {
		if h[i] != ' ' && (i == 0 || strings.HasSuffix(h[:i], "  ")) {
			end := strings.Index(h[i:], "  ")
			if end < 0 {
				end = len(h) - i
			}
			names = append(names, h[i:i+end])
			starts = append(starts, i)
			i += end
		}
	}
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		row := map[string]string{}
		for i, name := range names {
			from, to := min(starts[i], len(l)), len(l)
			if i+1 < len(starts) {
				to = min(starts[i+1], len(l))
			}
			row[name] = strings.TrimSpace(l[from:to])
		}
		rows[row[names[0]]] = row
	}
	return names, rows
}

package modeltest_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/agent"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/daemon"
	"citadel.dev/citadel/internal/gateway"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/mirror/mirrortest"
	"citadel.dev/citadel/internal/modeltest"
	"citadel.dev/citadel/internal/placement"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/serving"
	"citadel.dev/citadel/internal/sim/simtest"
)

// Every golden report here comes from a real run: `citadel serve`'s daemon with the model
// agent pulling from a loopback mirror (faults injected there), the serving controller
// running `citadel sim` in place of the engines on a fake 2× RTX 4070 Ti SUPER, and the
// gateway; then modeltest.Run as `citadel test model` runs it.

var update = flag.Bool("update", false, "rewrite the golden reports in testdata")

// safetensors is a small valid safetensors file with one BF16 tensor.
func safetensors(rows, cols int) []byte {
	n := rows * cols * 2
	hdr, _ := json.Marshal(map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"w":            map[string]any{"dtype": "BF16", "shape": []int{rows, cols}, "data_offsets": []int{0, n}},
	})
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, make([]byte, n)...)
}

const visionConfig = `{"architectures":["Qwen2_5_VLForConditionalGeneration"],"model_type":"qwen2_5_vl","torch_dtype":"bfloat16",
"transformers_version":"4.41.2","hidden_size":1024,"intermediate_size":2816,"num_hidden_layers":8,"num_attention_heads":16,
"num_key_value_heads":4,"vocab_size":32000,"max_position_embeddings":8192,"vision_config":{"depth":4,"hidden_size":256}}`

const textConfig = `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","transformers_version":"4.43.1",
"hidden_size":1024,"intermediate_size":2816,"num_hidden_layers":8,"num_attention_heads":16,"num_key_value_heads":4,
"vocab_size":32000,"max_position_embeddings":8192}`

// A model too large for two 16 GB cards: a 70B shape, its config only.
const hugeConfig = `{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","torch_dtype":"bfloat16","transformers_version":"4.43.1",
"hidden_size":8192,"intermediate_size":29568,"num_hidden_layers":80,"num_attention_heads":64,"num_key_value_heads":8,
"vocab_size":152064,"max_position_embeddings":32768}`

func repo(t *testing.T, dir, name string, files map[string][]byte) {
	t.Helper()
	d := filepath.Join(dir, "hf", filepath.FromSlash(name))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type env struct {
	c       *client.Client
	gateway string
	mirror  *mirror.Server
	hub     string // the mirror's URL: the server's and the test's HF_ENDPOINT
	dir     string
}

const token = "hf_citadel_test"

func start(t *testing.T) *env {
	t.Helper()
	bin := simtest.Citadel(t)
	mdir := t.TempDir()
	weights := safetensors(512, 512)
	repo(t, mdir, "XiaomiMiMo/MiMo-VL-7B-RL", map[string][]byte{"config.json": []byte(visionConfig), "model.safetensors": weights})
	repo(t, mdir, "org/text", map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": weights})
	repo(t, mdir, "org/stall", map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": weights})
	repo(t, mdir, "org/corrupt", map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": weights})
	repo(t, mdir, "org/huge", map[string][]byte{"config.json": []byte(hugeConfig)})
	repo(t, mdir, "org/private", map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": weights,
		".mirror.json": []byte(`{"private": true}`)})
	repo(t, mdir, "org/gated", map[string][]byte{"config.json": []byte(textConfig), "model.safetensors": weights,
		".mirror.json": []byte(`{"gated": "manual", "tokens": ["hf_someone_else"]}`)})
	m, url := mirrortest.Start(t, mirror.Options{Dir: mdir, Tokens: []mirror.Token{{User: "tester", Value: token}, {User: "other", Value: "hf_someone_else"}}}, nil)
	m.SetFaults("org/stall", mirror.Fault{Kind: mirror.FaultStall, Files: "model.safetensors", Bytes: 4096})
	m.SetFaults("org/corrupt", mirror.Fault{Kind: mirror.FaultCorrupt, Files: "model.safetensors", Offset: 100000})

	dir := t.TempDir()
	inv, _ := placement.FakeInventory("2xrtx-4070-ti-super")
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stall := 2 * time.Second
	go func() {
		done <- daemon.Run(ctx, daemon.Options{DataDir: filepath.Join(dir, "state"), AdminListener: admin,
			Puller:  pull.New(pull.Options{HFEndpoint: url, HFCache: filepath.Join(dir, "hf", "hub"), StallTimeout: stall, ChunkSize: 256 << 10}),
			Agent:   serveAgentOptions(stall),
			Serving: &serving.Options{Inventory: inv, Simulate: &serving.Simulation{Citadel: bin, TimeScale: 0}},
			Gateway: &gateway.Options{HealthInterval: 200 * time.Millisecond}, GatewayListener: gw})
	}()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(admin.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, gateway: "http://" + gw.Addr().String(), mirror: m, hub: url, dir: dir}
	e.apply(t, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: hf-token, namespace: ome}\nstringData: {token: %s}\n", token))
	return e
}

func (e *env) apply(t *testing.T, y string) {
	t.Helper()
	var req v1.ApplyRequest
	for _, o := range decode(t, y) {
		b, _ := json.Marshal(o)
		req.Items = append(req.Items, v1.ApplyItem{Object: b})
	}
	if _, err := e.c.Apply(t.Context(), req); err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, y string) []v1.Object {
	t.Helper()
	items, errs := config.Decode(strings.NewReader(y), "test.yaml")
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	var out []v1.Object
	for _, it := range items {
		out = append(out, it.Object)
	}
	return out
}

// model is a ClusterBaseModel YAML for a mirror repo, stored under the test's directory.
func (e *env) model(name, repo, key string, extra string) string {
	y := fmt.Sprintf("apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {name: %s}\nspec:\n  storage:\n    storageUri: hf://%s\n    path: %s\n",
		name, repo, filepath.Join(e.dir, "models", name))
	if key != "" {
		y += "    key: " + key + "\n"
	}
	return y + extra
}

// runtime is a ClusterServingRuntime YAML serving arch with engine vllm (args appended).
func runtimeYAML(name, arch, framework string, args ...string) string {
	a := ""
	if len(args) > 0 {
		b, _ := json.Marshal(args)
		a = ", args: " + string(b)
	}
	return fmt.Sprintf(`apiVersion: ome.io/v1beta1
kind: ClusterServingRuntime
metadata: {name: %s}
spec:
  supportedModelFormats:
  - modelFormat: {name: safetensors, version: "1.0.0"}
    modelFramework: {name: transformers, version: %q}
    modelArchitecture: %s
    autoSelect: true
  engine: {name: vllm%s}
`, name, framework, arch, a)
}

var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`), "<time>"},
	// vLLM's log prefix is month-day and time ("INFO 11-22 12:44:50"): both go, or the
	// golden holds the day it was written on.
	{regexp.MustCompile(`\b\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\b`), "<time>"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d(\.\d+)?\b`), "<time>"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d\b`), "<date>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<port>"},
	{regexp.MustCompile(`/tmp/[^\s"'\x60)\]]+`), "<tmp>"},
	{regexp.MustCompile(`\b(pid|process) \d+`), "$1 <pid>"},
	{regexp.MustCompile(`\d+(\.\d+)? ?(ns|µs|us|ms|s|m|h)\b`), "<dur>"},
	{regexp.MustCompile(`\b[0-9a-f]{24,64}\b`), "<hex>"},
	{regexp.MustCompile(`\d+(\.\d+)? (kB|MB|GB|B)/s`), "<rate>"},
	{regexp.MustCompile(`\b\d+(\.\d+)? tokens/s`), "<n> tokens/s"},
	{regexp.MustCompile(`\bport \d+`), "port <port>"},
	{regexp.MustCompile(`\d+(\.\d+)? GB free`), "<n> GB free"},
	// Files download in parallel: which one meets a repo-wide refusal first varies.
	{regexp.MustCompile(`: (config\.json|model\.safetensors): repository`), ": <file>: repository"},
	{regexp.MustCompile(`tokens_per_s=[0-9.]+`), "tokens_per_s=<n>"},
	// The agent words a stall by what the stalled requests did: silent from the start, or
	// silent again after a few bytes (which of the two depends on timing).
	{regexp.MustCompile(`DownloadStalled: (?:no bytes of (\S+) for <dur> \((received \d+ of \d+ bytes)\)|(\S+) keeps going silent: .*?\((received \d+ of \d+ bytes), the last <dur> ago\))`), "DownloadStalled: ${1}${3} stalled (${2}${4})"},
	// How many bytes pass before a stall fault holds depends on the reads' sizes.
	{regexp.MustCompile(`\b\d+ of (\d+) bytes received( of the model)? \([0-9.]+ kB of`), "<n> of $1 bytes received$2 (<size> of"},
	{regexp.MustCompile(`received \d+ of (\d+) bytes`), "received <n> of $1 bytes"},
	{regexp.MustCompile(` -r \d+- `), " -r <n>- "},
}

// progressLine is a download progress sample: how many the run sees depends on timing.
var (
	progressLine   = regexp.MustCompile(`(?m)^(\s*)phase (Downloading|Verifying|Starting) .*\n`)
	unreconciled   = regexp.MustCompile(`(?m)^\s*phase \n`) // read before any controller wrote a status
	downloadLikely = regexp.MustCompile(`phase (Downloading|Verifying) <progress>`)
)

func normalize(b []byte) []byte {
	s := unreconciled.ReplaceAllString(string(b), "")
	s = progressLine.ReplaceAllString(s, "${1}phase ${2} <progress>\n")
	s = downloadLikely.ReplaceAllString(s, "phase Downloading <progress>")
	// Consecutive samples collapse to one.
	for _, p := range []string{"Downloading", "Verifying", "Starting"} {
		two := "phase " + p + " <progress>\nphase " + p + " <progress>\n"
		for strings.Contains(s, two) {
			s = strings.ReplaceAll(s, two, "phase "+p+" <progress>\n")
		}
	}
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return []byte(s)
}

// TestNormalizeClock pins that no clock reading an engine or the report prints survives
// normalisation: a golden holding one fails on every other day.
func TestNormalizeClock(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"vllm", "INFO 11-22 12:44:50 [api_server.py] vLLM API server", "INFO <time> [api_server.py] vLLM API server"},
		{"vllm fraction", "INFO 01-03 00:00:01.123 [x]", "INFO <time> [x]"},
		{"sglang", "[2025-11-22 12:44:50] The server is fired up", "[<time>] The server is fired up"},
		{"ollama", `time=2025-11-22T12:44:50+01:00 level=INFO`, "time=<time> level=INFO"},
		{"utc", "time=2025-11-22T12:44:50Z level=INFO", "time=<time> level=INFO"},
		{"report", "- **Test date**: 2025-11-22 12:44:50 UTC", "- **Test date**: <time> UTC"},
		{"started", "(started 12:44:50 UTC)", "(started <time> UTC)"},
		{"date only", "on 2025-11-22 the", "on <date> the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(normalize([]byte(tt.in))); got != tt.want {
				t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func golden(t *testing.T, name string, r *modeltest.Report, timing ...*regexp.Regexp) {
	t.Helper()
	got := normalize(r.Markdown())
	// Lines whose wording depends on which of two waits ends first.
	for _, re := range timing {
		got = re.ReplaceAll(got, []byte("<depends on timing>"))
	}
	path := filepath.Join("testdata", "e2e", name+".md")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if w, g := structure(want), structure(got); w != g {
		t.Errorf("%s differs from the golden report (-update to accept):\n--- want\n%s\n--- got\n%s", path, w, g)
	}
	if r.Cause != nil {
		checkNextSteps(t, r)
	}
}

// placeholders are words a user would have to replace before a next step runs, and the
// public hub, which no run here talks to (they all use a loopback mirror).
var placeholders = regexp.MustCompile(`\b(NAME|NS|RUNTIME|GATEWAY|HOST:PORT|FILE|PATH|DIR)\b|hf_\.\.\.|huggingface\.co|spec\.storage\.storageUri \(spec\.storage\.storageUri\)`)

// checkNextSteps: every next step can be run as written, against the hub the run used, and
// names the model's repository rather than its object name.
func checkNextSteps(t *testing.T, r *modeltest.Report) {
	t.Helper()
	for _, s := range r.Cause.NextSteps {
		if m := placeholders.FindString(s); m != "" {
			t.Errorf("next step holds %q: %s", m, s)
		}
	}
	if spec := r.Facts.ModelSpec; spec != nil && spec.Storage != nil && spec.Storage.StorageURI != nil && r.Model != "" {
		repo, _, _ := strings.Cut(strings.TrimPrefix(*spec.Storage.StorageURI, "hf://"), "@")
		text := r.Cause.Summary + "\n" + strings.Join(r.Cause.NextSteps, "\n")
		if repo != r.Model && (strings.Contains(text, "Repository "+r.Model+" ") || strings.Contains(text, r.Facts.HubEndpoint+"/"+r.Model)) {
			t.Errorf("the cause names the object %s where it means the repository %s:\n%s", r.Model, repo, text)
		}
	}
}

// structure is what a golden report pins: headings, the result, the tables (steps and
// checks), the status and summary lines, and the numbered next steps. Evidence blocks are
// left out: how many progress samples and retried events a run records depends on timing.
func structure(b []byte) string {
	var out []string
	fenced := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		switch {
		case strings.HasPrefix(l, "#"), strings.HasPrefix(l, "**Result"), strings.HasPrefix(l, "| "),
			strings.HasPrefix(l, "- **Status"), strings.HasPrefix(l, "- **Summary"), regexp.MustCompile(`^\d+\. `).MatchString(l):
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (e *env) options() modeltest.Options {
	return modeltest.Options{Client: e.c, Gateway: e.gateway, HubEndpoint: e.hub, Stall: 6 * time.Second, DownloadTimeout: 60 * time.Second,
		ReadyTimeout: 30 * time.Second, Poll: 50 * time.Millisecond}
}

// TestModelReports runs one real test per scenario and pins its report.
func TestModelReports(t *testing.T) {
	e := start(t)
	const vlArch, textArch = "Qwen2_5_VLForConditionalGeneration", "Qwen2ForCausalLM"
	tests := []struct {
		name, wantCode string
		yaml           string
		opts           func(*modeltest.Options)
		setup          func(t *testing.T)
		within         time.Duration
	}{
		{name: "pass-vision", yaml: e.model("mimo-vl", "XiaomiMiMo/MiMo-VL-7B-RL", "hf-token", "  modelCapabilities: [IMAGE_TEXT_TO_TEXT]\n") +
			"---\n" + runtimeYAML("vl-rt", vlArch, "4.41.2")},
		{name: "secret-not-found", wantCode: "SecretNotFound", yaml: e.model("no-secret", "org/text", "missing-token", "")},
		{name: "unauthorized", wantCode: "Unauthorized", yaml: e.model("bad-token", "org/private", "wrong-token", ""),
			setup: func(t *testing.T) {
				e.apply(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: wrong-token, namespace: ome}\nstringData: {token: hf_not_a_token}\n")
			}},
		{name: "repo-not-found", wantCode: "RepoNotFound", yaml: e.model("missing-repo", "org/does-not-exist", "hf-token", "")},
		{name: "gated-repo", wantCode: "GatedRepo", yaml: e.model("gated", "org/gated", "hf-token", "")},
		{name: "download-stalled", wantCode: "DownloadStalled", yaml: e.model("stalled", "org/stall", "hf-token", ""), within: 2*time.Second + 10*time.Second},
		{name: "checksum-mismatch", wantCode: "ChecksumMismatch", yaml: e.model("corrupt", "org/corrupt", "hf-token", "")},
		{name: "runtime-incompatible", wantCode: "RuntimeIncompatible", yaml: e.model("text-a", "org/text", "hf-token", "") + "---\n" + runtimeYAML("llama-rt", "LlamaForCausalLM", "4.43.1"),
			opts: func(o *modeltest.Options) { o.Runtime = "llama-rt" }},
		// The 70B shape has only a config.json (no weights to count), so its metadata is given
		// as a user would; the planner sizes it from the config.
		{name: "unschedulable", wantCode: "Unschedulable", yaml: e.model("huge", "org/huge", "hf-token",
			"  modelFormat: {name: safetensors, version: \"1.0.0\"}\n  modelFramework: {name: transformers, version: \"4.43.1\"}\n  modelArchitecture: Qwen2ForCausalLM\n") +
			"---\n" + runtimeYAML("huge-rt", textArch, "4.43.1"), opts: func(o *modeltest.Options) { o.Runtime = "huge-rt" }},
		{name: "oom-at-load", wantCode: "OutOfMemoryAtLoad", yaml: e.model("text-oom", "org/text", "hf-token", "") + "---\n" + runtimeYAML("oom-rt", textArch, "4.43.1", "--oom-at-load"),
			opts: func(o *modeltest.Options) { o.Runtime = "oom-rt" }},
		{name: "startup-timeout", wantCode: "ReadinessTimeout", yaml: e.model("text-slow", "org/text", "hf-token", "") + "---\n" + runtimeYAML("slow-rt", textArch, "4.43.1", "--startup-delay", "1h", "--bind-after-startup"),
			opts: func(o *modeltest.Options) { o.Runtime, o.ReadyTimeout = "slow-rt", 4*time.Second }},
		{name: "gateway-route-missing", wantCode: "GatewayRouteMissing", yaml: e.model("text-gw", "org/text", "hf-token", "") + "---\n" + runtimeYAML("gw-rt", textArch, "4.43.1"),
			opts: func(o *modeltest.Options) { o.Runtime, o.Gateway = "gw-rt", standaloneGateway(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			o := e.options()
			if tt.opts != nil {
				tt.opts(&o)
			}
			start := time.Now()
			r := modeltest.Run(t.Context(), o, modeltest.Target{Objects: decode(t, tt.yaml)})
			took := time.Since(start)
			if tt.wantCode == "" {
				if r.Result != modeltest.ResultPassed {
					t.Fatalf("result %s: %+v\n%s", r.Result, r.Cause, r.Markdown())
				}
			} else if r.Cause == nil || r.Cause.Code != tt.wantCode {
				t.Fatalf("cause %+v, want %s\n%s", r.Cause, tt.wantCode, r.Markdown())
			}
			if tt.within > 0 && took > tt.within+5*time.Second {
				t.Errorf("took %s, want the cause within %s", took, tt.within)
			}
			// Cleanup deletes everything the test applied: the model, its runtimes, the service.
			for _, o := range decode(t, tt.yaml) {
				m := o.GetObjectMeta()
				if _, err := e.c.Get(t.Context(), o.GetTypeMeta().Kind, m.Namespace, m.Name); err == nil {
					t.Errorf("%s %s is left after cleanup", o.GetTypeMeta().Kind, m.Name)
				}
			}
			golden(t, tt.name, r)
		})
	}
}

// TestExistingModel: `citadel test model NAME` of a model that exists reads its spec: the
// cause names the repository (not the object) and the next steps the configured mirror.
func TestExistingModel(t *testing.T) {
	e := start(t)
	const repo = "XiaomiMiMo/MiMo-VL-7B-RL-AWQ" // the mirror has XiaomiMiMo/MiMo-VL-7B-RL only
	e.apply(t, e.model("mimo-vl-7b-rl-awq", repo, "hf-token", ""))
	r := modeltest.Run(t.Context(), e.options(), modeltest.Target{Model: "mimo-vl-7b-rl-awq"})
	if r.Cause == nil || r.Cause.Code != "RepoNotFound" {
		t.Fatalf("cause %+v, want RepoNotFound\n%s", r.Cause, r.Markdown())
	}
	if !strings.Contains(r.Cause.Summary, repo) {
		t.Errorf("summary %q does not name the repository %s", r.Cause.Summary, repo)
	}
	if steps := strings.Join(r.Cause.NextSteps, "\n"); !strings.Contains(steps, e.hub+"/api/models/"+repo) {
		t.Errorf("next steps do not check %s on the mirror %s:\n%s", repo, e.hub, steps)
	}
	// The model existed before the test: it stays.
	if _, err := e.c.Get(t.Context(), v1.KindClusterBaseModel, "", "mimo-vl-7b-rl-awq"); err != nil {
		t.Errorf("the existing model was deleted: %v", err)
	}
	golden(t, "existing-repo-not-found", r)
}

// standaloneGateway is a gateway that knows no route: the engine answers, the gateway does not.
func standaloneGateway(t *testing.T) string {
	gw := gateway.New(gateway.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httpServer{}
	srv.start(ln, gw.Handler())
	t.Cleanup(srv.stop)
	return "http://" + ln.Addr().String()
}

func serveAgentOptions(stall time.Duration) agent.Options {
	return agent.Options{StallTimeout: stall, RetryBase: time.Hour, StatusEvery: 100 * time.Millisecond, Node: "gpu-1"}
}

// agentAll lets every model download at once (no queueing order to vary).
func agentAll(o agent.Options) agent.Options {
	o.MaxConcurrent = 8
	return o
}

type httpServer struct{ s *http.Server }

func (h *httpServer) start(ln net.Listener, handler http.Handler) {
	h.s = &http.Server{Handler: handler}
	go h.s.Serve(ln)
}

func (h *httpServer) stop() { h.s.Close() }

// TestSystemicDiagnosis: three models stuck at once on an unreachable hub get one systemic
// diagnosis naming the failing check.
func TestSystemicDiagnosis(t *testing.T) {
	bin := simtest.Citadel(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hub := "http://" + dead.Addr().String()
	dead.Close() // nothing listens: the hub is unreachable
	dir := t.TempDir()
	inv, _ := placement.FakeInventory("2xrtx-4070-ti-super")
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{DataDir: filepath.Join(dir, "state"), AdminListener: admin,
			Puller:  pull.New(pull.Options{HFEndpoint: hub, HFCache: filepath.Join(dir, "hf", "hub"), StallTimeout: 2 * time.Second}),
			Agent:   agentAll(serveAgentOptions(2 * time.Second)),
			Serving: &serving.Options{Inventory: inv, Simulate: &serving.Simulation{Citadel: bin, TimeScale: 0}}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(admin.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, dir: dir}
	var reports [3]*modeltest.Report
	var wg sync.WaitGroup
	for i, name := range []string{"internlm2-7b-reward", "mimo-vl-7b-rl", "minicpm-v-2-6"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := e.options()
			o.Stall, o.DownloadTimeout = 4*time.Second, 20*time.Second
			reports[i] = modeltest.Run(t.Context(), o, modeltest.Target{Objects: decode(t, e.model(name, "org/"+name, "", ""))})
		}()
	}
	wg.Wait()
	modeltest.Systemic(t.Context(), reports[:], modeltest.ProbeInput{HubEndpoint: hub, StoragePath: dir})
	for _, r := range reports {
		if r.Cause == nil || !r.Cause.Systemic {
			t.Fatalf("%s: cause %+v, want systemic\n%s", r.Model, r.Cause, r.Markdown())
		}
		for _, m := range []string{"internlm2-7b-reward", "mimo-vl-7b-rl", "minicpm-v-2-6"} {
			if !strings.Contains(strings.Join(r.Cause.Evidence, "\n")+r.Cause.Summary, m) {
				t.Errorf("%s: the systemic cause does not name %s: %+v", r.Model, m, r.Cause)
			}
		}
	}
	// Which ends the download first, the agent's own failure (ConnectionFailed, after its
	// retries) or the test's stall check, depends on timing; the systemic cause does not.
	golden(t, "systemic-hub-unreachable", reports[1],
		regexp.MustCompile(`(?m)^(\| 2 \| Model download \| ❌ failed \| <dur> \| |- \*\*Summary\*\*: )(ConnectionFailed|DownloadStalled): .*$`))
}

// TestSuiteSharedCleanup: models of a suite share a runtime; it is deleted once, after every
// model is done (never under a model still testing), and both models pass.
func TestSuiteSharedCleanup(t *testing.T) {
	e := start(t)
	objs := decode(t, e.model("text-s1", "org/text", "hf-token", "")+"---\n"+e.model("text-s2", "org/text", "hf-token", "")+"---\n"+
		runtimeYAML("shared-rt", "Qwen2ForCausalLM", "4.43.1"))
	o := e.options()
	o.Runtime = "shared-rt"
	reports := modeltest.Suite(t.Context(), o, objs[:2], objs[2:], 2, nil)
	for _, r := range reports {
		if r.Result != modeltest.ResultPassed {
			t.Errorf("%s: %s: %+v", r.Model, r.Result, r.Cause)
		}
		if !strings.Contains(strings.Join(r.Steps[len(r.Steps)-1].Evidence, "\n"), "deleted clusterservingruntime/shared-rt (shared by the suite)") {
			t.Errorf("%s: cleanup does not say the shared runtime was deleted: %v", r.Model, r.Steps[len(r.Steps)-1].Evidence)
		}
	}
	if _, err := e.c.Get(t.Context(), v1.KindClusterServingRuntime, "", "shared-rt"); err == nil {
		t.Error("the shared runtime is left after the suite")
	}
}

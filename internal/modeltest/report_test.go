package modeltest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
)

// The reports here are built by hand, so every rendering can be read against a known run:
// a passing vision model, a model whose download stalled, and a model caught by a systemic
// failure (the hub token).

var t0 = time.Date(2025, 12, 3, 12, 54, 12, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func passedVisionReport() *Report {
	const model = "XiaomiMiMo/MiMo-VL-7B-RL"
	check := func(name, path, detail string, values map[string]float64) Check {
		return Check{Name: name, Path: path, Status: Passed, Detail: detail, Values: values}
	}
	var checks []Check
	for _, p := range []struct {
		path       string
		ttft, p50  float64
		tokensPerS float64
	}{{"engine", 0.184, 0.191, 41.27}, {"gateway", 0.203, 0.212, 40.85}} {
		served := "mimo-vl-7b-rl"
		if p.path == "gateway" {
			served = "default/mimo-vl-7b-rl"
		}
		checks = append(checks,
			check("models", p.path, `lists "`+served+`"`, nil),
			check("chat", p.path, "23 prompt + 16 completion tokens, finish_reason length", nil),
			check("stream", p.path, fmt.Sprintf("TTFT %dms, 18 chunks, [DONE]", int(p.ttft*1000)), map[string]float64{"ttft_s": p.ttft, "chunks": 18, "completion_tokens": 16}),
			check("vision", p.path, "accepted a 112×112 PNG: 92 prompt tokens, 16 completion tokens", map[string]float64{"prompt_tokens": 92}),
			check("latency", p.path, fmt.Sprintf("TTFT p50 %dms, %.0f tokens/s", int(p.p50*1000), p.tokensPerS), map[string]float64{"ttft_p50_s": p.p50, "tokens_per_s": p.tokensPerS}),
		)
	}
	return &Report{
		Model:     model,
		Namespace: "default",
		Started:   t0,
		Duration:  6*time.Minute + 12400*time.Millisecond,
		Result:    ResultPassed,
		Info: []string{
			"Model: " + model,
			"Architecture: Qwen2_5_VLForConditionalGeneration",
			"Parameters: 8.31B",
			"Size: 16.6 GB",
			"Framework: transformers 4.41.2",
			"Format: safetensors",
			"Capabilities: IMAGE_TEXT_TO_TEXT",
		},
		Steps: []Step{
			{Name: StepApply, Title: "Model application", Status: Passed, Started: at(0), Duration: 1200 * time.Millisecond,
				Summary:  "created ClusterBaseModel mimo-vl-7b-rl",
				Evidence: []string{"clusterbasemodel/mimo-vl-7b-rl created (storageUri hf://XiaomiMiMo/MiMo-VL-7B-RL, key hf-token)"}},
			{Name: StepDownload, Title: "Model download", Status: Passed, Started: at(1200 * time.Millisecond), Duration: 4*time.Minute + 48300*time.Millisecond,
				Summary: "Ready: 4 files, 16.6 GB",
				Evidence: []string{
					"phase Pending (AwaitingAgent)",
					"phase Downloading, 1.2 GB of 16.6 GB at 58.3 MB/s",
					"phase Downloading, 9.8 GB of 16.6 GB at 61.0 MB/s",
					"phase Ready, 16.6 GB of 16.6 GB: 4 files, 16.6 GB",
					"event Normal DownloadComplete: 4 files, 16.6 GB in 4m47s",
				}},
			{Name: StepRuntime, Title: "Runtime validation", Status: Passed, Started: at(4*time.Minute + 49500*time.Millisecond), Duration: 850 * time.Millisecond,
				Summary: "srt-mimo-vl-7b-rl selected (score 120)",
				Evidence: []string{
					"srt-mimo-vl-7b-rl: selected, score 120",
					"vllm-qwen2: rejected: architecture Qwen2ForCausalLM does not match Qwen2_5_VLForConditionalGeneration",
				}},
			{Name: StepService, Title: "InferenceService creation", Status: Passed, Started: at(4*time.Minute + 50350*time.Millisecond), Duration: 320 * time.Millisecond,
				Summary: "created inferenceservice default/mimo-vl-7b-rl"},
			{Name: StepReady, Title: "InferenceService readiness", Status: Passed, Started: at(4*time.Minute + 50670*time.Millisecond), Duration: 62500 * time.Millisecond,
				Summary:  "Ready: 1 of 1 replicas, vllm on GPU 0",
				Evidence: []string{"endpoint 0: 127.0.0.1:8000 vllm GPU 0 Ready (served mimo-vl-7b-rl)"}},
			{Name: StepInference, Title: "Inference testing", Status: Passed, Started: at(5*time.Minute + 53170*time.Millisecond), Duration: 17130 * time.Millisecond,
				Summary: "10 checks passed on 2 path(s)", Checks: checks},
			{Name: StepCleanup, Title: "Cleanup", Status: Passed, Started: at(6*time.Minute + 10300*time.Millisecond), Duration: 2100 * time.Millisecond,
				Summary:  "deleted 2 object(s) the test created",
				Evidence: []string{"deleted inferenceservice/mimo-vl-7b-rl", "deleted clusterbasemodel/mimo-vl-7b-rl"}},
		},
		Facts: Facts{
			Model: model, ModelKind: v1.KindClusterBaseModel, ModelPhase: "Ready",
			BytesDone: 16612434432, BytesTotal: 16612434432, LastProgress: at(4*time.Minute + 49*time.Second),
			Service: "default/mimo-vl-7b-rl", ServicePhase: "Ready", Runtime: "srt-mimo-vl-7b-rl",
			Runtimes: []v1.RuntimeCandidate{
				{Name: "srt-mimo-vl-7b-rl", Score: 120, Selected: true},
				{Name: "vllm-qwen2", Reason: "architecture Qwen2ForCausalLM does not match Qwen2_5_VLForConditionalGeneration"},
			},
			Endpoints: []v1.Endpoint{{Replica: 0, Address: "127.0.0.1:8000", Engine: "vllm", GPUs: []int{0}, Ready: true, Phase: "Ready", Served: []string{"mimo-vl-7b-rl"}}},
		},
	}
}

// notRun are the steps between the download and the cleanup, blocked by the download.
func notRun() []Step {
	var steps []Step
	for _, s := range Steps[2:6] {
		steps = append(steps, Step{Name: s.Name, Title: s.Title, Status: NotRun, BlockedBy: StepDownload})
	}
	return steps
}

func downloadStalledReport() *Report {
	const model = "XiaomiMiMo/MiMo-VL-7B-RL"
	evidence := []string{
		"phase Downloading, 7.2 GB of 16.6 GB; last progress 12:56:21 UTC, none for 10 min 0 s",
		"model-00003-of-00004.safetensors: 2.1 GB of 3.9 GB, no bytes since 12:56:21 UTC",
		"event Warning DownloadStalled: model-00003-of-00004.safetensors: read tcp 10.0.0.7:51812->18.244.202.60:443: connection reset by peer (retry 5 of 5)",
		"systemic probe: hub, token, storage and agent all healthy; no other model is stuck",
	}
	steps := []Step{
		{Name: StepApply, Title: "Model application", Status: Passed, Started: at(0), Duration: 1100 * time.Millisecond,
			Summary:  "created ClusterBaseModel mimo-vl-7b-rl",
			Evidence: []string{"clusterbasemodel/mimo-vl-7b-rl created (storageUri hf://XiaomiMiMo/MiMo-VL-7B-RL, key hf-token)"}},
		{Name: StepDownload, Title: "Model download", Status: Failed, Started: at(1100 * time.Millisecond), Duration: 12*time.Minute + 9*time.Second,
			Summary: "DownloadStalled: no bytes for 10m0s at 7.2 GB of 16.6 GB",
			Evidence: []string{
				"phase Pending (AwaitingAgent)",
				"phase Downloading, 1.1 GB of 16.6 GB at 61.0 MB/s",
				"phase Downloading, 7.2 GB of 16.6 GB at 58.7 MB/s",
				"phase Downloading, 7.2 GB of 16.6 GB",
				"event Warning DownloadStalled: model-00003-of-00004.safetensors: read tcp 10.0.0.7:51812->18.244.202.60:443: connection reset by peer (retry 5 of 5)",
			}},
	}
	steps = append(steps, notRun()...)
	steps = append(steps, Step{Name: StepCleanup, Title: "Cleanup", Status: Passed, Started: at(12*time.Minute + 10100*time.Millisecond), Duration: 850 * time.Millisecond,
		Summary: "deleted 1 object(s) the test created", Evidence: []string{"deleted clusterbasemodel/mimo-vl-7b-rl"}})
	return &Report{
		Model:     model,
		Namespace: "default",
		Started:   t0,
		Duration:  12*time.Minute + 11*time.Second,
		Result:    ResultFailed,
		Steps:     steps,
		Cause: &Cause{
			Code:     "DownloadStalled",
			Step:     StepDownload,
			Summary:  "the download stopped at 7.2 GB of 16.6 GB: model-00003-of-00004.safetensors made no progress for 10 min after the hub reset the connection",
			Evidence: evidence,
			NextSteps: []string{
				"Run `citadel test model XiaomiMiMo/MiMo-VL-7B-RL` again: the 2 complete files and the 2.1 GB of model-00003-of-00004.safetensors are kept and the download resumes from there.",
				"If it stalls again on the same file, fetch it alone to see the hub's answer: `citadel pull XiaomiMiMo/MiMo-VL-7B-RL --include model-00003-of-00004.safetensors -v`.",
			},
		},
		Systemic: []SystemicCheck{
			{Name: "hub", Passed: true, Detail: "huggingface.co answered in 212 ms"},
			{Name: "token", Passed: true, Detail: "hf-token is valid (user citadel-ci)"},
			{Name: "storage", Passed: true, Detail: "/raid/models: 1.2 TB free, 16.6 GB needed"},
			{Name: "agent", Passed: true, Detail: "agent running, last heartbeat 3 s ago"},
		},
		Facts: Facts{
			Model: model, ModelKind: v1.KindClusterBaseModel, ModelPhase: "Downloading", ModelReason: "DownloadStalled",
			ModelMessage: "model-00003-of-00004.safetensors: connection reset by peer",
			BytesDone:    7203000000, BytesTotal: 16612434432, LastProgress: at(2*time.Minute + 9*time.Second), NoProgressFor: 10 * time.Minute,
			ModelEvents: []v1.Event{{Type: v1.EventWarning, Reason: "DownloadStalled", Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl", Count: 5,
				Message:       "model-00003-of-00004.safetensors: read tcp 10.0.0.7:51812->18.244.202.60:443: connection reset by peer (retry 5 of 5)",
				LastTimestamp: v1.NewTime(at(12 * time.Minute))}},
		},
	}
}

func systemicReport() *Report {
	const model = "openbmb/MiniCPM-V-2_6"
	event := `event Warning DownloadFailed: GET https://huggingface.co/api/models/openbmb/MiniCPM-V-2_6/revision/main?expand=siblings&blobs=true: 401 Unauthorized <html>Invalid credentials in "Authorization" header</html>`
	steps := []Step{
		{Name: StepApply, Title: "Model application", Status: Passed, Started: at(0), Duration: 900 * time.Millisecond,
			Summary: "created ClusterBaseModel minicpm-v-2-6", Evidence: []string{"clusterbasemodel/minicpm-v-2-6 created (storageUri hf://openbmb/MiniCPM-V-2_6, key hf-token)"}},
		{Name: StepDownload, Title: "Model download", Status: Failed, Started: at(900 * time.Millisecond), Duration: 60 * time.Second,
			Summary:  "still Pending after 1m0s: Unauthorized",
			Evidence: []string{"phase Pending (Unauthorized): the hub refused hf-token", event}},
	}
	steps = append(steps, notRun()...)
	steps = append(steps, Step{Name: StepCleanup, Title: "Cleanup", Status: Passed, Started: at(61 * time.Second), Duration: 400 * time.Millisecond,
		Summary: "deleted 1 object(s) the test created", Evidence: []string{"deleted clusterbasemodel/minicpm-v-2-6"}})
	return &Report{
		Model:     model,
		Namespace: "default",
		Started:   t0,
		Duration:  61*time.Second + 500*time.Millisecond,
		Result:    ResultFailed,
		Steps:     steps,
		Cause: &Cause{
			Code:    "TokenRejected",
			Step:    StepDownload,
			Summary: "the hub rejects hf-token (401 Unauthorized): every model that downloads with it is stuck, not only this one",
			Evidence: []string{
				"3 models stuck downloading at once: internlm2-7b-reward, mimo-vl-7b-rl, minicpm-v-2-6",
				"token: GET https://huggingface.co/api/whoami-v2 with hf-token: 401 Unauthorized",
				event,
			},
			NextSteps: []string{
				"Create a new read token at https://huggingface.co/settings/tokens and store it: `citadel secret set hf-token --from-literal token=hf_…`.",
				"Run `citadel test suite` again: the three stuck models resume once the token is accepted.",
			},
			Systemic: true,
		},
		Systemic: []SystemicCheck{
			{Name: "hub", Passed: true, Detail: "huggingface.co answered in 212 ms"},
			{Name: "token", Passed: false, Detail: "hf-token: 401 Unauthorized from /api/whoami-v2 | the token was revoked or has expired"},
			{Name: "storage", Passed: true, Detail: "/raid/models: 1.2 TB free, 48.9 GB needed"},
			{Name: "agent", Passed: true, Detail: "agent running, last heartbeat 2 s ago"},
		},
		Facts: Facts{
			Model: model, ModelKind: v1.KindClusterBaseModel, ModelPhase: "Pending", ModelReason: "Unauthorized",
			ModelMessage: "the hub refused hf-token", NoProgressFor: 60 * time.Second,
		},
	}
}

// couldNotRunReport failed before it could test anything, with text that XML must escape.
func couldNotRunReport() *Report {
	return &Report{
		Model:    `acme/"odd"<model>&`,
		Started:  t0,
		Duration: 300 * time.Millisecond,
		Result:   ResultError,
		Steps: []Step{{Name: StepApply, Title: "Model application", Status: Failed, Duration: 300 * time.Millisecond,
			Summary:  "no citadel server at 127.0.0.1:8080",
			Evidence: []string{"dial tcp 127.0.0.1:8080: connect: connection refused ]]> <![CDATA[ \x1b[31mred\x1b[0m & done"}}},
		Cause: &Cause{Code: "ServerUnreachable", Step: StepApply, Summary: `no citadel server answers at "127.0.0.1:8080"`,
			Evidence:  []string{"dial tcp 127.0.0.1:8080: connect: connection refused"},
			NextSteps: []string{"Start it with `citadel serve`, or point --server at it."}},
	}
}

var renderCases = []struct {
	name   string
	report func() *Report
}{
	{"passed-vision", passedVisionReport},
	{"download-stalled", downloadStalledReport},
	{"systemic", systemicReport},
}

func allReports() []*Report {
	var rs []*Report
	for _, c := range renderCases {
		rs = append(rs, c.report())
	}
	return rs
}

// updateGolden reports whether -update was given. The flag is declared once for the whole
// test binary, in e2e_test.go (package modeltest_test, linked with this one): declaring it
// here too would panic with "flag redefined".
func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name+".golden")
	if updateGolden() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/modeltest/ -run TestRenderGolden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			r := c.report()
			checkGolden(t, c.name+".md", r.Markdown())
			checkGolden(t, c.name+".json", r.JSON())
		})
	}
	t.Run("junit", func(t *testing.T) { checkGolden(t, "junit.xml", JUnit(allReports())) })
	t.Run("suite", func(t *testing.T) { checkGolden(t, "suite.md", SuiteMarkdown(allReports())) })
}

func TestRenderingsAreDeterministic(t *testing.T) {
	t.Parallel()
	render := func() []byte {
		var b bytes.Buffer
		for _, r := range allReports() {
			b.Write(r.Markdown())
			b.Write(r.JSON())
		}
		b.Write(JUnit(allReports()))
		b.Write(SuiteMarkdown(allReports()))
		return b.Bytes()
	}
	first := render()
	for range 20 { // map iteration order changes from run to run
		if got := render(); !bytes.Equal(first, got) {
			t.Fatalf("two renderings of the same reports differ:\n%s", cmp.Diff(string(first), string(got)))
		}
	}
}

// The seed report ended in five "possible causes"; a report of ours names one cause.
func TestNoPossibleCauses(t *testing.T) {
	t.Parallel()
	reports := append(allReports(), couldNotRunReport())
	outputs := map[string][]byte{
		"junit": JUnit(reports),
		"suite": SuiteMarkdown(reports),
	}
	for _, r := range reports {
		outputs[r.Model+" markdown"] = r.Markdown()
		outputs[r.Model+" json"] = r.JSON()
	}
	for name, out := range outputs {
		if strings.Contains(strings.ToLower(string(out)), "possible cause") {
			t.Errorf("%s mentions possible causes:\n%s", name, out)
		}
	}
	for _, r := range reports {
		md := string(r.Markdown())
		want := 1
		if r.Result == ResultPassed {
			want = 0
		}
		if got := strings.Count(md, "\n## Root cause\n"); got != want {
			t.Errorf("%s: %d root cause sections, want %d", r.Model, got, want)
		}
	}
}

func TestMarkdownResultLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		report *Report
		want   string
	}{
		{passedVisionReport(), "**Result: ✅ PASSED**"},
		{downloadStalledReport(), "**Result: ❌ FAILED: DownloadStalled — the download stopped at 7.2 GB of 16.6 GB"},
		{systemicReport(), "**Result: ❌ FAILED: TokenRejected — the hub rejects hf-token"},
		{couldNotRunReport(), `**Result: ⚠️ COULD NOT RUN: ServerUnreachable — no citadel server answers at "127.0.0.1:8080"**`},
	} {
		if md := string(tc.report.Markdown()); !strings.Contains(md, "\n"+tc.want) {
			t.Errorf("%s: no line %q in\n%s", tc.report.Model, tc.want, md)
		}
	}
}

func TestMarkdownStepsNotRun(t *testing.T) {
	t.Parallel()
	md := string(downloadStalledReport().Markdown())
	_, notRun, ok := strings.Cut(md, "\n## Steps not run\n")
	if !ok {
		t.Fatalf("no Steps not run section:\n%s", md)
	}
	notRun, _, _ = strings.Cut(notRun, "\n## ")
	for _, s := range Steps[2:6] {
		line := "(`" + s.Name + "`) — not run: blocked by 2. Model download (`download`) failing"
		if !strings.Contains(notRun, line) {
			t.Errorf("Steps not run lacks %q:\n%s", line, notRun)
		}
	}
	if strings.Contains(notRun, "Cleanup") {
		t.Errorf("cleanup ran but is listed as not run:\n%s", notRun)
	}
	if !strings.Contains(md, "\n### 7. Cleanup ✅\n") {
		t.Errorf("cleanup has no details:\n%s", md)
	}
}

func TestMarkdownEscaping(t *testing.T) {
	t.Parallel()
	r := &Report{Model: "m", Result: ResultFailed, Steps: []Step{{
		Name: StepInference, Status: Failed, Summary: "a | b\nc",
		Evidence: []string{"```go", "x := 1", "```"},
		Checks:   []Check{{Name: "chat", Path: "engine", Status: Failed, Detail: "HTTP 500 | body"}},
	}}}
	md := string(r.Markdown())
	for _, want := range []string{
		"| 1 | Inference testing | ❌ failed | 0 s | a \\| b c |\n", // one row, pipe escaped, one line
		"````text\n```go\nx := 1\n```\n````\n",                     // a longer fence keeps the evidence verbatim
		"| chat | engine | ❌ failed | HTTP 500 \\| body |  |\n",
		"No root cause was determined",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// junitDoc is JUnit as CI tools read it.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Suites   []struct {
		Name     string  `xml:"name,attr"`
		Tests    int     `xml:"tests,attr"`
		Failures int     `xml:"failures,attr"`
		Errors   int     `xml:"errors,attr"`
		Skipped  int     `xml:"skipped,attr"`
		Time     float64 `xml:"time,attr"`
		Cases    []struct {
			Classname string  `xml:"classname,attr"`
			Name      string  `xml:"name,attr"`
			Time      float64 `xml:"time,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, b []byte) junitDoc {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("no XML declaration: %.60s", b)
	}
	// Strict decoding of every token: the document is well-formed XML.
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("invalid XML: %v\n%s", err, b)
			}
			break
		}
	}
	var doc junitDoc
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("unmarshal JUnit: %v\n%s", err, b)
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Name != "citadel test" {
		t.Fatalf("want one testsuite named \"citadel test\", got %d\n%s", len(doc.Suites), b)
	}
	return doc
}

func TestJUnitParses(t *testing.T) {
	t.Parallel()
	doc := parseJUnit(t, JUnit(allReports()))
	s := doc.Suites[0]
	if s.Tests != 21 || s.Failures != 2 || s.Errors != 0 || s.Skipped != 8 {
		t.Errorf("suite counts: tests %d failures %d errors %d skipped %d, want 21 2 0 8", s.Tests, s.Failures, s.Errors, s.Skipped)
	}
	if doc.Tests != s.Tests || doc.Failures != s.Failures || doc.Errors != s.Errors {
		t.Errorf("testsuites counts %d/%d/%d differ from the suite's", doc.Tests, doc.Failures, doc.Errors)
	}
	if want := (6*time.Minute + 12400*time.Millisecond + 12*time.Minute + 11*time.Second + 61500*time.Millisecond).Seconds(); math.Abs(s.Time-want) > 0.001 {
		t.Errorf("suite time %v, want %v", s.Time, want)
	}
	var names []string
	for _, c := range s.Cases {
		names = append(names, c.Name)
		if c.Classname != "citadel.model" {
			t.Errorf("%s: classname %q", c.Name, c.Classname)
		}
	}
	if names[0] != "XiaomiMiMo/MiMo-VL-7B-RL.apply" || names[20] != "openbmb/MiniCPM-V-2_6.cleanup" {
		t.Errorf("case names %q", names)
	}

	stalled := s.Cases[7+1] // the second report's download
	if stalled.Name != "XiaomiMiMo/MiMo-VL-7B-RL.download" || stalled.Failure == nil {
		t.Fatalf("case 8 %q has no failure", stalled.Name)
	}
	if want := "DownloadStalled: the download stopped at 7.2 GB of 16.6 GB"; !strings.HasPrefix(stalled.Failure.Message, want) {
		t.Errorf("failure message %q, want prefix %q", stalled.Failure.Message, want)
	}
	if !strings.Contains(stalled.Failure.Text, "connection reset by peer") || !strings.Contains(stalled.Failure.Text, "Next steps:\n1. Run `citadel test model") {
		t.Errorf("failure text lacks the evidence or next steps:\n%s", stalled.Failure.Text)
	}
	for _, c := range s.Cases[9:13] {
		if c.Skipped == nil || c.Skipped.Message != "not run: blocked by download" {
			t.Errorf("%s: skipped %+v, want \"not run: blocked by download\"", c.Name, c.Skipped)
		}
	}
	if c := s.Cases[13]; c.Name != "XiaomiMiMo/MiMo-VL-7B-RL.cleanup" || c.Failure != nil || c.Skipped != nil {
		t.Errorf("the cleanup that passed is %+v", c)
	}

	systemic := s.Cases[15]
	if systemic.Failure == nil || !strings.HasPrefix(systemic.Failure.Message, "TokenRejected: ") {
		t.Fatalf("systemic failure %+v", systemic.Failure)
	}
	// Attribute and text escaping round-trip: & < > " come back as written.
	if !strings.Contains(systemic.Failure.Text, `?expand=siblings&blobs=true: 401 Unauthorized <html>Invalid credentials in "Authorization" header</html>`) {
		t.Errorf("evidence did not round-trip:\n%s", systemic.Failure.Text)
	}
}

func TestJUnitCouldNotRun(t *testing.T) {
	t.Parallel()
	r := couldNotRunReport()
	doc := parseJUnit(t, JUnit([]*Report{r, nil}))
	s := doc.Suites[0]
	if s.Tests != 1 || s.Errors != 1 || s.Failures != 0 {
		t.Fatalf("tests %d errors %d failures %d, want 1 1 0", s.Tests, s.Errors, s.Failures)
	}
	c := s.Cases[0]
	if c.Name != r.Model+".apply" {
		t.Errorf("name %q, want %q", c.Name, r.Model+".apply")
	}
	if c.Error == nil || c.Error.Message != `ServerUnreachable: no citadel server answers at "127.0.0.1:8080"` {
		t.Fatalf("error %+v", c.Error)
	}
	if c.Failure != nil {
		t.Errorf("a run that could not run has a failure too: %+v", c.Failure)
	}

	// With no step at all, the error still shows, on <model>.run; control characters in
	// the evidence are replaced, never written raw into the XML.
	r.Steps = nil
	r.Cause.Evidence = r.Cause.Evidence[:0:0]
	r.Cause.Evidence = append(r.Cause.Evidence, "\x1b[31mred\x1b[0m ]]> \x00")
	doc = parseJUnit(t, JUnit([]*Report{r}))
	c = doc.Suites[0].Cases[0]
	if c.Name != r.Model+".run" || c.Error == nil {
		t.Fatalf("case %q error %+v, want %q with an error", c.Name, c.Error, r.Model+".run")
	}
	if !strings.Contains(c.Error.Text, "\uFFFD[31mred") || !strings.Contains(c.Error.Text, "]]>") || strings.ContainsAny(c.Error.Text, "\x1b\x00") {
		t.Errorf("error text %q", c.Error.Text)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	for _, r := range append(allReports(), couldNotRunReport()) {
		b := r.JSON()
		if !json.Valid(b) || !bytes.HasPrefix(b, []byte("{\n  \"model\": ")) || !bytes.HasSuffix(b, []byte("}\n")) {
			t.Fatalf("%s: not indented JSON:\n%s", r.Model, b)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", r.Model, err)
		}
		if diff := cmp.Diff(r, &back); diff != "" {
			t.Errorf("%s: JSON round trip (-want +got):\n%s", r.Model, diff)
		}
	}

	var m struct {
		Duration float64 `json:"duration"`
		Steps    []struct {
			Duration float64 `json:"duration"`
		} `json:"steps"`
		Facts struct {
			NoProgressFor float64 `json:"noProgressFor"`
		} `json:"facts"`
	}
	b := downloadStalledReport().JSON()
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Duration != 731 || m.Steps[0].Duration != 1.1 || m.Steps[1].Duration != 729 || m.Facts.NoProgressFor != 600 {
		t.Errorf("durations in seconds: report %v, steps %v %v, noProgressFor %v; want 731, 1.1, 729, 600",
			m.Duration, m.Steps[0].Duration, m.Steps[1].Duration, m.Facts.NoProgressFor)
	}
	if bytes.Contains(b, []byte(`\u003e`)) || !bytes.Contains(b, []byte(`10.0.0.7:51812->18.244.202.60:443`)) {
		t.Errorf("evidence is HTML-escaped in the JSON")
	}
}

// The keys come in the structs' order, as types.go declares them.
func TestJSONFieldOrder(t *testing.T) {
	t.Parallel()
	b := passedVisionReport().JSON()
	keys := func(raw json.RawMessage) []string {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.Token() // {
		var ks []string
		for d.More() {
			k, _ := d.Token()
			ks = append(ks, k.(string))
			var skip json.RawMessage
			if err := d.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
		return ks
	}
	order := func(v any, present []string) []string {
		var want []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if slices.Contains(present, name) {
				want = append(want, name)
			}
		}
		return want
	}
	var parts struct {
		Steps []json.RawMessage `json:"steps"`
		Facts json.RawMessage   `json:"facts"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		raw  json.RawMessage
		v    any
	}{
		{"report", b, Report{}},
		{"step", parts.Steps[5], Step{}},
		{"facts", parts.Facts, Facts{}},
	} {
		got := keys(tc.raw)
		if len(got) < 4 {
			t.Errorf("%s: only keys %q", tc.name, got)
		}
		if diff := cmp.Diff(order(tc.v, got), got); diff != "" {
			t.Errorf("%s keys out of the struct's order (-want +got):\n%s", tc.name, diff)
		}
	}
}

// The JSON mirrors hold the fields of types.go, in its order, with its tags; only durations
// (and check values) change type. A field added to types.go must be added here too.
func TestJSONMirrors(t *testing.T) {
	t.Parallel()
	changed := map[reflect.Type]reflect.Type{
		reflect.TypeFor[time.Duration]():      reflect.TypeFor[jsonSeconds](),
		reflect.TypeFor[map[string]float64](): reflect.TypeFor[map[string]jsonFloat](),
	}
	for _, tc := range []struct{ orig, mirror reflect.Type }{
		{reflect.TypeFor[Report](), reflect.TypeFor[reportJSON]()},
		{reflect.TypeFor[Step](), reflect.TypeFor[stepJSON]()},
		{reflect.TypeFor[Check](), reflect.TypeFor[checkJSON]()},
		{reflect.TypeFor[Facts](), reflect.TypeFor[factsJSON]()},
	} {
		if tc.orig.NumField() != tc.mirror.NumField() {
			t.Errorf("%s has %d fields, %s %d", tc.orig, tc.orig.NumField(), tc.mirror, tc.mirror.NumField())
			continue
		}
		for i := range tc.orig.NumField() {
			o, m := tc.orig.Field(i), tc.mirror.Field(i)
			wantType := o.Type
			if c, ok := changed[o.Type]; ok {
				wantType = c
			}
			if o.Name != m.Name || o.Tag.Get("json") != m.Tag.Get("json") || m.Type != wantType {
				t.Errorf("%s field %d: %s %s `%s`, mirror has %s %s `%s`", tc.orig, i, o.Name, o.Type, o.Tag, m.Name, m.Type, m.Tag)
			}
		}
	}
}

func TestJSONNonFiniteValues(t *testing.T) {
	t.Parallel()
	r := passedVisionReport()
	r.Steps[5].Checks[4].Values = map[string]float64{"tokens_per_s": math.Inf(1), "ttft_p50_s": math.NaN()}
	b := r.JSON()
	if !json.Valid(b) || bytes.Contains(b, []byte(`"error"`)) {
		t.Fatalf("invalid JSON:\n%s", b)
	}
	if !bytes.Contains(b, []byte(`"tokens_per_s": null`)) {
		t.Errorf("+Inf is not null:\n%s", b)
	}
	if md := string(r.Markdown()); !strings.Contains(md, "tokens_per_s=+Inf, ttft_p50_s=NaN") {
		t.Errorf("Markdown values:\n%s", md)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		result string
		want   int
	}{{ResultPassed, 0}, {ResultFailed, 1}, {ResultError, 2}, {"", 2}} {
		if got := (&Report{Result: tc.result}).ExitCode(); got != tc.want {
			t.Errorf("ExitCode(%q) = %d, want %d", tc.result, got, tc.want)
		}
	}
	if got := (*Report)(nil).ExitCode(); got != 2 {
		t.Errorf("nil report: exit %d, want 2", got)
	}
}

func TestWriteAll(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "reports", "mimo")
	r := downloadStalledReport()
	for range 2 { // the second write replaces the first
		if err := WriteAll(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", e.Name(), info.Mode().Perm())
		}
	}
	if diff := cmp.Diff([]string{"junit.xml", "report.json", "report.md"}, names); diff != "" {
		t.Errorf("files (-want +got), no temporary file may remain:\n%s", diff)
	}
	for name, want := range map[string][]byte{
		"report.md":   r.Markdown(),
		"report.json": r.JSON(),
		"junit.xml":   JUnit([]*Report{r}),
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the rendering", name)
		}
	}

	// A file where the directory should be is an error, not a panic or a partial write.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(file, r); err == nil {
		t.Error("WriteAll into a file: no error")
	}
}

func TestSuiteMarkdown(t *testing.T) {
	t.Parallel()
	md := string(SuiteMarkdown(append(allReports(), couldNotRunReport(), nil)))
	for _, want := range []string{
		"4 models: 1 passed, 2 failed, 1 could not run · 19 min 25 s\n",
		"| XiaomiMiMo/MiMo-VL-7B-RL | ✅ passed | — | 6 min 12 s | 7/7 |\n",
		"| XiaomiMiMo/MiMo-VL-7B-RL | ❌ failed | DownloadStalled | 12 min 11 s | 2/7 |\n",
		"| openbmb/MiniCPM-V-2_6 | ❌ failed | TokenRejected (systemic) | 1 min 2 s | 2/7 |\n",
		"| acme/\"odd\"<model>& | ⚠️ could not run | ServerUnreachable | 300 ms | 0/1 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("suite lacks %q:\n%s", want, md)
		}
	}
	if got := string(SuiteMarkdown(nil)); got != "# citadel test suite\n\n0 models: 0 passed, 0 failed, 0 could not run · 0 s\n\n" {
		t.Errorf("empty suite: %q", got)
	}
}

func TestDurationText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"},
		{420 * time.Microsecond, "420 µs"},
		{850 * time.Millisecond, "850 ms"},
		{999600 * time.Microsecond, "1.0 s"},
		{1234 * time.Millisecond, "1.2 s"},
		{59960 * time.Millisecond, "1 min 0 s"},
		{6*time.Minute + 12400*time.Millisecond, "6 min 12 s"},
		{30 * time.Minute, "30 min 0 s"},
		{65 * time.Minute, "1 h 5 min"},
		{-2 * time.Second, "-2.0 s"},
	} {
		if got := durationText(tc.d); got != tc.want {
			t.Errorf("durationText(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestSizeAndValueText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {999, "999 B"}, {1500, "1.5 kB"}, {16612434432, "16.6 GB"}, {1.2e12, "1.2 TB"}} {
		if got := modelinfo.FormatBytes(tc.n); got != tc.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	got := valuesText(map[string]float64{"ttft_s": 0.2034, "tokens_per_s": 41.27, "chunks": 18, "ratio": 0.873, "load_ms": 1520, "weights_bytes": 16612434432})
	want := "chunks=18, load_ms=1.5 s, ratio=0.87, tokens_per_s=41.3, ttft_s=203 ms, weights_bytes=16.6 GB"
	if got != want {
		t.Errorf("valuesText = %q, want %q", got, want)
	}
}

package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/mirror"
	"citadel.dev/citadel/internal/npmtest"
)

func init() { upTests = append(upTests, upTest{"dashboard", testDashboard}) }

// testDashboard opens the dashboard of TestUp's citadel up (started with --admin-token) in
// Debian's chromium (dashboard.mjs) and checks what a user sees against the dashboard's DOM
// contract: the page without the token, then through /?token=T, everything on it, and at the
// end a model applied then, whose download (throttled by the mirror) shows its progress move.
func testDashboard(t *testing.T, l *live) {
	chromium := findChromium(t)
	npmtest.Dir(t, "playwright-core")
	apply := slowModel(t, l)
	out := t.TempDir()
	got := npmtest.RunWith[dashboard](t, l.dir, npmtest.Options{Env: l.sb.env, Timeout: 3 * time.Minute},
		"dashboard.mjs", chromium, out, "http://"+l.up.admin, "http://"+l.up.gateway, l.up.token, slowModelName, apply)
	t.Logf("browser steps, ms from the launch: %v", got.Steps)
	defer keepScreenshot(t, got.Screenshot)
	checkDashboard(t, got, l.seed)
	checkDownload(t, got.Download)
}

// The model whose download the dashboard shows: a copy of the Hugging Face stand-in that
// citadel up serves, with a tokenizer.json of slowModelSize bytes that its mirror sends at
// slowModelRate bytes/s (a throttle fault in the repo's .mirror.json), about 10 s.
const (
	slowModelName = "slow-download"
	slowModelRepo = "citadel-interop/slow-download"
	slowModelSize = 3 << 20
	slowModelRate = 300_000
)

// slowModel writes the slow model's repo into citadel up's mirror and returns the body of the
// POST /api/v1/apply that adds its ClusterBaseModel.
func slowModel(t *testing.T, l *live) string {
	t.Helper()
	hf := filepath.Join(l.up.dataDir, "mirror", "hf")
	dst := filepath.Join(hf, filepath.FromSlash(slowModelRepo))
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(hf, filepath.FromSlash(l.seed.hfRepo)))); err != nil {
		t.Fatal(err)
	}
	// a tokenizer.json as large as the real ones are (Qwen's is 7 MB)
	var tok bytes.Buffer
	tok.WriteString(`{"version":"1.0","model":{"type":"BPE","vocab":{`)
	for i := 0; tok.Len() < slowModelSize-40; i++ {
		if i > 0 {
			tok.WriteByte(',')
		}
		fmt.Fprintf(&tok, `"tok%07d":%d`, i, i)
	}
	tok.WriteString(`},"merges":[]}}`)
	faults, err := json.Marshal(map[string]any{"faults": []mirror.Fault{{Kind: mirror.FaultThrottle, Rate: slowModelRate, Files: "tokenizer.json"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tokenizer.json": tok.Bytes(), ".mirror.json": faults} {
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uri := "hf://" + slowModelRepo
	m := v1.ClusterBaseModel{TypeMeta: v1.TypeMeta{APIVersion: "ome.io/v1beta1", Kind: v1.KindClusterBaseModel}}
	m.Name = slowModelName
	m.Spec.Storage = &v1.StorageSpec{StorageURI: &uri}
	obj, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(v1.ApplyRequest{Items: []v1.ApplyItem{{Object: obj}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// checkDownload checks the slow model's row: Downloading with at least two different
// percentages between 0 and 100, in increasing order, then Ready.
func checkDownload(t *testing.T, d download) {
	t.Helper()
	if d.ApplyStatus != 200 {
		t.Fatalf("POST /api/v1/apply of model %s: %d %s", slowModelName, d.ApplyStatus, d.ApplyError)
	}
	var pcts []float64
	last := ""
	for _, s := range d.Seen {
		last = s.Phase
		if s.Phase == "Ready" || s.Percent == nil || *s.Percent <= 0 || *s.Percent >= 100 {
			continue
		}
		if n := len(pcts); n > 0 && *s.Percent < pcts[n-1] {
			t.Errorf("section#models: model %s's progress went back from %v%% to %v%% (seen: %+v)", slowModelName, pcts[n-1], *s.Percent, d.Seen)
		}
		if n := len(pcts); n == 0 || *s.Percent != pcts[n-1] {
			pcts = append(pcts, *s.Percent)
		}
	}
	if len(pcts) < 2 || last != "Ready" {
		t.Errorf("section#models: model %s (about %d s to download) showed the progress %v%% before %q, want two or more percentages, then Ready (seen: %+v)",
			slowModelName, slowModelSize/slowModelRate, pcts, last, d.Seen)
	}
	t.Logf("model %s: progress %v%% seen before Ready, %d ms after the apply", slowModelName, pcts, d.ReadyMs)
}

// dashboard is what dashboard.mjs saw.
type dashboard struct {
	Fatal           string
	Steps           map[string]int // milliseconds from the launch to the end of each step
	Errors          []string
	FailedResponses []string
	Status          int
	Initial, Final  snapshot
	Refreshed       bool
	AfterRefresh    struct {
		Refreshes    int
		Prompt       string
		SameDocument bool
	}
	Sent []struct {
		Status int
		Route  string
	}
	TrafficShown  bool
	Before, After snapshot
	Playground    struct{ Code, Vision play }
	Screenshot    string
	Token         struct {
		WithoutStatus    int
		WithoutHasModels bool
	}
	Download download
}

// download is what the slow model's row showed, from its apply to Ready or a timeout.
type download struct {
	ApplyStatus int
	ApplyError  string
	Seen        []row
	ReadyMs     int // from the apply to Ready; 0 when not seen
}

// row is the model's row when it changed.
type row struct {
	Ms       int // from the apply
	Phase    string
	Percent  *float64 // the progress element's or td.progress's percentage; nil without
	Progress string   // td.progress as shown
}

func (r row) String() string { return fmt.Sprintf("%d ms: %s %q", r.Ms, r.Phase, r.Progress) }

// snapshot is the contract's elements at one moment.
type snapshot struct {
	Refreshes int
	Models    map[string]string // data-model: td.phase
	Services  map[string]struct{ Phase, Log string }
	GPUs      map[string][]string // data-gpu: data-holder
	Routes    []struct {
		Route, Target, Share string
		Requests             int
	}
	Charts map[string]int // data-chart: data-points
	SLOs   []struct{ SLO, Objective, Verdict string }
	Events []string // data-reason, latest first
}

// play is one playground request: the admin API's answer and what the page shows.
type play struct {
	Error      string
	URL        string
	HTTPStatus int
	API        map[string]any
	Shown      bool
	Fields     map[string]string
}

func checkDashboard(t *testing.T, got dashboard, seed seedState) {
	t.Helper()
	if got.Fatal != "" {
		t.Errorf("the browser script stopped: %s", got.Fatal)
	}
	if len(got.Errors) > 0 || len(got.FailedResponses) > 0 {
		t.Errorf("the page had errors:\n%s\nfailed responses: %v", strings.Join(got.Errors, "\n"), got.FailedResponses)
	}
	if got.Status != 200 {
		t.Fatalf("GET /?token=T answered %d, want the dashboard", got.Status)
	}
	page := got.Initial
	for _, m := range seed.models {
		if page.Models[m] != "Ready" {
			t.Errorf("section#models: model %s shows %q, want Ready (rows: %v)", m, page.Models[m], page.Models)
		}
	}
	holders := map[string]bool{}
	for gpu, hs := range page.GPUs {
		if len(hs) == 0 {
			t.Errorf("section#gpus: GPU %s shows no holder", gpu)
		}
		for _, h := range hs {
			holders[h] = true
		}
	}
	if len(page.GPUs) != 2 {
		t.Errorf("section#gpus: %d GPUs shown (%v), want the 2 simulated ones", len(page.GPUs), page.GPUs)
	}
	for _, s := range seed.services {
		if page.Services[s].Phase != "Ready" {
			t.Errorf("section#services: service %s shows %q, want Ready (rows: %v)", s, page.Services[s].Phase, page.Services)
		}
		if page.Services[s].Log == "" {
			t.Errorf("section#services: service %s shows no engine log (pre.log)", s)
		}
		if !holders[s] {
			t.Errorf("section#gpus: service %s holds no GPU (holders: %v)", s, page.GPUs)
		}
	}
	if !slices.Contains(page.Events, "Ready") {
		t.Errorf("section#events: reasons %v, want the models' Ready among them", page.Events)
	}

	if !got.Refreshed || !got.AfterRefresh.SameDocument || got.AfterRefresh.Prompt != "kept across refreshes" {
		t.Errorf("in-place refresh: body[data-refreshes] %d then %d (grown by 2: %v), same document %v, the typed prompt now %q",
			page.Refreshes, got.AfterRefresh.Refreshes, got.Refreshed, got.AfterRefresh.SameDocument, got.AfterRefresh.Prompt)
	}

	// the requests sent through the gateway, counted per route target and drawn
	sent := map[string]int{}
	for _, s := range got.Sent {
		_, svc, _ := strings.Cut(field(s.Route, "service"), "/")
		if s.Status != 200 || svc == "" {
			t.Errorf("a request sent through the gateway: %d, x-citadel-route %q", s.Status, s.Route)
		}
		sent[svc]++
	}
	counted := func(sn snapshot, target string) int {
		n := 0
		for _, r := range sn.Routes {
			if r.Target == target {
				n += r.Requests
			}
		}
		return n
	}
	for svc, n := range sent {
		if d := counted(got.After, svc) - counted(got.Before, svc); d < n {
			t.Errorf("section#routes: target %s counted %d more requests, %d were sent to it (before %v, after %v)", svc, d, n, got.Before.Routes, got.After.Routes)
		}
	}
	for _, chart := range []string{"rate", "ttft", "errors"} {
		if got.After.Charts[chart] <= got.Before.Charts[chart] {
			t.Errorf("section#charts: svg[data-chart=%s] data-points %d before the requests, %d after", chart, got.Before.Charts[chart], got.After.Charts[chart])
		}
	}
	// examples/seed-001's route has objectives; after the traffic each has a verdict
	if len(got.Final.SLOs) == 0 {
		t.Error("section#slos: no objective shown; the seed-001 route has some")
	}
	for _, o := range got.Final.SLOs {
		if o.Objective == "" || !slices.Contains([]string{"met", "missed", "no data"}, o.Verdict) {
			t.Errorf("section#slos: %+v, want an objective and a verdict of met, missed or no data", o)
		}
	}
	if !got.TrafficShown {
		t.Errorf("section#routes and #charts did not show the %d requests within 30 s", len(got.Sent))
	}

	for _, c := range []struct {
		name, task, service string
		p                   play
	}{
		{"a code question", "code", "", got.Playground.Code},
		{"an image", "vision", seed.vision, got.Playground.Vision},
	} {
		f := c.p.Fields
		switch {
		case c.p.Error != "":
			t.Errorf("playground, %s: %s (page %s)", c.name, c.p.Error, c.p.URL)
		case c.p.HTTPStatus != 200 || !c.p.Shown:
			t.Errorf("playground, %s: POST /api/v1/playground %d %v; the page shows it: %v (%v)", c.name, c.p.HTTPStatus, c.p.API, c.p.Shown, f)
		case f["status"] != "200" || f["task"] != c.task || task(f["route"]) != c.task || f["answer"] == "" || !strings.Contains(f["service"], c.service):
			t.Errorf("playground, %s: shows %v, want status 200, task %s, an answer%s", c.name, f, c.task, map[bool]string{true: ", service " + c.service}[c.service != ""])
		}
		for _, ms := range []string{"ttft", "total"} {
			if v, err := strconv.ParseFloat(f[ms], 64); err != nil || v <= 0 {
				t.Errorf("playground, %s: [data-field=%s] is %q, want milliseconds", c.name, ms, f[ms])
			}
		}
	}

	if tok := got.Token; tok.WithoutStatus != 401 || tok.WithoutHasModels {
		t.Errorf("--admin-token: / without the token answered %d (models shown: %v), want 401 and no dashboard", tok.WithoutStatus, tok.WithoutHasModels)
	}
}

// keepScreenshot checks the screenshot is a PNG of the page and copies it to
// CITADEL_SCREENSHOT_DIR when that is set.
func keepScreenshot(t *testing.T, path string) {
	t.Helper()
	if path == "" {
		t.Error("no screenshot was taken")
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err != nil || cfg.Width < 1000 || cfg.Height < 600 {
		t.Errorf("screenshot %s: %v, %dx%d", path, err, cfg.Width, cfg.Height)
	}
	if d := os.Getenv("CITADEL_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Error(err)
		} else if err := os.WriteFile(filepath.Join(d, "dashboard.png"), b, 0o644); err != nil {
			t.Error(err)
		} else {
			t.Logf("screenshot: %s", filepath.Join(d, "dashboard.png"))
		}
	}
}

// findChromium is Debian's chromium. Without it the test is skipped, or fails when
// CITADEL_REQUIRE_BROWSER=1 (CI), with the command that installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	const install = "run bash test/interop/install.sh (apt-get install -y chromium: Debian's, which playwright-core drives; no browser is downloaded)"
	if os.Getenv("CITADEL_REQUIRE_BROWSER") == "1" {
		t.Fatalf("chromium is not on PATH (CITADEL_REQUIRE_BROWSER=1): %s", install)
	}
	t.Skipf("chromium is not on PATH; %s to run the browser test", install)
	return ""
}

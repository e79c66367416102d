package interop

import (
	"bytes"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"citadel.dev/citadel/internal/npmtest"
	"citadel.dev/citadel/internal/sim/simtest"
)

func init() { upTests = append(upTests, upTest{"dashboard", testDashboard}) }

// testDashboard opens the dashboard of TestUp's citadel up in Debian's chromium (dashboard.mjs)
// and checks what a user sees against the dashboard's DOM contract; then the page of a second
// server, started with --admin-token, without and with the token.
func testDashboard(t *testing.T, l *live) {
	chromium := findChromium(t)
	npmtest.Dir(t, "playwright-core")
	const token = "interop-dashboard-token"
	tokenAdmin := startTokenServe(t, l.sb, token)
	out := t.TempDir()
	got := npmtest.RunWith[dashboard](t, l.dir, npmtest.Options{Env: l.sb.env, Timeout: 3 * time.Minute},
		"dashboard.mjs", chromium, out, "http://"+l.up.admin, "http://"+l.up.gateway, tokenAdmin, token)
	t.Logf("browser steps, ms from the launch: %v", got.Steps)
	defer keepScreenshot(t, got.Screenshot)
	checkDashboard(t, got, l.seed)
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
		WithoutStatus, WithStatus int
		WithoutHasModels          bool
		HasModels, Refreshed      bool
		Live                      string
	}
}

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
		t.Fatalf("GET / answered %d", got.Status)
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

	tok := got.Token
	if tok.WithoutStatus != 401 || tok.WithoutHasModels {
		t.Errorf("--admin-token: / without the token answered %d (models shown: %v), want 401 and no dashboard", tok.WithoutStatus, tok.WithoutHasModels)
	}
	if tok.WithStatus != 200 || !tok.HasModels || !tok.Refreshed {
		t.Errorf("--admin-token: /?token=T answered %d (models shown: %v, refreshed in place: %v, live: %q), want the dashboard, refreshing", tok.WithStatus, tok.HasModels, tok.Refreshed, tok.Live)
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

// startTokenServe runs a citadel serve with --admin-token (no models, no gateway) and returns
// its admin URL once it answers.
func startTokenServe(t *testing.T, sb sandbox, token string) string {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(simtest.Citadel(t), "serve", "--data-dir", filepath.Join(sb.root, "token-serve"), "--admin-addr", "127.0.0.1:0",
		"--gateway-addr", "off", "--gpus", "none", "--agent=false", "--admin-token", token)
	cmd.Env = sb.env
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("citadel serve --admin-token output:\n%s", out.tail(30))
		}
	})
	addr := regexp.MustCompile(`admin API and dashboard on (http://\S+),`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			if resp, err := http.Get(m[1] + "/"); err == nil {
				resp.Body.Close()
				return m[1]
			}
		}
		select {
		case err := <-done:
			t.Fatalf("citadel serve --admin-token exited: %v\n%s", err, out.tail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("citadel serve --admin-token did not answer within 30 s:\n%s", out.tail(30))
	return ""
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

package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/store"
)

// liveServer is an admin server whose dashboard samples g, with seed-like routes applied.
func liveServer(t *testing.T, opts Options, routes ...string) (*Server, *httptest.Server) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	c, err := client.New(srv.URL, client.WithToken(opts.Token))
	if err != nil {
		t.Fatal(err)
	}
	items := []v1.ApplyItem{
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m"},"spec":{"storage":{"storageUri":"hf://org/m"}}}`),
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"vl"},"spec":{"model":{"name":"m"}}}`),
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"coder"},"spec":{"model":{"name":"m"}}}`),
	}
	for _, r := range routes {
		items = append(items, item(t, r))
	}
	if _, err := c.Apply(t.Context(), v1.ApplyRequest{Items: items}); err != nil {
		t.Fatal(err)
	}
	return s, srv
}

type dashboardJSON struct {
	Routes  []dashRoute `json:"routes"`
	SLOs    []dashSLO   `json:"slos"`
	Traffic dashTraffic `json:"traffic"`
	HTML    map[string]string
}

func getDashboard(t *testing.T, hc *http.Client, req *http.Request) dashboardJSON {
	t.Helper()
	resp, body := getPage(t, hc, req)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/dashboard: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var d dashboardJSON
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

const objectivesRoute = `{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"lab"},"spec":{
	"objectives":{"availability":"99.9%","ttftP99":"2s"},
	"models":[
		{"name":"auto","tasks":[{"task":"vision","model":"vl"},{"task":"code","targets":[{"service":"coder"}]}]},
		{"name":"vl","targets":[{"service":"vl"}],"objectives":{"ttftP50":"100ms"}}]}}`

const quietRoute = `{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"quiet"},"spec":{
	"objectives":{"availability":"99%"},"models":[{"name":"other","targets":[{"service":"coder"}]}]}}`

// The dashboard's data after synthetic gateway traffic: each target's requests and share,
// the charts' points, and the objectives' verdicts.
func TestDashboardTrafficAndObjectives(t *testing.T) {
	g := newFakeGateway(t)
	s, srv := liveServer(t, Options{GatewayMetrics: g.gatherer}, objectivesRoute, quietRoute)
	t0 := time.Now().Add(-10 * time.Second)
	s.sampler.sample(t0)
	// vl: 1000 fast requests, one 503 (99.9% available: met); its median TTFT is 40 ms.
	g.serve("vl", "default/vl", "200", 999, 40*time.Millisecond)
	g.serve("vl", "default/vl", "503", 1, 0)
	s.sampler.sample(t0.Add(2 * time.Second))
	// auto → coder: 30 requests at 3 s (the route's p99 misses 2 s); a 404 does not count.
	g.serve("auto", "default/coder", "200", 30, 3*time.Second)
	g.serve("-", "", "404", 1, 0)
	s.sampler.sample(t0.Add(4 * time.Second))

	d := getDashboard(t, http.DefaultClient, newGet(t, srv.URL+"/api/v1/dashboard"))
	if len(d.Routes) != 2 {
		t.Fatalf("%d routes, want 2", len(d.Routes))
	}
	lab := d.Routes[0]
	if lab.Name != "lab" || lab.Requests != 1030 || len(lab.Targets) != 2 {
		t.Fatalf("route %+v: want lab with 1030 requests and 2 targets", lab)
	}
	for i, want := range []dashTarget{
		{Target: "coder", Service: "default/coder", Models: []string{"auto"}, Requests: 30, Share: 2.9},
		{Target: "vl", Service: "default/vl", Models: []string{"vl"}, Requests: 1000, Share: 97.1},
	} {
		got := lab.Targets[i]
		if got.Target != want.Target || got.Service != want.Service || got.Requests != want.Requests || got.Share != want.Share ||
			strings.Join(got.Models, ",") != strings.Join(want.Models, ",") {
			t.Errorf("target %d: %+v, want %+v", i, got, want)
		}
	}
	if n := len(d.Traffic.Points); n != 2 || d.Traffic.Points[0].RequestsPerSecond != 500 || d.Traffic.Points[0].ErrorsPerSecond != 0.5 {
		t.Errorf("points %+v: want 2, the first at 500 req/s and 0.5 err/s", d.Traffic.Points)
	}

	if len(d.Traffic.Series) != 3 || d.Traffic.Series[0].Model != "vl" || d.Traffic.Series[0].Requests != 1000 || d.Traffic.Series[0].Points != nil {
		t.Errorf("series %+v: want vl first with 1000 requests, then coder and the unresolved 404, no points without ?seriesPoints", d.Traffic.Series)
	}
	pts := getDashboard(t, http.DefaultClient, newGet(t, srv.URL+"/api/v1/dashboard?seriesPoints=true")).Traffic.Series[1]
	if pts.Model != "auto" || len(pts.Points) != 2 || pts.Points[0].RequestsPerSecond != 0 || pts.Points[1].RequestsPerSecond != 15 || *pts.Points[1].TTFTP50Ms < 2500 {
		t.Errorf("auto → coder with ?seriesPoints=true: %+v; want 0 then 15 req/s at over 2.5 s", pts)
	}

	verdicts := map[string]string{}
	for _, o := range d.SLOs {
		verdicts[o.Name+" "+o.Objective] = o.Verdict + " " + o.Actual
	}
	for key, want := range map[string]string{
		"lab availability":   "met 99.903%",   // 1 of 1030 failed
		"lab ttftP99":        "missed 4.143s", // rank 1018.71 of 1029: 2.5 s + 2.5 s × 19.71/30
		"vl ttftP50":         "met 25ms",
		"quiet availability": "no data –",
	} {
		if verdicts[key] != want {
			t.Errorf("objective %s: %q, want %q", key, verdicts[key], want)
		}
	}
	if len(d.SLOs) != 4 {
		t.Errorf("%d objectives shown, want 4: %v", len(d.SLOs), verdicts)
	}

	// The sections the page's script swaps in: the same numbers, and the charts' points.
	for id, wants := range map[string][]string{
		"routes": {`data-route="lab" data-target="vl"`, `<td class="num requests">1000</td>`, `<td class="num share">`, `97.1%`},
		"charts": {`<svg data-chart="rate" data-points="2"`, `<svg data-chart="ttft" data-points="2"`, `<svg data-chart="errors" data-points="2"`, "req/s", "−15 min", "now"},
		"slos":   {`data-slo="lab" data-objective="availability"`, `<td class="verdict"><span class="phase ok">met</span>`, `<span class="phase bad">missed</span>`, `no data`},
	} {
		for _, want := range wants {
			if !strings.Contains(d.HTML[id], want) {
				t.Errorf("section %s lacks %q:\n%s", id, want, d.HTML[id])
			}
		}
	}
	// Every polyline point lies inside the drawing.
	lines := regexp.MustCompile(`<polyline class="[^"]*" points="([^"]*)"`).FindAllStringSubmatch(d.HTML["charts"], -1)
	if len(lines) != 4 { // rate, p50, p99, errors
		t.Errorf("%d lines drawn, want 4", len(lines))
	}
	for _, m := range lines {
		for _, xy := range strings.Fields(m[1]) {
			var x, y float64
			if _, err := fmtSscanf(xy, &x, &y); err != nil || x < plotL || x > plotR || y < plotT || y > plotB {
				t.Errorf("point %q outside the plot", xy)
			}
		}
	}
}

// Without a gateway the page says so and objectives have no data.
func TestDashboardWithoutGateway(t *testing.T) {
	_, srv := liveServer(t, Options{}, objectivesRoute)
	d := getDashboard(t, http.DefaultClient, newGet(t, srv.URL+"/api/v1/dashboard"))
	if !strings.Contains(d.Traffic.Error, "runs no gateway") || !strings.Contains(d.HTML["charts"], `data-points="0"`) {
		t.Errorf("traffic %+v: want the no-gateway message and empty charts", d.Traffic)
	}
	for _, o := range d.SLOs {
		if o.Verdict != verdictNoData {
			t.Errorf("objective %+v without a gateway: want no data", o)
		}
	}
	if len(d.Routes) != 1 || d.Routes[0].Targets[0].Requests != 0 {
		t.Errorf("routes %+v", d.Routes)
	}
}

// The dashboard cookie opens the page's data and the playground; the playground also needs
// the script's header, which another site's page cannot send.
func TestDashboardCookieOpensDataAndPlayground(t *testing.T) {
	const token = "s3cret"
	gw, _ := fakeChat(t, "")
	_, srv := liveServer(t, Options{Token: token, GatewayAddr: gw.Listener.Addr().String()})
	resp, _ := getPage(t, noRedirect, newGet(t, srv.URL+"/?token="+token))
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboardCookie {
			cookie = ck
		}
	}
	if cookie == nil {
		t.Fatal("no dashboard cookie")
	}
	withCookie := newGet(t, srv.URL+"/api/v1/dashboard")
	withCookie.AddCookie(cookie)
	getDashboard(t, http.DefaultClient, withCookie)
	if resp, _ := getPage(t, http.DefaultClient, newGet(t, srv.URL+"/api/v1/dashboard")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/dashboard without the cookie or token: %s, want 401", resp.Status)
	}
	if code, out, body := postPlayground(t, srv.URL, playgroundRequest{Prompt: "hi"}, true, cookie); code != http.StatusOK || out.Answer == "" {
		t.Errorf("playground with the cookie and the header: %d %s", code, body)
	}
	if code, _, body := postPlayground(t, srv.URL, playgroundRequest{Prompt: "hi"}, false, cookie); code != http.StatusForbidden || !strings.Contains(body, playgroundHeader) {
		t.Errorf("playground with the cookie, without the header: %d %s, want 403 naming the header", code, body)
	}
	if code, _, _ := postPlayground(t, srv.URL, playgroundRequest{Prompt: "hi"}, true, nil); code != http.StatusUnauthorized {
		t.Errorf("playground without the cookie or token: %d, want 401", code)
	}
	// The cookie opens nothing else, by any method.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/api/v1/apply", strings.NewReader(`{"items":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(cookie)
	if resp, _ := getPage(t, http.DefaultClient, req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/apply with the dashboard cookie: %s, want 401", resp.Status)
	}
}

func fmtSscanf(xy string, x, y *float64) (int, error) { return fmt.Sscanf(xy, "%f,%f", x, y) }

// The page carries the elements the dashboard's DOM contract names (the browser test reads
// them): one row per model, service, route target and objective, a GPU with its holder, the
// three charts, the events and the playground's form and result fields.
func TestDashboardContractElements(t *testing.T) {
	gpus := func(context.Context) (v1.GPUList, error) {
		return v1.GPUList{Items: []v1.GPU{{Index: 0, MemoryTotal: 16 << 30, Planned: 8 << 30,
			Holders: []v1.GPUHolder{{Service: "default/vl", Engine: "vllm", Bytes: 8 << 30}}}}}, nil
	}
	_, srv := liveServer(t, Options{GPUs: gpus, GatewayMetrics: newFakeGateway(t).gatherer}, objectivesRoute)
	_, page := getPage(t, http.DefaultClient, newGet(t, srv.URL+"/"))
	for _, want := range []string{
		`<body data-refreshes="0">`,
		`<section id="models">`, `<tr class="model" data-model="m">`, `<td class="phase">`, `<td class="num progress">`,
		`<section id="services">`, `<tr class="service" data-service="vl">`, `<tr class="service" data-service="coder">`,
		`<section id="gpus">`, `<tr class="gpu" data-gpu="0">`, `<div class="holder" data-holder="vl">`, `<div class="memmap"`,
		`<section id="routes">`, `<tr class="target" data-route="lab" data-target="vl">`, `<tr class="target" data-route="lab" data-target="coder">`,
		`<td class="num requests">0</td>`, `<td class="num share">`,
		`<section id="charts">`, `<svg data-chart="rate" data-points="0"`, `<svg data-chart="ttft" data-points="0"`, `<svg data-chart="errors" data-points="0"`,
		`<section id="slos">`, `<tr class="slo" data-slo="lab" data-objective="availability">`, `<tr class="slo" data-slo="lab" data-objective="ttftP99">`,
		`<tr class="slo" data-slo="vl" data-objective="ttftP50">`, `<td class="num objective">`, `<td class="num actual">`, `<td class="verdict">`,
		`<section id="events">`, `data-reason="Created"`,
		`<section id="playground">`, `<form id="playground-form">`, `<textarea name="prompt"`, `<input name="model" value="auto"`,
		`<input type="file" name="image"`, `<input name="key"`, `<button type="submit">`, `<div id="playground-result" hidden>`,
		`data-field="status"`, `data-field="route"`, `data-field="task"`, `data-field="service"`, `data-field="ttft"`, `data-field="total"`, `data-field="answer"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/store"
)

func dashboardServer(t *testing.T, opts Options) (*store.Store, *httptest.Server) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, opts).Handler())
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return st, srv
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func getPage(t *testing.T, hc *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func newGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func putStatus(t *testing.T, st *store.Store, kind, ns, name string, status any) {
	t.Helper()
	b, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateStatus(t.Context(), kind, ns, name, 0, b); err != nil {
		t.Fatal(err)
	}
}

func TestDashboardShowsState(t *testing.T) {
	gpus := func(context.Context) (v1.GPUList, error) {
		return v1.GPUList{Source: "test", Items: []v1.GPU{{Index: 0, Name: "RTX <b>4070</b>", MemoryTotal: 16 << 30, MemoryUsed: 2 << 30, Planned: 12 << 30,
			Holders: []v1.GPUHolder{{Service: "default/svc", Replica: 0, Engine: "vllm", PID: 4242, Bytes: 12 << 30}}}}}, nil
	}
	logs := func(_ context.Context, ns, name string, replica, tail int, _ bool, w io.Writer) error {
		if ns != "default" || name != "svc" || replica != 0 || tail != dashboardLogLines {
			return fmt.Errorf("logs of %s/%s #%d tail %d", ns, name, replica, tail)
		}
		_, err := io.WriteString(w, "INFO: Uvicorn running on http://127.0.0.1:4321\nWARNING <b>kv cache</b> 91% full\n")
		return err
	}
	st, srv := dashboardServer(t, Options{Version: v1.VersionInfo{Version: "test"}, GPUs: gpus, Logs: logs})
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, err = c.Apply(ctx, v1.ApplyRequest{Items: []v1.ApplyItem{
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"ClusterBaseModel","metadata":{"name":"m","annotations":{"note":"<script>alert(0)</script>"}},"spec":{"storage":{"storageUri":"hf://org/m"}}}`),
		item(t, `{"apiVersion":"ome.io/v1beta1","kind":"InferenceService","metadata":{"name":"svc","namespace":"default"},"spec":{"model":{"name":"m"}}}`),
		item(t, `{"apiVersion":"citadel.dev/v1alpha1","kind":"Route","metadata":{"name":"web","namespace":"default"},"spec":{"models":[{"name":"chat-public","targets":[{"service":"svc"}]}]}}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	putStatus(t, st, v1.KindClusterBaseModel, "", "m", v1.ModelStatus{
		Status:    v1.Status{Phase: v1.ModelDownloading, Reason: "Downloading", Message: `<script>alert(1)</script> & "more"`},
		BytesDone: 25 << 20, BytesTotal: 100 << 20, BytesPerSecond: 3 << 20,
		LastFailure: &v1.DownloadFailure{Reason: "HubUnavailable", File: "model-<1>.safetensors", HTTPStatus: 503, Attempt: 2},
	})
	putStatus(t, st, v1.KindInferenceService, "default", "svc", v1.InferenceServiceStatus{
		Status:   v1.Status{Phase: "Serving", Reason: "Ready", Message: "<img src=x onerror=alert(2)>"},
		Replicas: 1, ReadyReplicas: 1,
		Endpoints: []v1.Endpoint{{Replica: 0, Address: "127.0.0.1:4321", Engine: "vllm", GPUs: []int{0, 1}, Ready: true, Phase: "Ready",
			Restarts: 3, PID: 4242, LastExit: "exit status 1", LastExitReason: "EngineExited"}},
	})
	putStatus(t, st, v1.KindRoute, "default", "web", v1.Status{Phase: "Ready", Message: "every target is ready"})
	if err := st.RecordEvent(ctx, store.Event{Kind: v1.KindClusterBaseModel, Name: "m", Type: v1.EventWarning, Reason: "DownloadStalled",
		Message: "<script>alert(3)</script>"}); err != nil {
		t.Fatal(err)
	}

	resp, body := getPage(t, http.DefaultClient, newGet(t, srv.URL+"/"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="3">`,
		`<link rel="stylesheet" href="/static/dashboard.css">`,
		`<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">`,
		// The model, with a bar 25% wide, its rate and its last failure's facts.
		`<code>m</code>`, `Downloading`, `style="width: 25%"`, `25.0 MiB / 100.0 MiB`, `3.0 MiB/s`,
		`HubUnavailable`, `model-&lt;1&gt;.safetensors`, `HTTP status: 503`, `attempt 2`,
		// The service and its endpoint.
		`<code>default/svc</code>`, `Serving`, `1/1`, `vllm`, `<code>127.0.0.1:4321</code>`, `GPUs 0,1`, `PID 4242`, `3 restarts`,
		`last exit: exit status 1 (EngineExited)`,
		// The engine's last log lines, escaped.
		`<pre class="log">INFO: Uvicorn running on http://127.0.0.1:4321`, `WARNING &lt;b&gt;kv cache&lt;/b&gt; 91% full`,
		// The GPU and who holds it.
		`RTX &lt;b&gt;4070&lt;/b&gt;`,
		// total, other processes, planned, free (total less both, as citadel get gpus says)
		`<td class="num">16.0 GiB</td><td class="num">2.0 GiB</td><td class="num">12.0 GiB</td><td class="num">2.0 GiB</td>`, `<code>default/svc</code> #0 vllm PID 4242`,
		// The route.
		`<code>default/web</code>`, `<code>chat-public</code>`, `every target is ready`,
		// Events: the apply's and the recorded one.
		`DownloadStalled`, `Created`,
		// Everything escaped.
		`&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;more&#34;`, `&lt;img src=x onerror=alert(2)&gt;`, `&lt;script&gt;alert(3)&lt;/script&gt;`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// The only script is the dashboard's own.
	if n := strings.Count(body, "<script"); n != 1 || !strings.Contains(body, `<script src="/static/dashboard.js" defer></script>`) {
		t.Errorf("the page has %d script elements; want only the dashboard's own", n)
	}
	for _, bad := range []string{"<img", "<b>"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page has unescaped %q", bad)
		}
	}
	if t.Failed() {
		t.Log(body)
	}

	resp, css := getPage(t, http.DefaultClient, newGet(t, srv.URL+"/static/dashboard.css"))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, ".bar") {
		t.Fatalf("GET /static/dashboard.css: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	// The API is unchanged: other paths are still JSON 404s.
	resp, body = getPage(t, http.DefaultClient, newGet(t, srv.URL+"/nope"))
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no admin API route") {
		t.Fatalf("GET /nope: %s %s", resp.Status, body)
	}
	if _, err := c.Get(ctx, "models", "", "m"); err != nil {
		t.Fatal(err)
	}
}

func TestDashboardEmptyWithoutGPUs(t *testing.T) {
	_, srv := dashboardServer(t, Options{})
	resp, body := getPage(t, http.DefaultClient, newGet(t, srv.URL+"/"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	for _, want := range []string{"No models.", "No InferenceServices.", "No Routes.", "No events.", "no serving controller"} {
		if !strings.Contains(body, want) {
			t.Errorf("the empty page lacks %q", want)
		}
	}
}

func TestDashboardToken(t *testing.T) {
	const token = "s3cret"
	_, srv := dashboardServer(t, Options{Token: token})
	status := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		return getPage(t, noRedirect, req)
	}
	for _, path := range []string{"/", "/static/dashboard.css", "/?token=wrong", "/?token=", "/api/v1/models"} {
		if resp, _ := status(newGet(t, srv.URL+path)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %s, want 401", path, resp.Status)
		}
	}
	// The bearer token opens the page, as every call.
	req := newGet(t, srv.URL+"/")
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, _ := status(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / with the bearer token: %s", resp.Status)
	}
	// ?token=right sets the cookie and redirects to /.
	resp, _ := status(newGet(t, srv.URL+"/?token="+token))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("GET /?token=right: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == dashboardCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, token) {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, not the token itself", cookie)
	}
	with := func(path string, ck *http.Cookie) *http.Request {
		req := newGet(t, srv.URL+path)
		req.AddCookie(ck)
		return req
	}
	if resp, body := status(with("/", cookie)); resp.StatusCode != http.StatusOK || !strings.Contains(body, "<h1>Citadel</h1>") {
		t.Fatalf("GET / with the cookie: %s", resp.Status)
	}
	if resp, _ := status(with("/static/dashboard.css", cookie)); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /static/dashboard.css with the cookie: %s", resp.Status)
	}
	// The icon the page links to, and the one browsers ask for on their own, are the same
	// embedded SVG.
	for _, path := range []string{"/static/favicon.svg", "/favicon.ico"} {
		if resp, body := status(with(path, cookie)); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(body, "<svg ") {
			t.Errorf("GET %s with the cookie: %s, %s: want the SVG icon", path, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	// The cookie opens the dashboard only, not the API.
	for _, path := range []string{"/api/v1/models", "/api/v1/events", "/version"} {
		if resp, _ := status(with(path, cookie)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with the dashboard cookie: %s, want 401", path, resp.Status)
		}
	}
	if resp, _ := status(with("/", &http.Cookie{Name: dashboardCookie, Value: cookieValue("other")})); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET / with a wrong cookie: %s, want 401", resp.Status)
	}
	// A browser that follows the redirect lands on the page.
	jar := &http.Client{Jar: newJar(t)}
	if resp, body := getPage(t, jar, newGet(t, srv.URL+"/?token="+token)); resp.StatusCode != http.StatusOK || resp.Request.URL.RawQuery != "" || !strings.Contains(body, "<h1>Citadel</h1>") {
		t.Fatalf("following /?token=right: %s at %s", resp.Status, resp.Request.URL)
	}
	// /healthz stays open.
	if resp, _ := status(newGet(t, srv.URL+"/healthz")); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/store"
	"citadel.dev/citadel/internal/telemetry"
)

// TestMetricsAuth checks who may read /metrics: with --admin-token, only a caller with the
// token (Prometheus's bearer token), unless MetricsOpen opens /metrics (and nothing else).
func TestMetricsAuth(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	serve := func(opts Options) string {
		opts.Version = v1.VersionInfo{Version: "test"}
		srv := httptest.NewServer(New(st, opts).Handler())
		t.Cleanup(srv.Close)
		return srv.URL
	}
	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	metrics := telemetry.Handler(telemetry.New(telemetry.Options{Store: st, Version: v1.VersionInfo{Version: "test"}}))

	// A model, so that the scrape has model series.
	c, err := client.New(serve(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(t.Context(), v1.ApplyRequest{Items: []v1.ApplyItem{item(t, modelJSON)}}); err != nil {
		t.Fatal(err)
	}

	locked := serve(Options{Token: "s3cret", Metrics: metrics})
	if code, body := get(locked+"/metrics", ""); code != http.StatusUnauthorized || !strings.Contains(body, "admin token") {
		t.Errorf("/metrics without the token: %d %s, want 401 naming the admin token", code, body)
	}
	if code, _ := get(locked+"/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", code)
	}
	code, body := get(locked+"/metrics", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, `citadel_model_phase{kind="ClusterBaseModel",name="m",namespace="",phase="Pending"} 1`) ||
		!strings.Contains(body, `citadel_build_info{commit="",goversion="",version="test"} 1`) {
		t.Errorf("/metrics with the token: %d\n%s", code, body)
	}

	open := serve(Options{Token: "s3cret", Metrics: metrics, MetricsOpen: true})
	if code, body := get(open+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "citadel_store_up 1") {
		t.Errorf("open /metrics without a token: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/models", "/metrics/../api/v1/models", "/metricsx"} {
		if code, _ := get(open+path, ""); code != http.StatusUnauthorized {
			t.Errorf("MetricsOpen: %s without a token answered %d, want 401 (only /metrics is open)", path, code)
		}
	}

	none := serve(Options{})
	if code, body := get(none+"/metrics", ""); code != http.StatusNotFound || !strings.Contains(body, "no metrics") {
		t.Errorf("/metrics of a server without metrics: %d %s, want 404", code, body)
	}
}

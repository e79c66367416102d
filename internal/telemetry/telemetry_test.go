package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
	"citadel.dev/citadel/internal/telemetry"
)

// put stores an object with a status, as the agent and the serving controller write them.
func put(t *testing.T, st *store.Store, kind, namespace, name string, status any) {
	t.Helper()
	ctx := t.Context()
	if _, err := st.Apply(ctx, []store.Object{{Kind: kind, Namespace: namespace, Name: name, Spec: json.RawMessage(`{}`)}}, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if status == nil {
		return
	}
	b, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateStatus(ctx, kind, namespace, name, 0, b); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func modelStatus(phase string, done, total, rate int64) v1.ModelStatus {
	return v1.ModelStatus{Status: v1.Status{Phase: phase}, BytesDone: done, BytesTotal: total, BytesPerSecond: rate}
}

// TestModelsAndServices checks the series of models in every phase (one without a status
// yet) and of services, as a scrape shows them.
func TestModelsAndServices(t *testing.T) {
	st := openStore(t)
	put(t, st, v1.KindClusterBaseModel, "", "fresh", nil)
	put(t, st, v1.KindClusterBaseModel, "", "pending", modelStatus(v1.ModelPending, 0, 0, 0))
	progress := modelStatus(v1.ModelDownloading, 3<<30, 8<<30, 50<<20)
	progress.LastProgressTime = v1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 500e6, time.UTC))
	put(t, st, v1.KindClusterBaseModel, "", "downloading", progress)
	put(t, st, v1.KindBaseModel, "team", "verifying", modelStatus(v1.ModelVerifying, 100, 100, 0))
	put(t, st, v1.KindClusterBaseModel, "", "ready", modelStatus(v1.ModelReady, 4096, 4096, 0))
	failed := modelStatus(v1.ModelFailed, 10, 100, 0)
	failed.LastFailure = &v1.DownloadFailure{Reason: v1.ReasonDownloadStalled, Attempt: 3}
	put(t, st, v1.KindClusterBaseModel, "", "failed", failed)
	put(t, st, v1.KindInferenceService, "default", "chat", v1.InferenceServiceStatus{Status: v1.Status{Phase: v1.ServiceDegraded},
		Replicas: 2, ReadyReplicas: 1, Endpoints: []v1.Endpoint{{Replica: 0, Restarts: 1}, {Replica: 1, Restarts: 4}}})
	put(t, st, v1.KindInferenceService, "default", "waiting", nil)
	put(t, st, v1.KindSecret, "default", "hf", nil)

	c := telemetry.New(telemetry.Options{Store: st, Version: v1.VersionInfo{Version: "1.2.3", GoVersion: "go1.26.0", Commit: "abc"}})
	want := `
# HELP citadel_build_info Always 1; the labels say which citadel serves.
# TYPE citadel_build_info gauge
citadel_build_info{commit="abc",goversion="go1.26.0",version="1.2.3"} 1
# HELP citadel_model_download_bytes Bytes of the model on this host so far (the download's progress; its size once Ready).
# TYPE citadel_model_download_bytes gauge
citadel_model_download_bytes{kind="BaseModel",name="verifying",namespace="team"} 100
citadel_model_download_bytes{kind="ClusterBaseModel",name="downloading",namespace=""} 3.221225472e+09
citadel_model_download_bytes{kind="ClusterBaseModel",name="failed",namespace=""} 10
citadel_model_download_bytes{kind="ClusterBaseModel",name="fresh",namespace=""} 0
citadel_model_download_bytes{kind="ClusterBaseModel",name="pending",namespace=""} 0
citadel_model_download_bytes{kind="ClusterBaseModel",name="ready",namespace=""} 4096
# HELP citadel_model_download_bytes_per_second The download's current speed; 0 when no bytes are moving.
# TYPE citadel_model_download_bytes_per_second gauge
citadel_model_download_bytes_per_second{kind="BaseModel",name="verifying",namespace="team"} 0
citadel_model_download_bytes_per_second{kind="ClusterBaseModel",name="downloading",namespace=""} 5.24288e+07
citadel_model_download_bytes_per_second{kind="ClusterBaseModel",name="failed",namespace=""} 0
citadel_model_download_bytes_per_second{kind="ClusterBaseModel",name="fresh",namespace=""} 0
citadel_model_download_bytes_per_second{kind="ClusterBaseModel",name="pending",namespace=""} 0
citadel_model_download_bytes_per_second{kind="ClusterBaseModel",name="ready",namespace=""} 0
# HELP citadel_model_download_failed_attempts Automatic download attempts that failed in a row (0 once Ready or after a spec change).
# TYPE citadel_model_download_failed_attempts gauge
citadel_model_download_failed_attempts{kind="BaseModel",name="verifying",namespace="team"} 0
citadel_model_download_failed_attempts{kind="ClusterBaseModel",name="downloading",namespace=""} 0
citadel_model_download_failed_attempts{kind="ClusterBaseModel",name="failed",namespace=""} 3
citadel_model_download_failed_attempts{kind="ClusterBaseModel",name="fresh",namespace=""} 0
citadel_model_download_failed_attempts{kind="ClusterBaseModel",name="pending",namespace=""} 0
citadel_model_download_failed_attempts{kind="ClusterBaseModel",name="ready",namespace=""} 0
# HELP citadel_model_download_last_progress_timestamp_seconds When the download last received bytes (Unix time).
# TYPE citadel_model_download_last_progress_timestamp_seconds gauge
citadel_model_download_last_progress_timestamp_seconds{kind="ClusterBaseModel",name="downloading",namespace=""} 1.767323045e+09
# HELP citadel_model_size_bytes The model's size in bytes, once the download has listed its files.
# TYPE citadel_model_size_bytes gauge
citadel_model_size_bytes{kind="BaseModel",name="verifying",namespace="team"} 100
citadel_model_size_bytes{kind="ClusterBaseModel",name="downloading",namespace=""} 8.589934592e+09
citadel_model_size_bytes{kind="ClusterBaseModel",name="failed",namespace=""} 100
citadel_model_size_bytes{kind="ClusterBaseModel",name="ready",namespace=""} 4096
# HELP citadel_service_engine_restarts Engine restarts of the service's replicas, as the supervisor counts them (resets when serve restarts).
# TYPE citadel_service_engine_restarts gauge
citadel_service_engine_restarts{name="chat",namespace="default"} 5
citadel_service_engine_restarts{name="waiting",namespace="default"} 0
# HELP citadel_service_replicas Engine replicas Citadel runs for the InferenceService.
# TYPE citadel_service_replicas gauge
citadel_service_replicas{name="chat",namespace="default"} 2
citadel_service_replicas{name="waiting",namespace="default"} 0
# HELP citadel_service_replicas_ready Engine replicas that pass their readiness probe.
# TYPE citadel_service_replicas_ready gauge
citadel_service_replicas_ready{name="chat",namespace="default"} 1
citadel_service_replicas_ready{name="waiting",namespace="default"} 0
# HELP citadel_store_up 1 when this scrape read the store, 0 when it could not (then no model or service series).
# TYPE citadel_store_up gauge
citadel_store_up 1
`
	names := []string{"citadel_build_info", "citadel_model_download_bytes", "citadel_model_download_bytes_per_second", "citadel_model_download_failed_attempts",
		"citadel_model_download_last_progress_timestamp_seconds", "citadel_model_size_bytes", "citadel_service_engine_restarts",
		"citadel_service_replicas", "citadel_service_replicas_ready", "citadel_store_up"}
	if err := compare(t, c, want, names...); err != nil {
		t.Error(err)
	}

	// The phase series: 1 for the current phase of each object, 0 for the rest; no status yet is Pending.
	got := current(t, c, "citadel_model_phase", "name")
	for name, phase := range map[string]string{"fresh": "Pending", "pending": "Pending", "downloading": "Downloading", "verifying": "Verifying", "ready": "Ready", "failed": "Failed"} {
		if got[name] != phase {
			t.Errorf("model %s: phase series say %q, want %q", name, got[name], phase)
		}
	}
	if n, want := count(t, c, "citadel_model_phase"), 6*5; n != want {
		t.Errorf("%d citadel_model_phase series, want %d (5 phases of 6 models)", n, want)
	}
	if got := current(t, c, "citadel_service_phase", "name"); got["chat"] != "Degraded" || got["waiting"] != "Pending" {
		t.Errorf("service phases %v, want chat Degraded and waiting Pending", got)
	}
	for kind, want := range map[string]string{"ClusterBaseModel": "5", "BaseModel": "1", "InferenceService": "2", "Secret": "1", "Route": "0"} {
		if v := values(t, c, "citadel_store_objects", "kind")[kind]; v != want {
			t.Errorf("citadel_store_objects{kind=%q} = %s, want %s", kind, v, want)
		}
	}
	// No GPUs function: no GPU series; no agent: no agent series.
	for _, name := range []string{"citadel_gpu_memory_bytes", "citadel_gpu_inventory_up", "citadel_agent_downloads_total"} {
		if n := count(t, c, name); n != 0 {
			t.Errorf("%d %s series from a collector without that source", n, name)
		}
	}
}

// compare checks the series of the named metrics (every one when none is named, the Go and
// process series left out) against want, in the text format.
func compare(t *testing.T, c *telemetry.Collector, want string, names ...string) error {
	t.Helper()
	var got strings.Builder
	for _, line := range strings.Split(scrape(t, c), "\n") {
		name := line
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			_, name, _ = strings.Cut(rest, " ") // # HELP name …, # TYPE name …
		}
		name, _, _ = strings.Cut(name, " ")
		name, _, _ = strings.Cut(name, "{")
		if name == "" || len(names) == 0 && !strings.HasPrefix(name, "citadel_") || len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		got.WriteString(line + "\n")
	}
	if got.String() != strings.TrimPrefix(want, "\n") {
		return fmt.Errorf("series of %v:\n%s\nwant:\n%s", names, got.String(), strings.TrimPrefix(want, "\n"))
	}
	return nil
}

// count is the number of series of a metric.
func count(t *testing.T, c *telemetry.Collector, metric string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(scrape(t, c), "\n") {
		if strings.HasPrefix(line, metric+"{") || strings.HasPrefix(line, metric+" ") {
			n++
		}
	}
	return n
}

// scrape returns the text a scrape of c sees.
func scrape(t *testing.T, c *telemetry.Collector) string {
	t.Helper()
	rec := httptest.NewRecorder()
	telemetry.Handler(c).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// values maps a label's value to the sample value of each series of a metric.
func values(t *testing.T, c *telemetry.Collector, metric, label string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(scrape(t, c), "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len(metric)+1:], "} ")
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == label {
				out[strings.Trim(v, `"`)] = value
			}
		}
	}
	return out
}

// current maps each object's label value to the phase whose series is 1.
func current(t *testing.T, c *telemetry.Collector, metric, label string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(scrape(t, c), "\n") {
		if !strings.HasPrefix(line, metric+"{") || !strings.HasSuffix(line, "} 1") {
			continue
		}
		var obj, phase string
		for _, kv := range strings.Split(strings.TrimSuffix(line[len(metric)+1:], "} 1"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case label:
				obj = strings.Trim(v, `"`)
			case "phase":
				phase = strings.Trim(v, `"`)
			}
		}
		if prev, dup := out[obj]; dup {
			t.Errorf("%s: %s is in phases %s and %s at once", metric, obj, prev, phase)
		}
		out[obj] = phase
	}
	return out
}

// TestGPUs checks the memory map (total, Citadel's plan, other processes, free), the
// utilisation where it is known and the series of a GPU whose memory the driver hides.
func TestGPUs(t *testing.T) {
	const gib = 1 << 30
	list := v1.GPUList{Source: "nvidia-smi", Items: []v1.GPU{
		{Index: 0, UUID: "GPU-a", Name: "NVIDIA GeForce RTX 4070 Ti SUPER", Profile: "rtx-4070-ti-super", MemoryTotal: 16 * gib, MemoryUsed: 1 * gib, Planned: 12 * gib,
			Holders: []v1.GPUHolder{{Service: "default/chat", Replica: 0}}},
		{Index: 1, UUID: "GPU-b", Name: "Overbooked", MemoryTotal: 8 * gib, MemoryUsed: 3 * gib, Planned: 6 * gib},
		{Index: 2, UUID: "GPU-c", Name: "NVIDIA GB10", Note: "memory.total is [N/A]"},
	}}
	c := telemetry.New(telemetry.Options{
		GPUs:        func(context.Context) (v1.GPUList, error) { return list, nil },
		Utilization: func(context.Context) (map[int]float64, error) { return map[int]float64{0: 0.37, 2: 1}, nil },
	})
	want := `
# HELP citadel_gpu_engines Engine replicas (or shared models) Citadel placed on the GPU.
# TYPE citadel_gpu_engines gauge
citadel_gpu_engines{gpu="0"} 1
citadel_gpu_engines{gpu="1"} 0
citadel_gpu_engines{gpu="2"} 0
# HELP citadel_gpu_info Always 1; the labels describe the GPU (join on gpu).
# TYPE citadel_gpu_info gauge
citadel_gpu_info{gpu="0",name="NVIDIA GeForce RTX 4070 Ti SUPER",profile="rtx-4070-ti-super",uuid="GPU-a"} 1
citadel_gpu_info{gpu="1",name="Overbooked",profile="",uuid="GPU-b"} 1
citadel_gpu_info{gpu="2",name="NVIDIA GB10",profile="",uuid="GPU-c"} 1
# HELP citadel_gpu_inventory_up 1 when the GPU inventory was read, 0 when reading it failed (citadel get gpus says why).
# TYPE citadel_gpu_inventory_up gauge
citadel_gpu_inventory_up 1
# HELP citadel_gpu_memory_bytes GPU memory by kind: total; citadel (what Citadel's engines hold or reserve, by the planner); other (held by processes Citadel did not start); free (total less citadel and other).
# TYPE citadel_gpu_memory_bytes gauge
citadel_gpu_memory_bytes{gpu="0",kind="citadel"} 1.2884901888e+10
citadel_gpu_memory_bytes{gpu="0",kind="free"} 3.221225472e+09
citadel_gpu_memory_bytes{gpu="0",kind="other"} 1.073741824e+09
citadel_gpu_memory_bytes{gpu="0",kind="total"} 1.7179869184e+10
citadel_gpu_memory_bytes{gpu="1",kind="citadel"} 6.442450944e+09
citadel_gpu_memory_bytes{gpu="1",kind="free"} 0
citadel_gpu_memory_bytes{gpu="1",kind="other"} 3.221225472e+09
citadel_gpu_memory_bytes{gpu="1",kind="total"} 8.589934592e+09
# HELP citadel_gpu_utilization_ratio The GPU's utilisation (0–1) as nvidia-smi reports it; absent when it reports none (simulated GPUs).
# TYPE citadel_gpu_utilization_ratio gauge
citadel_gpu_utilization_ratio{gpu="0"} 0.37
citadel_gpu_utilization_ratio{gpu="2"} 1
`
	if err := compare(t, c, want, "citadel_gpu_engines", "citadel_gpu_info", "citadel_gpu_inventory_up",
		"citadel_gpu_memory_bytes", "citadel_gpu_utilization_ratio"); err != nil {
		t.Error(err)
	}

	// An inventory that failed: up is 0, the scrape still answers; a failing utilisation
	// read leaves only its own series out.
	c = telemetry.New(telemetry.Options{
		GPUs:        func(context.Context) (v1.GPUList, error) { return v1.GPUList{Error: "nvidia-smi: exit status 9"}, nil },
		Utilization: func(context.Context) (map[int]float64, error) { return nil, errors.New("no") },
	})
	if err := compare(t, c, `
# HELP citadel_gpu_inventory_up 1 when the GPU inventory was read, 0 when reading it failed (citadel get gpus says why).
# TYPE citadel_gpu_inventory_up gauge
citadel_gpu_inventory_up 0
`, "citadel_gpu_inventory_up", "citadel_gpu_memory_bytes"); err != nil {
		t.Error(err)
	}
	c = telemetry.New(telemetry.Options{
		GPUs:        func(context.Context) (v1.GPUList, error) { return list, nil },
		Utilization: func(context.Context) (map[int]float64, error) { return nil, errors.New("nvidia-smi hung") },
	})
	if n := count(t, c, "citadel_gpu_utilization_ratio"); n != 0 {
		t.Errorf("%d utilisation series after a failed read", n)
	}
	if n := count(t, c, "citadel_gpu_memory_bytes"); n != 8 {
		t.Errorf("%d memory series after a failed utilisation read, want 8", n)
	}
}

// TestStoreDown: a closed store gives citadel_store_up 0 and no model series, and the
// scrape still answers.
func TestStoreDown(t *testing.T) {
	st := openStore(t)
	put(t, st, v1.KindClusterBaseModel, "", "m", modelStatus(v1.ModelReady, 1, 1, 0))
	st.Close()
	c := telemetry.New(telemetry.Options{Store: st})
	text := scrape(t, c)
	if !strings.Contains(text, "\ncitadel_store_up 0\n") || strings.Contains(text, "citadel_model_phase") {
		t.Errorf("scrape of a closed store:\n%s", text)
	}
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "citadel_build_info") {
		t.Errorf("scrape lacks the Go runtime's or the build's series:\n%s", text)
	}
}

func TestAgentCounters(t *testing.T) {
	var rec telemetry.AgentRecorder
	rec.Started(false)
	rec.Finished(errors.New("stalled"), true, 0)
	rec.Started(true)
	rec.Finished(nil, false, 6e8)
	rec.Started(false)
	rec.Finished(nil, false, 4e8)
	c := telemetry.New(telemetry.Options{Agent: rec.Counters})
	want := `
# HELP citadel_agent_download_retries_total Automatic download attempts after a failed one.
# TYPE citadel_agent_download_retries_total counter
citadel_agent_download_retries_total 1
# HELP citadel_agent_downloads_total Finished model downloads by result: succeeded, failed (retried automatically), gave_up (waits for a fix).
# TYPE citadel_agent_downloads_total counter
citadel_agent_downloads_total{result="failed"} 1
citadel_agent_downloads_total{result="gave_up"} 0
citadel_agent_downloads_total{result="succeeded"} 2
# HELP citadel_agent_fetched_bytes_total Bytes fetched from hubs, mirrors and registries by downloads that succeeded (a failed attempt's bytes are left out).
# TYPE citadel_agent_fetched_bytes_total counter
citadel_agent_fetched_bytes_total 1e+09
`
	if err := compare(t, c, want, "citadel_agent_download_retries_total", "citadel_agent_downloads_total", "citadel_agent_fetched_bytes_total"); err != nil {
		t.Error(err)
	}
}

func TestParseUtilization(t *testing.T) {
	got, err := telemetry.ParseUtilization([]byte("0, 37\n1, [N/A]\n2, 100\n\n"))
	if err != nil || len(got) != 2 || got[0] != 0.37 || got[2] != 1 {
		t.Errorf("ParseUtilization = %v, %v; want 0: 0.37, 2: 1", got, err)
	}
	for _, bad := range []string{"0 37", "x, 3", "0, 140", "0, lots"} {
		if _, err := telemetry.ParseUtilization([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseUtilization(%q): error %v, want one naming line 1", bad, err)
		}
	}
}

// BenchmarkScrape measures a scrape of a store with 300 models and 100 services (the
// collector reads them all), beside BenchmarkList, the store read alone.
func BenchmarkScrape(b *testing.B) {
	st := benchStore(b)
	c := telemetry.New(telemetry.Options{Store: st})
	h := telemetry.Handler(c)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkList(b *testing.B) {
	st := benchStore(b)
	for b.Loop() {
		if _, _, err := st.List(b.Context(), "", store.ListOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) *store.Store {
	st, err := store.Open(b.Context(), b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var objs []store.Object
	for i := range 300 {
		objs = append(objs, store.Object{Kind: v1.KindClusterBaseModel, Name: fmt.Sprintf("m%d", i), Spec: json.RawMessage(`{}`)})
	}
	for i := range 100 {
		objs = append(objs, store.Object{Kind: v1.KindInferenceService, Namespace: "default", Name: fmt.Sprintf("s%d", i), Spec: json.RawMessage(`{}`)})
	}
	if _, err := st.Apply(b.Context(), objs, store.ApplyOptions{}); err != nil {
		b.Fatal(err)
	}
	status, _ := json.Marshal(modelStatus(v1.ModelDownloading, 1<<30, 8<<30, 50<<20))
	for i := range 300 {
		if _, err := st.UpdateStatus(b.Context(), v1.KindClusterBaseModel, "", fmt.Sprintf("m%d", i), 0, status); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/sim"
)

func TestBenchRunAndCompare(t *testing.T) {
	g, _ := perfmodel.LookupGPU("h100-sxm")
	m, _ := perfmodel.LookupModel("qwen2.5-7b")
	p, err := perfmodel.NewPlan(g, m, perfmodel.Options{MaxModelLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.NewOpenAI(sim.Config{Plan: p, ServedModelNames: []string{"qwen"}, TimeScale: 0})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "run", "--target", "a=" + url + ",model=qwen", "--target", "b=" + url + ",model=qwen",
		"--num-prompts", "20", "--input-len", "64", "--output-len", "8", "--max-concurrency", "4", "--metric-percentiles", "50,99", "--out", out},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"============ Serving Benchmark Result ============", "Successful requests:                     20",
		"Mean TTFT (ms):", "P99 ITL (ms):", "| `request_throughput` |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	if len(files) != 2 {
		t.Fatalf("result files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	var res map[string]any
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"duration", "completed", "total_output_tokens", "request_throughput", "output_throughput", "mean_ttft_ms",
		"median_tpot_ms", "p50_itl_ms", "p99_ttft_ms", "ttfts", "itls", "max_concurrent_requests"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks vLLM key %q", k)
		}
	}
	// --out writes what --help promises: JSON, Markdown and SVG charts, named after the
	// targets, the model and the time.
	reports, _ := filepath.Glob(filepath.Join(out, "*.md"))
	charts, _ := filepath.Glob(filepath.Join(out, "*.svg"))
	if len(reports) != 1 || len(charts) == 0 {
		t.Fatalf("want one report and its charts in %s, got %v and %v", out, reports, charts)
	}
	if name := filepath.Base(reports[0]); !regexp.MustCompile(`^a\+b_qwen_run-infqps-concurrency4_\d{8}T\d{6}Z\.md$`).MatchString(name) {
		t.Errorf("report %s does not name the targets, the model, the load and the time", name)
	}
	md, _ := os.ReadFile(reports[0])
	for _, c := range charts {
		if !strings.Contains(string(md), `src="`+filepath.Base(c)+`"`) {
			t.Errorf("the report does not show %s", filepath.Base(c))
		}
	}
	// A second run into the same directory keeps both sets.
	before := map[string][]byte{}
	all, _ := filepath.Glob(filepath.Join(out, "*"))
	for _, f := range all {
		before[f], _ = os.ReadFile(f)
	}
	if code := run(context.Background(), []string{"bench", "run", "--target", "a=" + url + ",model=qwen", "--target", "b=" + url + ",model=qwen",
		"--num-prompts", "4", "--input-len", "64", "--output-len", "8", "--max-concurrency", "4", "--out", out},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr.String())
	}
	all2, _ := filepath.Glob(filepath.Join(out, "*"))
	if len(all2) != 2*len(all) {
		t.Errorf("after two runs %d files, want %d: %v", len(all2), 2*len(all), all2)
	}
	for f, b := range before {
		if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
			t.Errorf("the second run overwrote %s", f)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"bench", "compare", files[0], files[1]}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != 0 || !strings.Contains(stdout.String(), "mean_ttft_ms") {
		t.Errorf("compare: exit %d\n%s", code, stdout.String())
	}
	if code := run(context.Background(), []string{"bench", "run", "--target", "x"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }); code != ExitUsage {
		t.Errorf("bad target: exit %d", code)
	}
}

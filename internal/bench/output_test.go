package bench

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestFilesNoOverwrite: two runs written in the same second keep both sets of files, each
// named after the targets, the models and the time.
func TestFilesNoOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 12, 7, 17, 15, 0, 0, time.UTC)
	r := func(label string) *Result {
		return &Result{Label: label, Model: "Qwen/Qwen2.5-7B", RequestRate: math.Inf(1), MaxConcurrency: 8, Completed: 1,
			TTFTs: []float64{0.1}, Latencies: []float64{0.5}, ITLs: [][]float64{{0.01}}, OutputLens: []int{2}, InputLens: []int{4},
			Metrics: map[string]float64{"mean_ttft_ms": 100}}
	}
	series := []Series{{Label: "vllm", X: "concurrency", Points: []Point{{X: 8, R: r("vllm")}}},
		{Label: "gw", X: "concurrency", Points: []Point{{X: 8, R: r("gw")}}}}
	o := Files{Dir: dir, Kind: "run", Series: series, Now: now}
	if got, want := o.Stem(), "vllm+gw_Qwen_Qwen2.5-7B_run-infqps-concurrency8_20261207T171500Z"; got != want {
		t.Errorf("Stem() = %q, want %q", got, want)
	}
	w1, err := o.Write()
	if err != nil {
		t.Fatal(err)
	}
	w2, err := o.Write()
	if err != nil {
		t.Fatal(err)
	}
	if w1.Report == w2.Report {
		t.Fatalf("both runs wrote %s", w1.Report)
	}
	for _, w := range []Written{w1, w2} {
		var md, svg, js int
		for _, f := range w.Files {
			switch filepath.Ext(f) {
			case ".md":
				md++
			case ".svg":
				svg++
			case ".json":
				js++
			}
		}
		if md != 1 || svg < 2 || js != 2 {
			t.Errorf("%s: %d report(s), %d chart(s), %d JSON file(s); want 1, ≥ 2, 2 (one per target): %v", w.Report, md, svg, js, w.Files)
		}
	}
	all, _ := filepath.Glob(filepath.Join(dir, "*"))
	if want := len(w1.Files) + len(w2.Files); len(all) != want {
		t.Errorf("%d files in the directory, want %d", len(all), want)
	}
	if !slices.Contains(w2.Files, filepath.Join(dir, o.Stem()+"-2-vllm.json")) {
		t.Errorf("second run's files %v lack the -2 stem", w2.Files)
	}
	if _, err := os.Stat(filepath.Join(dir, o.Stem()+"-throughput.svg")); err != nil {
		t.Error(err)
	}
}

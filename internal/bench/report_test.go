package bench

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// -update-report rewrites the goldens in testdata/report (so does -update, when another test
// file of the package defines it).
var updateReport = flag.Bool("update-report", false, "rewrite the golden files in testdata/report")

func reportUpdating() bool {
	if *updateReport {
		return true
	}
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// reportGolden compares got with testdata/report/name, reporting the first differing line.
func reportGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "report", name)
	if reportUpdating() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update-report to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden (rerun with -update-report if intended):\n%s", name, firstDiff(string(want), string(got)))
	}
}

// firstDiff describes the first differing line of want and got.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl || i >= len(w) || i >= len(g) {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

func ptr(v float64) *float64 { return &v }

// fixtureFull has every console line: a concurrency limit, a finite rate, goodput, four
// metrics with four percentiles (including p99.9), and half-way values that test rounding.
func fixtureFull() *Result {
	return &Result{
		Label: "vllm", Model: "Qwen/Qwen2.5-7B-Instruct", Backend: "openai-chat",
		RequestRate: 8, Burstiness: 1, MaxConcurrency: 16, Duration: 12.345678,
		Completed: 98, Failed: 2, TotalInputTokens: 51200, TotalOutputTokens: 12800,
		RequestThroughput: 7.938, RequestGoodput: ptr(7.125), OutputThroughput: 1036.8,
		TotalTokenThroughput: 5184.005, MaxOutputTokensPerS: 1280, MaxConcurrentReqs: 16,
		Metrics: map[string]float64{
			"mean_ttft_ms": 123.456, "median_ttft_ms": 110.125, "std_ttft_ms": 40,
			"p50_ttft_ms": 110.125, "p90_ttft_ms": 180.5, "p99_ttft_ms": 250.995, "p99.9_ttft_ms": 312.4,
			"mean_tpot_ms": 21.5, "median_tpot_ms": 20.875, "std_tpot_ms": 2,
			"p50_tpot_ms": 20.875, "p90_tpot_ms": 25, "p99_tpot_ms": 30.125, "p99.9_tpot_ms": 31,
			"mean_itl_ms": 21.4, "median_itl_ms": 19.99, "std_itl_ms": 6,
			"p50_itl_ms": 19.99, "p90_itl_ms": 26, "p99_itl_ms": 44.445, "p99.9_itl_ms": 80,
			"mean_e2el_ms": 2860, "median_e2el_ms": 2795.5, "std_e2el_ms": 300,
			"p50_e2el_ms": 2795.5, "p90_e2el_ms": 3300, "p99_e2el_ms": 3999.999, "p99.9_e2el_ms": 4100,
		},
	}
}

// fixtureInf is vLLM's defaults: rate inf, no concurrency limit, no goodput, ttft/tpot/itl at p99.
func fixtureInf() *Result {
	return &Result{
		Label: "vllm", Model: "m", Backend: "openai", RequestRate: math.Inf(1), Burstiness: 1,
		Duration: 95.5, Completed: 1000, TotalInputTokens: 1024000, TotalOutputTokens: 128000,
		RequestThroughput: 10.471204, OutputThroughput: 1340.314, TotalTokenThroughput: 12062.8272,
		MaxOutputTokensPerS: 2816, MaxConcurrentReqs: 1000,
		Metrics: map[string]float64{
			"mean_ttft_ms": 43073.78, "median_ttft_ms": 43307.82, "std_ttft_ms": 1, "p99_ttft_ms": 83289.33,
			"mean_tpot_ms": 49.13, "median_tpot_ms": 50.31, "std_tpot_ms": 1, "p99_tpot_ms": 51.96,
			"mean_itl_ms": 48.6, "median_itl_ms": 43.66, "std_itl_ms": 1, "p99_itl_ms": 55.69,
		},
	}
}

// TestConsoleMatchesVLLM compares Console line by line with the text vLLM's own print
// statements produce for the same values (testdata/report/vllm_console.py).
func TestConsoleMatchesVLLM(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Result
	}{
		{"full", fixtureFull()},
		{"inf", fixtureInf()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "report", "vllm_console_"+tc.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			Console(&b, tc.r)
			wl := strings.Split(string(want), "\n")
			gl := strings.Split(b.String(), "\n")
			for i := 0; i < max(len(wl), len(gl)); i++ {
				var w, g string
				if i < len(wl) {
					w = wl[i]
				}
				if i < len(gl) {
					g = gl[i]
				}
				if w != g {
					t.Errorf("line %d:\nvLLM %q\nours %q", i+1, w, g)
				}
			}
			reportGolden(t, "console_"+tc.name+".txt", b.Bytes())
		})
	}
}

func TestConsoleDetails(t *testing.T) {
	var b bytes.Buffer
	Console(&b, nil)
	if b.Len() != 0 {
		t.Errorf("nil result printed %q", b.String())
	}

	r := fixtureInf()
	r.RequestRate = 0 // unset: not printed
	r.Metrics = map[string]float64{"mean_e2el_ms": math.NaN(), "median_e2el_ms": math.Inf(1)}
	b.Reset()
	Console(&b, r)
	out := b.String()
	for _, s := range []string{"Request rate configured", "Maximum request concurrency", "Request goodput", "Time to First Token"} {
		if strings.Contains(out, s) {
			t.Errorf("unexpected %q in\n%s", s, out)
		}
	}
	for _, s := range []string{
		"----------------End-to-end Latency----------------\n",
		"Mean E2EL (ms):                          nan       \n",
		"Median E2EL (ms):                        inf       \n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in\n%s", s, out)
		}
	}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := len([]rune(line)); n != 50 && n != 51 {
			t.Errorf("line %d is %d wide, want 50 (rules) or 51 (40 + 1 + 10): %q", i+1, n, line)
		}
	}

	// Client-side queue blocks, as vLLM prints them with --max-concurrency.
	r = fixtureInf()
	r.Metrics = map[string]float64{
		"mean_client_queue_time_ms": 1, "median_client_queue_time_ms": 2, "p99_client_queue_time_ms": 3,
		"mean_e2el_including_client_queue_ms": 4, "median_e2el_including_client_queue_ms": 5, "p99_e2el_including_client_queue_ms": 6,
	}
	b.Reset()
	Console(&b, r)
	for _, s := range []string{
		"---------------Client-side Queueing---------------\n",
		"P99 Client Queue Time (ms):              3.00      \n",
		"--------Queue-inclusive End-to-end Latency--------\n",
		"P99 E2EL incl. Client Queue (ms):        6.00      \n",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("missing %q in\n%s", s, b.String())
		}
	}
	if strings.Contains(b.String(), "End-to-end Latency---") && strings.Contains(b.String(), "Mean E2EL (ms)") {
		t.Errorf("e2el block printed from e2el_including_client_queue keys:\n%s", b.String())
	}
}

func TestPercentileOrder(t *testing.T) {
	m := map[string]float64{
		"p99_itl_ms": 1, "p5_itl_ms": 2, "p99.9_itl_ms": 3, "p50_itl_ms": 4, "p1e-05_itl_ms": 5,
		"p99_e2el_including_client_queue_ms": 9, "pxx_itl_ms": 9, "std_itl_ms": 9,
	}
	var words []string
	for _, p := range rptPercentiles(m, "itl") {
		words = append(words, p.word)
	}
	if want := []string{"1e-05", "5", "50", "99", "99.9"}; !slices.Equal(words, want) {
		t.Errorf("got %v, want %v", words, want)
	}
	if got := rptPercentiles(m, "e2el"); len(got) != 0 {
		t.Errorf("e2el matched %v", got)
	}
}

// sweepResult builds one point of a sweep.
func sweepResult(label string, x, tput, ttftMean, ttftP99, tpot, itlMean, itlP99 float64, failed int) *Result {
	completed := 200 - failed
	return &Result{
		Label: label, Model: "Qwen/Qwen2.5-7B-Instruct", Backend: "openai-chat", RequestRate: math.Inf(1),
		Burstiness: 1, MaxConcurrency: int(x), Duration: 200 * 128 / tput,
		Completed: completed, Failed: failed, TotalInputTokens: completed * 512, TotalOutputTokens: completed * 128,
		RequestThroughput: tput / 128, OutputThroughput: tput, TotalTokenThroughput: tput * 5,
		MaxOutputTokensPerS: tput * 1.2, MaxConcurrentReqs: int(x),
		Metrics: map[string]float64{
			"mean_ttft_ms": ttftMean, "median_ttft_ms": ttftMean * 0.9, "std_ttft_ms": ttftMean / 4, "p99_ttft_ms": ttftP99,
			"mean_tpot_ms": tpot, "median_tpot_ms": tpot, "std_tpot_ms": tpot / 10, "p99_tpot_ms": tpot * 1.3,
			"mean_itl_ms": itlMean, "median_itl_ms": itlMean * 0.95, "std_itl_ms": itlMean / 5, "p99_itl_ms": itlP99,
			"mean_e2el_ms": ttftMean + 127*tpot, "median_e2el_ms": ttftMean + 127*tpot, "std_e2el_ms": 10,
			"p99_e2el_ms": ttftP99 + 127*tpot*1.3,
		},
		SendLagP99Ms: 0.4,
	}
}

// withArrays adds deterministic per-request arrays (seconds), citadel-style: every request
// in the arrays, output_lens 0 and an Errors entry only for the failed ones.
func withArrays(r *Result, ttftBase, itlBase float64) *Result {
	n := r.Completed + r.Failed
	for i := 0; i < n; i++ {
		failed := i%67 == 66 && r.Failed > 0
		spread := float64((i*37)%n) / float64(n) // a fixed permutation of [0, 1)
		ttft := ttftBase * (0.5 + spread*spread*2)
		gaps := make([]float64, 8)
		for j := range gaps {
			gaps[j] = itlBase * (0.8 + 0.05*float64((i+j*7)%9))
		}
		lat := ttft
		for _, g := range gaps {
			lat += g
		}
		out := 9
		if failed {
			ttft, lat, gaps, out = 0, 0, []float64{}, 0
			r.Errors = append(r.Errors, "HTTP 503: overloaded")
		}
		r.TTFTs = append(r.TTFTs, ttft)
		r.ITLs = append(r.ITLs, gaps)
		r.Latencies = append(r.Latencies, lat)
		r.OutputLens = append(r.OutputLens, out)
		r.InputLens = append(r.InputLens, 512)
		r.StartTimes = append(r.StartTimes, float64(i)*0.01)
		r.QueueTimes = append(r.QueueTimes, 0)
	}
	return r
}

// fixtureSweep is two targets swept over concurrency; the heaviest points keep their arrays.
func fixtureSweep() []Series {
	v64 := withArrays(sweepResult("vllm", 64, 2950.5, 310.2, 980.75, 21.3, 21.1, 48.9, 0), 0.31, 0.021)
	o64 := withArrays(sweepResult("ollama", 64, 610.25, 2400.5, 9800, 95.2, 94.8, 160.3, 3), 2.4, 0.095)
	return []Series{
		{Label: "vllm", X: "concurrency", Points: []Point{
			{X: 16, R: sweepResult("vllm", 16, 1480.0, 45.5, 120.25, 10.8, 10.7, 22.6, 0)},
			{X: 1, R: sweepResult("vllm", 1, 130.55, 18.2, 25.1, 7.6, 7.6, 9.9, 0)},
			{X: 4, R: sweepResult("vllm", 4, 470.1, 22.4, 40.8, 8.4, 8.3, 12.2, 0)},
			{X: 64, R: v64},
		}},
		{Label: "ollama", X: "concurrency", Points: []Point{
			{X: 1, R: sweepResult("ollama", 1, 88.4, 60.1, 80.2, 11.2, 11.2, 14.5, 0)},
			{X: 4, R: sweepResult("ollama", 4, 240.7, 180.3, 420.9, 16.5, 16.4, 30.2, 0)},
			{X: 16, R: sweepResult("ollama", 16, 450.3, 800.6, 2900.4, 34.1, 33.9, 70.5, 1)},
			{X: 64, R: o64},
		}},
	}
}

func TestMarkdownGolden(t *testing.T) {
	series := fixtureSweep()
	md := Markdown("vllm vs ollama: concurrency sweep", series, nil)
	reportGolden(t, "report.md", md)
	if !bytes.Equal(md, Markdown("vllm vs ollama: concurrency sweep", series, nil)) {
		t.Error("Markdown is not deterministic")
	}

	// Every <img> reference is a chart Charts renders, and every chart is referenced and listed.
	refs := regexp.MustCompile(`<img src="([^"]+)"`).FindAllStringSubmatch(string(md), -1)
	var srcs []string
	for _, m := range refs {
		srcs = append(srcs, m[1])
	}
	var names []string
	for _, f := range Charts(series) {
		names = append(names, f.Name)
		if !bytes.Contains(md, []byte("- `"+f.Name+"`")) {
			t.Errorf("%s is not listed", f.Name)
		}
	}
	want := []string{"throughput.svg", "ttft.svg", "cdf-ttft.svg", "cdf-itl.svg", "cdf-e2el.svg"}
	if !slices.Equal(srcs, want) || !slices.Equal(names, want) {
		t.Errorf("img refs %v, charts %v, want %v", srcs, names, want)
	}

	// Without formulas, vLLM's definitions are used; the results' own Formulas come next;
	// explicit formulas win.
	for k := range Formulas {
		if !bytes.Contains(md, []byte("| `"+k+"` |")) {
			t.Errorf("default formula %s missing", k)
		}
	}
	series[1].Points[2].R.Formulas = map[string]string{"ttft": "TTFT: first chunk with choices minus send time.", "itl": "ITL: gaps | per chunk."}
	md = Markdown("t", series, nil)
	if !bytes.Contains(md, []byte("| `ttft` | TTFT: first chunk with choices minus send time. |\n| `itl` | ITL: gaps \\| per chunk. |\n\n")) {
		t.Errorf("the results' formulas are not used:\n%s", md)
	}
	md = Markdown("t", series, map[string]string{"e2el": "E2EL: last token minus send."})
	if !bytes.Contains(md, []byte("| `e2el` | E2EL: last token minus send. |")) || bytes.Contains(md, []byte("| `ttft` |")) {
		t.Errorf("explicit formulas not used:\n%s", md)
	}
}

func TestMarkdownCell(t *testing.T) {
	for in, want := range map[string]string{
		"pNN_<metric>_ms":         "pNN_&lt;metric&gt;_ms",
		"`pNN_<metric>_ms` <b>":   "`pNN_<metric>_ms` &lt;b&gt;",
		"a | b\nc":                `a \| b c`,
		"x `<y>` z <w> `open <v>": "x `<y>` z &lt;w&gt; `open &lt;v&gt;",
	} {
		if got := rptCell(in); got != want {
			t.Errorf("rptCell(%q) = %q, want %q", in, got, want)
		}
	}
	if got := rptCode("a`b|c"); got != "``a`b\\|c``" {
		t.Errorf("rptCode: %q", got)
	}
}

func TestMarkdownEdgeCases(t *testing.T) {
	md := string(Markdown("", nil, nil))
	if !strings.Contains(md, "# Serving benchmark\n") || !strings.Contains(md, "No results.") || strings.Contains(md, "<img") {
		t.Errorf("empty report:\n%s", md)
	}

	// A rate sweep ending at inf, with goodput, a pipe in the label, a tail percentile other
	// than p99, and a send lag that warns.
	r1 := sweepResult("gw", 2, 250, 30, 50, 9, 9, 12, 0)
	r2 := sweepResult("gw", 0, 900, 300, 700, 20, 20, 40, 0)
	for _, r := range []*Result{r1, r2} {
		for _, m := range []string{"ttft", "itl"} {
			r.Metrics["p90_"+m+"_ms"] = r.Metrics["p99_"+m+"_ms"] * 0.8
			delete(r.Metrics, "p99_"+m+"_ms")
		}
	}
	r1.RequestGoodput = ptr(1.5)
	r2.SendLagP99Ms = 25
	s := []Series{{Label: "gateway | direct", X: "request rate (req/s)", Points: []Point{{X: math.Inf(1), R: r2}, {X: 2, R: r1}, {X: 3}}}}
	md = string(Markdown("rates", s, nil))
	for _, want := range []string{
		"## gateway \\| direct\n",
		"| request rate (req/s) | req/s | goodput req/s | output tok/s | mean TTFT (ms) | p90 TTFT (ms) | mean TPOT (ms) | mean ITL (ms) | p90 ITL (ms) | failed |",
		"| 2 | 1.95 | 1.50 | 250.00 | 30.00 | 40.00 |",
		"| inf | 7.03 | n/a | 900.00 |",
		"**Warning:**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if strings.Index(md, "| 2 |") > strings.Index(md, "| inf |") {
		t.Error("inf is not the last row")
	}
	svg := ChartThroughput(s)
	parseSVG(t, svg)
	if !bytes.Contains(svg, []byte("X = inf")) {
		t.Error("throughput chart does not note the inf point")
	}
	if !bytes.Contains(ChartTTFT(s), []byte(">P90 (solid)<")) {
		t.Error("TTFT chart does not fall back to p90")
	}
}

// parseSVG checks that b is well-formed XML with one <svg> root of 720×420 and returns the
// character data of its <text> elements.
func parseSVG(t *testing.T, b []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var texts []string
	depth, roots := 0, 0
	inText := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				attrs := map[string]string{}
				for _, a := range tok.Attr {
					attrs[a.Name.Local] = a.Value
				}
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" ||
					attrs["width"] != "720" || attrs["height"] != "420" || attrs["viewBox"] != "0 0 720 420" {
					t.Errorf("root %v %v", tok.Name, attrs)
				}
			}
			depth++
			if tok.Name.Local == "text" {
				inText = true
				texts = append(texts, "")
			}
		case xml.EndElement:
			depth--
			if tok.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				texts[len(texts)-1] += string(tok)
			}
		}
	}
	if roots != 1 || depth != 0 {
		t.Errorf("%d roots, depth %d at the end", roots, depth)
	}
	return texts
}

func TestChartsGolden(t *testing.T) {
	series := fixtureSweep()
	charts := map[string][]byte{}
	for _, f := range Charts(series) {
		charts[f.Name] = f.SVG
	}
	if !bytes.Equal(charts["throughput.svg"], ChartThroughput(series)) || !bytes.Equal(charts["ttft.svg"], ChartTTFT(series)) {
		t.Error("Charts differs from ChartThroughput, ChartTTFT")
	}
	// ChartCDF orders (and colours) by label; Charts by series, as the other charts.
	cdf, labels := rptCDFResults(series)
	if !slices.Equal(labels, []string{"vllm @ 64", "ollama @ 64"}) {
		t.Errorf("CDF labels %v", labels)
	}
	if cdfByLabel := ChartCDF(cdf, "ttft"); bytes.Equal(cdfByLabel, charts["cdf-ttft.svg"]) {
		t.Error("Charts does not colour the CDF lines in series order")
	} else {
		reportGolden(t, "cdf-ttft-by-label.svg", cdfByLabel)
	}
	for _, name := range []string{"throughput.svg", "ttft.svg", "cdf-ttft.svg", "cdf-itl.svg", "cdf-e2el.svg"} {
		t.Run(name, func(t *testing.T) {
			svg := charts[name]
			texts := parseSVG(t, svg)
			if !slices.Contains(texts, "vllm") && !slices.Contains(texts, "vllm @ 64") {
				t.Errorf("legend lacks vllm: %q", texts)
			}
			reportGolden(t, name, svg)
		})
	}
	// Determinism: the map of results is iterated in label order.
	first := ChartCDF(cdf, "itl")
	for i := 0; i < 5; i++ {
		again, _ := rptCDFResults(fixtureSweep())
		if !bytes.Equal(ChartCDF(again, "itl"), first) {
			t.Fatal("ChartCDF is not deterministic")
		}
	}
}

func TestChartDetails(t *testing.T) {
	// Labels are escaped; the text reads back unchanged.
	nasty := `a<b & "c" 'd'>`
	s := []Series{{Label: nasty, X: "x <&>", Points: []Point{{X: 1, R: &Result{OutputThroughput: 5}}}}}
	for _, svg := range [][]byte{ChartThroughput(s), ChartTTFT(s)} {
		texts := parseSVG(t, svg)
		if !slices.Contains(texts, nasty) || !slices.Contains(texts, "x <&>") {
			t.Errorf("escaped labels do not read back: %q", texts)
		}
	}
	texts := parseSVG(t, ChartCDF(map[string]*Result{nasty: {TTFTs: []float64{0.1}}}, "ttft"))
	if !slices.Contains(texts, nasty) {
		t.Errorf("CDF legend: %q", texts)
	}

	// Empty inputs still give a well-formed chart that says so.
	for _, svg := range [][]byte{ChartThroughput(nil), ChartTTFT(nil), ChartCDF(nil, "itl"), ChartCDF(map[string]*Result{"x": {}}, "bogus")} {
		if texts := parseSVG(t, svg); !slices.Contains(texts, "no data") {
			t.Errorf("empty chart lacks 'no data': %q", texts)
		}
	}
	if Charts(nil) != nil {
		t.Error("Charts(nil) is not empty")
	}

	// Failed requests are left out of CDFs: vLLM-style errors (one per request) and
	// citadel-style (only the failed ones; output_lens 0).
	vllmStyle := &Result{Failed: 1, TTFTs: []float64{0.1, 0, 0.3}, Errors: []string{"", "boom", ""}, OutputLens: []int{5, 0, 5}}
	citadel := &Result{Failed: 1, TTFTs: []float64{0.1, 0, 0.3}, Errors: []string{"boom"}, OutputLens: []int{5, 0, 5}}
	for _, r := range []*Result{vllmStyle, citadel} {
		if got := svgCDFValues(r, "ttft"); !slices.Equal(got, []float64{100, 300}) {
			t.Errorf("ttft CDF values %v", got)
		}
	}
	tp := &Result{TTFTs: []float64{0.1, 0.1}, Latencies: []float64{0.5, 0.1}, OutputLens: []int{5, 1}}
	if got := svgCDFValues(tp, "tpot"); len(got) != 1 || math.Abs(got[0]-100) > 1e-9 {
		t.Errorf("tpot CDF values %v", got)
	}

	// Large samples are drawn with a bounded number of steps.
	big := &Result{}
	for i := 0; i < 100000; i++ {
		big.ITLs = append(big.ITLs, []float64{float64(i%1000) / 1e5})
	}
	if pts := svgCDFPoints(svgCDFValues(big, "itl")); len(pts) != 2*svgCDFMaxSteps+1 || pts[len(pts)-1].y != 1 {
		t.Errorf("%d CDF points, last %v", len(pts), pts[len(pts)-1])
	}
}

func TestNiceAxis(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{0, 1036.8, []float64{0, 500, 1000, 1500}},
		{0, 64, []float64{0, 20, 40, 60, 80}},
		{0, 0.97, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0, 0, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0, 100, []float64{0, 20, 40, 60, 80, 100}},
		{0, 3, []float64{0, 1, 2, 3}},
		{0, 0.0031, []float64{0, 0.001, 0.002, 0.003, 0.004}},
		{-3, 7, []float64{-4, -2, 0, 2, 4, 6, 8}},
	} {
		if got := svgNiceAxis(tc.lo, tc.hi).ticks(); !slices.Equal(got, tc.want) {
			t.Errorf("axis(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
	for raw, want := range map[float64]float64{0.7: 1, 1: 1, 1.2: 2, 2: 2, 2.1: 5, 5: 5, 7: 10, 0.03: 0.05, 250: 500, 0: 1} {
		if got := svgNiceStep(raw); math.Abs(got-want) > 1e-12 {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
	if got := svgTick(0.30000000000000004, 0.1); got != "0.3" {
		t.Errorf("tick %q", got)
	}
}

func TestCompareVerdict(t *testing.T) {
	for _, tc := range []struct {
		metric  string
		a, b    float64
		ratio   float64
		verdict string
	}{
		// Throughputs: higher is better.
		{"output_throughput", 100, 106, 1.06, VerdictBetter},
		{"output_throughput", 100, 105, 1.05, VerdictSame},
		{"output_throughput", 100, 95, 0.95, VerdictSame},
		{"output_throughput", 100, 94, 0.94, VerdictWorse},
		{"request_throughput", 10, 20, 2, VerdictBetter},
		{"request_goodput", 0, 3, math.Inf(1), VerdictBetter},
		{"max_output_tokens_per_s", 0, 0, 1, VerdictSame},
		// Latencies: lower is better.
		{"p99_ttft_ms", 100, 94, 0.94, VerdictBetter},
		{"p99_ttft_ms", 100, 95, 0.95, VerdictSame},
		{"p99_ttft_ms", 100, 104.9, 1.049, VerdictSame},
		{"p99_ttft_ms", 100, 105, 1.05, VerdictSame},
		{"p99_ttft_ms", 100, 106, 1.06, VerdictWorse},
		{"mean_itl_ms", 20, 40, 2, VerdictWorse},
		{"p99.9_e2el_ms", 0, 0, 1, VerdictSame},
		{"std_tpot_ms", 0, 1, math.Inf(1), VerdictWorse},
		// Failed requests: lower is better.
		{"failed", 0, 3, math.Inf(1), VerdictWorse},
		{"failed", 2, 0, 0, VerdictBetter},
		{"failed", 0, 0, 1, VerdictSame},
	} {
		ratio, verdict := CompareVerdict(tc.metric, tc.a, tc.b)
		if verdict != tc.verdict || !(ratio == tc.ratio || math.Abs(ratio-tc.ratio) < 1e-9) {
			t.Errorf("%s %v→%v: %v %s, want %v %s", tc.metric, tc.a, tc.b, ratio, verdict, tc.ratio, tc.verdict)
		}
	}
	if ratio, verdict := CompareVerdict("p99_ttft_ms", math.NaN(), 1); !math.IsNaN(ratio) || verdict != VerdictNA {
		t.Errorf("NaN: %v %s", ratio, verdict)
	}
}

// fixtureCompare is a direct run (A) and the same load through a gateway (B).
func fixtureCompare() (a, b *Result) {
	a = fixtureFull()
	a.Label = "direct"
	b = fixtureFull()
	b.Label = "gateway"
	b.RequestThroughput = 7.5     // 0.945: worse
	b.OutputThroughput = 1036.8   // same
	b.TotalTokenThroughput = 5300 // 1.022: same
	b.MaxOutputTokensPerS = 1400  // 1.094: better
	b.Failed = 2                  // same
	b.RequestGoodput = nil        // not compared
	b.Metrics["mean_ttft_ms"] = 131.0
	b.Metrics["p99_ttft_ms"] = 240.0 // 0.956: same
	b.Metrics["median_itl_ms"] = 18.0
	b.Metrics["p99_itl_ms"] = 60.0
	b.Metrics["mean_e2el_ms"] = 2600
	delete(b.Metrics, "p99.9_e2el_ms")   // only in A: not compared
	b.Metrics["p95_tpot_ms"] = 30        // only in B: not compared
	a.Metrics["mean_probe_e2el_ms"] = 10 // another metric, in both: compared after the known ones
	b.Metrics["mean_probe_e2el_ms"] = 12
	return a, b
}

func TestCompare(t *testing.T) {
	a, b := fixtureCompare()
	rows := Compare(a, b)
	var got []string
	for _, r := range rows {
		got = append(got, r.Metric+"="+r.Verdict)
	}
	want := []string{
		"request_throughput=worse", "output_throughput=same", "total_token_throughput=same",
		"max_output_tokens_per_s=better", "failed=same",
		"mean_ttft_ms=worse", "median_ttft_ms=same", "p50_ttft_ms=same", "p90_ttft_ms=same", "p99_ttft_ms=same", "p99.9_ttft_ms=same", "std_ttft_ms=same",
		"mean_tpot_ms=same", "median_tpot_ms=same", "p50_tpot_ms=same", "p90_tpot_ms=same", "p99_tpot_ms=same", "p99.9_tpot_ms=same", "std_tpot_ms=same",
		"mean_itl_ms=same", "median_itl_ms=better", "p50_itl_ms=same", "p90_itl_ms=same", "p99_itl_ms=worse", "p99.9_itl_ms=same", "std_itl_ms=same",
		"mean_e2el_ms=better", "median_e2el_ms=same", "p50_e2el_ms=same", "p90_e2el_ms=same", "p99_e2el_ms=same", "std_e2el_ms=same",
		"mean_probe_e2el_ms=worse",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}
	for _, r := range rows {
		if r.Metric == "p99_itl_ms" && (r.A != 44.445 || r.B != 60 || math.Abs(r.Ratio-60/44.445) > 1e-12) {
			t.Errorf("p99_itl_ms row %+v", r)
		}
	}
	// Goodput is compared when both runs set it.
	b.RequestGoodput = ptr(7.125)
	if rows := Compare(a, b); rows[1].Metric != "request_goodput" || rows[1].Verdict != VerdictSame {
		t.Errorf("goodput row %+v", rows[1])
	}
	if Compare(nil, b) != nil || Compare(a, nil) != nil {
		t.Error("nil result compared")
	}
}

func TestCompareMarkdownGolden(t *testing.T) {
	a, b := fixtureCompare()
	md := CompareMarkdown("direct", "gateway", Compare(a, b))
	reportGolden(t, "compare.md", md)
	for _, want := range []string{
		"gateway against direct: better on 3, worse on 4, the same on 26 of 33 metrics.",
		"| metric | direct | gateway | gateway − direct | gateway / direct | verdict |",
		"| `p99_itl_ms` | 44.45 | 60.00 | +15.55 | 1.350 | worse |",
		"| `failed` | 2 | 2 | +0 | 1.000 | same |",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	md = CompareMarkdown("a|b", "", nil)
	if !bytes.Contains(md, []byte("# B vs a\\|b")) || !bytes.Contains(md, []byte("No metrics in common.")) {
		t.Errorf("empty compare:\n%s", md)
	}
}

package bench

// report.go: the console block (vllm bench serve's "Serving Benchmark Result" format) and
// the Markdown sweep report (tables, chart references, metric definitions).
// Charts are in svg.go, comparisons in compare.go.

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Series is a sweep: results of one target at several request rates or concurrencies.
type Series struct {
	Label  string
	X      string // axis name: "concurrency" or "request rate (req/s)"
	Points []Point
}

// Point is one run of a sweep: the swept value and its result.
type Point struct {
	X float64 // +Inf for an unlimited request rate
	R *Result
}

// rptMetricBlock is one of vLLM's per-metric console blocks.
type rptMetricBlock struct {
	key    string // ttft: the <metric> in mean_<metric>_ms
	name   string // TTFT: the name in "Mean TTFT (ms):"
	header string // the centred block header
}

// rptBlocks are vLLM's blocks, in its print order (serve.py process_one_metric calls).
var rptBlocks = []rptMetricBlock{
	{"ttft", "TTFT", "Time to First Token"},
	{"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
	{"itl", "ITL", "Inter-token Latency"},
	{"e2el", "E2EL", "End-to-end Latency"},
	{"client_queue_time", "Client Queue Time", "Client-side Queueing"},
	{"e2el_including_client_queue", "E2EL incl. Client Queue", "Queue-inclusive End-to-end Latency"},
}

// Console writes r as vllm bench serve prints it: the "Serving Benchmark Result" block with
// Python's "{:<40} {:<10}" / "{:<40} {:<10.2f}" columns (values are left-aligned and padded
// to 10, so lines keep vLLM's trailing spaces), then one block per latency metric present in
// r.Metrics (mean, median and every pNN key, percentiles in numeric order; std is saved but
// not printed, as in vLLM), then a closing rule of 50 "=".
//
// As in vLLM, "Maximum request concurrency" is printed only with a concurrency limit
// (MaxConcurrency > 0), "Request rate configured (RPS)" only for a finite rate (a zero rate,
// i.e. unset, is not printed either) and "Request goodput (req/s)" only with --goodput
// (RequestGoodput != nil).
func Console(w io.Writer, r *Result) {
	if r == nil {
		return
	}
	var b strings.Builder
	b.WriteString(rptCenter(" Serving Benchmark Result ", '=', 50) + "\n")
	rptInt(&b, "Successful requests:", r.Completed)
	rptInt(&b, "Failed requests:", r.Failed)
	if r.MaxConcurrency > 0 {
		rptInt(&b, "Maximum request concurrency:", r.MaxConcurrency)
	}
	if !math.IsInf(r.RequestRate, 0) && !math.IsNaN(r.RequestRate) && r.RequestRate > 0 {
		rptFloat(&b, "Request rate configured (RPS):", r.RequestRate)
	}
	rptFloat(&b, "Benchmark duration (s):", r.Duration)
	rptInt(&b, "Total input tokens:", r.TotalInputTokens)
	rptInt(&b, "Total generated tokens:", r.TotalOutputTokens)
	rptFloat(&b, "Request throughput (req/s):", r.RequestThroughput)
	if r.RequestGoodput != nil {
		rptFloat(&b, "Request goodput (req/s):", *r.RequestGoodput)
	}
	rptFloat(&b, "Output token throughput (tok/s):", r.OutputThroughput)
	rptFloat(&b, "Peak output token throughput (tok/s):", r.MaxOutputTokensPerS)
	// vLLM formats this integer with {:<10.2f}.
	rptFloat(&b, "Peak concurrent requests:", float64(r.MaxConcurrentReqs))
	rptFloat(&b, "Total token throughput (tok/s):", r.TotalTokenThroughput)
	for _, m := range rptBlocks {
		mean, hasMean := r.Metrics["mean_"+m.key+"_ms"]
		median, hasMedian := r.Metrics["median_"+m.key+"_ms"]
		pcts := rptPercentiles(r.Metrics, m.key)
		if !hasMean && !hasMedian && len(pcts) == 0 {
			continue
		}
		b.WriteString(rptCenter(m.header, '-', 50) + "\n")
		if hasMean {
			rptFloat(&b, "Mean "+m.name+" (ms):", mean)
		}
		if hasMedian {
			rptFloat(&b, "Median "+m.name+" (ms):", median)
		}
		for _, p := range pcts {
			rptFloat(&b, "P"+p.word+" "+m.name+" (ms):", p.value)
		}
	}
	b.WriteString(strings.Repeat("=", 50) + "\n")
	io.WriteString(w, b.String())
}

// rptCenter is Python's "{s:{c}^{n}}": s centred in n with fill c, the odd fill on the right.
func rptCenter(s string, fill rune, n int) string {
	l := len([]rune(s))
	if l >= n {
		return s
	}
	left := (n - l) / 2
	f := string(fill)
	return strings.Repeat(f, left) + s + strings.Repeat(f, n-l-left)
}

// rptInt is "{:<40} {:<10}".format(label, int).
func rptInt(b *strings.Builder, label string, v int) {
	fmt.Fprintf(b, "%-40s %-10d\n", label, v)
}

// rptFloat is "{:<40} {:<10.2f}".format(label, float).
func rptFloat(b *strings.Builder, label string, v float64) {
	fmt.Fprintf(b, "%-40s %-10s\n", label, rptPy2f(v))
}

// rptPy2f is Python's format(v, ".2f"): like Go's %.2f (both round the exact binary value
// half-to-even), with Python's spellings of the non-finite values.
func rptPy2f(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// rptPercentile is one pNN_<metric>_ms entry.
type rptPercentile struct {
	word  string // "99", "99.9": as in the key
	p     float64
	value float64
}

// rptPercentiles returns the pNN_<metric>_ms entries of m for metric, in numeric order.
func rptPercentiles(m map[string]float64, metric string) []rptPercentile {
	suffix := "_" + metric + "_ms"
	var out []rptPercentile
	for k, v := range m {
		if !strings.HasPrefix(k, "p") || !strings.HasSuffix(k, suffix) || len(k) <= 1+len(suffix) {
			continue
		}
		word := k[1 : len(k)-len(suffix)]
		p, err := strconv.ParseFloat(word, 64)
		if err != nil || p < 0 || p > 100 {
			continue
		}
		out = append(out, rptPercentile{word: word, p: p, value: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].p != out[j].p {
			return out[i].p < out[j].p
		}
		return out[i].word < out[j].word
	})
	return out
}

// rptTailKey picks the tail percentile key of metric to chart and tabulate: p99 (vLLM's
// default) when any result has it, else the highest percentile any result has. It returns
// the key and its display name ("P99"), or "" when no result has a percentile of metric.
func rptTailKey(results []*Result, metric string) (key, name string) {
	best := rptPercentile{p: -1}
	for _, r := range results {
		if r == nil {
			continue
		}
		if _, ok := r.Metrics["p99_"+metric+"_ms"]; ok {
			return "p99_" + metric + "_ms", "P99"
		}
		for _, p := range rptPercentiles(r.Metrics, metric) {
			if p.p > best.p || (p.p == best.p && p.word < best.word) {
				best = p
			}
		}
	}
	if best.p < 0 {
		return "", ""
	}
	return "p" + best.word + "_" + metric + "_ms", "P" + best.word
}

// rptMetric returns r.Metrics[key], NaN when r or the key is missing.
func rptMetric(r *Result, key string) float64 {
	if r == nil {
		return math.NaN()
	}
	if v, ok := r.Metrics[key]; ok {
		return v
	}
	return math.NaN()
}

// rptNum formats a table number: two decimals, "n/a" when missing (NaN), "inf" for +Inf.
func rptNum(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return rptPy2f(v)
}

// rptX formats a swept value: shortest decimal, "inf" for an unlimited request rate.
func rptX(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// rptLine makes s one line with its pipes escaped, safe inside a Markdown table cell.
func rptLine(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "|", `\|`).Replace(s)
	return strings.TrimSpace(s)
}

// rptCell is rptLine with < and > escaped outside `code` spans, so that text such as
// pNN_<metric>_ms is not taken for an HTML tag.
func rptCell(s string) string {
	parts := strings.Split(rptLine(s), "`")
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = esc.Replace(parts[i])
	}
	if n := len(parts); n%2 == 0 { // an unmatched backtick is literal: the tail is text
		parts[n-1] = esc.Replace(parts[n-1])
	}
	return strings.Join(parts, "`")
}

// rptCode wraps s as inline code that cannot be broken by backticks in s.
func rptCode(s string) string {
	s = rptLine(s)
	if s == "" {
		return "(none)"
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// rptSorted returns the points of s with a result, in increasing X (+Inf last), stable.
func rptSorted(s Series) []Point {
	var pts []Point
	for _, p := range s.Points {
		if p.R != nil {
			pts = append(pts, p)
		}
	}
	sort.SliceStable(pts, func(i, j int) bool {
		a, b := pts[i].X, pts[j].X
		if math.IsNaN(a) || math.IsNaN(b) {
			return !math.IsNaN(a) && math.IsNaN(b)
		}
		return a < b
	})
	return pts
}

// rptSendLagWarnMs is the send lag above which the report warns that the load generator fell
// behind its own schedule (it then under-loads the target; cf. GuideLLM issue #470).
const rptSendLagWarnMs = 10

// Chart file names, as Markdown references them and Charts returns them.
const (
	ChartFileThroughput = "throughput.svg"
	ChartFileTTFT       = "ttft.svg"
	ChartFileCDFPrefix  = "cdf-" // + metric + ".svg": cdf-ttft.svg, cdf-itl.svg, cdf-e2el.svg
)

// ChartFile is one SVG chart of a report, to be written next to the Markdown file.
type ChartFile struct {
	Name string // file name, e.g. "throughput.svg"
	Alt  string // what the chart shows, for alt text
	SVG  []byte
}

// rptCDFMetrics are the per-request distributions a report charts, in order.
var rptCDFMetrics = []string{"ttft", "itl", "e2el"}

// rptCDFResults picks, per series, the heaviest point (highest X) for the latency CDFs,
// labelled "<series> @ <X>"; labels lists them in series order.
func rptCDFResults(series []Series) (out map[string]*Result, labels []string) {
	out = map[string]*Result{}
	for i, s := range series {
		pts := rptSorted(s)
		if len(pts) == 0 {
			continue
		}
		last := pts[len(pts)-1]
		label := s.Label
		if label == "" {
			label = fmt.Sprintf("series %d", i+1)
		}
		label += " @ " + rptX(last.X)
		for out[label] != nil {
			label += "'"
		}
		out[label] = last.R
		labels = append(labels, label)
	}
	return out, labels
}

// rptChartPlan lists the charts of a report (names and alt texts, without rendering).
func rptChartPlan(series []Series, prefix string) (files []ChartFile, cdf map[string]*Result, cdfLabels []string) {
	found := false
	for _, s := range series {
		if len(rptSorted(s)) > 0 {
			found = true
		}
	}
	if !found {
		return nil, nil, nil
	}
	x := svgXLabel(series)
	files = append(files,
		ChartFile{Name: prefix + ChartFileThroughput, Alt: "Output token throughput (tok/s) vs " + x},
		ChartFile{Name: prefix + ChartFileTTFT, Alt: "TTFT (ms), tail percentile and mean, vs " + x})
	cdf, cdfLabels = rptCDFResults(series)
	for _, m := range rptCDFMetrics {
		if len(svgCDFSamples(cdf, m)) > 0 {
			files = append(files, ChartFile{
				Name: prefix + ChartFileCDFPrefix + m + ".svg",
				Alt:  "CDF of " + svgCDFName(m) + " per request, heaviest point of each series",
			})
		}
	}
	return files, cdf, cdfLabels
}

// Charts renders every chart that Markdown references for series: throughput.svg and
// ttft.svg (when any point has a result), and cdf-ttft.svg, cdf-itl.svg, cdf-e2el.svg
// (when the heaviest point of some series kept its per-request arrays; one line per series,
// labelled "<series> @ <X>", coloured as in the other charts).
func Charts(series []Series) []ChartFile { return charts(series, "") }

// charts renders the charts with prefix before each file name.
func charts(series []Series, prefix string) []ChartFile {
	files, cdf, labels := rptChartPlan(series, prefix)
	for i := range files {
		switch name := strings.TrimPrefix(files[i].Name, prefix); name {
		case ChartFileThroughput:
			files[i].SVG = ChartThroughput(series)
		case ChartFileTTFT:
			files[i].SVG = ChartTTFT(series)
		default:
			m := strings.TrimSuffix(strings.TrimPrefix(name, ChartFileCDFPrefix), ".svg")
			files[i].SVG = svgChartCDF(labels, cdf, m)
		}
	}
	return files
}

// rptCrosswalk is the naming cross-walk between tools, from their metric definitions
// (https://github.com/vllm-project/guidellm/blob/main/docs/guides/metrics.md,
// https://github.com/ai-dynamo/aiperf/blob/main/docs/metrics-reference.md, ray-project/llmperf's
// token_benchmark_ray.py).
const rptCrosswalk = `| quantity | vLLM bench (this report) | GuideLLM | AIPerf / genai-perf | llmperf |
|---|---|---|---|---|
| (E2EL − TTFT) / (output tokens − 1), per request | TPOT | ITL | ITL | — |
| gaps between stream chunks | ITL | — | ICL | list incl. TTFT |
| E2EL / output tokens, per request | — | TPOT (incl. 1st token) | 1 / per-request output throughput | inter_token_latency |
`

// Markdown renders a sweep report: a summary, per series its configuration and a table (X,
// req/s, output tok/s, mean and tail TTFT, mean TPOT, mean and tail ITL, failed; goodput when
// set), the charts as <img> references with the list of SVG file names (Charts renders
// them), and the metric definitions. formulas maps a metric name to its definition; when it
// is empty the results' own Formulas are used, else vllm bench serve's definitions.
func Markdown(title string, series []Series, formulas map[string]string) []byte {
	return markdown(title, series, formulas, "")
}

// markdown is Markdown with the charts' file names prefixed.
func markdown(title string, series []Series, formulas map[string]string, prefix string) []byte {
	var b bytes.Buffer
	title = rptCell(title)
	if title == "" {
		title = "Serving benchmark"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	b.WriteString("Metrics follow `vllm bench serve`'s definitions and JSON keys, measured on the client; " +
		"see [Metric definitions](#metric-definitions). Names differ between tools: vLLM's TPOT is GuideLLM's ITL.\n\n")

	if len(series) == 0 {
		b.WriteString("No results.\n\n")
	} else {
		rptSummary(&b, series)
		for i, s := range series {
			rptSeries(&b, i, s)
		}
	}

	files, _, _ := rptChartPlan(series, prefix)
	if len(files) > 0 {
		b.WriteString("## Charts\n\n")
		for _, f := range files {
			fmt.Fprintf(&b, "<img src=\"%s\" alt=\"%s\" width=\"%d\" height=\"%d\">\n\n",
				svgEsc(f.Name), svgEsc(f.Alt), svgW, svgH)
		}
		b.WriteString("Chart files (SVG, next to this report):\n\n")
		for _, f := range files {
			fmt.Fprintf(&b, "- `%s`: %s\n", f.Name, f.Alt)
		}
		b.WriteString("\n")
	}

	rptFormulas(&b, series, formulas)
	return b.Bytes()
}

// rptSummary writes one line per series: its peak output throughput and request throughput.
func rptSummary(b *bytes.Buffer, series []Series) {
	b.WriteString("## Summary\n\n")
	b.WriteString("| series | model | backend | points | peak output tok/s (at X) | peak req/s (at X) | failed |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|\n")
	for i, s := range series {
		pts := rptSorted(s)
		model, backend := rptModelBackend(pts)
		peakTok, peakReq := "n/a", "n/a"
		bestTok, bestReq := -1, -1
		failed := 0
		for j, p := range pts {
			failed += p.R.Failed
			if bestTok < 0 || p.R.OutputThroughput > pts[bestTok].R.OutputThroughput {
				bestTok = j
			}
			if bestReq < 0 || p.R.RequestThroughput > pts[bestReq].R.RequestThroughput {
				bestReq = j
			}
		}
		if bestTok >= 0 {
			peakTok = rptNum(pts[bestTok].R.OutputThroughput) + " (" + rptX(pts[bestTok].X) + ")"
			peakReq = rptNum(pts[bestReq].R.RequestThroughput) + " (" + rptX(pts[bestReq].X) + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %s | %s | %d |\n",
			rptCell(rptSeriesLabel(i, s)), rptCell(model), rptCell(backend), len(pts), peakTok, peakReq, failed)
	}
	b.WriteString("\n")
}

// rptSeriesLabel is the series label, or "series N" when it has none.
func rptSeriesLabel(i int, s Series) string {
	if strings.TrimSpace(s.Label) == "" {
		return fmt.Sprintf("series %d", i+1)
	}
	return s.Label
}

// rptModelBackend returns the points' model and backend, joined when they differ.
func rptModelBackend(pts []Point) (model, backend string) {
	var models, backends []string
	for _, p := range pts {
		if p.R.Model != "" && !slices.Contains(models, p.R.Model) {
			models = append(models, p.R.Model)
		}
		if p.R.Backend != "" && !slices.Contains(backends, p.R.Backend) {
			backends = append(backends, p.R.Backend)
		}
	}
	return strings.Join(models, ", "), strings.Join(backends, ", ")
}

// rptSeries writes one series: its configuration line and its table.
func rptSeries(b *bytes.Buffer, i int, s Series) {
	fmt.Fprintf(b, "## %s\n\n", rptCell(rptSeriesLabel(i, s)))
	pts := rptSorted(s)
	if len(pts) == 0 {
		b.WriteString("No results.\n\n")
		return
	}
	model, backend := rptModelBackend(pts)
	xName := rptCell(s.X)
	if xName == "" {
		xName = "X"
	}
	fmt.Fprintf(b, "Model %s, backend %s, swept: %s.\n\n", rptCode(model), rptCode(backend), xName)

	results := make([]*Result, len(pts))
	goodput := false
	maxLag := 0.0
	for j, p := range pts {
		results[j] = p.R
		if p.R.RequestGoodput != nil {
			goodput = true
		}
		if p.R.SendLagP99Ms > maxLag {
			maxLag = p.R.SendLagP99Ms
		}
	}
	ttftKey, ttftName := rptTailKey(results, "ttft")
	itlKey, itlName := rptTailKey(results, "itl")
	if ttftName == "" {
		ttftName = "P99"
	}
	if itlName == "" {
		itlName = "P99"
	}

	fmt.Fprintf(b, "| %s | req/s |", xName)
	if goodput {
		b.WriteString(" goodput req/s |")
	}
	fmt.Fprintf(b, " output tok/s | mean TTFT (ms) | %s TTFT (ms) | mean TPOT (ms) | mean ITL (ms) | %s ITL (ms) | failed |\n",
		strings.ToLower(ttftName), strings.ToLower(itlName))
	b.WriteString("|---:|---:|")
	if goodput {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range pts {
		r := p.R
		fmt.Fprintf(b, "| %s | %s |", rptX(p.X), rptNum(r.RequestThroughput))
		if goodput {
			g := math.NaN()
			if r.RequestGoodput != nil {
				g = *r.RequestGoodput
			}
			fmt.Fprintf(b, " %s |", rptNum(g))
		}
		fmt.Fprintf(b, " %s | %s | %s | %s | %s | %s | %s |\n",
			rptNum(r.OutputThroughput),
			rptNum(rptMetric(r, "mean_ttft_ms")), rptNum(rptMetricKey(r, ttftKey)),
			rptNum(rptMetric(r, "mean_tpot_ms")),
			rptNum(rptMetric(r, "mean_itl_ms")), rptNum(rptMetricKey(r, itlKey)),
			rptFailed(r))
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "Load generator send lag, p99 (worst point): %s ms.", rptNum(maxLag))
	if maxLag > rptSendLagWarnMs {
		fmt.Fprintf(b, " **Warning:** above %d ms the client fell behind its schedule, so the target was offered less load than configured.", rptSendLagWarnMs)
	}
	b.WriteString("\n\n")
}

// rptMetricKey is rptMetric with an empty key meaning missing.
func rptMetricKey(r *Result, key string) float64 {
	if key == "" {
		return math.NaN()
	}
	return rptMetric(r, key)
}

// rptFailed is "N" or "N of M" when some requests failed.
func rptFailed(r *Result) string {
	if r.Failed == 0 {
		return "0"
	}
	return fmt.Sprintf("%d of %d", r.Failed, r.Failed+r.Completed)
}

// rptFormulas writes the metric definitions and the naming cross-walk.
func rptFormulas(b *bytes.Buffer, series []Series, formulas map[string]string) {
	src := formulas
	if len(src) == 0 {
		for _, s := range series {
			for _, p := range s.Points {
				if p.R != nil && len(p.R.Formulas) > 0 && len(src) == 0 {
					src = p.R.Formulas
				}
			}
		}
	}
	if len(src) == 0 {
		src = Formulas
	}
	var keys, rest []string
	for _, k := range FormulaOrder {
		if _, ok := src[k]; ok {
			keys = append(keys, k)
		}
	}
	for k := range src {
		if !slices.Contains(FormulaOrder, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	b.WriteString("## Metric definitions\n\n")
	b.WriteString("| metric | definition |\n|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(b, "| %s | %s |\n", rptCode(k), rptCell(src[k]))
	}
	b.WriteString("\nThe same quantity has different names in different tools:\n\n")
	b.WriteString(rptCrosswalk)
}

package bench

// compare.go: A/B comparison of two results (e.g. two engines, or direct vs through the
// gateway for gateway overhead), metric by metric.

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Row is one compared metric: A's and B's values, Ratio = B/A, and Verdict for B against A:
// "better", "worse" or "same" (within ±CompareTolerance); "n/a" when a value is NaN.
type Row struct {
	Metric  string // vLLM's JSON key: output_throughput, p99_ttft_ms, …
	A, B    float64
	Ratio   float64
	Verdict string
}

// CompareTolerance is the relative band within which two values are "same".
const CompareTolerance = 0.05

// Verdicts.
const (
	VerdictBetter = "better"
	VerdictWorse  = "worse"
	VerdictSame   = "same"
	VerdictNA     = "n/a"
)

// cmprThroughputs are the higher-is-better metrics, in report order.
var cmprThroughputs = []string{
	"request_throughput", "request_goodput", "output_throughput", "total_token_throughput", "max_output_tokens_per_s",
}

// cmprField returns a top-level metric of r by its JSON key.
func cmprField(r *Result, key string) (float64, bool) {
	switch key {
	case "request_throughput":
		return r.RequestThroughput, true
	case "request_goodput":
		if r.RequestGoodput == nil {
			return 0, false
		}
		return *r.RequestGoodput, true
	case "output_throughput":
		return r.OutputThroughput, true
	case "total_token_throughput":
		return r.TotalTokenThroughput, true
	case "max_output_tokens_per_s":
		return r.MaxOutputTokensPerS, true
	case "failed":
		return float64(r.Failed), true
	}
	return 0, false
}

// CompareLowerIsBetter reports whether a smaller value of metric is better: latencies
// (every *_ms key) and failed requests; throughputs are higher-is-better.
func CompareLowerIsBetter(metric string) bool {
	return metric == "failed" || strings.HasSuffix(metric, "_ms")
}

// CompareVerdict returns B/A and B's verdict against A. Both zero is "same"; A zero and B
// not gives an infinite ratio. "same" means B/A within [1 − 5 %, 1 + 5 %].
func CompareVerdict(metric string, a, b float64) (ratio float64, verdict string) {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN(), VerdictNA
	}
	switch {
	case a == b:
		ratio = 1
	case a == 0:
		ratio = math.Inf(1)
		if b < 0 {
			ratio = math.Inf(-1)
		}
	default:
		ratio = b / a
	}
	const eps = 1e-12
	if ratio >= 1-CompareTolerance-eps && ratio <= 1+CompareTolerance+eps {
		return ratio, VerdictSame
	}
	if (ratio > 1) == CompareLowerIsBetter(metric) {
		return ratio, VerdictWorse
	}
	return ratio, VerdictBetter
}

// Compare compares b against a, metric by metric, for the metrics both have: throughputs
// (request, goodput when both set it, output, total token, peak output), failed requests,
// then per latency metric (ttft, tpot, itl, e2el, then any other) mean, median, the
// percentiles in numeric order and std. Lower is better for latencies and failures, higher
// for throughputs; within ±5 % is "same".
func Compare(a, b *Result) []Row {
	if a == nil || b == nil {
		return nil
	}
	var rows []Row
	add := func(metric string, va, vb float64) {
		ratio, verdict := CompareVerdict(metric, va, vb)
		rows = append(rows, Row{Metric: metric, A: va, B: vb, Ratio: ratio, Verdict: verdict})
	}
	for _, k := range append(append([]string{}, cmprThroughputs...), "failed") {
		va, okA := cmprField(a, k)
		vb, okB := cmprField(b, k)
		if okA && okB {
			add(k, va, vb)
		}
	}

	// Latency metrics: the known ones in vLLM's order, then any other <stat>_<metric>_ms.
	done := map[string]bool{}
	metrics := make([]string, 0, len(rptBlocks))
	for _, m := range rptBlocks {
		metrics = append(metrics, m.key)
	}
	var extra []string
	for k := range a.Metrics {
		if _, ok := b.Metrics[k]; !ok {
			continue
		}
		if m := cmprMetricOf(k); m != "" && !slices.Contains(metrics, m) && !slices.Contains(extra, m) {
			extra = append(extra, m)
		}
	}
	sort.Strings(extra)
	metrics = append(metrics, extra...)
	for _, m := range metrics {
		keys := []string{"mean_" + m + "_ms", "median_" + m + "_ms"}
		for _, p := range rptPercentiles(a.Metrics, m) {
			keys = append(keys, "p"+p.word+"_"+m+"_ms")
		}
		keys = append(keys, "std_"+m+"_ms")
		for _, k := range keys {
			va, okA := a.Metrics[k]
			vb, okB := b.Metrics[k]
			if okA && okB && !done[k] {
				done[k] = true
				add(k, va, vb)
			}
		}
	}
	return rows
}

// cmprMetricOf returns the <metric> of a mean_/median_/std_/pNN_<metric>_ms key, or "".
func cmprMetricOf(key string) string {
	if !strings.HasSuffix(key, "_ms") {
		return ""
	}
	stat, rest, ok := strings.Cut(strings.TrimSuffix(key, "_ms"), "_")
	if !ok || rest == "" {
		return ""
	}
	switch {
	case stat == "mean", stat == "median", stat == "std":
		return rest
	case strings.HasPrefix(stat, "p"):
		if _, err := strconv.ParseFloat(stat[1:], 64); err == nil {
			return rest
		}
	}
	return ""
}

// cmprSigned formats a difference with its sign.
func cmprSigned(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := rptPy2f(v)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	if s == "-0.00" {
		s = "+0.00"
	}
	return s
}

// cmprCount formats a whole number.
func cmprCount(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// cmprRatio formats B/A.
func cmprRatio(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// CompareMarkdown renders rows as a Markdown table: metric, A, B, B − A, B/A, verdict, with
// a summary line and the rules (for a gateway-overhead run, A = direct and B = through the
// gateway, B − A of the latency rows is the latency the gateway adds).
func CompareMarkdown(aName, bName string, rows []Row) []byte {
	aName, bName = rptCell(aName), rptCell(bName)
	if aName == "" {
		aName = "A"
	}
	if bName == "" {
		bName = "B"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s vs %s\n\n", bName, aName)
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Verdict]++
	}
	fmt.Fprintf(&b, "%s against %s: better on %d, worse on %d, the same on %d of %d metrics",
		bName, aName, counts[VerdictBetter], counts[VerdictWorse], counts[VerdictSame], len(rows))
	if counts[VerdictNA] > 0 {
		fmt.Fprintf(&b, " (%d not comparable)", counts[VerdictNA])
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "Ratio is %s / %s. \"same\" means within ±%d %%. Lower is better for latencies (`*_ms`, milliseconds) and failed requests, higher for throughputs.\n\n",
		bName, aName, int(math.Round(CompareTolerance*100)))
	if len(rows) == 0 {
		b.WriteString("No metrics in common.\n")
		return b.Bytes()
	}
	fmt.Fprintf(&b, "| metric | %s | %s | %s − %s | %s / %s | verdict |\n", aName, bName, bName, aName, bName, aName)
	b.WriteString("|---|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		va, vb, d := rptNum(r.A), rptNum(r.B), cmprSigned(r.B-r.A)
		if r.Metric == "failed" { // a count
			va, vb, d = cmprCount(r.A), cmprCount(r.B), cmprCount(r.B-r.A)
			if r.B >= r.A {
				d = "+" + d
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			rptCode(r.Metric), va, vb, d, cmprRatio(r.Ratio), rptCell(r.Verdict))
	}
	return b.Bytes()
}

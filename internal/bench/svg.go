package bench

// svg.go: small, deterministic SVG line charts (standard library only) for sweep reports:
// throughput and TTFT against the swept value, and per-request latency CDFs.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The fixed canvas and the plot area inside it (legend on the right).
const (
	svgW    = 720
	svgH    = 420
	svgPadL = 68
	svgPadR = 172
	svgPadT = 40
	svgPadB = 54
	svgPW   = svgW - svgPadL - svgPadR
	svgPH   = svgH - svgPadT - svgPadB
)

// svgPalette is Okabe–Ito (colour-blind safe) without its yellow, then grey.
var svgPalette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"}

// svgPt is a data point; a non-finite coordinate breaks the line.
type svgPt struct{ x, y float64 }

// svgLine is one data line.
type svgLine struct {
	color   string
	dash    bool
	markers bool
	pts     []svgPt
}

// svgLegend is one legend row.
type svgLegend struct {
	label  string
	color  string
	dash   bool
	marker bool
}

// svgRef is a labelled horizontal reference line.
type svgRef struct {
	y     float64
	label string
}

// svgPlot describes a chart.
type svgPlot struct {
	title, xLabel, yLabel string
	lines                 []svgLine
	legend                []svgLegend
	yPercent              bool // y in [0, 1], ticks every 20 %, labelled in percent
	refs                  []svgRef
	note                  string // footnote, bottom left
}

// svgAxis is a linear axis with a 1-2-5 tick step.
type svgAxis struct{ min, max, step float64 }

// svgNiceStep returns the smallest of 1, 2, 5 × 10^k that is ≥ raw.
func svgNiceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	f := raw / p
	switch {
	case f <= 1+1e-9:
		return p
	case f <= 2+1e-9:
		return 2 * p
	case f <= 5+1e-9:
		return 5 * p
	}
	return 10 * p
}

// svgNiceAxis spans [lo, hi] with about five 1-2-5 steps; an empty range becomes [lo, lo+1].
func svgNiceAxis(lo, hi float64) svgAxis {
	if !(hi > lo) {
		hi = lo + 1
	}
	step := svgNiceStep((hi - lo) / 5)
	return svgAxis{
		min:  math.Floor(lo/step+1e-9) * step,
		max:  math.Ceil(hi/step-1e-9) * step,
		step: step,
	}
}

// ticks returns the tick values, rounded to the step's precision.
func (a svgAxis) ticks() []float64 {
	n := int(math.Round((a.max-a.min)/a.step)) + 1
	d := svgDecimals(a.step)
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		v, _ := strconv.ParseFloat(strconv.FormatFloat(a.min+float64(i)*a.step, 'f', d, 64), 64)
		out = append(out, v)
	}
	return out
}

// svgDecimals is how many decimals a tick step needs.
func svgDecimals(step float64) int {
	if step >= 1 {
		return 0
	}
	return int(math.Ceil(-math.Log10(step) - 1e-9))
}

// svgTick formats a tick value.
func svgTick(v, step float64) string {
	s := strconv.FormatFloat(v, 'f', svgDecimals(step), 64)
	if strings.Trim(s, "-0.") == "" {
		return "0"
	}
	return s
}

// svgN formats a coordinate with one decimal (no "-0.0").
func svgN(v float64) string {
	v = math.Round(v*10) / 10
	if v == 0 {
		v = 0
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// svgEsc escapes s for XML text and attribute values (invalid characters become U+FFFD).
func svgEsc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// svgTrunc shortens a legend label to n runes.
func svgTrunc(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func svgFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// svgRender draws p on the fixed canvas.
func svgRender(p svgPlot) []byte {
	// Ranges over the finite points; axes always include 0.
	xlo, xhi, ylo, yhi := 0.0, 0.0, 0.0, 0.0
	points := 0
	for _, l := range p.lines {
		for _, pt := range l.pts {
			if !svgFinite(pt.x) || !svgFinite(pt.y) {
				continue
			}
			points++
			xlo, xhi = math.Min(xlo, pt.x), math.Max(xhi, pt.x)
			ylo, yhi = math.Min(ylo, pt.y), math.Max(yhi, pt.y)
		}
	}
	xa := svgNiceAxis(xlo, xhi)
	ya := svgNiceAxis(ylo, yhi)
	if p.yPercent {
		ya = svgAxis{min: 0, max: 1, step: 0.2}
	}
	px := func(x float64) float64 { return svgPadL + (x-xa.min)/(xa.max-xa.min)*svgPW }
	py := func(y float64) float64 { return svgPadT + svgPH - (y-ya.min)/(ya.max-ya.min)*svgPH }

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, "<title>%s</title>\n", svgEsc(p.title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%s" y="24" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n",
		svgN(svgPadL+svgPW/2.0), svgEsc(p.title))

	// Grid.
	b.WriteString(`<g stroke="#e6e6e6" stroke-width="1">` + "\n")
	for _, t := range xa.ticks() {
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d"/>`+"\n", svgN(px(t)), svgPadT, svgN(px(t)), svgPadT+svgPH)
	}
	for _, t := range ya.ticks() {
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s"/>`+"\n", svgPadL, svgN(py(t)), svgPadL+svgPW, svgN(py(t)))
	}
	b.WriteString("</g>\n")

	// Axes, tick marks and tick labels.
	b.WriteString(`<g stroke="#333333" stroke-width="1">` + "\n")
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", svgPadL, svgPadT+svgPH, svgPadL+svgPW, svgPadT+svgPH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", svgPadL, svgPadT, svgPadL, svgPadT+svgPH)
	for _, t := range xa.ticks() {
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d"/>`+"\n", svgN(px(t)), svgPadT+svgPH, svgN(px(t)), svgPadT+svgPH+5)
	}
	for _, t := range ya.ticks() {
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s"/>`+"\n", svgPadL-5, svgN(py(t)), svgPadL, svgN(py(t)))
	}
	b.WriteString("</g>\n")
	b.WriteString(`<g font-size="11" fill="#333333">` + "\n")
	for _, t := range xa.ticks() {
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", svgN(px(t)), svgPadT+svgPH+18, svgTick(t, xa.step))
	}
	for _, t := range ya.ticks() {
		label := svgTick(t, ya.step)
		if p.yPercent {
			label = strconv.Itoa(int(math.Round(t*100))) + "%"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", svgPadL-8, svgN(py(t)+4), label)
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", svgN(svgPadL+svgPW/2.0), svgPadT+svgPH+38, svgEsc(p.xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%s" text-anchor="middle" transform="rotate(-90 16 %s)">%s</text>`+"\n",
		svgN(svgPadT+svgPH/2.0), svgN(svgPadT+svgPH/2.0), svgEsc(p.yLabel))

	// Reference lines.
	for _, r := range p.refs {
		y := svgN(py(r.y))
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#888888" stroke-width="1" stroke-dasharray="2 3"/>`+"\n",
			svgPadL, y, svgPadL+svgPW, y)
		ly := py(r.y) - 3 // above the line, or below it near the top of the plot
		if ly < svgPadT+12 {
			ly = py(r.y) + 11
		}
		fmt.Fprintf(&b, `<text x="%d" y="%s" text-anchor="start" font-size="10" fill="#666666">%s</text>`+"\n",
			svgPadL+4, svgN(ly), svgEsc(r.label))
	}

	// Data.
	if points == 0 {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#666666">no data</text>`+"\n",
			svgN(svgPadL+svgPW/2.0), svgN(svgPadT+svgPH/2.0))
	}
	for _, l := range p.lines {
		var segs [][]svgPt
		var cur []svgPt
		for _, pt := range l.pts {
			if !svgFinite(pt.x) || !svgFinite(pt.y) {
				if len(cur) > 0 {
					segs = append(segs, cur)
				}
				cur = nil
				continue
			}
			cur = append(cur, pt)
		}
		if len(cur) > 0 {
			segs = append(segs, cur)
		}
		dash := ""
		if l.dash {
			dash = ` stroke-dasharray="6 4"`
		}
		for _, seg := range segs {
			if len(seg) > 1 {
				coords := make([]string, len(seg))
				for i, pt := range seg {
					coords[i] = svgN(px(pt.x)) + "," + svgN(py(pt.y))
				}
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s stroke-linejoin="round" points="%s"/>`+"\n",
					l.color, dash, strings.Join(coords, " "))
			}
			if l.markers || len(seg) == 1 {
				for _, pt := range seg {
					fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", svgN(px(pt.x)), svgN(py(pt.y)), l.color)
				}
			}
		}
	}

	// Legend.
	if len(p.legend) > 0 {
		b.WriteString(`<g font-size="12">` + "\n")
		x0 := svgPadL + svgPW + 16
		rows := (svgPH - 8) / 18
		for i, e := range p.legend {
			y := svgPadT + 8 + i*18
			if i == rows-1 && len(p.legend) > rows {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666666">+%d more</text>`+"\n", x0, y+4, len(p.legend)-i)
				break
			}
			dash := ""
			if e.dash {
				dash = ` stroke-dasharray="6 4"`
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", x0, y, x0+24, y, e.color, dash)
			if e.marker {
				fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3" fill="%s"/>`+"\n", x0+12, y, e.color)
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x0+30, y+4, svgEsc(svgTrunc(e.label, 18)))
		}
		b.WriteString("</g>\n")
	}
	if p.note != "" {
		fmt.Fprintf(&b, `<text x="8" y="%d" font-size="10" fill="#666666">%s</text>`+"\n", svgH-6, svgEsc(p.note))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// svgXLabel is the x-axis name of a set of series: their distinct X names.
func svgXLabel(series []Series) string {
	var names []string
	for _, s := range series {
		x := strings.TrimSpace(s.X)
		if x != "" && !slices.Contains(names, x) {
			names = append(names, x)
		}
	}
	if len(names) == 0 {
		return "X"
	}
	return strings.Join(names, " / ")
}

// svgSweepLines builds one line per series of y(result) against X, skipping non-finite X and
// noting it.
func svgSweepLines(series []Series, y func(*Result) float64, dash bool) (lines []svgLine, skippedInf bool) {
	for i, s := range series {
		l := svgLine{color: svgPalette[i%len(svgPalette)], dash: dash, markers: true}
		for _, p := range rptSorted(s) {
			if !svgFinite(p.X) {
				skippedInf = true
				continue
			}
			l.pts = append(l.pts, svgPt{p.X, y(p.R)})
		}
		lines = append(lines, l)
	}
	return lines, skippedInf
}

// svgInfNote is the footnote for points at X = inf (an unlimited request rate).
func svgInfNote(skipped bool) string {
	if skipped {
		return "Points at X = inf (no rate limit) are not plotted; see the report's tables."
	}
	return ""
}

// ChartThroughput is an SVG line chart of output token throughput (tok/s) against the swept
// value, one line per series, with a legend. Output is deterministic.
func ChartThroughput(series []Series) []byte {
	lines, skipped := svgSweepLines(series, func(r *Result) float64 { return r.OutputThroughput }, false)
	p := svgPlot{
		title:  "Output token throughput",
		xLabel: svgXLabel(series),
		yLabel: "output tokens/s",
		lines:  lines,
		note:   svgInfNote(skipped),
	}
	for i, s := range series {
		p.legend = append(p.legend, svgLegend{label: rptSeriesLabel(i, s), color: svgPalette[i%len(svgPalette)], marker: true})
	}
	return svgRender(p)
}

// ChartTTFT is an SVG line chart of TTFT (ms) against the swept value: per series the tail
// percentile (p99, or the highest percentile the results have) as a solid line and the mean
// as a dashed line of the same colour.
func ChartTTFT(series []Series) []byte {
	var all []*Result
	for _, s := range series {
		for _, p := range s.Points {
			all = append(all, p.R)
		}
	}
	tailKey, tailName := rptTailKey(all, "ttft")
	p := svgPlot{
		title:  "Time to first token (TTFT)",
		xLabel: svgXLabel(series),
		yLabel: "TTFT (ms)",
	}
	skipped := false
	if tailKey != "" {
		lines, sk := svgSweepLines(series, func(r *Result) float64 { return rptMetric(r, tailKey) }, false)
		p.lines, skipped = append(p.lines, lines...), sk
	}
	lines, sk := svgSweepLines(series, func(r *Result) float64 { return rptMetric(r, "mean_ttft_ms") }, true)
	p.lines, skipped = append(p.lines, lines...), skipped || sk
	p.note = svgInfNote(skipped)
	for i, s := range series {
		p.legend = append(p.legend, svgLegend{label: rptSeriesLabel(i, s), color: svgPalette[i%len(svgPalette)], marker: true})
	}
	if tailKey != "" {
		p.legend = append(p.legend, svgLegend{label: tailName + " (solid)", color: "#666666"})
	}
	p.legend = append(p.legend, svgLegend{label: "mean (dashed)", color: "#666666", dash: true})
	return svgRender(p)
}

// svgCDFName is a metric's display name.
func svgCDFName(metric string) string {
	switch metric {
	case "ttft":
		return "TTFT"
	case "tpot":
		return "TPOT"
	case "itl":
		return "ITL"
	case "e2el":
		return "E2EL"
	}
	return metric
}

// svgSucceeded tells which of the n per-request entries of r are successful requests. The
// arrays cover failed requests too. vLLM saves one errors entry per request ("" on success);
// citadel saves only the failed requests' errors, and both save output_lens 0 for a failure.
func svgSucceeded(r *Result, n int) func(int) bool {
	switch {
	case r.Failed == 0:
		return func(int) bool { return true }
	case len(r.Errors) == n:
		return func(i int) bool { return r.Errors[i] == "" }
	case len(r.OutputLens) == n:
		return func(i int) bool { return r.OutputLens[i] > 0 }
	}
	return func(int) bool { return true }
}

// svgCDFValues returns r's per-request values of metric in ms, sorted, from the saved
// arrays (seconds), successful requests only: ttft (ttfts), itl (every gap of itls), e2el
// (latencies), tpot ((latency − ttft) / (output_len − 1), output_len > 1).
func svgCDFValues(r *Result, metric string) []float64 {
	if r == nil {
		return nil
	}
	n := max(len(r.TTFTs), len(r.ITLs), len(r.Latencies))
	ok := svgSucceeded(r, n)
	var out []float64
	add := func(sec float64) {
		if ms := sec * 1000; svgFinite(ms) {
			out = append(out, ms)
		}
	}
	switch metric {
	case "ttft":
		for i, v := range r.TTFTs {
			if ok(i) {
				add(v)
			}
		}
	case "itl":
		for i, gaps := range r.ITLs {
			if ok(i) {
				for _, v := range gaps {
					add(v)
				}
			}
		}
	case "e2el":
		for i, v := range r.Latencies {
			if ok(i) {
				add(v)
			}
		}
	case "tpot":
		for i, lat := range r.Latencies {
			if ok(i) && i < len(r.TTFTs) && i < len(r.OutputLens) && r.OutputLens[i] > 1 {
				add((lat - r.TTFTs[i]) / float64(r.OutputLens[i]-1))
			}
		}
	}
	sort.Float64s(out)
	return out
}

// svgCDFSamples returns the non-empty value sets of results for metric, by label.
func svgCDFSamples(results map[string]*Result, metric string) map[string][]float64 {
	out := map[string][]float64{}
	for label, r := range results {
		if v := svgCDFValues(r, metric); len(v) > 0 {
			out[label] = v
		}
	}
	return out
}

// svgCDFMaxSteps bounds the staircase of a CDF line (large runs are sampled at quantiles).
const svgCDFMaxSteps = 400

// svgCDFPoints draws the empirical CDF of sorted values as a staircase.
func svgCDFPoints(v []float64) []svgPt {
	n := len(v)
	pts := []svgPt{{v[0], 0}}
	steps := n
	if steps > svgCDFMaxSteps {
		steps = svgCDFMaxSteps
	}
	prev := 0.0
	for k := 1; k <= steps; k++ {
		q := float64(k) / float64(steps)
		idx := int(math.Ceil(q*float64(n))) - 1
		if idx < 0 {
			idx = 0
		}
		if idx >= n {
			idx = n - 1
		}
		pts = append(pts, svgPt{v[idx], prev}, svgPt{v[idx], q})
		prev = q
	}
	return pts
}

// ChartCDF is an SVG chart of the empirical CDF of metric ("ttft", "itl", "e2el"; also
// "tpot") per result, from its per-request arrays (successful requests only), with p50 and
// p99 reference lines. Results are drawn in label order; results without data are listed
// in the legend as "(no data)".
func ChartCDF(results map[string]*Result, metric string) []byte {
	labels := make([]string, 0, len(results))
	for k := range results {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	return svgChartCDF(labels, results, metric)
}

// svgChartCDF is ChartCDF with the results drawn (and coloured) in the order of labels.
func svgChartCDF(labels []string, results map[string]*Result, metric string) []byte {
	name := svgCDFName(metric)
	unit := "requests"
	if metric == "itl" {
		unit = "chunk gaps"
	}
	p := svgPlot{
		title:    name + " distribution (CDF)",
		xLabel:   name + " (ms)",
		yLabel:   "fraction of " + unit + " ≤ x",
		yPercent: true,
		refs:     []svgRef{{0.5, "p50"}, {0.99, "p99"}},
	}
	samples := svgCDFSamples(results, metric)
	for i, label := range labels {
		color := svgPalette[i%len(svgPalette)]
		v := samples[label]
		if len(v) == 0 {
			p.legend = append(p.legend, svgLegend{label: label + " (no data)", color: "#cccccc"})
			continue
		}
		p.lines = append(p.lines, svgLine{color: color, pts: svgCDFPoints(v)})
		p.legend = append(p.legend, svgLegend{label: label, color: color})
	}
	return svgRender(p)
}

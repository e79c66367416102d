package admin

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A chart is drawn on the server as inline SVG: the last sampleWindow on x (now at the
// right), values from 0 on y, one polyline per line, broken where a value is missing.
const (
	chartW, chartH = 600.0, 160.0 // the whole drawing
	plotL, plotR   = 56.0, 590.0  // the plot's left and right edges
	plotT, plotB   = 10.0, 136.0  // its top and bottom
)

type dashChart struct {
	Kind, Title, Unit string
	Points            int // samples drawn
	W, H              float64
	PlotL, PlotR      float64
	PlotT, PlotB      float64
	YLabelX, XLabelY  float64 // where the axes' labels go
	MidY              float64
	YTicks, XTicks    []chartTick
	Lines             []chartLine
	Empty             string
}

type chartTick struct {
	Pos   float64
	Label string
}

type chartLine struct {
	Name, Class string
	Paths       []string // "x,y x,y …" per unbroken run
	Last        string   // the latest value, with its unit
}

// chartSeries is one line's values, NaN where there is none, aligned with the chart's times.
type chartSeries struct {
	Name, Class string
	Values      []float64
}

// drawChart lays out lines over times (oldest first) ending at now. scale turns a value into
// the unit shown (1000 for seconds shown as ms).
func drawChart(kind, title, unit string, now time.Time, times []time.Time, series []chartSeries) dashChart {
	c := dashChart{Kind: kind, Title: title, Unit: unit, Points: len(times), W: chartW, H: chartH,
		PlotL: plotL, PlotR: plotR, PlotT: plotT, PlotB: plotB, YLabelX: plotL - 4, XLabelY: plotB + 16, MidY: (plotT + plotB) / 2}
	if len(times) == 0 {
		c.Empty = "no samples yet: the gateway is read every " + sampleEvery.String()
	}
	top := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				top = max(top, v)
			}
		}
	}
	top, step := niceScale(top)
	for v := 0.0; v <= top+step/2; v += step {
		c.YTicks = append(c.YTicks, chartTick{Pos: y(v, top), Label: formatValue(v)})
	}
	for m := 15; m >= 0; m -= 5 {
		l := fmt.Sprintf("−%d min", m)
		if m == 0 {
			l = "now"
		}
		c.XTicks = append(c.XTicks, chartTick{Pos: x(now.Add(-time.Duration(m)*time.Minute), now), Label: l})
	}
	for _, s := range series {
		line := chartLine{Name: s.Name, Class: s.Class, Last: "–"}
		var run []string
		flush := func() {
			if len(run) == 1 { // a lone point: a short tick so that it shows
				run = append(run, run[0])
			}
			if len(run) > 0 {
				line.Paths = append(line.Paths, strings.Join(run, " "))
			}
			run = nil
		}
		for i, v := range s.Values {
			if i >= len(times) || math.IsNaN(v) || math.IsInf(v, 0) {
				flush()
				continue
			}
			run = append(run, fmt.Sprintf("%.1f,%.1f", x(times[i], now), y(v, top)))
			line.Last = formatValue(v) + " " + unit
		}
		flush()
		c.Lines = append(c.Lines, line)
	}
	return c
}

func x(t, now time.Time) float64 {
	f := 1 - now.Sub(t).Seconds()/sampleWindow.Seconds()
	return plotL + (plotR-plotL)*min(max(f, 0), 1)
}

func y(v, top float64) float64 {
	return plotB - (plotB-plotT)*min(max(v/top, 0), 1)
}

// niceScale picks the top of the y axis (at least max) and a tick step: 1, 2 or 5 times a
// power of ten, four or five ticks.
func niceScale(maxV float64) (top, step float64) {
	if maxV <= 0 {
		return 1, 0.25
	}
	raw := maxV / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(maxV/step-1e-9) * step, step
}

// formatValue writes a value with about three significant digits.
func formatValue(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

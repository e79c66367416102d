package admin

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDrawChart(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	times := []time.Time{now.Add(-6 * time.Second), now.Add(-4 * time.Second), now.Add(-2 * time.Second), now}
	nan := math.NaN()
	c := drawChart("ttft", "Time to first token", "ms", now, times, []chartSeries{
		{Name: "p50", Class: "l0", Values: []float64{120, nan, 80, 90}},
		{Name: "p99", Class: "l1", Values: []float64{nan, nan, nan, nan}},
	})
	if c.Points != 4 || c.Empty != "" {
		t.Errorf("points %d, empty %q; want 4 and no message", c.Points, c.Empty)
	}
	// The axis goes to 150 ms in steps of 50 (a nice step at or over a quarter of 120).
	var labels []string
	for _, tk := range c.YTicks {
		labels = append(labels, tk.Label)
	}
	if got := strings.Join(labels, " "); got != "0 50 100 150" {
		t.Errorf("y labels %q, want 0 50 100 150", got)
	}
	if c.XTicks[0].Label != "−15 min" || c.XTicks[0].Pos != plotL || c.XTicks[len(c.XTicks)-1].Label != "now" || c.XTicks[len(c.XTicks)-1].Pos != plotR {
		t.Errorf("x ticks %+v: want −15 min at the left edge, now at the right", c.XTicks)
	}
	// The missing value breaks p50 in two runs: a lone point (drawn as a tick) and two points.
	p50 := c.Lines[0]
	if len(p50.Paths) != 2 || len(strings.Fields(p50.Paths[0])) != 2 || len(strings.Fields(p50.Paths[1])) != 2 || p50.Last != "90 ms" {
		t.Errorf("p50 %+v: want two runs and 90 ms last", p50)
	}
	if p99 := c.Lines[1]; len(p99.Paths) != 0 || p99.Last != "–" {
		t.Errorf("p99 with no value %+v: want nothing drawn", p99)
	}
	if e := drawChart("rate", "Request rate", "req/s", now, nil, nil); e.Points != 0 || e.Empty == "" {
		t.Errorf("no samples: %+v, want 0 points and a message", e)
	}
}

func TestNiceScale(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ max, top, step float64 }{
		{0, 1, 0.25}, {1, 1, 0.25}, {3.2, 4, 1}, {7, 8, 2}, {120, 150, 50}, {0.004, 0.004, 0.001}, {950, 1000, 250},
	} {
		top, step := niceScale(tt.max)
		if math.Abs(top-tt.top) > 1e-12 || math.Abs(step-tt.step) > 1e-12 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", tt.max, top, step, tt.top, tt.step)
		}
	}
}

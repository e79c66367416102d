package admin

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// dashTraffic is the gateway's traffic as sampled: every interval's totals and, per public
// model and service, the same and a summary of the kept window.
type dashTraffic struct {
	IntervalSeconds float64      `json:"intervalSeconds"`
	WindowSeconds   float64      `json:"windowSeconds"` // what the kept samples cover, at most 900
	Error           string       `json:"error,omitempty"`
	Points          []dashPoint  `json:"points"`
	Series          []dashSeries `json:"series"`
}

// dashPoint is one interval, ending at T (Unix milliseconds); TTFT is null when no request
// got a first token in it.
type dashPoint struct {
	T                 int64    `json:"t"`
	RequestsPerSecond float64  `json:"requestsPerSecond"`
	ErrorsPerSecond   float64  `json:"errorsPerSecond"`
	TTFTP50Ms         *float64 `json:"ttftP50Ms"`
	TTFTP99Ms         *float64 `json:"ttftP99Ms"`
}

// dashSeries is one public model and service.
type dashSeries struct {
	Model   string `json:"model"`
	Service string `json:"service"`
	// Requests and Errors are counted over the kept window.
	Requests  int64       `json:"requests"`
	Errors    int64       `json:"errors"`
	Rate      string      `json:"-"`
	TTFTP50Ms *float64    `json:"ttftP50Ms"`
	TTFTP99Ms *float64    `json:"ttftP99Ms"`
	Points    []dashPoint `json:"points,omitempty"` // with ?seriesPoints=true
}

// dashSLO is one objective of a route or of one of its public names, measured over the
// kept window.
type dashSLO struct {
	Name      string `json:"name"`  // the route's name, or the public model's
	Scope     string `json:"scope"` // route or model
	Route     string `json:"route"`
	Objective string `json:"objective"` // availability, ttftP50 or ttftP99
	Target    string `json:"target"`    // 99.9%, ≤ 2s
	Actual    string `json:"actual"`
	Verdict   string `json:"verdict"` // met, missed or no data
	Detail    string `json:"detail,omitempty"`
}

// Verdicts of an objective.
const (
	verdictMet    = "met"
	verdictMissed = "missed"
	verdictNoData = "no data"
)

func ms(seconds float64) *float64 {
	if math.IsNaN(seconds) {
		return nil
	}
	v := math.Round(seconds*1e6) / 1e3
	return &v
}

// dashboardTraffic fills the routes' targets and traffic, the charts, the per-series table
// (with each series' points when seriesPoints) and the objectives from the sampler.
func (s *Server) dashboardTraffic(p *dashPage, routes []*v1.Route, seriesPoints bool) {
	now := time.Now()
	p.Traffic = dashTraffic{IntervalSeconds: sampleEvery.Seconds(), Points: []dashPoint{}, Series: []dashSeries{}}
	var ss []sample
	var bounds []float64
	var totals map[seriesKey]*counts
	if s.sampler == nil {
		p.Traffic.Error = "this server runs no gateway (citadel serve --gateway-addr off), so there is no traffic to show"
	} else {
		var err string
		ss, bounds, err = s.sampler.samples()
		if err != "" {
			p.Traffic.Error = "reading the gateway's metrics: " + err
		}
		if cur, _, err := s.sampler.read(); err != nil {
			p.Traffic.Error = "reading the gateway's metrics: " + err.Error()
		} else {
			totals = cur
		}
		if len(ss) > 0 {
			now = ss[len(ss)-1].At
			p.Traffic.WindowSeconds = math.Round(now.Sub(ss[0].At).Seconds() + ss[0].Seconds)
		}
	}
	all := func(seriesKey) bool { return true }
	p.Traffic.Points = pointsOf(ss, bounds, all)

	// Per model and service: those with traffic in the window, busiest first.
	var keys []seriesKey
	windows := map[seriesKey]*counts{}
	for _, smp := range ss {
		for k, d := range smp.Delta {
			if windows[k] == nil {
				keys = append(keys, k)
				windows[k] = &counts{}
			}
			windows[k].add(d)
		}
	}
	slices.SortFunc(keys, func(a, b seriesKey) int {
		if d := windows[b].Requests - windows[a].Requests; d != 0 {
			return int(math.Copysign(1, d))
		}
		return strings.Compare(a.Model+"\x00"+a.Service, b.Model+"\x00"+b.Service)
	})
	for _, k := range keys {
		c := windows[k]
		d := dashSeries{Model: k.Model, Service: k.Service, Requests: int64(c.Requests), Errors: int64(c.Errors), Rate: "–"}
		if seriesPoints {
			d.Points = pointsOf(ss, bounds, func(o seriesKey) bool { return o == k })
		}
		if p.Traffic.WindowSeconds > 0 {
			d.Rate = formatValue(c.Requests/p.Traffic.WindowSeconds) + "/s"
		}
		if c.TTFT != nil {
			d.TTFTP50Ms, d.TTFTP99Ms = ms(quantile(0.5, bounds, c.TTFT)), ms(quantile(0.99, bounds, c.TTFT))
		}
		p.Traffic.Series = append(p.Traffic.Series, d)
	}

	times := make([]time.Time, len(p.Traffic.Points))
	rate, errs, p50, p99 := make([]float64, len(times)), make([]float64, len(times)), make([]float64, len(times)), make([]float64, len(times))
	for i, pt := range p.Traffic.Points {
		times[i] = time.UnixMilli(pt.T)
		rate[i], errs[i] = pt.RequestsPerSecond, pt.ErrorsPerSecond
		p50[i], p99[i] = math.NaN(), math.NaN()
		if pt.TTFTP50Ms != nil {
			p50[i], p99[i] = *pt.TTFTP50Ms, *pt.TTFTP99Ms
		}
	}
	p.Charts = []dashChart{
		drawChart("rate", "Request rate", "req/s", now, times, []chartSeries{{Name: "requests", Class: "l0", Values: rate}}),
		drawChart("ttft", "Time to first token", "ms", now, times, []chartSeries{{Name: "p50", Class: "l0", Values: p50}, {Name: "p99", Class: "l1", Values: p99}}),
		drawChart("errors", "Failed requests (5xx or no answer)", "err/s", now, times, []chartSeries{{Name: "errors", Class: "l2", Values: errs}}),
	}

	for _, rt := range routes {
		d := dashRoute{Ref: ref(rt), Name: rt.Name, Phase: rt.Status.Phase, Class: phaseClass(rt.Status.Phase), Reason: rt.Status.Reason,
			Message: rt.Status.Message, Models: []string{}, Targets: []dashTarget{}}
		names := map[string]bool{}
		for _, m := range rt.Spec.Models {
			d.Models = append(d.Models, m.Name)
			names[m.Name] = true
		}
		d.Targets = routeTargets(rt)
		for k, c := range totals {
			if names[k.Model] {
				d.Requests += int64(c.Requests)
				for i := range d.Targets {
					if d.Targets[i].Service == k.Service {
						d.Targets[i].Requests += int64(c.Requests)
					}
				}
			}
		}
		for i := range d.Targets {
			if d.Requests > 0 {
				d.Targets[i].Share = math.Round(float64(d.Targets[i].Requests)*1000/float64(d.Requests)) / 10
			}
		}
		p.Routes = append(p.Routes, d)

		if o := rt.Spec.Objectives; o != nil {
			p.SLOs = append(p.SLOs, objectives(rt.Name, "route", rt.Name, o, windowOf(ss, func(k seriesKey) bool { return names[k.Model] }), bounds, s.sampler != nil)...)
		}
		for _, m := range rt.Spec.Models {
			if m.Objectives != nil {
				p.SLOs = append(p.SLOs, objectives(m.Name, "model", rt.Name, m.Objectives, windowOf(ss, func(k seriesKey) bool { return k.Model == m.Name }), bounds, s.sampler != nil)...)
			}
		}
	}
}

// pointsOf is every sample's point for the series keep selects.
func pointsOf(ss []sample, bounds []float64, keep func(seriesKey) bool) []dashPoint {
	out := make([]dashPoint, 0, len(ss))
	for _, smp := range ss {
		pt := pointOf(smp, bounds, keep)
		out = append(out, dashPoint{T: smp.At.UnixMilli(), RequestsPerSecond: round3(pt.Rate), ErrorsPerSecond: round3(pt.Errors),
			TTFTP50Ms: ms(pt.P50), TTFTP99Ms: ms(pt.P99)})
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// routeTargets lists a route's destinations once each, in the order the route names them,
// with the public names that lead to each.
func routeTargets(rt *v1.Route) []dashTarget {
	out := []dashTarget{}
	add := func(model string, ts []v1.RouteTarget) {
		for _, t := range ts {
			d := dashTarget{Target: t.Service, Service: t.Service}
			if t.Service != "" {
				ns, name, err := v1.ServiceRef(t.Service, rt.Namespace)
				if err != nil {
					continue
				}
				d.Service = ns + "/" + name
			} else {
				d.Target, d.Service = t.URL, strings.TrimRight(t.URL, "/")
			}
			i := slices.IndexFunc(out, func(o dashTarget) bool { return o.Service == d.Service })
			if i < 0 {
				out = append(out, d)
				i = len(out) - 1
			}
			if !slices.Contains(out[i].Models, model) {
				out[i].Models = append(out[i].Models, model)
			}
		}
	}
	for _, m := range rt.Spec.Models {
		add(m.Name, m.Targets)
		add(m.Name, m.Fallback)
		for _, t := range m.Tasks {
			add(m.Name, t.Targets)
			add(m.Name, t.Fallback)
		}
	}
	return out
}

// objectives measures o over the window c: one row per objective set.
func objectives(name, scope, route string, o *v1.Objectives, c counts, bounds []float64, sampled bool) []dashSLO {
	var out []dashSLO
	row := func(objective, target string) *dashSLO {
		out = append(out, dashSLO{Name: name, Scope: scope, Route: route, Objective: objective, Target: target, Actual: "–", Verdict: verdictNoData})
		d := &out[len(out)-1]
		if !sampled {
			d.Detail = "no gateway runs here"
		} else if c.Requests == 0 {
			d.Detail = "no request in the last 15 minutes"
		}
		return d
	}
	if want, err := o.AvailabilityRatio(); err == nil && want > 0 {
		d := row("availability", o.Availability)
		if c.Requests > 0 {
			got := 1 - c.Errors/c.Requests
			d.Actual = strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", got*100), "0"), ".") + "%"
			d.Detail = fmt.Sprintf("%d of %d requests failed", int64(c.Errors), int64(c.Requests))
			d.Verdict = verdictMissed
			if got >= want-1e-12 {
				d.Verdict = verdictMet
			}
		}
	}
	for _, q := range []struct {
		objective string
		q         float64
		bound     *v1.Duration
	}{{"ttftP50", 0.5, o.TTFTP50}, {"ttftP99", 0.99, o.TTFTP99}} {
		if q.bound == nil {
			continue
		}
		want, err := q.bound.Std()
		if err != nil {
			continue
		}
		d := row(q.objective, "≤ "+want.String())
		if c.TTFT == nil || c.TTFT[len(c.TTFT)-1] == 0 {
			if c.Requests > 0 {
				d.Detail = "no request got a first token in the last 15 minutes"
			}
			continue
		}
		got := time.Duration(quantile(q.q, bounds, c.TTFT) * float64(time.Second))
		d.Actual = got.Round(time.Millisecond).String()
		d.Detail = fmt.Sprintf("over %d requests with a first token", int64(c.TTFT[len(c.TTFT)-1]))
		d.Verdict = verdictMissed
		if got <= want {
			d.Verdict = verdictMet
		}
	}
	return out
}

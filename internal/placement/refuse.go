package placement

// Refusals: why a service does not fit, who holds the GPUs, and the changes that would make
// it fit (found by trying them).

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"citadel.dev/citadel/internal/perfmodel"
)

func (j *job) header() string {
	ctx, seqs := strings.TrimLeft(j.flags().ctx, "-"), "sequence"
	if j.Shared || j.flags().slots != "" {
		seqs = "slot"
	}
	if j.Concurrency > 1 {
		seqs += "s"
	}
	kvpt := j.kvPerToken()
	dtype := ""
	if j.KVCacheDtype != "" {
		dtype = " " + j.KVCacheDtype
	}
	return fmt.Sprintf("%s %s: weights %s; KV cache%s %g KiB per token × %d tokens (%s %d × %d %s) = %s",
		j.Model.Name, j.Quant, gib(j.Model.WeightBytes(j.Quant)), dtype, float64(kvpt)/1024, j.tokens, ctx, j.MaxModelLen,
		j.Concurrency, seqs, gib(j.tokens*kvpt))
}

// where describes a placement for an alternative: "on one GPU (GPU 0)", "with tensor parallel
// 2 over GPUs 0,1", "split over GPUs 0,1", or one per replica.
func (j *job) where(d Decision) string {
	if len(d.Replicas) == 1 {
		if a := d.Replicas[0]; a.TP == 1 {
			return "on one GPU (GPU " + a.CUDAVisibleDevices() + ")"
		} else if !j.Shared {
			return "with " + j.layout(a)
		}
		return j.layout(d.Replicas[0])
	}
	parts := make([]string, len(d.Replicas))
	for i, a := range d.Replicas {
		parts[i] = j.layout(a)
	}
	return fmt.Sprintf("as %d replicas: %s", len(parts), strings.Join(parts, "; "))
}

// refuse explains a failure and lists single changes that would fit.
func refuse(j *job, st state, f *failure) *Refusal {
	r := &Refusal{Service: j.Service, Lines: f.lines}
	var try tryFunc = func(change func(*Request)) (Decision, *job, bool) {
		req := j.Request
		req.Pinned = slices.Clone(j.Pinned)
		change(&req)
		jj, err := newJob(req, st)
		if err != nil {
			return Decision{}, nil, false
		}
		jj.kept, jj.keptSlots = j.kept, j.keptSlots
		p, fail := place(jj, st)
		return p.Decision, jj, fail == nil
	}
	alt := func(c Change, format string, args ...any) {
		r.Alternatives = append(r.Alternatives, Alternative{Text: fmt.Sprintf(format, args...), Change: c})
	}
	fl := j.flags()

	if j.TP > 0 {
		if d, jj, ok := try(func(q *Request) { q.TP = 0 }); ok {
			tp := d.Replicas[len(d.Replicas)-1].TP
			alt(Change{TP: tp}, "%s", strings.TrimPrefix(jj.where(d), "with "))
		}
	}
	variants := []perfmodel.Quant{perfmodel.QuantFP8, perfmodel.QuantAWQInt4}
	if j.Shared {
		variants = []perfmodel.Quant{perfmodel.QuantQ4KM}
	}
	for _, q := range variants {
		w := j.Model.WeightBytes(q)
		if j.Quant != perfmodel.QuantBF16 && j.Quant != perfmodel.QuantFP8 || w >= j.Model.WeightBytes(j.Quant) {
			continue // already 4-bit, or no smaller
		}
		bits := "a 4-bit"
		if q == perfmodel.QuantFP8 {
			bits = "an 8-bit"
		}
		if d, jj, ok := try(func(r *Request) { r.Quant = q }); ok {
			alt(Change{Quant: q}, "%s variant (%s: weights %s) %s", bits, q, gib(w), jj.where(d))
			continue
		}
		// The variant alone is not enough: with how much context would it fit?
		if l := j.longest(try, func(r *Request) { r.Quant = q }); l > 0 {
			d, jj, _ := try(func(r *Request) { r.Quant, r.MaxModelLen = q, l })
			alt(Change{Quant: q, MaxModelLen: l}, "%s variant (%s: weights %s) and %s %d %s", bits, q, gib(w), fl.ctx, l, jj.where(d))
		}
	}
	if !j.Shared && fl.kv != "" && fl.tp != "" && j.kvElem > 1 {
		if d, jj, ok := try(func(r *Request) { r.KVCacheDtype = "fp8" }); ok {
			alt(Change{KVCacheDtype: "fp8"}, "%s fp8 (KV cache %s instead of %s) %s", fl.kv,
				gib(j.tokens*jj.kvPerToken()), gib(j.tokens*j.kvPerToken()), jj.where(d))
		}
	}
	if l := j.longest(try, func(*Request) {}); l > 0 {
		d, jj, _ := try(func(r *Request) { r.MaxModelLen = l })
		alt(Change{MaxModelLen: l}, "%s %d %s", fl.ctx, l, jj.where(d))
	}
	if c := largest(1, j.Concurrency-1, func(n int) bool {
		_, _, ok := try(func(r *Request) { r.Concurrency = n })
		return ok
	}); c >= 1 {
		d, jj, _ := try(func(r *Request) { r.Concurrency = c })
		name := cmp.Or(fl.slots, "concurrency")
		alt(Change{Concurrency: c}, "%s %d (KV for %d × %d tokens) %s", name, c, c, j.MaxModelLen, jj.where(d))
	}
	if !j.Shared && fl.util != "" {
		var us []float64
		for u := math.Round(j.util*100) + 1; u <= maxSuggestedUtilization*100; u++ {
			us = append(us, u/100)
		}
		if !j.autoUtil { // a set utilisation may be more than is free
			for u := math.Round(j.util*100) - 1; u >= 10; u-- {
				us = append(us, u/100)
			}
		}
		for _, u := range us {
			if d, jj, ok := try(func(r *Request) { r.GPUMemoryUtilization = u }); ok {
				alt(Change{GPUMemoryUtilization: u}, "%s %s %s", fl.util, ratio(u), jj.where(d))
				break
			}
		}
	}
	if j.Replicas > 1 {
		if n := largest(max(len(j.kept), 1), j.Replicas-1, func(n int) bool {
			_, _, ok := try(func(r *Request) { r.Replicas = n })
			return ok
		}); n >= max(len(j.kept), 1) {
			d, jj, _ := try(func(r *Request) { r.Replicas = n })
			alt(Change{Replicas: n}, "%d replicas instead of %d, %s", n, j.Replicas, jj.where(d))
		}
	}
	if len(j.Pinned) > 0 {
		if d, jj, ok := try(func(r *Request) { r.Pinned = nil }); ok {
			alt(Change{Unpin: true}, "without pinning, %s", jj.where(d))
		}
	}
	if len(r.Alternatives) > 0 {
		return r
	}
	// Nothing fits beside the other services: would it fit alone?
	idle := st.clone()
	var holders []string
	for i := range idle {
		if slices.Contains(j.allowed, i) {
			for _, h := range idle[i].holders {
				if h.service != j.Service && !slices.Contains(holders, h.service) {
					holders = append(holders, h.service)
				}
			}
		}
		idle[i].reserved, idle[i].peak, idle[i].holders = 0, 0, nil
	}
	if len(holders) > 0 {
		jj := *j
		jj.kept, jj.keptSlots, jj.keptLines = nil, nil, nil
		if p, fail := place(&jj, idle); fail == nil {
			r.Alternatives = append(r.Alternatives, Alternative{
				Text: fmt.Sprintf("if %s did not hold the GPUs, it would fit %s", strings.Join(holders, " and "), j.where(p.Decision)),
				Stop: holders})
			return r
		}
	}
	// Nothing fits here: say how big a GPU would have to be.
	tps := j.tps(max(len(j.allowed), 1))
	tp := tps[len(tps)-1]
	e := j.eval(perfmodel.GPU{Name: "any", MemoryBytes: 1 << 50}, tp)
	if e.err == nil || errors.As(e.err, new(*perfmodel.PlanError)) {
		if j.Shared {
			alt(Change{}, "GPUs with %s free each: that is its need per GPU with %s", gib(e.need), j.sizeName(tp))
		} else {
			alt(Change{}, "GPUs of at least %s each: with %s it needs %s per GPU, within %s of a GPU's memory",
				gib(int64(math.Ceil(float64(e.need)/j.util))), j.sizeName(tp), gib(e.need), ratio(j.util))
		}
	}
	return r
}

// tryFunc places the service with a change to its request, against the other services.
type tryFunc func(change func(*Request)) (Decision, *job, bool)

// longest is the longest context, in whole thousands (1024) of tokens and shorter than the
// request's, with which the changed request fits; 0 if none of at least 1024 does.
func (j *job) longest(try tryFunc, change func(*Request)) int {
	l := largest(1, (j.MaxModelLen-1)/1024, func(k int) bool {
		_, _, ok := try(func(r *Request) { change(r); r.MaxModelLen = k * 1024 })
		return ok
	})
	return l * 1024
}

// largest is the largest n in [lo, hi] with ok(n), for ok true up to some point and false
// after; lo-1 when there is none.
func largest(lo, hi int, ok func(int) bool) int {
	best := lo - 1
	for lo <= hi {
		mid := lo + (hi-lo)/2
		if ok(mid) {
			best, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	return best
}

const mibB = 1 << 20

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/gibF) }

func ratio(u float64) string { return strconv.FormatFloat(u, 'f', -1, 64) }

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}

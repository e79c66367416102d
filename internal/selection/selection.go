// Package selection picks the serving runtime for an inference service the
// way OME does (pkg/runtimeselector at 17b77eda), and says for every runtime
// it considered why it was or was not picked. It is a pure function: the
// caller fetches the model and the runtimes.
//
// In reasons, "field A ≠ B" reads "the runtime's A, the model's B".
package selection

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
)

// Runtime is a candidate: a ServingRuntime in the service's namespace
// (Namespaced true) or a ClusterServingRuntime.
type Runtime struct {
	Name       string
	Namespaced bool
	Spec       v1.ServingRuntimeSpec
}

// Model is the resolved base model, with the fields the model agent filled
// in (format, framework, architecture, size, quantization).
type Model struct {
	Name string
	Spec v1.BaseModelSpec
}

// Candidate is one runtime's verdict.
type Candidate struct {
	Runtime    string
	Namespaced bool
	// Score is the best score of the runtime's matching formats (0 when
	// none matches).
	Score int64
	// Reason says why the runtime cannot serve the model; "" when it can.
	Reason   string
	Selected bool
}

// Result is the selected runtime and how it was chosen.
type Result struct {
	Runtime Runtime
	// Format is the best-scoring supported format of the runtime that
	// matches the model; its acceleratorConfig applies.
	Format v1.SupportedModelFormat
	// Candidates is every runtime considered, in decision order: the
	// compatible ones ranked (the first is selected), then the others.
	Candidates []Candidate
}

// Reason codes of Error.
const (
	ReasonNoSupportingRuntime = "NoSupportingRuntime"
	ReasonRuntimeNotFound     = "RuntimeNotFound"
	ReasonRuntimeDisabled     = "RuntimeDisabled"
	ReasonRuntimeIncompatible = "RuntimeIncompatible"
	ReasonModelDisabled       = "ModelDisabled"
)

// Error is a failed selection. Message names every rejection.
type Error struct {
	Reason     string
	Message    string
	Candidates []Candidate
	// MetadataPending is set when a rejection comes from model metadata
	// the agent has not filled yet: selecting again once the model is
	// Ready may succeed.
	MetadataPending bool
}

func (e *Error) Error() string { return e.Message }

// Select picks the runtime for model m among runtimes. explicit is
// isvc.spec.runtime.name ("" selects automatically).
func Select(m Model, runtimes []Runtime, explicit string) (Result, error) {
	if m.Spec.Disabled != nil && *m.Spec.Disabled {
		return Result{}, &Error{Reason: ReasonModelDisabled, Message: fmt.Sprintf("model %s is disabled (spec.disabled: true)", m.Name)}
	}
	// OME lists the namespace's runtimes, then the cluster's.
	rts := append([]Runtime(nil), runtimes...)
	sort.SliceStable(rts, func(i, j int) bool { return rts[i].Namespaced && !rts[j].Namespaced })
	if explicit != "" {
		return selectNamed(m, rts, explicit)
	}
	return selectAuto(m, rts)
}

func selectNamed(m Model, rts []Runtime, name string) (Result, error) {
	var found *verdict
	var cands []Candidate
	var names []string
	for _, rt := range rts {
		names = append(names, rt.Name)
		if rt.Name != name {
			continue
		}
		if found != nil { // a cluster runtime behind a namespaced one
			cands = append(cands, Candidate{Runtime: rt.Name, Namespaced: rt.Namespaced,
				Reason: "hidden by the ServingRuntime of the same name in the service's namespace, which is looked up first"})
			continue
		}
		v := evaluate(&m.Spec, rt, false)
		found = &v
		cands = append(cands, v.candidate(v.reason == ""))
	}
	if found == nil {
		msg := fmt.Sprintf("runtime %s not found: no ServingRuntime %s in the service's namespace and no ClusterServingRuntime %s", name, name, name)
		if len(names) > 0 {
			msg += " (runtimes: " + strings.Join(names, ", ") + ")"
		}
		return Result{}, &Error{Reason: ReasonRuntimeNotFound, Message: msg}
	}
	switch {
	case found.disabled:
		return Result{}, &Error{Reason: ReasonRuntimeDisabled, Candidates: cands,
			Message: fmt.Sprintf("runtime %s is disabled (spec.disabled: true)", name)}
	case found.reason != "":
		return Result{}, &Error{Reason: ReasonRuntimeIncompatible, Candidates: cands, MetadataPending: found.pending,
			Message: fmt.Sprintf("runtime %s cannot serve model %s: %s", name, m.Name, found.reason)}
	}
	return Result{Runtime: found.rt, Format: found.rt.Spec.SupportedModelFormats[found.format], Candidates: cands}, nil
}

func selectAuto(m Model, rts []Runtime) (Result, error) {
	var ok, rejected []verdict
	for _, rt := range rts {
		if v := evaluate(&m.Spec, rt, true); v.reason == "" {
			ok = append(ok, v)
		} else {
			rejected = append(rejected, v)
		}
	}
	// OME sorts the namespace's matches and the cluster's apart, then puts
	// the namespace's first.
	sort.SliceStable(ok, func(i, j int) bool {
		a, b := ok[i], ok[j]
		switch {
		case a.rt.Namespaced != b.rt.Namespaced:
			return a.rt.Namespaced
		case a.score != b.score:
			return a.score > b.score
		case a.distance != b.distance:
			return a.distance < b.distance
		}
		return a.rt.Name < b.rt.Name
	})
	var cands []Candidate
	for i, v := range append(ok, rejected...) {
		cands = append(cands, v.candidate(i == 0 && len(ok) > 0))
	}
	if len(ok) > 0 {
		best := ok[0]
		return Result{Runtime: best.rt, Format: best.rt.Spec.SupportedModelFormats[best.format], Candidates: cands}, nil
	}
	e := &Error{Reason: ReasonNoSupportingRuntime, Candidates: cands}
	var why []string
	for _, v := range rejected {
		why = append(why, v.rt.Name+": "+v.reason)
		e.MetadataPending = e.MetadataPending || v.pending
	}
	if len(why) == 0 {
		why = []string{"there are no runtimes (create a ServingRuntime or a ClusterServingRuntime)"}
	}
	e.Message = fmt.Sprintf("no runtime can serve model %s: %s", m.Name, strings.Join(why, "; "))
	return Result{}, e
}

// verdict is one runtime evaluated against the model.
type verdict struct {
	rt       Runtime
	format   int // index of the best matching format; -1 when none
	score    int64
	distance float64 // of the size range to the model's size; lower is closer
	reason   string
	disabled bool
	pending  bool // reason cites metadata the agent has not filled yet
}

func (v verdict) candidate(selected bool) Candidate {
	return Candidate{Runtime: v.rt.Name, Namespaced: v.rt.Namespaced, Score: v.score, Reason: v.reason, Selected: selected}
}

// evaluate checks one runtime. auto considers only autoSelect formats and
// requires a positive score, as OME's automatic selection does.
func evaluate(m *v1.BaseModelSpec, rt Runtime, auto bool) verdict {
	v := verdict{rt: rt, format: -1}
	s := &rt.Spec
	if s.Disabled != nil && *s.Disabled {
		v.disabled, v.reason = true, "disabled (spec.disabled: true)"
		return v
	}
	if len(s.SupportedModelFormats) == 0 {
		v.reason = "lists no supportedModelFormats, so it serves no model"
		return v
	}
	var why []string
	anyAuto, matched, manual := false, false, -1
	for i := range s.SupportedModelFormats {
		f := &s.SupportedModelFormats[i]
		isAuto := f.AutoSelect != nil && *f.AutoSelect
		anyAuto = anyAuto || isAuto
		r, pending := mismatch(m, f)
		if r != "" {
			why = append(why, r)
			v.pending = v.pending || pending
			continue
		}
		matched = true
		if auto && !isAuto {
			if manual < 0 {
				manual = i
			}
			continue
		}
		if sc := score(f); v.format < 0 || sc > v.score {
			v.format, v.score = i, sc
		}
	}
	if !matched {
		v.reason = joinFormats(why)
		return v
	}
	v.pending = false
	var r string
	if r, v.distance = sizeCheck(m, s); r != "" {
		v.reason = r
		return v
	}
	switch {
	case v.format < 0 && !anyAuto:
		v.reason = "autoSelect is false on every supported format (name it in spec.runtime.name)"
	case v.format < 0:
		v.reason = fmt.Sprintf("supportedModelFormats[%d] matches but its autoSelect is false, and no autoSelect format matches (name the runtime in spec.runtime.name)", manual)
	case auto && v.score <= 0:
		v.reason = fmt.Sprintf("score %d is not positive (weight × priority)", v.score)
	}
	return v
}

// joinFormats words the mismatch of every format: once when they agree,
// else each after its index in supportedModelFormats.
func joinFormats(why []string) string {
	if len(slices.Compact(slices.Clone(why))) == 1 {
		return why[0]
	}
	for i := range why {
		why[i] = fmt.Sprintf("[%d] %s", i, why[i])
	}
	return "no supported format matches: " + strings.Join(why, "; ")
}

// mismatch compares a model with one supported format using OME's
// "both unset or both equal" rules. It returns "" on a match; pending
// reports that part of the mismatch is metadata the agent has not filled.
func mismatch(m *v1.BaseModelSpec, f *v1.SupportedModelFormat) (string, bool) {
	var unset, diffs []string
	add := func(r string) {
		if r != "" {
			diffs = append(diffs, r)
		}
	}
	known := m.ModelFormat.Name != "" // the agent always fills the format
	add(pipelineMismatch(m.DiffusionPipeline, f.DiffusionPipeline))
	if f.ModelArchitecture != nil && m.ModelArchitecture == nil {
		unset = append(unset, "modelArchitecture")
	} else {
		add(both("modelArchitecture", f.ModelArchitecture, m.ModelArchitecture))
	}
	if f.Quantization != nil && m.Quantization == nil && !known {
		unset = append(unset, "quantization")
	} else {
		add(both("quantization", f.Quantization, m.Quantization))
	}
	switch a := f.ModelFormat; {
	case a == nil:
		add("the runtime's format has no modelFormat, so OME never matches it")
	case !known:
		unset = append(unset, "modelFormat")
	case a.Name != m.ModelFormat.Name:
		add(fmt.Sprintf("modelFormat %s ≠ %s", a.Name, m.ModelFormat.Name))
	default:
		add(versionMismatch("modelFormat "+a.Name, a.Version, a.Operator, m.ModelFormat.Version))
	}
	switch a, b := f.ModelFramework, m.ModelFramework; {
	case a != nil && b == nil:
		unset = append(unset, "modelFramework")
	case a == nil || b == nil || a.Name != b.Name:
		add(both("modelFramework", frameworkName(a), frameworkName(b)))
	default:
		add(versionMismatch("modelFramework "+a.Name, a.Version, a.Operator, b.Version))
	}
	if len(unset) > 0 {
		it := "it"
		if len(unset) > 1 {
			it = "them"
		}
		diffs = append([]string{fmt.Sprintf("model metadata not yet known (%s unset): wait for the model to be Ready, or set %s in the model's spec", strings.Join(unset, ", "), it)}, diffs...)
	}
	return strings.Join(diffs, ", "), len(unset) > 0
}

// both words OME's rule for an optional field: both unset or both equal.
func both(field string, rt, model *string) string {
	switch {
	case rt == nil && model == nil || rt != nil && model != nil && *rt == *model:
		return ""
	case rt == nil:
		return fmt.Sprintf("the model's %s is %s but the runtime's format names none (OME matches only when both or neither set it)", field, *model)
	case model == nil:
		return fmt.Sprintf("%s %s required, the model sets none", field, *rt)
	}
	return fmt.Sprintf("%s %s ≠ %s", field, *rt, *model)
}

func frameworkName(f *v1.ModelFrameworkSpec) *string {
	if f == nil {
		return nil
	}
	return &f.Name
}

// versionMismatch compares the runtime's version rv (with its operator)
// with the model's mv. Note OME's direction: GreaterThanOrEqual means the
// runtime's version is at least the model's.
func versionMismatch(label string, rv, op, mv *string) string {
	if rv == nil || mv == nil {
		return both(label+" version", rv, mv)
	}
	operator := "Equal"
	if op != nil && (*op == "GreaterThan" || *op == "GreaterThanOrEqual") {
		operator = *op
	}
	a, errA := parseVersion(*rv)
	b, errB := parseVersion(*mv)
	base := fmt.Sprintf("%s version %s ≠ %s", label, *rv, *mv)
	switch {
	case errA != nil || errB != nil:
		bad := *rv
		if errA == nil {
			bad = *mv
		}
		return fmt.Sprintf("%s (%q is not a version OME can compare, so it never matches)", base, bad)
	case a.unofficial() || b.unofficial():
		if a.compare(b) == 0 {
			return ""
		}
		return base + " (a pre-release, dev or build version is compared for equality whatever the operator)"
	case operator == "Equal":
		switch c := a.compare(b); {
		case c == 0:
			return ""
		case c > 0:
			return base + " (OME compares versions for equality unless the runtime sets operator: GreaterThanOrEqual)"
		default:
			return base + " (OME compares versions for equality; operator: GreaterThanOrEqual would not help, as it needs the runtime's version to be at least the model's: this model needs a newer runtime)"
		}
	case a.parts != b.parts || a.prefix != b.prefix:
		return fmt.Sprintf("%s version %s vs %s: with operator %s OME compares only versions written alike (same number of parts, same v prefix)", label, *rv, *mv, operator)
	case operator == "GreaterThan" && a.compare(b) <= 0:
		return fmt.Sprintf("%s version %s ≤ %s: operator GreaterThan needs the runtime's version to be above the model's", label, *rv, *mv)
	case operator == "GreaterThanOrEqual" && a.compare(b) < 0:
		return fmt.Sprintf("%s version %s < %s: operator GreaterThanOrEqual needs the runtime's version to be at least the model's", label, *rv, *mv)
	}
	return ""
}

// pipelineMismatch checks that every field the runtime's diffusion
// pipeline sets is set alike in the model's.
func pipelineMismatch(model, rt json.RawMessage) string {
	var r, m any
	if json.Unmarshal(rt, &r) != nil || r == nil {
		return ""
	}
	_ = json.Unmarshal(model, &m)
	return subset(r, m, "diffusionPipeline")
}

// subset words the first field set in r that m does not set alike.
func subset(r, m any, path string) string {
	rm, ok := r.(map[string]any)
	if !ok {
		if s, isStr := r.(string); isStr && s == "" || reflect.DeepEqual(r, m) {
			return ""
		}
		if m == nil {
			m = "unset"
		}
		return fmt.Sprintf("%s %v ≠ %v", path, r, m)
	}
	mm, ok := m.(map[string]any)
	if !ok {
		return fmt.Sprintf("%s is required by the runtime's format, the model has none", path)
	}
	keys := make([]string, 0, len(rm))
	for k := range rm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := subset(rm[k], mm[k], path+"."+k); why != "" {
			return why
		}
	}
	return ""
}

// score is OME's: (modelFormat.weight + modelFramework.weight) × priority,
// weights and priority defaulting to 1.
func score(f *v1.SupportedModelFormat) int64 {
	p := int64(1)
	if f.Priority != nil {
		p = int64(*f.Priority)
	}
	w := func(w int64) int64 {
		if w == 0 {
			return 1
		}
		return w
	}
	s := w(f.ModelFormat.Weight) * p
	if f.ModelFramework != nil {
		s += w(f.ModelFramework.Weight) * p
	}
	return s
}

// sizeCheck checks the model's size against the runtime's range, when both
// are set, and returns the distance OME ranks by: |min−size| + |max−size|.
func sizeCheck(m *v1.BaseModelSpec, s *v1.ServingRuntimeSpec) (string, float64) {
	if m.ModelParameterSize == nil || s.ModelSizeRange == nil {
		return "", 0
	}
	size, err := m.ModelParameterSize.Count()
	if err != nil {
		return "the model's modelParameterSize: " + err.Error(), 0
	}
	var dist float64
	out := false
	lo, hi := "-", "-"
	for i, b := range []*v1.ParameterSize{s.ModelSizeRange.Min, s.ModelSizeRange.Max} {
		if b == nil {
			continue
		}
		n, err := b.Count()
		if err != nil {
			return "modelSizeRange: " + err.Error(), 0
		}
		if i == 0 {
			lo, out = string(*b), out || size < n
		} else {
			hi, out = string(*b), out || size > n
		}
		dist += math.Abs(n - size)
	}
	if out {
		msg := fmt.Sprintf("modelParameterSize %s is outside modelSizeRange [%s, %s]", *m.ModelParameterSize, lo, hi)
		if s.ModelSizeRange.Max != nil && size > 0 {
			if n, err := s.ModelSizeRange.Max.Count(); err == nil && size > n && size <= 1.25*n {
				// OME compares the exact count, which for a vision-language model includes
				// its vision tower: a "7B" model counts 8.3B.
				msg += " (OME compares the exact parameter count, embeddings and any vision tower included, not the size in the model's name: widen the runtime's modelSizeRange.max or set the model's modelParameterSize)"
			}
		}
		return msg, dist
	}
	return "", dist
}

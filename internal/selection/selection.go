// Package selection picks the serving runtime for an inference service the
// way OME does (pkg/runtimeselector at 17b77eda), and says for every runtime
// it considered why it was or was not picked. It is a pure function: the
// caller fetches the model and the runtimes.
//
// In reasons, "field A ≠ B" reads "the runtime's A, the model's B".
//
// Citadel's additions, each for runtimes OME does not have, so that OME's own
// runtimes select exactly as in OME:
//   - A runtime using Citadel's engine shortcut (spec.engine) is generic: a
//     field its supported format leaves unset (architecture, quantization,
//     framework, format version) matches any model value, where OME wants
//     both unset or both equal. The engine adapter adapts the command line to
//     the model, so one format entry per weight format (and architecture)
//     serves every model of that kind.
//   - A runtime whose engine is ollama serves only ollama:// models.
//   - An ollama:// model whose format the agent has not filled yet is GGUF:
//     Ollama's store holds nothing else.
//   - Runtimes a user applied rank before the built-in ones Citadel installs
//     (annotation citadel.dev/built-in), whatever their scores.
//   - A multi-node runtime (engineConfig.leader/worker, decoderConfig) is
//     never selected: Citadel serves on one host.
//
// A refusal names the field that failed and ends with the fix, as YAML.
package selection

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
)

// Runtime is a candidate: a ServingRuntime in the service's namespace
// (Namespaced true) or a ClusterServingRuntime.
type Runtime struct {
	Name       string
	Namespaced bool
	// BuiltIn marks a runtime Citadel installed (v1.IsBuiltIn): every
	// runtime a user applied ranks before it in automatic selection.
	BuiltIn bool
	Spec    v1.ServingRuntimeSpec
}

// FromCluster is the candidate for a ClusterServingRuntime.
func FromCluster(r *v1.ClusterServingRuntime) Runtime {
	return Runtime{Name: r.Name, BuiltIn: v1.IsBuiltIn(&r.ObjectMeta), Spec: r.Spec}
}

// FromNamespaced is the candidate for a ServingRuntime in the service's namespace.
func FromNamespaced(r *v1.ServingRuntime) Runtime {
	return Runtime{Name: r.Name, Namespaced: true, BuiltIn: v1.IsBuiltIn(&r.ObjectMeta), Spec: r.Spec}
}

func (r Runtime) kind() string {
	if r.Namespaced {
		return v1.KindServingRuntime
	}
	return v1.KindClusterServingRuntime
}

// Model is the resolved base model, with the fields the model agent filled
// in (format, framework, architecture, size, quantization).
type Model struct {
	Name string
	Spec v1.BaseModelSpec
	// Ready: the agent has read the model's files, so metadata still unset will not come; a
	// rejection for it then says to set it, not to wait.
	Ready bool
}

// Candidate is one runtime's verdict.
type Candidate struct {
	Runtime    string
	Namespaced bool
	BuiltIn    bool
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

// Reason codes of Error, declared in api/v1 (see v1.Reasons).
const (
	ReasonNoSupportingRuntime = v1.ReasonNoSupportingRuntime
	ReasonRuntimeNotFound     = v1.ReasonRuntimeNotFound
	ReasonRuntimeDisabled     = v1.ReasonRuntimeDisabled
	ReasonRuntimeIncompatible = v1.ReasonRuntimeIncompatible
	ReasonModelDisabled       = v1.ReasonModelDisabled
)

// Error is a failed selection. Message names every rejection and ends with
// the fix.
type Error struct {
	Reason  string
	Message string
	// Fix is what to change, with YAML ("in InferenceService ... set
	// `spec: {runtime: {name: vllm}}`"); "" when only waiting helps. It is
	// also the end of Message.
	Fix        string
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
	res, err := choose(m, runtimes, explicit)
	var e *Error
	if m.Ready && errors.As(err, &e) && e.MetadataPending {
		// Nothing more will come from the files: the metadata has to be written.
		e.MetadataPending = false
		e.Message = strings.ReplaceAll(e.Message, pendingAdvice, readyAdvice)
		for i := range e.Candidates {
			e.Candidates[i].Reason = strings.ReplaceAll(e.Candidates[i].Reason, pendingAdvice, readyAdvice)
		}
	}
	return res, err
}

// The advice of a rejection for unset model metadata, before and after the model is Ready.
const (
	pendingAdvice = "wait for the model to be Ready, or set"
	readyAdvice   = "the model is Ready and its files do not say: set"
)

func choose(m Model, runtimes []Runtime, explicit string) (Result, error) {
	if m.Spec.Disabled != nil && *m.Spec.Disabled {
		return Result{}, &Error{Reason: ReasonModelDisabled, Message: fmt.Sprintf("model %s is disabled (spec.disabled: true)", m.Name)}
	}
	m.Spec = withInferredFormat(m.Spec)
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
	var others []Runtime
	for _, rt := range rts {
		names = append(names, rt.Name)
		if rt.Name != name {
			others = append(others, rt)
			continue
		}
		if found != nil { // a cluster runtime behind a namespaced one
			cands = append(cands, Candidate{Runtime: rt.Name, Namespaced: rt.Namespaced, BuiltIn: rt.BuiltIn,
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
		e := &Error{Reason: ReasonRuntimeNotFound, Message: msg}
		if alt, err := selectAuto(m, others); err == nil {
			e.setFix(fmt.Sprintf("name one that exists in the InferenceService, `spec: {runtime: {name: %s}}`, or remove spec.runtime (%s is then selected automatically)", alt.Runtime.Name, alt.Runtime.Name))
		} else {
			e.setFix("apply the runtime, or remove spec.runtime from the InferenceService to select one automatically")
		}
		return Result{}, e
	}
	if found.reason == "" {
		return Result{Runtime: found.rt, Format: found.rt.Spec.SupportedModelFormats[found.format], Candidates: cands}, nil
	}
	e := &Error{Reason: ReasonRuntimeIncompatible, Candidates: cands, MetadataPending: found.pending,
		Message: fmt.Sprintf("runtime %s cannot serve model %s: %s", name, m.Name, found.reason)}
	if found.disabled {
		e.Reason, e.Message = ReasonRuntimeDisabled, fmt.Sprintf("runtime %s is disabled (spec.disabled: true)", name)
	}
	switch alt, err := selectAuto(m, others); {
	case found.pending:
		// Waiting for the model's metadata is the fix.
	case err == nil:
		e.setFix(fmt.Sprintf("name a runtime that can serve it in the InferenceService, `spec: {runtime: {name: %s}}`, or remove spec.runtime (%s is then selected automatically)", alt.Runtime.Name, alt.Runtime.Name))
	case found.fix != "":
		e.setFix(fmt.Sprintf("in %s %s set `%s`", found.rt.kind(), name, found.fix))
	}
	return Result{}, e
}

// setFix records the fix and appends it to the message.
func (e *Error) setFix(fix string) {
	e.Fix = fix
	e.Message += " — fix: " + fix
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
	// the namespace's first; Citadel then puts the user's before its own.
	sort.SliceStable(ok, func(i, j int) bool {
		a, b := ok[i], ok[j]
		switch {
		case a.rt.Namespaced != b.rt.Namespaced:
			return a.rt.Namespaced
		case a.rt.BuiltIn != b.rt.BuiltIn:
			return !a.rt.BuiltIn
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
	if fix := autoFix(&m.Spec, rejected); fix != "" {
		e.setFix(fix)
	}
	return Result{}, e
}

// autoFix proposes the smallest change that lets automatic selection
// succeed: naming a runtime that matches but is not auto-selectable, else
// widening one runtime (size range, then a format entry for a runtime that
// already serves the model's weight format), else a new runtime. "" when
// the model's metadata is not known yet (waiting is the fix).
func autoFix(m *v1.BaseModelSpec, rejected []verdict) string {
	for _, v := range rejected {
		if v.manual {
			return fmt.Sprintf("name it in the InferenceService, `spec: {runtime: {name: %s}}`", v.rt.Name)
		}
	}
	for rank := fixSize; rank <= fixFormat; rank++ {
		for _, v := range rejected {
			if v.fixRank == rank && !v.pending {
				return fmt.Sprintf("in %s %s set `%s`", v.rt.kind(), v.rt.Name, v.fix)
			}
		}
	}
	for _, v := range rejected {
		if v.pending {
			return ""
		}
	}
	if m.ModelFormat.Name == "" {
		return ""
	}
	return fmt.Sprintf("apply a ClusterServingRuntime for it, e.g. `spec: {supportedModelFormats: [%s], engineConfig: {runner: {command: [...]}}}`", formatEntry(m, false))
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
	manual   bool // a format matches, but none with autoSelect
	// fix is the change to the runtime's spec, as flow YAML, that would let
	// it serve the model; fixRank says how small a change it is.
	fix     string
	fixRank int
}

// Fix ranks: smaller is preferred.
const (
	fixNone = iota
	fixSize
	fixFormat
)

func (v verdict) candidate(selected bool) Candidate {
	return Candidate{Runtime: v.rt.Name, Namespaced: v.rt.Namespaced, BuiltIn: v.rt.BuiltIn, Score: v.score, Reason: v.reason, Selected: selected}
}

// evaluate checks one runtime. auto considers only autoSelect formats and
// requires a positive score, as OME's automatic selection does.
func evaluate(m *v1.BaseModelSpec, rt Runtime, auto bool) verdict {
	v := verdict{rt: rt, format: -1}
	s := &rt.Spec
	generic := s.Engine != nil
	if s.Disabled != nil && *s.Disabled {
		v.disabled, v.reason, v.fix = true, "disabled (spec.disabled: true)", "spec: {disabled: false}"
		return v
	}
	if path, what := s.MultiNode(); path != "" {
		v.reason = fmt.Sprintf("%s: %s is not supported on one host", path, what)
		return v
	}
	if generic && s.Engine.Name == "ollama" {
		if uri := storageURI(m); !strings.HasPrefix(uri, "ollama://") {
			v.reason = fmt.Sprintf("engine ollama serves only models from an Ollama registry (storage.storageUri ollama://name:tag), and the model's is %s", dash(uri))
			return v
		}
	}
	if len(s.SupportedModelFormats) == 0 {
		v.reason = "lists no supportedModelFormats, so it serves no model"
		v.fix, v.fixRank = fmt.Sprintf("spec: {supportedModelFormats: [%s]}", formatEntry(m, generic)), fixFormat
		return v
	}
	var why []string
	anyAuto, matched, manual := false, false, -1
	sameFormat := false
	for i := range s.SupportedModelFormats {
		f := &s.SupportedModelFormats[i]
		isAuto := f.AutoSelect != nil && *f.AutoSelect
		anyAuto = anyAuto || isAuto
		sameFormat = sameFormat || f.ModelFormat != nil && f.ModelFormat.Name == m.ModelFormat.Name
		r, pending := mismatch(m, f, generic)
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
		if r := archOnly(m, s.SupportedModelFormats, generic); r != "" && len(why) > 3 {
			v.reason = r
		}
		if sameFormat && !v.pending {
			v.fix = fmt.Sprintf("spec: {supportedModelFormats: [..., %s]}", formatEntry(m, generic))
			v.fixRank = fixFormat
		}
		return v
	}
	v.pending = false
	var r string
	if r, v.distance, v.fix = sizeCheck(m, s); r != "" {
		v.reason, v.fixRank = r, fixSize
		return v
	}
	switch {
	case v.format < 0 && !anyAuto:
		v.reason, v.manual = "autoSelect is false on every supported format (name it in spec.runtime.name)", true
	case v.format < 0:
		v.reason, v.manual = fmt.Sprintf("supportedModelFormats[%d] matches but its autoSelect is false, and no autoSelect format matches (name the runtime in spec.runtime.name)", manual), true
	case auto && v.score <= 0:
		v.reason = fmt.Sprintf("score %d is not positive (weight × priority)", v.score)
	}
	return v
}

func storageURI(m *v1.BaseModelSpec) string {
	if m.Storage == nil || m.Storage.StorageURI == nil {
		return ""
	}
	return *m.Storage.StorageURI
}

func dash(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// withInferredFormat fills the format of an ollama:// model the agent has
// not read yet: Ollama's store holds GGUF weights only. The version is the
// one the agent writes, so selection does not change when it does.
func withInferredFormat(m v1.BaseModelSpec) v1.BaseModelSpec {
	if m.ModelFormat.Name == "" && strings.HasPrefix(storageURI(&m), "ollama://") {
		ver := "1.0.0"
		m.ModelFormat = v1.ModelFormat{Name: "gguf", Version: &ver, Weight: 1}
	}
	return m
}

// formatEntry is the supportedModelFormats entry that matches the model,
// as flow YAML. A generic runtime needs only the format and architecture.
func formatEntry(m *v1.BaseModelSpec, generic bool) string {
	var parts []string
	q := func(s string) string { return strconv.Quote(s) }
	if f := m.ModelFormat; f.Name != "" {
		e := "modelFormat: {name: " + f.Name
		if f.Version != nil && !generic {
			e += ", version: " + q(*f.Version)
		}
		parts = append(parts, e+"}")
	}
	if f := m.ModelFramework; f != nil && !generic {
		e := "modelFramework: {name: " + f.Name
		if f.Version != nil {
			e += ", version: " + q(*f.Version)
		}
		parts = append(parts, e+"}")
	}
	if m.ModelArchitecture != nil {
		parts = append(parts, "modelArchitecture: "+*m.ModelArchitecture)
	}
	if m.Quantization != nil && !generic {
		parts = append(parts, "quantization: "+*m.Quantization)
	}
	parts = append(parts, "autoSelect: true")
	return "{" + strings.Join(parts, ", ") + "}"
}

// archOnly words, once, a mismatch where every format that serves the
// model's weight format differs from it only in architecture (a runtime
// listing the architectures its engine implements); "" otherwise.
func archOnly(m *v1.BaseModelSpec, formats []v1.SupportedModelFormat, generic bool) string {
	if m.ModelArchitecture == nil {
		return ""
	}
	var archs []string
	for _, f := range formats {
		if f.ModelFormat == nil || f.ModelFormat.Name != m.ModelFormat.Name {
			continue
		}
		if f.ModelArchitecture == nil {
			return ""
		}
		g := f
		g.ModelArchitecture = m.ModelArchitecture
		if r, _ := mismatch(m, &g, generic); r != "" {
			return ""
		}
		archs = append(archs, *f.ModelArchitecture)
	}
	if len(archs) == 0 {
		return ""
	}
	shown := archs
	if len(shown) > 4 {
		shown = append(slices.Clone(shown[:4]), "…")
	}
	return fmt.Sprintf("modelArchitecture %s is not one of the %d architectures it lists for %s (%s)", *m.ModelArchitecture, len(archs), m.ModelFormat.Name, strings.Join(shown, ", "))
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
//
// For a generic runtime (Citadel's engine shortcut) a field the format
// leaves unset matches any model value.
func mismatch(m *v1.BaseModelSpec, f *v1.SupportedModelFormat, generic bool) (string, bool) {
	var unset, diffs []string
	add := func(r string) {
		if r != "" {
			diffs = append(diffs, r)
		}
	}
	// open reports a field the generic runtime leaves open.
	open := func(rt *string) bool { return generic && rt == nil }
	known := m.ModelFormat.Name != "" // the agent always fills the format
	add(pipelineMismatch(m.DiffusionPipeline, f.DiffusionPipeline))
	switch {
	case open(f.ModelArchitecture):
	case f.ModelArchitecture != nil && m.ModelArchitecture == nil:
		unset = append(unset, "modelArchitecture")
	default:
		add(both("modelArchitecture", f.ModelArchitecture, m.ModelArchitecture))
	}
	switch {
	case open(f.Quantization):
	case f.Quantization != nil && m.Quantization == nil && !known:
		unset = append(unset, "quantization")
	default:
		add(both("quantization", f.Quantization, m.Quantization))
	}
	switch a := f.ModelFormat; {
	case a == nil:
		add("the runtime's format has no modelFormat, so OME never matches it")
	case !known:
		unset = append(unset, "modelFormat")
	case a.Name != m.ModelFormat.Name:
		add(fmt.Sprintf("modelFormat %s ≠ %s", a.Name, m.ModelFormat.Name))
	case open(a.Version):
	default:
		add(versionMismatch("modelFormat "+a.Name, a.Version, a.Operator, m.ModelFormat.Version))
	}
	switch a, b := f.ModelFramework, m.ModelFramework; {
	case generic && a == nil:
	case a != nil && b == nil:
		unset = append(unset, "modelFramework")
	case a == nil || b == nil || a.Name != b.Name:
		add(both("modelFramework", frameworkName(a), frameworkName(b)))
	case open(a.Version):
	default:
		add(versionMismatch("modelFramework "+a.Name, a.Version, a.Operator, b.Version))
	}
	if len(unset) > 0 {
		it := "it"
		if len(unset) > 1 {
			it = "them"
		}
		diffs = append([]string{fmt.Sprintf("model metadata not yet known (%s unset): %s %s in the model's spec", strings.Join(unset, ", "), pendingAdvice, it)}, diffs...)
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
// are set, and returns the distance OME ranks by, |min−size| + |max−size|,
// and the range that would hold the model, as flow YAML.
func sizeCheck(m *v1.BaseModelSpec, s *v1.ServingRuntimeSpec) (reason string, distance float64, fix string) {
	if m.ModelParameterSize == nil || s.ModelSizeRange == nil {
		return "", 0, ""
	}
	size, err := m.ModelParameterSize.Count()
	if err != nil {
		return "the model's modelParameterSize: " + err.Error(), 0, ""
	}
	model := string(*m.ModelParameterSize)
	var dist float64
	var why, want []string
	for i, b := range []*v1.ParameterSize{s.ModelSizeRange.Min, s.ModelSizeRange.Max} {
		if b == nil {
			continue
		}
		n, err := b.Count()
		if err != nil {
			return "modelSizeRange: " + err.Error(), 0, ""
		}
		dist += math.Abs(n - size)
		switch {
		case i == 0 && size < n:
			why = append(why, fmt.Sprintf("modelSizeRange.min %s > model's modelParameterSize %s", *b, model))
			want = append(want, "min: "+model)
		case i == 0:
			want = append(want, "min: "+string(*b))
		case size > n:
			msg := fmt.Sprintf("modelSizeRange.max %s < model's modelParameterSize %s", *b, model)
			if size <= 1.25*n {
				// OME compares the exact count, which for a vision-language model includes
				// its vision tower: a "7B" model counts 8.3B.
				msg += " (OME compares the exact parameter count, embeddings and any vision tower included, not the size in the model's name)"
			}
			why = append(why, msg)
			want = append(want, "max: "+model)
		default:
			want = append(want, "max: "+string(*b))
		}
	}
	if len(why) == 0 {
		return "", dist, ""
	}
	return strings.Join(why, ", "), dist, "spec: {modelSizeRange: {" + strings.Join(want, ", ") + "}}"
}

package main

// docs/reasons.md: one section per kind (models, InferenceServices, Routes, runtimes), each
// reason with who writes it, the phases it comes with, whether it is terminal, what it means
// (its doc comment in api/v1/reasons.go) and what to do (internal/modeltest's cause
// catalogue), then the condition types.

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modeltest"
)

// apiDir is the package whose vocabulary the page documents, relative to the module root.
const apiDir = "api/v1"

// reasonsFile declares the reasons; the page's words come from its doc comments.
const reasonsFile = "reasons.go"

// section is one kind's part of the page.
type section struct {
	title string
	kinds []string
	// causeKind is the kind internal/modeltest's catalogue is asked about ("" : none).
	causeKind string
	// phases are the kind's phases: a phase a reason's doc names for another kind is not its.
	phases []string
	// engine: the section lists the engine phases (internal/supervisor) too.
	engine bool
}

var sections = []section{
	{"Models", []string{v1.KindBaseModel, v1.KindClusterBaseModel}, v1.KindClusterBaseModel,
		[]string{v1.ModelPending, v1.ModelDownloading, v1.ModelVerifying, v1.ModelReady, v1.ModelFailed}, false},
	{"InferenceServices", []string{v1.KindInferenceService}, v1.KindInferenceService,
		[]string{v1.ServicePending, v1.ServiceScheduling, v1.ServiceStarting, v1.ServiceReady, v1.ServiceDegraded, v1.ServiceFailed}, true},
	// A Route's phases and a runtime's have no constants: the gateway and the daemon write them.
	{"Routes", []string{v1.KindRoute}, "", []string{"Ready", "Degraded"}, false},
	{"Runtimes", []string{v1.KindServingRuntime, v1.KindClusterServingRuntime}, "", []string{"Disabled"}, false},
}

// vocab is what the doc comments of api/v1 say.
type vocab struct {
	reason    map[string]string // a reason's value → its meaning
	reasonGrp map[string]string // a reason's value → the doc of its const block
	cond      map[string]string // a condition type → its meaning
	phases    []enginePhase     // the engine phases, in declaration order
}

type enginePhase struct{ name, meaning string }

// readVocab parses api/v1: the values of every Reason*, Cond* and EnginePhase* constant in
// the package, and their doc comments in reasons.go.
func readVocab(root string) (*vocab, error) {
	dir := filepath.Join(root, apiDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	values := map[string]string{} // identifier → value
	var decls *ast.File
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for ident, val := range constValues(f) {
			values[ident] = val
		}
		if n == reasonsFile {
			decls = f
		}
	}
	if decls == nil {
		return nil, fmt.Errorf("%s/%s not found", apiDir, reasonsFile)
	}
	v := &vocab{reason: map[string]string{}, reasonGrp: map[string]string{}, cond: map[string]string{}}
	docOf := map[string]string{}
	for _, d := range decls.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			doc := vs.Doc
			if doc == nil {
				doc = vs.Comment
			}
			for _, n := range vs.Names {
				if doc != nil {
					docOf[n.Name] = meaning(n.Name, doc.Text())
				}
				switch {
				case strings.HasPrefix(n.Name, "Reason"):
					if g.Doc != nil {
						v.reasonGrp[values[n.Name]] = oneLine(g.Doc.Text())
					}
				case strings.HasPrefix(n.Name, "EnginePhase"):
					v.phases = append(v.phases, enginePhase{values[n.Name], docOf[n.Name]})
				}
			}
		}
	}
	// A reason declared in another file (ReasonUnauthorized, admin.go) is described by a
	// comment of its own among the reasons.
	for _, cg := range decls.Comments {
		text := cg.Text()
		ident, _, _ := strings.Cut(text, " ")
		if strings.HasPrefix(ident, "Reason") && docOf[ident] == "" && values[ident] != "" {
			docOf[ident] = meaning(ident, text)
			for _, d := range decls.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Doc != nil && g.Pos() <= cg.Pos() && cg.End() <= g.End() {
					v.reasonGrp[values[ident]] = oneLine(g.Doc.Text())
				}
			}
		}
	}
	for ident, doc := range docOf {
		switch {
		case strings.HasPrefix(ident, "Reason"):
			v.reason[values[ident]] = doc
		case strings.HasPrefix(ident, "Cond"):
			v.cond[values[ident]] = doc
		}
	}
	return v, nil
}

// constValues maps the string constants of f to their values.
func constValues(f *ast.File) map[string]string {
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[n.Name] = strings.Trim(lit.Value, "\"`")
					}
				}
			}
		}
	}
	return out
}

var leadingAside = regexp.MustCompile(`^(\([^)]*\)\s*)?(is also\s+)?`)

// meaning is a doc comment as a sentence: without the identifier it starts with, on one line.
func meaning(ident, doc string) string {
	s := oneLine(doc)
	if rest, ok := strings.CutPrefix(s, ident); ok {
		s = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
		s = leadingAside.ReplaceAllString(s, "")
	}
	return upperFirst(s)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// upperFirst starts a sentence: "no such …" → "No such …", not "storageUri …" or "spec.x …".
func upperFirst(s string) string {
	first, _, _ := strings.Cut(s, " ")
	first = strings.TrimRight(first, ",.;:")
	if strings.ContainsFunc(first, func(r rune) bool { return r < 'a' || r > 'z' }) {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

var (
	phaseRe  = regexp.MustCompile(`\bphase ([A-Z]\w*(?:(?:, | or |; )[A-Z]\w*)*)`)
	phaseSep = regexp.MustCompile(`, | or |; `)
	parenRe  = regexp.MustCompile(`\(([^)]*)\)`)
	wordRe   = regexp.MustCompile(`[A-Za-z]+`)
)

// phasesOf are the phases of the kind (one of valid) a reason's doc (else its block's doc)
// names: "phase Failed", "phase Starting or Degraded".
func phasesOf(valid []string, docs ...string) []string {
	for _, s := range docs {
		var out []string
		for _, m := range phaseRe.FindAllStringSubmatch(s, -1) {
			for _, p := range phaseSep.Split(m[1], -1) {
				if slices.Contains(valid, p) && !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// enginePhasesOf are the engine phases a supervisor reason's doc names in parentheses.
func (v *vocab) enginePhasesOf(doc string) []string {
	var out []string
	for _, m := range parenRe.FindAllStringSubmatch(doc, -1) {
		for _, w := range wordRe.FindAllString(m[1], -1) {
			if slices.ContainsFunc(v.phases, func(p enginePhase) bool { return p.name == w }) && !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// page builds Markdown with GitHub's heading anchors.
type page struct {
	bytes.Buffer
	slugs map[string]int
}

// heading writes a heading and returns its anchor.
func (p *page) heading(level int, text string) string {
	fmt.Fprintf(p, "%s %s\n\n", strings.Repeat("#", level), text)
	return p.anchor(text)
}

// anchor is the anchor GitHub gives the next heading with text.
func (p *page) anchor(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	s := b.String()
	n := p.slugs[s]
	p.slugs[s] = n + 1
	if n > 0 {
		s = fmt.Sprintf("%s-%d", s, n)
	}
	return s
}

// cell escapes text for a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// reasonsMarkdown is docs/reasons.md as the catalogue and doc comments of api/v1 and the cause
// catalogue of internal/modeltest say it.
func reasonsMarkdown(root string) ([]byte, error) {
	v, err := readVocab(root)
	if err != nil {
		return nil, err
	}
	reasons := v1.Reasons()
	var missing []string
	for _, r := range reasons {
		if v.reason[r.Name] == "" {
			missing = append(missing, r.Name)
		}
		if !slices.ContainsFunc(sections, func(s section) bool { return hasAny(s.kinds, r.Kinds) }) {
			return nil, fmt.Errorf("reason %s: kinds %v belong to no section of %s", r.Name, r.Kinds, reasonsPage)
		}
	}
	for _, c := range v1.ConditionTypes() {
		if v.cond[c.Name] == "" {
			missing = append(missing, "condition type "+c.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no doc comment in %s/%s for %s", apiDir, reasonsFile, strings.Join(missing, ", "))
	}

	for _, s := range sections {
		for _, r := range reasons {
			if !r.Problem || !hasAny(s.kinds, r.Kinds) {
				continue
			}
			_, caused := modeltest.CauseOfReason(s.causeKind, r.Name)
			if (s.causeKind == "" || !caused) && len(fixes[r.Name]) == 0 {
				return nil, fmt.Errorf("reason %s (%s) has no fix: add a cause to internal/modeltest's catalogue, or a fix to internal/docgen/fixes.go", r.Name, s.title)
			}
		}
	}

	p := &page{slugs: map[string]int{}}
	p.WriteString("<!-- Generated by `go generate ./internal/docgen` from api/v1/reasons.go and internal/modeltest's cause catalogue. Do not edit. -->\n\n")
	p.heading(1, "Reasons and condition types")
	p.WriteString(`A reason is a CamelCase word in an object's status (` + "`status.reason`" + `, a condition's reason, an
endpoint's reason) or in an event, saying why the object is where it is. ` + "`citadel describe`" + ` shows it with
its message; ` + "`citadel test`" + ` turns it into one root cause and the commands that fix it. This page lists
every reason Citadel writes, by kind, with who writes it, the phases it comes with, what it means and what to do.

**Terminal** means the writer will not move on by itself: it takes a change to the spec, to another object (a
secret, a runtime, the model) or to the server's configuration. **Retried** means it clears on its own (a retry,
a restart, progress) once the cause goes away. Each problem's "What to do" is what ` + "`citadel test`" + ` prints
for it (for routes and runtimes, which it does not test, the steps to take), with ` + "`MODEL`" + `, ` + "`ORG/REPO`" + `, ` + "`FILE`" + `, ` + "`NAME`" + ` and ` + "`NAMESPACE`" + ` (the service) and ` + "`RUNTIME`" + ` in place of your
objects' names.

The admin API's error reasons (NotFound, Conflict, Invalid, …) answer API calls and are not listed here. How the
vocabulary is owned and how to add a reason: [design/0003](design/0003-vocabulary-and-owners.md#reasons-and-condition-types).

`)
	// The contents, written once the anchors are known.
	var toc []string
	body := &page{slugs: p.slugs}
	for _, s := range sections {
		title := fmt.Sprintf("%s (%s)", s.title, strings.Join(s.kinds, ", "))
		toc = append(toc, fmt.Sprintf("- [%s](#%s)", title, body.heading(2, title)))
		body.writeSection(v, s, reasons)
	}
	toc = append(toc, fmt.Sprintf("- [Condition types](#%s)", body.heading(2, "Condition types")))
	body.writeConditions(v)
	p.WriteString(strings.Join(toc, "\n") + "\n\n")
	p.Write(bytes.TrimRight(body.Bytes(), "\n"))
	p.WriteString("\n")
	return p.Bytes(), nil
}

func hasAny(set, kinds []string) bool {
	return slices.ContainsFunc(kinds, func(k string) bool { return slices.Contains(set, k) })
}

// entry is one reason as a section shows it.
type entry struct {
	v1.ReasonInfo
	meaning, outcome, phase string
	cause                   *modeltest.ReasonCause
}

func (p *page) writeSection(v *vocab, s section, reasons []v1.ReasonInfo) {
	var es []entry
	for _, r := range reasons {
		if !hasAny(s.kinds, r.Kinds) {
			continue
		}
		e := entry{ReasonInfo: r, meaning: v.reason[r.Name], outcome: outcome(r), phase: "—"}
		if !r.Event {
			docs := []string{e.meaning, v.reasonGrp[r.Name]}
			if r.Definer == v1.WriterSupervisor { // its own doc names the engine's phases
				docs = docs[1:]
			}
			if ph := phasesOf(s.phases, docs...); len(ph) > 0 {
				e.phase = strings.Join(ph, ", ")
			}
			if r.Definer == v1.WriterSupervisor {
				if ep := v.enginePhasesOf(e.meaning); len(ep) > 0 {
					e.phase += "; engine " + strings.Join(ep, ", ")
				}
			}
		}
		if s.causeKind != "" {
			if c, ok := modeltest.CauseOfReason(s.causeKind, r.Name); ok {
				e.cause = &c
			}
		}
		es = append(es, e)
	}
	n := fmt.Sprintf("%d reasons", len(es))
	if len(es) == 1 {
		n = "1 reason"
	}
	fmt.Fprintf(p, "%s; problems first, then progress and success, then events.\n\n", n)
	slices.SortStableFunc(es, func(a, b entry) int { return rank(a.ReasonInfo) - rank(b.ReasonInfo) })
	anchors := make([]string, len(es))
	save := p.slugs
	// The table links to the entries below: their anchors, as the headings will get them.
	probe := &page{slugs: clone(save)}
	for i, e := range es {
		anchors[i] = probe.anchor("`" + e.Name + "`")
	}
	p.WriteString("| Reason | Outcome | Phase | Written by |\n|---|---|---|---|\n")
	for i, e := range es {
		fmt.Fprintf(p, "| [%s](#%s) | %s | %s | %s |\n", e.Name, anchors[i], e.outcome, cell(e.phase), cell(writers(e.ReasonInfo)))
	}
	p.WriteString("\n")
	if s.engine {
		p.WriteString("An engine process's own phase is in `status.endpoints[].phase`:\n\n| Engine phase | Meaning |\n|---|---|\n")
		for _, ph := range v.phases {
			fmt.Fprintf(p, "| %s | %s |\n", ph.name, cell(upperFirst(ph.meaning)))
		}
		p.WriteString("\n")
	}
	for _, e := range es {
		p.heading(3, "`"+e.Name+"`")
		p.WriteString(e.meaning + "\n\n")
		ph := ""
		if e.phase != "—" {
			ph = " Phase: " + e.phase + "."
		}
		fmt.Fprintf(p, "%s.%s Written by %s.\n\n", upperFirst(e.outcome), ph, writers(e.ReasonInfo))
		if !e.Problem {
			continue
		}
		if e.cause == nil {
			p.WriteString("What to do:\n\n")
			for _, st := range fixes[e.Name] {
				fmt.Fprintf(p, "- %s\n", st)
			}
			p.WriteString("\n")
			continue
		}
		code := ""
		if e.cause.Code != e.Name {
			code = fmt.Sprintf(" as `%s`", e.cause.Code)
		}
		fmt.Fprintf(p, "What to do (`citadel test` reports it%s at step %s):\n\n", code, e.cause.Step)
		for _, st := range e.cause.NextSteps {
			fmt.Fprintf(p, "- %s\n", st)
		}
		p.WriteString("\n")
	}
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// rank orders a section: terminal problems, retried problems, the rest, events.
func rank(r v1.ReasonInfo) int {
	switch {
	case r.Event:
		return 3
	case r.Problem && r.Terminal:
		return 0
	case r.Problem:
		return 1
	}
	return 2
}

func outcome(r v1.ReasonInfo) string {
	switch {
	case r.Event:
		return "event only"
	case r.Problem && r.Terminal:
		return "problem, terminal"
	case r.Problem:
		return "problem, retried"
	}
	return "not a problem"
}

func writers(r v1.ReasonInfo) string {
	w := strings.Join(r.Writers, ", ")
	if r.Definer != "" && !slices.Contains(r.Writers, r.Definer) {
		w += " (from " + r.Definer + "'s Error)"
		if r.Definer == v1.WriterSupervisor {
			w = strings.Join(r.Writers, ", ") + " (from " + r.Definer + ")"
		}
	}
	return w
}

func (p *page) writeConditions(v *vocab) {
	p.WriteString("A condition is `{type, status, reason, message}` in `status.conditions`; its reason is one of the reasons above.\n\n")
	p.WriteString("| Type | Kinds | Written by | Meaning |\n|---|---|---|---|\n")
	for _, c := range v1.ConditionTypes() {
		fmt.Fprintf(p, "| %s | %s | %s | %s |\n", c.Name, strings.Join(c.Kinds, ", "), strings.Join(c.Writers, ", "), cell(condMeaning(v.cond[c.Name])))
	}
	p.WriteString("\n")
}

// condMeaning rewords a condition type's doc for the table, whose columns name its kinds:
// "… BaseModel, ClusterBaseModel (the model agent; the daemon while no agent runs), set only
// once a download was slow." → "… Written by the model agent; the daemon while no agent runs.
// Set only once a download was slow."
func condMeaning(doc string) string {
	var out []string
	for i, sentence := range strings.SplitAfter(doc, ". ") {
		sentence = strings.TrimSpace(sentence)
		first, _, _ := strings.Cut(sentence, " ")
		first = strings.TrimRight(first, ",.")
		if i > 0 && (slices.ContainsFunc(v1.Kinds, func(k v1.KindInfo) bool { return k.Kind == first }) || first == "Every") {
			_, after, _ := strings.Cut(sentence, "(")
			who, rest, _ := strings.Cut(after, ")")
			if who != "" && who != "its writer" {
				out = append(out, "Written by "+who+".")
			}
			if rest = strings.TrimLeft(rest, ", "); rest != "" && rest != "." {
				out = append(out, upperFirst(rest))
			}
			continue
		}
		out = append(out, sentence)
	}
	return strings.Join(out, " ")
}

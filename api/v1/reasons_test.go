package v1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// TestReasonsCatalogue: every Reason* and Cond* constant of reasons.go is in its catalogue
// once, and the catalogue names nothing else (but ReasonUnauthorized, admin.go's, which is
// also a pull reason).
func TestReasonsCatalogue(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	reasons, conds := map[string]bool{ReasonUnauthorized: true}, map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				switch {
				case strings.HasPrefix(n.Name, "Reason"):
					reasons[v] = true
				case strings.HasPrefix(n.Name, "Cond"):
					conds[v] = true
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r.Name] {
			t.Errorf("reason %s listed twice", r.Name)
		}
		seen[r.Name] = true
		if !reasons[r.Name] {
			t.Errorf("reason %s is listed but declared by no constant in reasons.go", r.Name)
		}
		if len(r.Kinds) == 0 || len(r.Writers) == 0 {
			t.Errorf("reason %s: no kind or no writer", r.Name)
		}
		if r.Terminal && !r.Problem {
			t.Errorf("reason %s: terminal but not a problem", r.Name)
		}
	}
	for v := range reasons {
		if !seen[v] {
			t.Errorf("reason %s is declared but missing from Reasons()", v)
		}
	}
	seen = map[string]bool{}
	for _, c := range ConditionTypes() {
		if seen[c.Name] || !conds[c.Name] {
			t.Errorf("condition type %s listed twice or not declared", c.Name)
		}
		seen[c.Name] = true
	}
	for v := range conds {
		if !seen[v] {
			t.Errorf("condition type %s is declared but missing from ConditionTypes()", v)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/apidoc"
	"citadel.dev/citadel/internal/modeltest"
)

const regenerate = "go generate ./internal/docgen"

// TestReasonsPageIsCurrent fails while docs/reasons.md is not what the generator writes: a
// reason (or a change to its doc comment, or to its cause in internal/modeltest) cannot land
// without its page.
func TestReasonsPageIsCurrent(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := reasonsMarkdown(root)
	if err != nil {
		t.Fatalf("generating %s: %v", reasonsPage, err)
	}
	got, err := os.ReadFile(filepath.Join(root, reasonsPage))
	if err != nil {
		t.Fatalf("%v; run: %s", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the generator writes (first difference at line %d); run: %s", reasonsPage, firstDiff(got, want), regenerate)
	}
}

func firstDiff(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// TestEveryReasonIsOnThePage: each reason of the catalogue has an entry in each of its
// kinds' sections, and each problem on a model or a service says what to do.
func TestEveryReasonIsOnThePage(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	page, err := reasonsMarkdown(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range v1.Reasons() {
		if n, want := bytes.Count(page, []byte("### `"+r.Name+"`\n")), sectionsOf(r); n != want {
			t.Errorf("%s: %d entries, want %d (one per section of its kinds %v)", r.Name, n, want, r.Kinds)
		}
		for _, s := range sections {
			if s.causeKind == "" || !hasAny(s.kinds, r.Kinds) || !r.Problem {
				continue
			}
			c, ok := modeltest.CauseOfReason(s.causeKind, r.Name)
			if !ok || len(c.NextSteps) == 0 || c.Code == "" {
				t.Errorf("%s on %s: no cause with next steps from internal/modeltest", r.Name, s.causeKind)
			}
			for _, st := range c.NextSteps {
				if strings.Contains(st, "?") && !strings.Contains(st, "://") {
					t.Errorf("%s on %s: a next step with an unfilled name: %q", r.Name, s.causeKind, st)
				}
			}
		}
	}
}

func sectionsOf(r v1.ReasonInfo) int {
	n := 0
	for _, s := range sections {
		if hasAny(s.kinds, r.Kinds) {
			n++
		}
	}
	return n
}

// TestMeaning: the identifier goes, an aside before the sentence goes, the first word is
// capitalised unless it is a name.
func TestMeaning(t *testing.T) {
	for _, c := range []struct{ ident, doc, want string }{
		{"ReasonX", "ReasonX: no such\nrepository. Terminal.\n", "No such repository. Terminal."},
		{"ReasonX", "ReasonX (admin.go) is also the pull reason for Y.", "The pull reason for Y."},
		{"ReasonX", "ReasonX: storageUri has a scheme.", "storageUri has a scheme."},
		{"ReasonX", "ReasonX: spec.disabled is true.", "spec.disabled is true."},
	} {
		if got := meaning(c.ident, c.doc); got != c.want {
			t.Errorf("meaning(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
}

func TestPhasesOf(t *testing.T) {
	valid := []string{v1.ServicePending, v1.ServiceStarting, v1.ServiceDegraded, v1.ServiceFailed}
	for _, c := range []struct {
		docs []string
		want string
	}{
		{[]string{"x (phase Failed; Pending while y)"}, "Failed Pending"},
		{[]string{"on the runtime (phase Disabled)", "status.reason (phase Starting or Degraded)"}, "Starting Degraded"},
		{[]string{"nothing", ""}, ""},
	} {
		if got := strings.Join(phasesOf(valid, c.docs...), " "); got != c.want {
			t.Errorf("phasesOf(%q) = %q, want %q", c.docs, got, c.want)
		}
	}
}

func TestCondMeaning(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"The download moves. BaseModel, ClusterBaseModel (the model agent), set only once slow.", "The download moves. Written by the model agent. Set only once slow."},
		{"Every replica is ready. InferenceService (the serving controller).", "Every replica is ready. Written by the serving controller."},
		{"The object does what it is for. Every kind with conditions (its writer).", "The object does what it is for."},
	} {
		if got := condMeaning(c.doc); got != c.want {
			t.Errorf("condMeaning(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
}

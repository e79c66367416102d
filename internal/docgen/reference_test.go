package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/apidoc"
)

// TestReferenceIsCurrent fails while docs/reference.md is not what the generator writes: a
// field of api/v1 (or a change to its doc comment, its tag or its validation) cannot land
// without its reference.
func TestReferenceIsCurrent(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := referenceMarkdown(root)
	if err != nil {
		t.Fatalf("generating %s: %v", referencePage, err)
	}
	got, err := os.ReadFile(filepath.Join(root, referencePage))
	if err != nil {
		t.Fatalf("%v; run: %s", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the generator writes (first difference at line %d); run: %s", referencePage, firstDiff(got, want), regenerate)
	}
}

var (
	headingRE = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	anchorRE  = regexp.MustCompile(`\]\(#([^)]+)\)`)
)

// TestReferenceContent checks what a reader looks for: a section per kind, the rows of
// fields that must be given and of fields with a fixed set of values, and in-page links
// that land on a heading.
func TestReferenceContent(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := referenceMarkdown(root)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, k := range v1.Kinds {
		if !strings.Contains(page, "`kind: "+k.Kind+"`") {
			t.Errorf("no section for kind %s", k.Kind)
		}
	}
	for _, row := range []string{
		"| `storageUri` | `string` | **yes** | StorageURI is hf://org/repo[@revision]",
		"| `downloadPolicy` | `string` | no |",
		"One of: `AlwaysDownload`, `ReuseIfExists`.",
		"| `containers` | `[]`[Container](#container) | no |",
		"| `hash` | `string` | **yes** | Hash is the SHA-256 of the key",
		"One of: `round-robin`, `least-outstanding`, `load-aware`, `prefix-affinity`, `session-affinity`.",
		"| `status` | [ModelStatus](#modelstatus) | output |",
	} {
		if !strings.Contains(page, row) {
			t.Errorf("the page lacks %q", row)
		}
	}
	anchors := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(page, -1) {
		anchors[slug(m[1])] = true
	}
	for _, m := range anchorRE.FindAllStringSubmatch(page, -1) {
		if !anchors[m[1]] {
			t.Errorf("link to #%s: no such heading", m[1])
		}
	}
}

// TestEveryProblemHasAFix: on docs/reasons.md, every problem reason says what to do, in
// steps; none is left at "read the message".
func TestEveryProblemHasAFix(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := reasonsMarkdown(root)
	if err != nil {
		t.Fatal(err)
	}
	problems := 0
	for _, sec := range strings.Split(string(b), "\n### ")[1:] {
		name, _, _ := strings.Cut(sec, "\n")
		if !strings.Contains(sec, "\nProblem, ") {
			continue
		}
		problems++
		_, steps, ok := strings.Cut(sec, "What to do")
		if !ok || !strings.Contains(steps, "\n- ") {
			t.Errorf("reason %s: no steps under What to do", name)
		}
	}
	if problems < 50 {
		t.Errorf("found %d problem reasons on the page; the page's form changed?", problems)
	}
}

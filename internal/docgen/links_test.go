package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/apidoc"
)

// handPages are the hand-written pages whose links TestDocLinks checks, relative to the
// module root, with the generated ones they link to.
var handPages = []string{"README.md", "docs/concepts.md", "docs/operations.md", referencePage, reasonsPage}

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	fenceRE = regexp.MustCompile("(?s)```.*?```")
)

// anchors are the heading anchors of a Markdown page, as GitHub makes them (a repeated
// heading gets -1, -2, …).
func anchors(page string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, m := range headingRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(page, ""), -1) {
		s := slug(m[1])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// TestDocLinks: every relative link of the README and the docs pages lands on a file of the
// repository, and every #anchor on a heading of its page.
func TestDocLinks(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range handPages {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		page := fenceRE.ReplaceAllString(string(b), "")
		for _, m := range mdLink.FindAllStringSubmatch(page, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join(root, filepath.Dir(p), file)
			if file == "" {
				path = filepath.Join(root, p)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: link %s: %v", p, target, err)
				continue
			}
			checked++
			if anchor == "" || st.IsDir() || !strings.HasSuffix(path, ".md") {
				continue
			}
			tb, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !anchors(string(tb))[anchor] {
				t.Errorf("%s: link %s: no heading #%s in %s", p, target, anchor, file)
			}
		}
	}
	if checked < 50 {
		t.Errorf("checked %d links; the pages have more: is the link pattern still right?", checked)
	}
}

// TestConceptsNamePhases: docs/concepts.md names every phase of models and services, and
// links the generated pages.
func TestConceptsNamePhases(t *testing.T) {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs/concepts.md"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, s := range sections {
		for _, ph := range s.phases {
			if !strings.Contains(page, "`"+ph+"`") {
				t.Errorf("docs/concepts.md does not name phase %s of %s", ph, s.title)
			}
		}
	}
	for _, k := range v1.Kinds {
		if !strings.Contains(page, "`"+k.Kind+"`") {
			t.Errorf("docs/concepts.md does not name kind %s", k.Kind)
		}
	}
	for _, l := range []string{"](reasons.md)", "](reference.md)"} {
		if !strings.Contains(page, l) {
			t.Errorf("docs/concepts.md lacks a link %s", l)
		}
	}
}

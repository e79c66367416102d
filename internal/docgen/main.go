// Command docgen writes the documentation pages generated from the code: docs/reasons.md,
// the reasons and condition types of api/v1 (their doc comments and catalogue) with what
// `citadel test` says to do about each (internal/modeltest); and docs/reference.md, every
// field of every resource kind, from api/v1's source (internal/apidoc).
//
// Run it from anywhere in the module:
//
//	go generate ./internal/docgen
//
// TestReasonsPageIsCurrent and TestReferenceIsCurrent fail while a page differs from what
// it writes.
package main

//go:generate go run .

import (
	"fmt"
	"os"
	"path/filepath"

	"citadel.dev/citadel/internal/apidoc"
)

// reasonsPage is the page docgen writes, relative to the module root.
const reasonsPage = "docs/reasons.md"

// pages are the pages docgen writes and their generators.
var pages = []struct {
	path string
	gen  func(root string) ([]byte, error)
}{
	{reasonsPage, reasonsMarkdown},
	{referencePage, referenceMarkdown},
}

func main() {
	root, err := apidoc.ModuleRoot()
	for _, pg := range pages {
		if err != nil {
			break
		}
		var page []byte
		if page, err = pg.gen(root); err == nil {
			err = os.WriteFile(filepath.Join(root, pg.path), page, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

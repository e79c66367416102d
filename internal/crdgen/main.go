// Command crdgen writes the CustomResourceDefinitions of Citadel's kinds to
// charts/citadel/crds/, generated from the Go types of api/v1: OME's
// ome.io/v1beta1 kinds (schema-compatible with OME's own CRDs, so OME's files
// apply) and Citadel's citadel.dev/v1alpha1 Route and APIKey.
//
// Run it from anywhere in the module:
//
//	go generate ./internal/crdgen
//
// TestCRDsAreCurrent fails while the files differ from what it writes.
package main

//go:generate go run .

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"citadel.dev/citadel/internal/apidoc"
)

// crdDir is where crdgen writes, relative to the module root.
const crdDir = "charts/citadel/crds"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := apidoc.ModuleRoot()
	if err != nil {
		return err
	}
	files, err := generate()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, crdDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Remove the CRDs of kinds that no longer exist.
	old, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok && strings.Contains(readHead(f), generatedHeader) {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// readHead returns the first bytes of a file, "" when it cannot be read.
func readHead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b[:min(len(b), 200)])
}

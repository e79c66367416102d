package config

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestScratch(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.bad.yaml")
	for _, f := range files {
		items, errs := Load([]string{f}, LoadOptions{})
		fmt.Printf("== %s (%d items)\n", filepath.Base(f), len(items))
		for _, e := range errs {
			fmt.Printf("   %d:%d %q %q | %s | fix: %s\n", e.Line, e.Column, e.Kind, e.Path, e.Message, e.Fix)
		}
		if len(errs) == 0 {
			for _, e := range Check(items, nil) {
				fmt.Printf("  C %d:%d %q %q | %s | fix: %s | w=%v\n", e.Line, e.Column, e.Kind, e.Path, e.Message, e.Fix, e.Warning)
			}
		}
	}
}

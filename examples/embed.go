// Package examples carries the example resource files of the repository in
// the citadel binary: the built-in runtimes that citadel serve installs
// (runtimes/*.yaml) and the seed-001 plan (seed-001/*.yaml). The files on
// disk are the ones users read and apply; these are the same bytes.
package examples

import (
	"embed"
	"io/fs"
)

// Files holds runtimes/*.yaml and seed-001/*.yaml.
//
//go:embed runtimes/*.yaml seed-001/*.yaml
var Files embed.FS

// Runtimes returns the built-in runtimes' files (runtimes/*.yaml), one
// ClusterServingRuntime per engine.
func Runtimes() fs.FS { return sub("runtimes") }

// Seed001 returns the seed-001 plan's files (seed-001/*.yaml).
func Seed001() fs.FS { return sub("seed-001") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(Files, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return f
}

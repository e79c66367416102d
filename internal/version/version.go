// Package version reports the build's version, from -ldflags or the
// module's build information.
package version

import (
	"runtime"
	"runtime/debug"

	v1 "citadel.dev/citadel/api/v1"
)

// Version is set with -ldflags "-X citadel.dev/citadel/internal/version.Version=v0.1.0".
var Version = ""

// Info returns the build's version, Go version and VCS commit.
func Info() v1.VersionInfo {
	info := v1.VersionInfo{Version: Version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

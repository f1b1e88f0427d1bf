// Package version says which prenv this is: its version, the commit it was
// built from, when that commit was made, and the Go that built it.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by the release build (make release) with -ldflags -X; empty in a
// build from source, where the Go toolchain's build information says
// instead (go install ...@vX.Y.Z gives the module's version, a build in a
// git checkout the commit).
var (
	version string
	commit  string
	date    string
)

// Info is what 'prenv version' prints.
type Info struct {
	Version   string `json:"version"`          // v1.2.3, or "devel"
	Commit    string `json:"commit,omitempty"` // the full hash, when known
	Modified  bool   `json:"modified,omitempty"`
	Date      string `json:"date,omitempty"` // the commit's time, RFC 3339 (reproducible: not the build's)
	GoVersion string `json:"go"`
	Platform  string `json:"platform"` // linux/amd64
}

// Get returns the running binary's Info.
func Get() Info {
	info := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info = fromBuildInfo(info, bi)
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// fromBuildInfo fills what the release build did not set from the Go
// toolchain's build information.
func fromBuildInfo(info Info, bi *debug.BuildInfo) Info {
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if info.Commit == "" {
				info.Commit = s.Value
			}
		case "vcs.time":
			if info.Date == "" {
				info.Date = s.Value
			}
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line --version prints.
func (i Info) String() string {
	s := "prenv " + i.Version
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (" + c
		if i.Modified {
			s += ", modified"
		}
		if i.Date != "" {
			s += ", " + i.Date
		}
		s += ")"
	}
	return s + " " + i.GoVersion + " " + i.Platform
}

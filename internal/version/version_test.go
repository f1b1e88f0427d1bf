package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo_TheReleaseBuildsValuesWinOverTheToolchains(t *testing.T) {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/prenv/prenv", Version: "v0.9.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-11-27T03:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := fromBuildInfo(Info{GoVersion: "go1.25.0", Platform: "linux/amd64"}, bi)
	if got.Version != "v0.9.0" || got.Commit != "0123456789abcdef0123456789abcdef01234567" || got.Date != "2026-11-27T03:00:00Z" || !got.Modified {
		t.Fatalf("from the build information: %+v", got)
	}
	if s := got.String(); s != "prenv v0.9.0 (0123456789ab, modified, 2026-11-27T03:00:00Z) go1.25.0 linux/amd64" {
		t.Fatalf("String() = %q", s)
	}
	rel := fromBuildInfo(Info{Version: "v1.0.0", Commit: "feedface", Date: "2026-11-01T00:00:00Z"}, bi)
	if rel.Version != "v1.0.0" || rel.Commit != "feedface" || rel.Date != "2026-11-01T00:00:00Z" {
		t.Fatalf("the release build's values were overwritten: %+v", rel)
	}
	dev := fromBuildInfo(Info{}, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})
	if dev.Version != "" || strings.Contains(dev.String(), "(") {
		t.Fatalf("a build without version information: %+v %q", dev, dev.String())
	}
}

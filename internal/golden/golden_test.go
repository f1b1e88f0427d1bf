package golden

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceCheck_RefusesBeforeAnythingIsBuilt(t *testing.T) {
	dir := t.TempDir()
	sqlFile := filepath.Join(dir, "prod.sql")
	os.WriteFile(sqlFile, []byte("SELECT 1;"), 0o644)
	cases := map[string]struct {
		src  Source
		want string
	}{
		"nothing":   {Source{}, "give exactly one of"},
		"two":       {Source{SQLFile: sqlFile, URL: "postgres://x"}, "give exactly one of"},
		"missing":   {Source{DumpFile: filepath.Join(dir, "nope.dump")}, "no such file"},
		"directory": {Source{SQLFile: dir}, "is a directory"},
		"not a url": {Source{URL: "mysql://u:secret@h/db"}, "not a postgres:// URL"},
	}
	for name, c := range cases {
		err := c.src.Check()
		if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
	if err := (Source{SQLFile: sqlFile}).Check(); err != nil {
		t.Fatal(err)
	}
}

func TestSource_StringHidesThePassword(t *testing.T) {
	got := Source{URL: "postgres://reader:s3cret@prod.internal:5432/shop"}.String()
	if got != "url:postgres://reader:***@prod.internal:5432/shop" {
		t.Fatalf("String() = %q", got)
	}
	got = Source{URL: "postgres://prod.internal/shop?user=reader&password=s3cret&sslmode=require"}.String()
	if strings.Contains(got, "s3cret") || got != "url:postgres://prod.internal/shop?user=reader&password=***&sslmode=require" {
		t.Fatalf("String() of a URL with a password parameter = %q", got)
	}
}

func TestList_SkipsHalfBuiltGenerations(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(Root(home), "1"), 0o755)
	os.WriteFile(filepath.Join(Root(home), "1", "generation.json"), []byte(`{"generation":1}`), 0o644)
	os.MkdirAll(filepath.Join(Root(home), ".build-2-abcd"), 0o755) // a crashed build
	os.MkdirAll(filepath.Join(Root(home), "3"), 0o755)             // no generation.json
	gens, err := List(home)
	if err != nil || len(gens) != 1 || gens[0].Number != 1 {
		t.Fatalf("List = %+v, %v", gens, err)
	}
	if _, err := Current(t.TempDir()); !errors.Is(err, ErrNone) {
		t.Fatalf("Current of nothing = %v", err)
	}
}

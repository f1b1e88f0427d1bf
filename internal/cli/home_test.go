package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/cli"
)

// Issue 9: a relative --home or PRENV_HOME names a directory under the
// current directory, made absolute once (before, --home state was used as
// given, relative to wherever each step happened to run).
func TestHome_ARelativeHomeIsUnderTheCurrentDirectory(t *testing.T) {
	cwd := t.TempDir()
	gen := filepath.Join(cwd, "state", "golden", "1")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, "generation.json"), []byte(`{"generation":1,"source":"sql:seed.sql"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"--home":     {args: []string{"--home", "state"}},
		"PRENV_HOME": {env: map[string]string{"PRENV_HOME": "state"}},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			getenv := func(k string) string {
				if v, ok := c.env[k]; ok {
					return v
				}
				if k == "HOME" {
					return cwd
				}
				return ""
			}
			code := cli.Run(context.Background(), append([]string{"golden", "ls", "-o", "json"}, c.args...),
				cli.Options{Stdout: &out, Stderr: &errb, Getenv: getenv, Dir: cwd})
			if code != 0 || !strings.Contains(out.String(), `"generation": 1`) {
				t.Fatalf("golden ls from %s with a relative home: exit %d\n%s%s", cwd, code, out.String(), errb.String())
			}
		})
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMistypedEnv_ATyposDistanceFromAFieldIsRefused(t *testing.T) {
	err := MistypedEnv([]string{"PATH=/bin", "PRENV_DATABASE_LOCALPG_PORT=5500-5599", "PRENV_HOME=/x"}, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "PRENV_DATABASE_LOCALPG_PORT is not a prenv.yaml field: did you mean PRENV_DATABASE_LOCALPG_PORTS?") {
		t.Fatalf("MistypedEnv = %v", err)
	}
	if err := MistypedEnv([]string{"PRENV_TTL=48h", "PRENV_HOEM=/x"}, nil); err == nil || !strings.Contains(err.Error(), "did you mean PRENV_HOME?") {
		t.Fatalf("PRENV_HOEM: %v", err)
	}
	// The user's own variables pass: referenced by prenv.yaml, far from
	// every field, or the app's and the action's.
	ok := []string{"PRENV_MASKING_SALT=s", "PRENV_SHA=abc", "PRENV_PR=3", "PRENV_COMMAND=up", "PRENV_TEST_REFLINK_DIR=/mnt", "PRENV_DATABASE_LOCALPG_PORTS=1-2", "PRENV_WHATEVER_THE_TEAM_USES=1"}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("version: 1\nowner: ${PRENV_OWNR}\n"), 0o644)
	c, err := Load("", dir, func(n string) string {
		if n == "PRENV_OWNR" {
			return "x"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := MistypedEnv(append(ok, "PRENV_OWNR=x"), c.Referenced); err != nil {
		t.Fatalf("the user's own variables: %v", err)
	}
	for _, f := range []string{"PRENV_DATABASE_LOCALPG_PORTS", "PRENV_MIGRATION_FAIL_ON", "PRENV_RUNTIME_KUBERNETES_SECRET_NAME"} {
		found := false
		for _, v := range FieldVariables() {
			found = found || v == f
		}
		if !found {
			t.Errorf("%s is not among the field variables", f)
		}
	}
}

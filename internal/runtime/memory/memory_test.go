package memory

import (
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/runtimetest"
)

func TestRuntime_Conformance(t *testing.T) {
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T) runtime.Runtime {
			r := New("suite")
			r.FailMigration[runtimetest.BadMigration] = `ERROR: relation "nope" does not exist`
			r.FailDeploy[runtimetest.BadDeploy] = "health check never passed"
			return r
		},
		Spec: func(t *testing.T, _ runtime.Runtime, k env.Key, commit string) runtime.Spec {
			return runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Database: dbclone.Database{URL: "postgres://memory"},
				Labels: env.Labels("suite", k, time.Now(), time.Hour)}
		},
		Foreign: func(t *testing.T, rt runtime.Runtime, k env.Key) { rt.(*Runtime).Foreign(k) },
	})
}

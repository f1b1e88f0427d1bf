package memory

import (
	"testing"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
)

func TestCloner_Conformance(t *testing.T) {
	var world *World
	dbclonetest.Run(t, dbclonetest.Harness{
		New: func(t *testing.T, owner string) dbclone.Cloner {
			if owner == "suite" {
				world = NewWorld()
			}
			return &Cloner{World: world, Owner: owner}
		},
		Golden: func(t *testing.T, c dbclone.Cloner) { c.(*Cloner).World.SetGolden(1) },
	})
}

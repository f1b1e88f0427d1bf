package aurora_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// goldenCluster makes golden generation n of owner as a build does
// (cluster and writer, tagged from creation), promoted or not, with a
// build deadline of deadline from now.
func goldenCluster(t *testing.T, w *world, owner string, n int, promoted bool, deadline time.Duration) string {
	t.Helper()
	id := "prenv-golden-" + itoa(n)
	now := time.Now().UTC()
	tags := map[string]string{env.LabelOwner: owner, aurora.LabelGoldenBuild: itoa(n), aurora.LabelGeneration: itoa(n),
		env.LabelCreatedAt: now.Format(time.RFC3339), env.LabelExpiresAt: now.Add(deadline).Format(time.RFC3339)}
	restore(t, w, id, tags)
	createInstance(t, w, id+"-writer", id, tags)
	if promoted {
		addTags(t, w, aurora.KindCluster, id, map[string]string{aurora.LabelGolden: itoa(n), aurora.LabelGoldenScan: "clean"})
	}
	return id
}

func itoa(n int) string { return strconv.Itoa(n) }

func goldenCloner(w *world, owner string) *aurora.Cloner {
	c := w.cloner(owner)
	c.Options.Source, c.Options.Golden = "", true
	return c
}

// Issue 11: with golden.source.aurora, environments are cloned from the
// newest promoted golden generation; a build in progress, another
// installation's generation and none at all are never cloned.
func TestCloner_GoldenClonesTheNewestPromotedGeneration(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := goldenCloner(w, "team")
	ctx := context.Background()
	k := env.Key{Repo: "acme/shop", PR: 7}
	if err := c.Check(ctx, k); !errors.Is(err, dbclone.ErrNoSource) || !strings.Contains(err.Error(), "prenv golden build") {
		t.Fatalf("Check with no golden generation: %v, want ErrNoSource saying to build one", err)
	}
	goldenCluster(t, w, "team", 1, true, time.Hour)
	goldenCluster(t, w, "team", 2, true, time.Hour)
	goldenCluster(t, w, "team", 3, false, time.Hour) // being built
	goldenCluster(t, w, "other", 4, true, time.Hour) // another installation's
	req := dbclonetest.Request(k)
	req.Labels = env.Labels("team", k, time.Now(), time.Hour)
	db, err := c.Clone(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if db.Generation != 2 || db.Labels[aurora.LabelGeneration] != "2" {
		t.Fatalf("cloned generation %d (tag %q), want 2: the newest promoted of this owner", db.Generation, db.Labels[aurora.LabelGeneration])
	}
	gens, err := c.GoldenGenerations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 3 || !gens[0].Promoted || !gens[1].Promoted || gens[2].Promoted || gens[2].Cluster != "prenv-golden-3" {
		t.Fatalf("golden generations %+v: want this owner's 1, 2 (promoted) and 3 (building)", gens)
	}
}

// Issue 11: the sweeper leaves golden clusters alone, except the cluster
// and writer of a build that timed out unpromoted, which it deletes as
// half-made.
func TestSweep_LeavesGoldenClustersAndDeletesAKilledBuild(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := goldenCloner(w, "team")
	ctx := context.Background()
	goldenCluster(t, w, "team", 1, true, -time.Hour)            // promoted: its old deadline means nothing
	goldenCluster(t, w, "team", 2, false, time.Hour)            // being built
	dead := goldenCluster(t, w, "team", 3, false, -time.Minute) // its builder was killed
	q := env.Query{Owner: "team", Now: time.Now()}
	rs, err := c.Resources(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range rs {
		if r.ID == "golden" {
			continue // the emulator's source, no one's
		}
		listed = append(listed, r.ID)
		if !strings.HasPrefix(r.ID, dead) || r.HalfMade == "" || r.Key.PR != 0 {
			t.Errorf("listed %s %s (half-made %q): want only the killed build's cluster and writer, half-made", r.Kind, r.ID, r.HalfMade)
		}
	}
	if len(listed) != 2 {
		t.Fatalf("listed %v: want %s and its writer", listed, dead)
	}
	for _, r := range rs {
		if r.Kind == aurora.KindCluster && r.ID == dead {
			if err := c.Remove(ctx, q, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	gens, err := c.GoldenGenerations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 2 || gens[0].Number != 1 || gens[1].Number != 2 {
		t.Fatalf("after the sweep: %+v, want generations 1 and 2 untouched", gens)
	}
}

package lifecycle

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

var withApp = store.Providers{Database: "memory", Runtime: "memory", Config: "/src/shop/prenv.yaml", Home: "/var/lib/prenv"}

func TestUp_RecordsItsProvidersInTheStoreAndOnTheResources(t *testing.T) {
	f := newFixture(t)
	f.l.Providers = withApp
	ctx := context.Background()
	k := env.Key{PR: 2}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	e, err := f.l.Store.Get(ctx, k)
	if err != nil || !e.Providers.Same(withApp) || e.Providers.Config != withApp.Config || e.Providers.Home != withApp.Home {
		t.Fatalf("recorded providers %+v, %v", e.Providers, err)
	}
	db, err := f.l.Cloner.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ProvidersFromLabels(db.Labels); !ok || p.Database != "memory" || p.Runtime != "memory" || p.Config != withApp.Config {
		t.Fatalf("the database's labels %v record %+v", db.Labels, p)
	}
	homes, _ := f.rt.List(ctx)
	if len(homes) != 1 || homes[0].Labels[LabelRuntimeProvider] != "memory" || homes[0].Labels[LabelConfig] != withApp.Config {
		t.Fatalf("the runtime's homes %+v", homes)
	}
}

func TestUp_DatabaseOnlyIsLabelledWithNoRuntime(t *testing.T) {
	f := newFixture(t)
	f.l.Runtime, f.l.Providers = nil, store.Providers{Database: "memory", Config: "/a path/with (parens)/prenv.yaml"}
	ctx := context.Background()
	k := env.Key{PR: 3}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	db, _ := f.l.Cloner.Get(ctx, k)
	if db.Labels[LabelRuntimeProvider] != "none" {
		t.Fatalf("labels %v", db.Labels)
	}
	// A path AWS would refuse as a tag value is left to the store.
	if _, ok := db.Labels[LabelConfig]; ok {
		t.Fatalf("labels %v carry a config path that is not a valid tag value", db.Labels)
	}
}

// The break of issue 9, section 6: a down with the defaults (database-only)
// of an environment made with an app deleted the database and left the app.
func TestDown_WithOtherProvidersIsRefusedAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	f.l.Providers = withApp
	ctx := context.Background()
	k := env.Key{PR: 2}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	dbOnly := *f.l
	dbOnly.Runtime, dbOnly.Providers = nil, store.Providers{Database: "memory"}
	_, err := dbOnly.Down(ctx, DownOptions{Key: k})
	var pe *ProvidersError
	if !errors.Is(err, ErrOtherProviders) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "--config /src/shop/prenv.yaml") {
		t.Fatalf("down = %v, want ErrOtherProviders naming the config", err)
	}
	e, _ := f.l.Store.Get(ctx, k)
	if e.State != env.StateReady || e.Closed {
		t.Fatalf("the refused down changed the record: %+v", e)
	}
	if _, err := f.l.Cloner.Get(ctx, k); err != nil {
		t.Fatalf("the database is gone: %v", err)
	}
	if homes, _ := f.rt.List(ctx); len(homes) != 1 {
		t.Fatalf("homes %v", homes)
	}
	if _, err := dbOnly.Up(ctx, UpOptions{Key: k, Commit: "c2"}); !errors.Is(err, ErrOtherProviders) {
		t.Fatalf("up with other providers = %v, want ErrOtherProviders", err)
	}
	if e, err := f.l.Down(ctx, DownOptions{Key: k}); err != nil || e.State != env.StateDeleted {
		t.Fatalf("down with the recorded providers: %+v, %v", e, err)
	}
	if homes, _ := f.rt.List(ctx); len(homes) != 0 {
		t.Fatalf("homes left: %v", homes)
	}
	// Once it is gone, it may be made again with other providers.
	if _, err := dbOnly.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil {
		t.Fatalf("up after down with other providers: %v", err)
	}
}

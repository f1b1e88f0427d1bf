package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// ErrOtherProviders is wrapped by the error of an Up or Down refused
// because the environment was made with other providers than the
// Lifecycle's: going on would tear down or update only part of it.
var ErrOtherProviders = errors.New("the environment was made with other providers")

// ProvidersError is an environment made with other providers than the
// run's.
type ProvidersError struct {
	Name     string
	Recorded store.Providers
	Current  store.Providers
}

func (e *ProvidersError) Error() string {
	from, fix := "the defaults (no prenv.yaml)", "run it from a directory without prenv.yaml and without --config"
	if e.Recorded.Config != "" {
		from, fix = e.Recorded.Config, "run it with --config "+e.Recorded.Config
	}
	return fmt.Sprintf("%s was made with %s from %s, but this configuration has %s: %v; %s (nothing was changed)",
		e.Name, e.Recorded, from, e.Current, ErrOtherProviders, fix)
}

func (e *ProvidersError) Unwrap() error { return ErrOtherProviders }

// Label keys Up adds to env.Labels on every resource, so that a machine
// without the store still sees how an environment was made.
const (
	LabelDatabaseProvider = "prenv.dev/database-provider"
	LabelRuntimeProvider  = "prenv.dev/runtime-provider" // "none" for database-only
	LabelConfig           = "prenv.dev/config"           // absolute path of prenv.yaml, when it fits in a tag
)

// tagValue is what AWS accepts as a tag value, the strictest place the
// labels go (Aurora forwards them as tags; the Kubernetes runtime keeps
// its own label set).
var tagValue = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)

// providerLabels are the labels that record p on a resource.
func providerLabels(p store.Providers) map[string]string {
	if !p.Known() {
		return nil
	}
	rt := p.Runtime
	if rt == "" {
		rt = "none"
	}
	l := map[string]string{LabelDatabaseProvider: p.Database, LabelRuntimeProvider: rt}
	if p.Config != "" && tagValue.MatchString(p.Config) {
		l[LabelConfig] = p.Config
	}
	return l
}

// ProvidersFromLabels reads the providers a resource's labels record (names
// and configuration file, not the locating settings); false when the
// resource was made before prenv labelled them.
func ProvidersFromLabels(labels map[string]string) (store.Providers, bool) {
	db, rt := labels[LabelDatabaseProvider], labels[LabelRuntimeProvider]
	if db == "" || rt == "" {
		return store.Providers{}, false
	}
	if rt == "none" {
		rt = ""
	}
	return store.Providers{Database: db, Runtime: rt, Config: labels[LabelConfig]}, true
}

// checkProviders refuses k when its record says it was made with other
// providers than l's. A record without providers (made by an older prenv),
// an environment already deleted and a Lifecycle without Providers are not
// refused.
func (l *Lifecycle) checkProviders(ctx context.Context, k env.Key) error {
	if !l.Providers.Known() {
		return nil
	}
	e, err := l.Store.Get(ctx, k)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case e.State == env.StateDeleted || !e.Providers.Known() || e.Providers.Same(l.Providers):
		return nil
	}
	return &ProvidersError{Name: k.Name(), Recorded: e.Providers, Current: l.Providers}
}

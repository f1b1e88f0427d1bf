package golden

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/pgserver"
)

var _ env.Inventory = Leftovers{}

// Leftovers is what interrupted golden builds left under Home (their
// .build-* directories, perhaps with a postgres still running), as the
// sweeper sees them: a provider of its own ("golden", Kind "build"). They
// are prenv's by where they are; a build in progress is never listed, and
// never removed.
type Leftovers struct {
	Home string
	// ServerUID is the user PostgreSQL runs as (pgserver.User.UID): a
	// build directory belongs to it or to prenv's own user, and one of
	// anyone else is reported and left alone.
	ServerUID int
}

// halfBuilt is what a sweep plan says of a build directory.
const halfBuilt = "a golden build was interrupted"

// Resources implements env.Inventory: one resource per .build-*
// directory whose builder is not alive (it holds the build's lock while
// it is), created at the directory's last change. A directory prenv
// cannot claim (another user's, a link) is listed with a Problem, so the
// sweeper keeps it and says why.
func (l Leftovers) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	root := Root(l.Home)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list golden builds in %s: %w", root, err)
	}
	var out []env.Resource
	for _, e := range entries {
		if !buildName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if lock.Held(filepath.Join(dir, buildLock)) {
			continue // its builder is at work
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			continue // removed meanwhile
		}
		r := env.Resource{Provider: "golden", Kind: "build", ID: e.Name(), Local: true, CreatedAt: fi.ModTime().UTC(), HalfMade: halfBuilt}
		if pid, ok := (pgserver.Server{DataDir: filepath.Join(dir, "data")}).PID(); ok {
			r.HalfMade += fmt.Sprintf("; its postgres still runs (pid %d)", pid)
		} else if pids := postgresOn(filepath.Join(dir, "data")); len(pids) > 0 {
			r.HalfMade += fmt.Sprintf("; its postgres still runs (pid %d)", pids[0])
		}
		if err := buildDir(fi, l.ServerUID); err != nil {
			r.HalfMade, r.Problem = "", err.Error()+": left alone"
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove implements env.Inventory: it stops the postgres a dead builder
// left running in the build directory and removes it, as the next build
// would. It is nil if the directory is gone; an error wrapping
// env.ErrNotOurs if it is not a build directory of prenv's; an error,
// touching nothing, while a golden build runs (it cleans up itself, under
// the lock that serializes builds) or holds this directory.
func (l Leftovers) Remove(ctx context.Context, q env.Query, r env.Resource) error {
	if r.Provider != "golden" || r.Kind != "build" || !buildName.MatchString(r.ID) {
		return fmt.Errorf("remove golden build %q: not a build directory's name (.build-N-xxxxxxxx)", r.ID)
	}
	root := Root(l.Home)
	dir := filepath.Join(root, r.ID)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Builds are serialized by the root's lock, held from before a build
	// makes its directory until after it locks it: under it, a directory
	// whose lock is free is a dead builder's.
	try, cancel := context.WithCancel(ctx)
	cancel()
	unlock, err := lock.File(try, filepath.Join(root, ".lock"))
	if err != nil {
		return fmt.Errorf("remove golden build %s: a golden build is running now (it removes what dead builds left itself); left for the next sweep", r.ID)
	}
	defer unlock()
	err = removeDead(dir, l.ServerUID)
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, errBuilding):
		return fmt.Errorf("remove golden build %s: %w; left", r.ID, err)
	case errors.Is(err, errNotBuild):
		return fmt.Errorf("remove golden build %s: %v: %w", r.ID, err, env.ErrNotOurs)
	}
	return fmt.Errorf("remove golden build %s: %w", r.ID, err)
}

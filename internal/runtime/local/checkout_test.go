package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/testenv"
)

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=prenv", "-c", "user.email=prenv@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// origin is a repository with a commit on main and a pull request's head
// (refs/pull/7/head, as GitHub keeps it) that a clone does not fetch.
func origin(t *testing.T) (dir, mainCommit, prCommit string) {
	dir = t.TempDir()
	git(t, dir, "init", "--quiet")
	os.WriteFile(filepath.Join(dir, "version.txt"), []byte("main\n"), 0o644)
	git(t, dir, "add", ".")
	git(t, dir, "commit", "--quiet", "-m", "main")
	mainCommit = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "checkout", "--quiet", "-b", "feature")
	os.WriteFile(filepath.Join(dir, "version.txt"), []byte("pull request 7\n"), 0o644)
	git(t, dir, "commit", "--quiet", "-am", "pr")
	prCommit = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "update-ref", "refs/pull/7/head", prCommit)
	git(t, dir, "checkout", "--quiet", "main")
	git(t, dir, "branch", "--quiet", "-D", "feature")
	return dir, mainCommit, prCommit
}

// With app.checkout, each environment builds its own commit's tree, not the
// working tree; a pull request's commit that prenv serve heard of before
// the repository had it is fetched from origin; a commit that is nowhere,
// or that is no hash, fails the build with what to do and runs nothing.
func TestBuild_ChecksOutThePullRequestsCommitFetchingItWhenMissing(t *testing.T) {
	up, mainCommit, prCommit := origin(t)
	work := filepath.Join(t.TempDir(), "shop")
	git(t, filepath.Dir(work), "clone", "--quiet", "--no-local", up, work)
	os.WriteFile(filepath.Join(work, "version.txt"), []byte("uncommitted\n"), 0o644)
	if exec.Command("git", "-C", work, "cat-file", "-e", prCommit).Run() == nil {
		t.Fatal("the clone has the pull request's commit already: the test proves nothing")
	}
	home, claims := sweepHome(t)
	testenv.Reachable(t, filepath.Dir(home)) // the environment's user runs the build
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	rt := sweepRuntime(t, home, "suite", claims)
	rt.Dir = work
	rt.Repository = "acme/shop"
	rt.App = config.App{Checkout: true, Build: `cp version.txt built.txt && echo "$PRENV_REPOSITORY" > repository.txt`}
	built := func(pr int, commit string) (string, error) {
		prepare(t, rt, pr)
		k := env.Key{PR: pr}
		spec := runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Labels: env.Labels(rt.Owner, k, time.Now(), time.Hour)}
		if err := rt.Build(context.Background(), spec); err != nil {
			return "", err
		}
		b, err := os.ReadFile(filepath.Join(rt.workDir(k.Name(), commit), "built.txt"))
		return string(b), err
	}
	if got, err := built(7, prCommit); err != nil || got != "pull request 7\n" {
		t.Fatalf("pr-7 at its head: built %q, %v", got, err)
	}
	// The default repository's environments keep the short names, and
	// their app is still told the repository.
	if b, _ := os.ReadFile(filepath.Join(rt.workDir("pr-7", prCommit), "repository.txt")); string(b) != "acme/shop\n" {
		t.Fatalf("PRENV_REPOSITORY of pr-7: %q", b)
	}
	if got, err := built(8, mainCommit); err != nil || got != "main\n" {
		t.Fatalf("pr-8 at main's commit: built %q, %v", got, err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	for _, commit := range []string{strings.Repeat("ab", 20), "--upload-pack=touch " + marker} {
		_, err := built(9, commit)
		var se *runtime.StepError
		if !errors.As(err, &se) || se.Step != "build" || !strings.Contains(err.Error(), "git fetch origin pull/9/head") {
			t.Fatalf("commit %q: %v", commit, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a commit given as an option ran a command")
	}
}

package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recorded is what ls and status print of an environment, with the
// resources that show it.
type recorded struct {
	status
	Resources []string `json:"resources"`
}

// Two PRENV_HOMEs on one machine stand for two GitHub Actions runners,
// each starting with an empty store, on one cluster and one AWS account.
func TestResourcesAreTheRecord_TwoRunnersShareOneEnvironment(t *testing.T) {
	first, c := kubeHarness(t, "")
	first.extra = append(first.extra, "PRENV_REPOSITORY=acme/shop")
	api, emu, _ := useAurora(t, first, 50)
	second := first.anotherMachine()
	ctx := context.Background()
	show := func(h *harness, args ...string) recorded {
		t.Helper()
		var r recorded
		out := h.must(append(args, "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return r
	}
	list := func(h *harness, args ...string) []recorded {
		t.Helper()
		var rs []recorded
		out := h.must(append([]string{"ls", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("ls: %v\n%s", err, out)
		}
		return rs
	}
	modifies := func() int { return emu.Stats().ByAction["ModifyDBCluster"] }

	first.must("up", "--pr", "51", "--sha", "c1")
	made := show(first, "status", "pr-51")
	if made.State != "ready" || made.Commit != "c1" || !strings.HasPrefix(made.Database.URL, "postgres://") {
		t.Fatalf("the first runner's up: %+v", made)
	}
	set := modifies()

	// The second runner has no record, and sees it all the same.
	ls := list(second)
	if len(ls) != 1 || ls[0].PR != 51 || ls[0].State != "ready" || ls[0].Commit != "c1" || ls[0].URL != "https://pr-51.preview.example.com" ||
		!strings.Contains(strings.Join(ls[0].Resources, ","), "kubernetes namespace pr-51") || !strings.Contains(strings.Join(ls[0].Resources, ","), "aurora cluster prenv-pr-51") {
		t.Fatalf("ls on the second runner: %+v", ls)
	}
	if out := second.must("ls"); !strings.Contains(out, "pr-51") || !strings.Contains(out, "https://pr-51.preview.example.com") {
		t.Fatalf("ls on the second runner:\n%s", out)
	}
	st := show(second, "status", "pr-51")
	if st.State != "ready" || st.Commit != "c1" || st.URL != made.URL || len(st.Resources) < 2 {
		t.Fatalf("status on the second runner: %+v", st)
	}
	if _, errs, code := second.run("status", "pr-52"); code != 5 {
		t.Fatalf("status of an environment nobody made: exit %d\n%s", code, errs)
	}

	// Its up adopts: the same database, the password read back from the
	// namespace's Secret (a SELECT 1 through the endpoint proves it), none
	// set anew, no second cluster or namespace.
	second.must("up", "--pr", "51", "--sha", "c1")
	again := show(second, "status", "pr-51")
	if again.State != "ready" || again.Database.URL != made.Database.URL || !strings.HasPrefix(again.Database.Ready, "select 1") || modifies() != set {
		t.Fatalf("the second runner's up: %+v, %d more ModifyDBCluster: want the first runner's database and password", again, modifies()-set)
	}
	second.must("up", "--pr", "51", "--sha", "c2")
	if got := show(first, "status", "pr-51"); got.Commit != "c2" || got.State != "ready" {
		t.Fatalf("the first runner, after the second deployed c2: %+v", got)
	}
	if got := strings.Join(clusters(t, api), " "); got != "golden=available prenv-pr-51="+strings.Split(got, "prenv-pr-51=")[1] || strings.Count(got, "prenv-") != 1 {
		t.Fatalf("clusters: %s", got)
	}
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "prenv.dev/owner=prenv"})
	if err != nil || len(nss.Items) != 1 {
		t.Fatalf("namespaces of prenv: %d, %v", len(nss.Items), err)
	}

	// The second runner brings it down; the first sees it gone.
	second.must("down", "pr-51")
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "pr-51", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace after down: %v", err)
	}
	if got := strings.Join(clusters(t, api), " "); got != "golden=available" {
		t.Fatalf("clusters after down: %s", got)
	}
	if ls := list(first); len(ls) != 0 {
		t.Fatalf("ls on the first runner after the second's down: %+v", ls)
	}
	if ls := list(first, "--all"); len(ls) != 1 || ls[0].State != "deleted" || !strings.Contains(ls[0].Error, "another machine") {
		t.Fatalf("ls --all on the first runner: %+v", ls)
	}
}

package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type workflowFile struct {
	On map[string]struct {
		Types []string `yaml:"types"`
	} `yaml:"on"`
	Concurrency struct {
		Group            string `yaml:"group"`
		CancelInProgress bool   `yaml:"cancel-in-progress"`
	} `yaml:"concurrency"`
	Permissions map[string]string `yaml:"permissions"`
	Jobs        map[string]struct {
		If    string `yaml:"if"`
		Steps []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func TestInitGitHub_WritesThePreviewAndTeardownWorkflows(t *testing.T) {
	h := newHarness(t)
	// The workflows are for Aurora, whose environments outlive the job.
	h.extra = append(h.extra, "PRENV_DATABASE_PROVIDER=aurora", "PRENV_DATABASE_AURORA_SOURCE_CLUSTER=prod-golden",
		"PRENV_DATABASE_AURORA_REGION=eu-west-1", "PRENV_DATABASE_AURORA_REQUIRE_SECURITY_GROUPS=false")
	repo := t.TempDir()
	const role = "arn:aws:iam::111122223333:role/prenv-previews"
	goldenRole := "arn:aws:iam::111122223333:role/prenv-golden"
	h.must("init", "github", "--dir", repo, "--role-arn", role, "--golden-role-arn", goldenRole, "--region", "eu-west-1")
	read := func(name string) workflowFile {
		data, err := os.ReadFile(filepath.Join(repo, ".github", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		var w workflowFile
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatalf("%s is not YAML: %v", name, err)
		}
		return w
	}
	check := func(name string, types []string, command string) {
		w := read(name)
		if strings.Join(w.On["pull_request"].Types, ",") != strings.Join(types, ",") {
			t.Errorf("%s runs on %v", name, w.On["pull_request"].Types)
		}
		if w.Concurrency.Group != "pr-${{ github.event.pull_request.number }}" || !w.Concurrency.CancelInProgress {
			t.Errorf("%s concurrency %+v", name, w.Concurrency)
		}
		if w.Permissions["id-token"] != "write" {
			t.Errorf("%s permissions %v", name, w.Permissions)
		}
		var job = w.Jobs["preview"]
		if command == "down" {
			job = w.Jobs["teardown"]
		}
		if !strings.Contains(job.If, "head.repo.full_name == github.repository") || len(job.Steps) != 3 {
			t.Fatalf("%s job %+v", name, job)
		}
		if aws := job.Steps[1]; !strings.HasPrefix(aws.Uses, "aws-actions/configure-aws-credentials@") || aws.With["role-to-assume"] != role || aws.With["aws-region"] != "eu-west-1" {
			t.Errorf("%s credentials step %+v", name, aws)
		}
		if p := job.Steps[2]; p.Uses != "prenv/prenv@main" || p.With["command"] != command {
			t.Errorf("%s prenv step %+v", name, p)
		}
	}
	check("preview.yml", []string{"opened", "synchronize", "reopened"}, "up")
	check("preview-teardown.yml", []string{"closed"}, "down")
	data, err := os.ReadFile(filepath.Join(repo, ".github", "workflows", "preview-sweep.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var sweep struct {
		On struct {
			Schedule []struct {
				Cron string `yaml:"cron"`
			} `yaml:"schedule"`
		} `yaml:"on"`
		Concurrency struct {
			Group string `yaml:"group"`
		} `yaml:"concurrency"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Steps []struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &sweep); err != nil {
		t.Fatalf("preview-sweep.yml is not YAML: %v", err)
	}
	if len(sweep.On.Schedule) != 1 || len(strings.Fields(sweep.On.Schedule[0].Cron)) != 5 {
		t.Errorf("preview-sweep.yml schedule %+v: want one nightly cron", sweep.On.Schedule)
	}
	if sweep.Permissions["id-token"] != "write" || sweep.Permissions["pull-requests"] != "write" || sweep.Concurrency.Group == "" {
		t.Errorf("preview-sweep.yml permissions %v, concurrency %q", sweep.Permissions, sweep.Concurrency.Group)
	}
	steps := sweep.Jobs["sweep"].Steps
	if len(steps) != 3 || steps[1].With["role-to-assume"] != role || steps[2].Uses != "prenv/prenv@main" || steps[2].With["command"] != "sweep" || steps[2].With["args"] != "--apply" {
		t.Errorf("preview-sweep.yml steps %+v", steps)
	}

	data, err = os.ReadFile(filepath.Join(repo, ".github", "workflows", "preview-golden.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var nightly struct {
		On struct {
			Schedule []struct {
				Cron string `yaml:"cron"`
			} `yaml:"schedule"`
		} `yaml:"on"`
		Concurrency struct {
			Group            string `yaml:"group"`
			CancelInProgress bool   `yaml:"cancel-in-progress"`
		} `yaml:"concurrency"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			If          string `yaml:"if"`
			Environment string `yaml:"environment"`
			Steps       []struct {
				Uses string            `yaml:"uses"`
				Env  map[string]string `yaml:"env"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &nightly); err != nil {
		t.Fatalf("preview-golden.yml is not YAML: %v", err)
	}
	if len(nightly.On.Schedule) != 1 || len(strings.Fields(nightly.On.Schedule[0].Cron)) != 5 {
		t.Errorf("preview-golden.yml schedule %+v: want one nightly cron", nightly.On.Schedule)
	}
	if nightly.Permissions["id-token"] != "write" || nightly.Concurrency.Group != "prenv-golden" || nightly.Concurrency.CancelInProgress {
		t.Errorf("preview-golden.yml permissions %v, concurrency %+v: want id-token write and one build at a time, never cancelled", nightly.Permissions, nightly.Concurrency)
	}
	if job := nightly.Jobs["golden"]; job.If != "github.ref == 'refs/heads/main'" || job.Environment != "prenv-golden" {
		t.Errorf("preview-golden.yml job if %q environment %q: want the default branch only, in the environment the golden role trusts", job.If, job.Environment)
	}
	gsteps := nightly.Jobs["golden"].Steps
	if len(gsteps) != 3 || gsteps[1].With["role-to-assume"] != goldenRole || gsteps[2].Uses != "prenv/prenv@main" || gsteps[2].With["command"] != "golden" || gsteps[2].With["args"] != "build" ||
		gsteps[2].Env["PRENV_MASKING_SALT"] != "${{ secrets.PRENV_MASKING_SALT }}" {
		t.Errorf("preview-golden.yml steps %+v: want prenv golden build with the masking salt from a secret", gsteps)
	}

	// Again: refused, nothing changed.
	os.WriteFile(filepath.Join(repo, ".github", "workflows", "preview.yml"), []byte("# the team's own\n"), 0o644)
	h.refused(2, "already exists", "init", "github", "--dir", repo, "--role-arn", role, "--region", "eu-west-1")
	if data, _ := os.ReadFile(filepath.Join(repo, ".github", "workflows", "preview.yml")); string(data) != "# the team's own\n" {
		t.Fatal("an existing workflow was replaced without --force")
	}
	empty := t.TempDir()
	h.refused(2, "--role-arn", "init", "github", "--dir", empty, "--role-arn", "prenv-previews", "--region", "eu-west-1")
	h.refused(2, "--region", "init", "github", "--dir", empty, "--role-arn", role, "--region", "Ireland")
	h.refused(2, "give the build a role of its own", "init", "github", "--dir", empty, "--role-arn", role, "--golden-role-arn", role, "--region", "eu-west-1")
	if _, err := os.Stat(filepath.Join(empty, ".github")); !os.IsNotExist(err) {
		t.Fatal("bad input wrote something")
	}
	// Without a golden role, no workflow that reads production is written.
	if out := h.must("init", "github", "--dir", empty, "--role-arn", role, "--region", "eu-west-1"); !strings.Contains(out, "preview-golden.yml (the nightly golden build) not written") {
		t.Fatalf("init without --golden-role-arn: %s", out)
	}
	if _, err := os.Stat(filepath.Join(empty, ".github", "workflows", "preview-golden.yml")); !os.IsNotExist(err) {
		t.Fatalf("preview-golden.yml written without a golden role: %v", err)
	}
}

func TestActionYML_RunsPrenvWithItsInputsAsEnvironmentNotInterpolatedIntoTheScript(t *testing.T) {
	root := filepath.Join("..", "..")
	data, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Inputs  map[string]any `yaml:"inputs"`
		Outputs map[string]struct {
			Value string `yaml:"value"`
		} `yaml:"outputs"`
		Runs struct {
			Using string `yaml:"using"`
			Steps []struct {
				ID  string            `yaml:"id"`
				Run string            `yaml:"run"`
				Env map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	if a.Runs.Using != "composite" || a.Inputs["version"] == nil || a.Outputs["url"].Value != "${{ steps.prenv.outputs.url }}" {
		t.Fatalf("action.yml: %+v", a)
	}
	for _, s := range a.Runs.Steps {
		if strings.Contains(s.Run, "${{") {
			t.Errorf("step %q interpolates an expression into its script (script injection): %s", s.ID, s.Run)
		}
	}
}

// With the embedded default the environments live on prenv serve's machine:
// init github writes no workflows, says how to point the repository's
// webhooks at prenv serve, and refuses an AWS role (issue 13).
func TestInitGitHub_TheEmbeddedDefaultGetsWebhooksNotWorkflows(t *testing.T) {
	h := newHarness(t)
	repo := t.TempDir()
	h.extra = append(h.extra, "PRENV_PUBLIC_URL=https://prenv.example.com")
	out := h.must("init", "github", "--dir", repo)
	for _, want := range []string{"database.provider is localpg", "Payload URL:  https://prenv.example.com/webhooks/github", "Events:       Pull requests", "github.webhook_secret"} {
		if !strings.Contains(out, want) {
			t.Errorf("init github says no %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, ".github")); !os.IsNotExist(err) {
		t.Fatalf("workflows were written for the embedded default: %v", err)
	}
	h.refused(2, "--role-arn: prenv.yaml's database.provider is localpg, which assumes no AWS role", "init", "github", "--dir", repo, "--role-arn", "arn:aws:iam::111122223333:role/prenv-previews", "--region", "eu-west-1")
}

func TestInitGitHub_PinsTheOwnerIDEveryRunnerReads(t *testing.T) {
	h := newHarness(t)
	h.dir = t.TempDir()
	cfg := "version: 1\n# previews of the shop\nrepository: acme/shop\ndatabase:\n  provider: aurora\n  aurora: {source_cluster: prod-golden, region: eu-west-1, require_security_groups: false}\n"
	path := filepath.Join(h.dir, "prenv.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::111122223333:role/prenv-previews"
	// An owner id that is no label value, or an app that would run on the
	// runner, is refused before anything is written.
	h.refused(2, "--owner", "init", "github", "--dir", h.dir, "--role-arn", role, "--owner", "Acme Shop")
	if err := os.WriteFile(filepath.Join(h.dir, "app.yaml"), []byte(cfg+"app: {start: ./server}\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	h.refused(2, "would run on the GitHub runner", "--config", filepath.Join(h.dir, "app.yaml"), "init", "github", "--dir", h.dir, "--role-arn", role)
	if _, err := os.Stat(filepath.Join(h.dir, ".github")); err == nil {
		t.Fatal("a refused init github wrote workflows")
	}
	if data, _ := os.ReadFile(path); string(data) != cfg {
		t.Fatalf("a refused init github changed prenv.yaml:\n%s", data)
	}
	// The default owner, prenv, is every installation's: the nightly sweep
	// would delete nothing with it. init pins one of this repository's.
	out := h.must("init", "github", "--dir", h.dir, "--role-arn", role)
	data, _ := os.ReadFile(path)
	if !strings.Contains(out, `wrote owner: "acme-shop" in `+path) || !strings.Contains(out, `PRENV_OWNER=prenv prenv down`) ||
		!strings.HasPrefix(string(data), "version: 1\nowner: \"acme-shop\"  # ") || !strings.HasSuffix(string(data), cfg[len("version: 1\n"):]) {
		t.Fatalf("init github:\n%s\nprenv.yaml now:\n%s", out, data)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Fatalf("prenv.yaml's mode became %v", info.Mode().Perm())
	}
	// The file still loads, and a second init leaves the owner as it is.
	out = h.must("init", "github", "--dir", h.dir, "--role-arn", role, "--force")
	again, _ := os.ReadFile(path)
	if strings.Contains(out, "wrote owner") || string(again) != string(data) {
		t.Fatalf("a second init github changed prenv.yaml:\n%s\n%s", out, again)
	}
	// A team's own owner id is never replaced, nor contradicted by --owner.
	if err := os.WriteFile(path, []byte("owner: team-a\n"+cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	h.refused(2, `already names owner "team-a"`, "init", "github", "--dir", h.dir, "--role-arn", role, "--force", "--owner", "team-b")
	h.must("init", "github", "--dir", h.dir, "--role-arn", role, "--force", "--owner", "team-a")
	if data, _ := os.ReadFile(path); string(data) != "owner: team-a\n"+cfg {
		t.Fatalf("init github changed a prenv.yaml that names its owner:\n%s", data)
	}
	// One that names the shared default on purpose is told what it costs.
	if err := os.WriteFile(path, []byte("owner: prenv\n"+cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	if out := h.must("init", "github", "--dir", h.dir, "--role-arn", role, "--force"); !strings.Contains(out, "the nightly sweep deletes nothing") {
		t.Fatalf("init github with owner: prenv said:\n%s", out)
	}
	// --owner names it when prenv.yaml does not.
	if err := os.WriteFile(path, []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	h.must("init", "github", "--dir", h.dir, "--role-arn", role, "--force", "--owner", "shop-previews")
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), "owner: \"shop-previews\"") {
		t.Fatalf("--owner was not written:\n%s", data)
	}
}

// With the Kubernetes runtime each job needs a kubeconfig before prenv's
// step: --eks-cluster writes the step that makes one (the preview, the
// teardown and the sweep; the golden build talks to AWS only).
func TestInitGitHub_WritesTheEKSKubeconfigStepForTheKubernetesRuntime(t *testing.T) {
	h := newHarness(t)
	h.dir = t.TempDir()
	cfg := `version: 1
repository: acme/shop
database:
  provider: aurora
  aurora: {source_cluster: prod-golden, region: eu-west-1, require_security_groups: false}
runtime:
  provider: kubernetes
  kubernetes:
    chart: ./chart
    url: "https://{{ .Name }}.preview.example.com"
`
	if err := os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::111122223333:role/prenv-previews"
	h.refused(2, "--eks-cluster", "init", "github", "--dir", h.dir, "--role-arn", role, "--eks-cluster", "pre views")
	out := h.must("init", "github", "--dir", h.dir, "--role-arn", role)
	if !strings.Contains(out, "each job needs a kubeconfig") {
		t.Fatalf("init github with the kubernetes runtime and no --eks-cluster said:\n%s", out)
	}
	h.must("init", "github", "--dir", h.dir, "--role-arn", role, "--golden-role-arn", "arn:aws:iam::111122223333:role/prenv-golden", "--eks-cluster", "previews", "--force")
	for name, want := range map[string]bool{"preview.yml": true, "preview-teardown.yml": true, "preview-sweep.yml": true, "preview-golden.yml": false} {
		data, err := os.ReadFile(filepath.Join(h.dir, ".github", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		var w struct {
			Jobs map[string]struct {
				Steps []struct {
					Run string `yaml:"run"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatalf("%s is not YAML: %v\n%s", name, err, data)
		}
		var runs []string
		for _, j := range w.Jobs {
			for _, st := range j.Steps {
				runs = append(runs, st.Run)
			}
		}
		got := strings.Contains(strings.Join(runs, "\n"), "aws eks update-kubeconfig --name previews --region eu-west-1")
		if got != want {
			t.Errorf("%s: the kubeconfig step is there: %v, want %v\n%s", name, got, want, data)
		}
	}
	// The embedded runtime needs no cluster.
	if err := os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte("version: 1\nrepository: acme/shop\ndatabase:\n  provider: aurora\n  aurora: {source_cluster: prod-golden, region: eu-west-1, require_security_groups: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.refused(2, "--eks-cluster: prenv.yaml's runtime.provider is local", "init", "github", "--dir", h.dir, "--role-arn", role, "--eks-cluster", "previews", "--force")
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/version"
	"github.com/spf13/cobra"
)

const previewWorkflow = `# Written by 'prenv init github': a preview environment per pull request.
name: preview
on:
  pull_request:
    types: [opened, synchronize, reopened]
# One run per pull request: a newer push cancels the run in progress (prenv
# stops at a safe point and the next run adopts what it made).
concurrency:
  group: pr-${{ github.event.pull_request.number }}
  cancel-in-progress: true
permissions:
  id-token: write       # the OIDC token that assumes the AWS role; forks get none
  contents: read
  deployments: write    # prenv reports a deployment per commit
  pull-requests: write  # and one comment, edited in place
  checks: write         # the check run "migration rehearsal" (migration.check)
jobs:
  preview:
    # Fork pull requests get no OIDC token and a read-only token: skip them
    # here (prenv serve or the sweeper can preview them when a maintainer
    # allows it).
    if: github.event.pull_request.head.repo.full_name == github.repository
    runs-on: ubuntu-latest
    environment:
      name: pr-${{ github.event.pull_request.number }}
      url: ${{ steps.prenv.outputs.url }}
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {{ROLE}}
          aws-region: {{REGION}}
{{KUBECONFIG}}      - id: prenv
        uses: prenv/prenv@{{REF}}
        with:
          command: up
`

const teardownWorkflow = `# Written by 'prenv init github': the preview goes when the pull request closes.
name: preview-teardown
on:
  pull_request:
    types: [closed]
concurrency:
  group: pr-${{ github.event.pull_request.number }}
  cancel-in-progress: true  # a teardown wins over an up in progress
permissions:
  id-token: write
  contents: read
  deployments: write
  pull-requests: write
jobs:
  teardown:
    # A fork's pull request has no OIDC token here: prenv serve or the
    # sweeper tears its environment down.
    if: github.event.pull_request.head.repo.full_name == github.repository
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {{ROLE}}
          aws-region: {{REGION}}
{{KUBECONFIG}}      - uses: prenv/prenv@{{REF}}
        with:
          command: down
`

const sweepWorkflow = `# Written by 'prenv init github': the nightly sweep, for teams that do not
# run prenv serve (which sweeps every sweep.interval by itself). It brings
# down expired environments (their comment says why and how to bring them
# back) and removes what interrupted runs left; 'prenv sweep' without
# --apply shows the plan.
name: preview-sweep
on:
  schedule:
    - cron: "23 3 * * *"  # nightly, at a quiet minute
  workflow_dispatch: {}
# One sweep at a time; a teardown of the same pull request waits on the
# environment's own lock, never on this.
concurrency:
  group: prenv-sweep
  cancel-in-progress: false
permissions:
  id-token: write       # the OIDC token that assumes the AWS role
  contents: read
  deployments: write    # an expired environment's deployments become inactive
  pull-requests: write  # its comment says it expired; open pull requests are listed
jobs:
  sweep:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {{ROLE}}
          aws-region: {{REGION}}
{{KUBECONFIG}}      - uses: prenv/prenv@{{REF}}
        with:
          command: sweep
          args: --apply
`

const goldenWorkflow = `# Written by 'prenv init github': the nightly golden build, for teams that do
# not run prenv serve (which builds on golden.schedule by itself). It restores
# production from golden.source, masks it with golden.masking, scans every
# column no rule covers, and promotes it as the next generation; new previews
# clone it. A build the scanner refuses fails this run with its report, and
# the current generation stays current.
name: preview-golden
on:
  schedule:
    - cron: "17 2 * * *"  # nightly, before the sweep
  workflow_dispatch: {}
concurrency:
  group: prenv-golden
  cancel-in-progress: false  # a build cut short is deleted; let it finish
permissions:
  id-token: write  # the OIDC token that assumes the AWS role
  contents: read
jobs:
  golden:
    # Only the default branch's prenv.yaml (its rules) builds golden data,
    # and only in the environment prenv-golden, which the golden role's
    # trust policy names (docs/masking.md): a pull request, or a dispatch on
    # another branch, never gets the role that reads production.
    if: github.ref == 'refs/heads/{{BRANCH}}'
    environment: prenv-golden
    # The build connects to the restored cluster to mask it: on Aurora, run
    # it where the cluster's security groups let it in (a self-hosted runner
    # in the VPC).
    runs-on: ubuntu-latest
    timeout-minutes: 360
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {{GOLDEN_ROLE}}
          aws-region: {{REGION}}
      - uses: prenv/prenv@{{REF}}
        env:
          # golden.masking.salt: salt: ${PRENV_MASKING_SALT} in prenv.yaml
          PRENV_MASKING_SALT: ${{ secrets.PRENV_MASKING_SALT }}
        with:
          command: golden
          args: build
`

var (
	roleARN    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	awsRegion  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
	actionRef  = regexp.MustCompile(`^[\w.-]+$`)
	branchName = regexp.MustCompile(`^[\w./-]+$`)
	errExists  = errors.New("already exists")
	workflowOf = map[string]string{"preview.yml": previewWorkflow, "preview-teardown.yml": teardownWorkflow, "preview-sweep.yml": sweepWorkflow, "preview-golden.yml": goldenWorkflow}
)

// webhookInstructions says how to point a repository's webhooks at prenv
// serve, for the providers that keep environments on prenv's own machine.
func (a *app) webhookInstructions(cfg config.Config) {
	public := cfg.PublicURL
	if public == "" {
		public = "https://<prenv serve's public address>"
	}
	fmt.Fprintf(a.opts.Stdout, `prenv.yaml's database.provider is %s: the environments live on the machine that runs 'prenv serve',
so GitHub's webhooks drive it (no workflows are written: a GitHub Actions runner is gone after each job).

1. In prenv.yaml: public_url: %s, and github.webhook_secret: ${PRENV_GITHUB_WEBHOOK_SECRET}
   (a random secret: openssl rand -hex 32); for its reports, PRENV_GITHUB_TOKEN or a GitHub App (github.app_id).
2. Run 'prenv serve' where that address reaches it (docs/serve.md).
3. In the repository's Settings > Webhooks > Add webhook:
     Payload URL:  %s/webhooks/github
     Content type: application/json
     Secret:       the same secret
     Events:       Pull requests
See docs/github.md.
`, cfg.Database.Provider, public, strings.TrimSuffix(public, "/"))
}

var eksName = regexp.MustCompile(`^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$`)

var releaseTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// defaultActionRef is the ref of prenv's action the workflows pin: the release
// that writes them, or main for a build from source.
func defaultActionRef(v string) string {
	if releaseTag.MatchString(v) && !strings.HasPrefix(v, "v0.0.0-") {
		return v
	}
	return "main"
}

func (a *app) initCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "init", Short: "Write the files that connect prenv to a CI system"}
	var role, goldenRole, region, ref, dir, branch, ownerFlag, eks string
	var force bool
	gh := &cobra.Command{
		Use:   "github --role-arn ARN --region REGION",
		Short: "Write GitHub Actions workflows: preview on every push to a pull request, teardown when it closes, a nightly sweep and golden build",
		Long: `Write four workflows into .github/workflows: preview.yml runs 'prenv up' on
opened, synchronize and reopened, one run per pull request (concurrency
pr-<number>, a newer push cancelling the older run); preview-teardown.yml runs
'prenv down' when the pull request closes; preview-sweep.yml runs
'prenv sweep --apply' nightly and, with --golden-role-arn, preview-golden.yml
'prenv golden build' (golden.source, masked with the secret
PRENV_MASKING_SALT) from the default branch only, under a role of its own, for
teams that do not run prenv serve. All
assume the AWS role with GitHub's OIDC token (permissions: id-token: write);
no AWS keys are stored in GitHub. Fork pull requests get no OIDC token, so the workflows skip them:
their previews and teardowns need prenv serve or the sweeper.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Database.Provider != "aurora" {
				// Without AWS the environments live on the machine that
				// runs prenv: GitHub's runners are gone after each job, so
				// prenv serve receives GitHub's webhooks instead.
				if role != "" || goldenRole != "" {
					return usageError{fmt.Errorf("--role-arn: prenv.yaml's database.provider is %s, which assumes no AWS role; the workflows are for database.provider: aurora, where the environments outlive the job", cfg.Database.Provider)}
				}
				a.webhookInstructions(cfg)
				return nil
			}
			if region == "" {
				region = cfg.Database.Aurora.Region
			}
			var errs []string
			if !roleARN.MatchString(role) {
				errs = append(errs, fmt.Sprintf("--role-arn %q: want the IAM role the workflows assume, such as arn:aws:iam::111122223333:role/prenv-previews (docs/aurora.md shows its policy)", role))
			}
			if !awsRegion.MatchString(region) {
				errs = append(errs, fmt.Sprintf("--region %q: want an AWS region such as eu-west-1", region))
			}
			switch {
			case goldenRole != "" && !roleARN.MatchString(goldenRole):
				errs = append(errs, fmt.Sprintf("--golden-role-arn %q: want the IAM role of the nightly golden build, such as arn:aws:iam::111122223333:role/prenv-golden", goldenRole))
			case goldenRole != "" && goldenRole == role:
				errs = append(errs, "--golden-role-arn is --role-arn: the nightly golden build reads production, and every pull request's workflow assumes --role-arn; give the build a role of its own that only the default branch may assume (docs/masking.md)")
			}
			if !branchName.MatchString(branch) {
				errs = append(errs, fmt.Sprintf("--default-branch %q: want a branch name such as main", branch))
			}
			if !actionRef.MatchString(ref) {
				errs = append(errs, fmt.Sprintf("--ref %q: want a tag or branch of prenv's action, such as v1 or main", ref))
			}
			if len(errs) > 0 {
				return usageError{errors.New(strings.Join(errs, "; "))}
			}
			if cfg.HasApp() && cfg.Runtime.Provider == "local" {
				return usageError{fmt.Errorf("prenv.yaml runs its app with runtime.provider local: in the workflows it would run on the GitHub runner and stop with the job; use runtime.provider: kubernetes, or no app (database-only environments), or prenv serve with webhooks (docs/github.md); nothing was written")}
			}
			owner, err := a.initOwner(cfg, ownerFlag, dir)
			if err != nil {
				return err
			}
			kubeStep := ""
			switch {
			case eks != "" && cfg.Runtime.Provider != "kubernetes":
				return usageError{fmt.Errorf("--eks-cluster: prenv.yaml's runtime.provider is %s, which needs no cluster", cfg.Runtime.Provider)}
			case eks != "" && !eksName.MatchString(eks):
				return usageError{fmt.Errorf("--eks-cluster %q: want the name of an EKS cluster, such as previews", eks)}
			case eks != "":
				kubeStep = fmt.Sprintf("      - name: kubeconfig of the EKS cluster %s (the role needs eks:DescribeCluster and an access entry)\n        run: aws eks update-kubeconfig --name %s --region %s\n", eks, eks, region)
			}
			out := filepath.Join(dir, ".github", "workflows")
			names := []string{"preview.yml", "preview-teardown.yml", "preview-sweep.yml", "preview-golden.yml"}
			if goldenRole == "" {
				names = names[:3]
			}
			if !force {
				for _, name := range names {
					if _, err := os.Stat(filepath.Join(out, name)); err == nil {
						return usageError{fmt.Errorf("%s %w: nothing was written; use --force to replace it", filepath.Join(out, name), errExists)}
					}
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			for _, name := range names {
				text := strings.NewReplacer("{{KUBECONFIG}}", kubeStep, "{{ROLE}}", role, "{{GOLDEN_ROLE}}", goldenRole, "{{REGION}}", region, "{{REF}}", ref, "{{BRANCH}}", branch).Replace(workflowOf[name])
				if err := os.WriteFile(filepath.Join(out, name), []byte(text), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(a.opts.Stdout, "wrote %s\n", filepath.Join(out, name))
			}
			if cfg.Runtime.Provider == "kubernetes" && eks == "" && cfg.Runtime.Kubernetes.Kubeconfig == "" {
				fmt.Fprintln(a.opts.Stdout, "runtime.provider is kubernetes: each job needs a kubeconfig before prenv's step; for EKS give --eks-cluster NAME, else add a step that writes one")
			}
			if goldenRole == "" {
				fmt.Fprintln(a.opts.Stdout, "preview-golden.yml (the nightly golden build) not written: give --golden-role-arn, a role of its own that may read production (docs/masking.md)")
			}
			// Each runner starts empty and reads the environments from
			// their resources: by the owner id, which must be the same on
			// all of them.
			return a.pinOwner(cfg, owner)
		},
	}
	gh.Flags().StringVar(&role, "role-arn", "", "the IAM role the workflows assume with GitHub's OIDC token")
	gh.Flags().StringVar(&goldenRole, "golden-role-arn", "", "the IAM role of the nightly golden build (reads production): writes preview-golden.yml; never the pull requests' role")
	gh.Flags().StringVar(&branch, "default-branch", "main", "the branch whose prenv.yaml the nightly golden build uses")
	gh.Flags().StringVar(&region, "region", "", "the AWS region (default: database.aurora.region)")
	gh.Flags().StringVar(&ref, "ref", defaultActionRef(version.Get().Version), "the version of prenv's action (and of prenv) the workflows use: default the version that writes them")
	gh.Flags().StringVar(&dir, "dir", ".", "the repository's root")
	gh.Flags().BoolVar(&force, "force", false, "replace workflows that exist")
	gh.Flags().StringVar(&eks, "eks-cluster", "", "runtime.provider kubernetes on EKS: the cluster the jobs write a kubeconfig for (aws eks update-kubeconfig)")
	gh.Flags().StringVar(&ownerFlag, "owner", "", "the owner id written into prenv.yaml when it names none (default: made from repository, else the directory's name)")
	cmd.AddCommand(gh)
	return group(cmd)
}

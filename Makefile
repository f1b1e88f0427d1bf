# prenv: make demo runs the main job on this machine, make test runs every test.
SHELL := /bin/bash
GO ?= go
BIN := bin/prenv
DEMO_LISTEN ?= $(or $(PRENV_LISTEN),127.0.0.1:8080)
DEMO_PEOPLE ?= 2000
PRENV_HOME ?= $(if $(filter 0,$(shell id -u)),/var/lib/prenv,$(HOME)/.local/share/prenv)
export PRENV_HOME

.PHONY: all build setup demo demo-down test test-short bench release image sizes reflink cluster cluster-down clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/prenv

setup:
	@scripts/setup.sh

# Builds prenv and the golden data, then brings up PR 1 of the demo and
# prints its URL and credentials.
demo: setup build
	@mkdir -p $(PRENV_HOME)
	$(GO) run ./examples/demo/seed -people $(DEMO_PEOPLE) > $(PRENV_HOME)/demo-seed.sql
	$(BIN) --config examples/demo/prenv.yaml golden build --from-sql $(PRENV_HOME)/demo-seed.sql
	cd examples/demo && PRENV_LISTEN=$(DEMO_LISTEN) ../../$(BIN) up --pr 1
	@echo
	@echo "Open the URL above in a browser (user prenv, the password above); 'PRENV_HOME=$(PRENV_HOME) bin/prenv --config examples/demo/prenv.yaml status pr-1' shows it again."
	@echo "Tear it down with: make demo-down"

# Removes PR 1 of the demo and stops the prenv serve its up started.
demo-down: build
	cd examples/demo && PRENV_LISTEN=$(DEMO_LISTEN) ../../$(BIN) down --pr 1
	@scripts/stop-serve.sh "$(PRENV_HOME)"

# Every test, against the real PostgreSQL server binaries; the reflink tests
# use a loop-mounted XFS volume when this machine can make one.
test: setup
	$(GO) vet ./...
	scripts/kube-binaries.sh >/dev/null
	PRENV_TEST_REFLINK_DIR="$$(scripts/reflink-volume.sh 8G)" $(GO) test -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short ./...

# Clone-to-first-query of prenv, CREATE DATABASE ... STRATEGY FILE_COPY and
# pg_dump | pg_restore on the same golden data at two sizes, up end to end,
# the memory of an idle environment, and the kubernetes runtime on the test
# control plane (1 and 20 environments, API requests).
bench: setup build
	PRENV_BENCH_DIR="$$(scripts/reflink-volume.sh 16G)" $(GO) run ./internal/bench/cmd $(BENCH_ARGS)

# Stripped, reproducible release archives for linux and darwin on amd64 and
# arm64, and their SHA256SUMS, in dist/ (VERSION=v1.2.3; default the tag at
# HEAD). The same commit gives the same bytes.
release:
	$(GO) run ./internal/release/cmd -out dist $(if $(VERSION),-version $(VERSION))

# prenv's container image for linux on amd64 and arm64 (prenv serve as a
# non-root user, for a read-only root filesystem), made without Docker or a
# base to pull: an OCI image layout in dist/image, pushed to IMAGE_REPO
# (host/path, tagged with the version) when it is set.
image:
	$(GO) run ./internal/image/cmd $(if $(VERSION),-version $(VERSION))

# The size of this machine's release binary and what each module costs in
# it (symbol bytes), the largest first.
sizes:
	$(GO) run ./internal/release/cmd -sizes 30

reflink:
	@scripts/reflink-volume.sh

# A real Kubernetes control plane (etcd, kube-apiserver, controller-manager,
# scheduler built from the Kubernetes module, kwok for nodes) in the
# background; a second call reuses it. The last line is its kubeconfig.
PRENV_CLUSTER_DIR ?= /tmp/prenv-cluster
export PRENV_CLUSTER_DIR
cluster:
	@$(GO) run ./internal/testenv/kube/cluster up

cluster-down:
	@$(GO) run ./internal/testenv/kube/cluster down

clean:
	rm -rf bin

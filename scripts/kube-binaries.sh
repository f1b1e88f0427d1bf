#!/usr/bin/env bash
# Builds the test control plane's binaries from Go modules and caches them:
# kube-apiserver, kube-controller-manager and kube-scheduler from the
# Kubernetes module (at the minor version of prenv's client-go), etcd 3.5
# from go.etcd.io/etcd/server/v3, and kwok. Idempotent: a cached build is
# reused (only the first run pays, about five minutes). Prints the directory
# holding the binaries as its last line.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"   # k8s.io/client-go v0.37.x
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${PRENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prenv}"
BIN="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION/bin"
say() { printf 'kube-binaries: %s\n' "$*" >&2; }

want=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)
missing=()
for b in "${want[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ "${#missing[@]}" = 0 ]; then echo "$BIN"; exit 0; fi
command -v go >/dev/null || { say "Go is missing: install Go and run this again"; exit 1; }
mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

if [[ " ${missing[*]} " == *" kube-"* ]]; then
  say "building Kubernetes $KUBE_VERSION control-plane binaries (a few minutes, once)"
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init prenv.test/kube >/dev/null 2>&1
  # The Kubernetes module replaces its staging modules with local paths;
  # a helper module pins each of them to the matching v0.x instead.
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  staging="v0.${KUBE_VERSION#v1.}"
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 '"$staging"'#p' "$gomod"
  } >> go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  go mod tidy >/dev/null 2>&1 || true
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    go build -trimpath -ldflags=-s -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b"
  done
fi

if [[ " ${missing[*]} " == *" etcd "* ]]; then
  say "building etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init prenv.test/etcd >/dev/null 2>&1
  {
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 raft/v3; do
      echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
    done
    # client/v2 carries v2 versions: v3.5.N is v2.305.N.
    echo "replace go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.305.${ETCD_VERSION##*.}"
  } >> go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy >/dev/null 2>&1 || true
  go build -trimpath -ldflags=-s -o "$BIN/etcd" go.etcd.io/etcd/server/v3
fi

if [[ " ${missing[*]} " == *" kwok "* ]]; then
  say "building kwok $KWOK_VERSION"
  GOBIN="$BIN" go install -trimpath -ldflags=-s "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
echo "$BIN"

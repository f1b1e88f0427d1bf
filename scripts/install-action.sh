#!/usr/bin/env bash
# Installs prenv for the GitHub Action (action.yml): the release archive for
# the runner's platform (RUNNER_OS, RUNNER_ARCH), verified against the
# release's SHA256SUMS (a mismatch fails the step) and kept in the runner's
# tool cache (RUNNER_TOOL_CACHE) for the next step or job on that runner;
# its directory is added to GITHUB_PATH. PRENV_VERSION is a release tag
# (v1.2.3), or a branch or commit, which 'go install' builds.
#   PRENV_VERSION=v1.2.3 scripts/install-action.sh
set -euo pipefail
version="${PRENV_VERSION:-}"
base="${PRENV_RELEASE_URL:-https://github.com/prenv/prenv/releases/download}"
fail() { echo "prenv: $*" >&2; exit 1; }
[ -n "$version" ] || fail "no version to install: set the action's version input (a tag such as v1.2.3, or main)"
[ -n "${GITHUB_PATH:-}" ] || fail "GITHUB_PATH is not set: this script installs prenv for a GitHub Actions step"

if ! [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  # A branch or a commit: built from source, as go install does.
  [[ "$version" =~ ^[A-Za-z0-9._/-]+$ ]] || fail "version \"$version\": want a tag such as v1.2.3, a branch or a commit"
  command -v go >/dev/null || fail "version $version is built from source and needs Go: add actions/setup-go before this step, or use a release tag"
  echo "prenv: building $version from source (go install)"
  go install "github.com/prenv/prenv/cmd/prenv@${version}"
  echo "$(go env GOPATH)/bin" >> "$GITHUB_PATH"
  "$(go env GOPATH)/bin/prenv" version
  exit 0
fi

case "${RUNNER_OS:-}" in
  Linux) os=linux ;;
  macOS) os=darwin ;;
  *) fail "no prenv release for RUNNER_OS=${RUNNER_OS:-unset}: Linux and macOS runners are supported" ;;
esac
case "${RUNNER_ARCH:-}" in
  X64) arch=amd64 ;;
  ARM64) arch=arm64 ;;
  *) fail "no prenv release for RUNNER_ARCH=${RUNNER_ARCH:-unset}: X64 and ARM64 runners are supported" ;;
esac
cache_root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}"
dir="$cache_root/prenv/${version#v}/$arch"
if [ -f "$dir.complete" ] && [ -x "$dir/prenv" ]; then
  echo "prenv: $version from the tool cache ($dir)"
else
  archive="prenv_${version}_${os}_${arch}.tar.gz"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "prenv: downloading $archive"
  curl -fsSL --retry 3 --retry-connrefused -o "$tmp/$archive" "$base/$version/$archive" || fail "cannot download $base/$version/$archive: is $version a prenv release?"
  curl -fsSL --retry 3 --retry-connrefused -o "$tmp/SHA256SUMS" "$base/$version/SHA256SUMS" || fail "cannot download $base/$version/SHA256SUMS"
  want="$(awk -v f="$archive" '$2 == f { print $1 }' "$tmp/SHA256SUMS")"
  [ -n "$want" ] || fail "SHA256SUMS of $version lists no $archive"
  if command -v sha256sum >/dev/null; then got="$(sha256sum "$tmp/$archive" | cut -d' ' -f1)"; else got="$(shasum -a 256 "$tmp/$archive" | cut -d' ' -f1)"; fi
  [ "$got" = "$want" ] || fail "$archive does not match SHA256SUMS (sha256 $got, want $want): not installing it"
  rm -rf "$dir" "$dir.complete"
  mkdir -p "$dir"
  tar -xzf "$tmp/$archive" -C "$dir" prenv
  touch "$dir.complete"
fi
echo "$dir" >> "$GITHUB_PATH"
"$dir/prenv" version

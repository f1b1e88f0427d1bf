#!/usr/bin/env bash
# Installs what prenv's demo and tests need, idempotently, or names exactly
# what is missing: Go, git, tar, PostgreSQL server binaries 14 or newer, and
# (for the reflink tests and benchmarks, as root on Linux) xfsprogs.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
if [ "$(id -u)" != 0 ] && have sudo; then SUDO="sudo"; fi

apt_install() {
  if ! have apt-get; then return 1; fi
  if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then return 1; fi
  if [ ! -f /var/lib/apt/periodic/prenv-updated ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock || true)" ]; then
    $SUDO apt-get update -qq
    $SUDO mkdir -p /var/lib/apt/periodic && $SUDO touch /var/lib/apt/periodic/prenv-updated
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Go
if ! have go; then
  say "Go is missing: install Go 1.26.8 (or any Go from 1.21 on, which fetches the 1.26.8 that go.mod names by itself; https://go.dev/doc/install) and run this again"
  exit 1
fi

for tool in git tar; do
  if ! have "$tool"; then
    apt_install "$tool" || { say "$tool is missing: install it and run this again"; exit 1; }
  fi
done

# PostgreSQL server binaries, 14 or newer.
pg_major() {
  local dir
  for dir in "$(dirname "$(readlink -f "$(command -v postgres 2>/dev/null || echo /nonexistent)")")" \
             $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
             $(ls -d /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_restore" ]; then
      "$dir/postgres" --version | sed -E 's/.*\(PostgreSQL\) ([0-9]+).*/\1/'
      return 0
    fi
  done
  return 1
}
major="$(pg_major || true)"
if [ -z "$major" ] || [ "$major" -lt 14 ]; then
  if [ "$(uname)" = Darwin ]; then
    if have brew; then brew install postgresql@16; else say "PostgreSQL server binaries 14+ are missing: install Homebrew and run 'brew install postgresql@16'"; exit 1; fi
  elif apt_install postgresql; then
    :
  else
    say "PostgreSQL server binaries 14 or newer are missing${major:+ (found $major)}: install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server) or set database.localpg.bin_dir"
    exit 1
  fi
  major="$(pg_major || true)"
  if [ -z "$major" ] || [ "$major" -lt 14 ]; then
    say "PostgreSQL ${major:-?} is installed but prenv needs 14 or newer: install a newer server package"
    exit 1
  fi
fi
say "PostgreSQL $major server binaries: ok"

# As root, PostgreSQL runs as an unprivileged user: make sure one exists.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  say "created the system user postgres to run PostgreSQL (prenv runs as root)"
fi

# xfsprogs, for a reflink-capable volume (tests and benchmarks).
if [ "$(uname)" = Linux ] && [ "$(id -u)" = 0 ] && ! have mkfs.xfs; then
  apt_install xfsprogs || say "xfsprogs is missing: reflink tests and benchmarks will use a plain copy"
fi
exit 0

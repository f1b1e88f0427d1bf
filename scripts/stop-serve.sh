#!/usr/bin/env bash
# Stops the prenv serve running for PRENV_HOME (its pid is in serve.pid),
# if the process with that pid is that prenv serve; idempotent.
#   scripts/stop-serve.sh PRENV_HOME
set -euo pipefail
home="${1:?usage: stop-serve.sh PRENV_HOME}"
pidfile="$home/serve.pid"
[ -f "$pidfile" ] || { echo "no prenv serve is running for $home"; exit 0; }
pid="$(tr -dc 0-9 < "$pidfile")"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  echo "no prenv serve is running for $home (stale $pidfile)"; exit 0
fi
# The pid may have been reused: stop it only if it is prenv serve.
cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || ps -o command= -p "$pid" 2>/dev/null || true)"
case "$cmdline" in
  *prenv*serve*) ;;
  *) echo "pid $pid in $pidfile is not prenv serve ($cmdline): left alone"; exit 0 ;;
esac
kill -TERM "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { echo "stopped prenv serve (pid $pid)"; exit 0; }; sleep 0.1; done
echo "prenv serve (pid $pid) is still stopping; see $home/serve.log" >&2

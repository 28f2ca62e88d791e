#!/bin/sh
# Runs a browser scenario (default e2e.mjs; `run.sh host_console.mjs` another one) inside private
# network and PID namespaces.
# - network: only loopback exists, so neither Chromium nor the server can pick another address.
# - PID (with --kill-child): e2e.mjs becomes PID 1's only child; if this process is killed (the Rust
#   test's timeout drops it), the namespace's init dies and the kernel kills everything in it, so
#   no server or Chromium outlives the test.
# Needs root (or user namespaces), util-linux `unshare` and iproute2 `ip`.
set -e
here=$(cd "$(dirname "$0")" && pwd)
scenario=${1:-e2e.mjs}
case "$scenario" in *[!A-Za-z0-9_.-]*) echo "bad scenario name: $scenario" >&2; exit 2;; esac
exec unshare --net --pid --fork --kill-child --mount-proc \
  sh -c "ip link set lo up && exec node '$here/$scenario'"

#!/bin/sh
# Runs the browser end-to-end test inside a private network namespace: only loopback exists,
# so neither Chromium nor the server can pick another address. Needs root (or user namespaces).
set -e
here=$(cd "$(dirname "$0")" && pwd)
exec unshare -n sh -c "ip link set lo up && exec node '$here/e2e.mjs'"

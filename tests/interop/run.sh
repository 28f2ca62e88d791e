#!/bin/sh
# Runs the interop matrix (matrix.mjs) inside private network and PID namespaces: only loopback
# exists, and when this process dies the kernel kills every peer and the server with it.
# With GST_PLUGIN_DIR set, a veth carrying 127.0.0.2 is added: libnice (GStreamer) skips every
# loopback-flagged interface and needs one address on a non-loopback one.
set -e
here=$(cd "$(dirname "$0")" && pwd)
veth=true
if [ -n "${GST_PLUGIN_DIR:-}" ]; then
  veth="'$here/../netns/veth.sh' v0 v1 127.0.0.2/32"
fi
exec unshare --net --pid --fork --kill-child --mount-proc \
  sh -c "ip link set lo up && $veth && exec node '$here/matrix.mjs'"

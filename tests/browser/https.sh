#!/bin/sh
# Runs the HTTPS browser test (https.mjs) inside private network and PID namespaces with one
# non-loopback address: a veth `sc0` (its peer `sc1` stays in the namespace) carrying $SELLCAST_TEST_ADDR/24. Chromium treats
# http://127.0.0.1 as a secure context whatever the scheme; on this address a page is a secure
# context only over HTTPS, as on a public server. Nothing leaves the namespace.
# PID namespace with --kill-child: if this process is killed, everything in it dies with it.
# Needs root (or user namespaces), util-linux `unshare`, iproute2 `ip`, and certutil (libnss3-tools).
set -e
here=$(cd "$(dirname "$0")" && pwd)
addr=${SELLCAST_TEST_ADDR:?set SELLCAST_TEST_ADDR}
exec unshare --net --pid --fork --kill-child --mount-proc \
  sh -c "ip link set lo up && '$here/../netns/veth.sh' sc0 sc1 $addr/24 && exec node '$here/https.mjs'"

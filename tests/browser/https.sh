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
  sh -c "ip link set lo up && ip link add sc0 type veth peer name sc1 && ip addr add $addr/24 dev sc0 && ip link set sc1 up && ip link set sc0 up && exec node '$here/https.mjs'"

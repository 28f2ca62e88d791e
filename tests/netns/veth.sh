#!/bin/sh
# Adds a veth pair inside the current (private) network namespace and returns only when the
# link is settled: `veth.sh NAME PEER ADDR/PREFIX`.
#
# Settled matters to Chromium: it aborts navigations in flight with ERR_NETWORK_CHANGED when an
# interface's addresses or carrier change under it. So the pair gets no IPv6 link-local
# address (its duplicate-address detection would finish a second or two later, a change), and
# this waits until the kernel reports the carrier up (veth carrier events are delivered
# asynchronously) before anything starts. Bounded: fails after 5 s.
set -e
name=${1:?veth name}; peer=${2:?peer name}; addr=${3:?address/prefix}
ip link add "$name" type veth peer name "$peer"
ip link set dev "$name" addrgenmode none
ip link set dev "$peer" addrgenmode none
ip addr add "$addr" dev "$name"
ip link set "$peer" up
ip link set "$name" up
i=0
until ip -o link show "$name" | grep -q 'state UP'; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then echo "veth.sh: $name did not come up" >&2; exit 1; fi
  sleep 0.05
done

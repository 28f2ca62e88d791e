# Source inside `unshare -n`: loopback up, plus a veth whose end v0 carries 127.0.0.2, for
# stacks that ignore interfaces flagged loopback (Janus/libnice). Used by the side-by-side bench:
#   unshare -n sh -c '. benches/netns.sh && target/release/sellcast-bench --janus --viewers 100'
# The same steps as tests/netns/veth.sh (sourced scripts cannot find their own path in sh):
# no IPv6 link-local address, and wait for the carrier, so nothing changes under the peers.
ip link set lo up
ip link add v0 type veth peer name v1
ip link set dev v0 addrgenmode none
ip link set dev v1 addrgenmode none
ip addr add 127.0.0.2/32 dev v0
ip link set v1 up
ip link set v0 up
i=0
until ip -o link show v0 | grep -q 'state UP' || [ "$i" -gt 100 ]; do i=$((i + 1)); sleep 0.05; done

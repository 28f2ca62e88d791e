# Source inside `unshare -n`: loopback up, plus a veth whose end v0 carries 127.0.0.2, for
# stacks that ignore interfaces flagged loopback (Janus/libnice). Used by the side-by-side bench:
#   unshare -n sh -c '. benches/netns.sh && target/release/sellcast-bench --janus --viewers 100'
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 127.0.0.2/32 dev v0
ip link set v1 up
ip link set v0 up

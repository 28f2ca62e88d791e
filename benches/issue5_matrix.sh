#!/bin/sh
# name server_bin threads nogso ; run 100 and 200 viewers x3
cd /work/main
out=/tmp/m/matrix.txt
: > $out
for round in 1 2 3; do
for n in 100 200; do
for cfg in "before /work/target-before/release/sellcast - 0" "s1 target/release/sellcast 1 1" "s1gso target/release/sellcast 1 0" "s2gso target/release/sellcast 2 0"; do
  set -- $cfg
  name=$1; bin=$2; th=$3; nogso=$4
  extra=""
  [ "$th" != "-" ] && extra="--media-threads $th"
  line=$(SELLCAST_NO_GSO=$nogso unshare -n sh -c "ip link set lo up && target/release/sellcast-bench --viewers $n --seconds 8 --server-bin $bin $extra --out /tmp/m/run" 2>&1 | grep "^sellcast viewers")
  echo "$name n=$n round=$round $line" >> $out
done; done; done
echo DONE >> $out

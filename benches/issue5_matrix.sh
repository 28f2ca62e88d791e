#!/bin/sh
# The issue 5 matrix: before vs one shard without GSO vs one shard with GSO vs two shards with
# GSO, at 100 and 200 viewers, 3 rounds. Each round runs every configuration in turn, so a
# machine whose speed drifts during the run affects all of them alike; report medians.
#
#   git worktree add /tmp/before 4c6ef69 && (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target \
#       cargo build --release -p sellcast-server)
#   cargo build --release -p sellcast-server -p sellcast-bench
#   BEFORE_BIN=/tmp/before-target/release/sellcast sh benches/issue5_matrix.sh
#
# Output: one line per run in ${OUT:-bench-results/issue5-matrix.txt}.
set -eu
before=${BEFORE_BIN:?set BEFORE_BIN to a server binary built from the commit to compare with}
out=${OUT:-bench-results/issue5-matrix.txt}
mkdir -p "$(dirname "$out")"
: > "$out"
for round in 1 2 3; do
  for n in 100 200; do
    for cfg in "before $before - 0" "s1 target/release/sellcast 1 1" "s1gso target/release/sellcast 1 0" "s2gso target/release/sellcast 2 0"; do
      set -- $cfg
      name=$1; bin=$2; threads=$3; nogso=$4
      extra=""
      [ "$threads" != "-" ] && extra="--media-threads $threads"
      line=$(SELLCAST_NO_GSO=$nogso unshare -n sh -c "ip link set lo up && target/release/sellcast-bench --viewers $n --seconds 8 --server-bin $bin $extra --out /tmp/issue5-matrix-run" 2>&1 | grep "^sellcast viewers" || true)
      echo "$name n=$n round=$round $line" >> "$out"
    done
  done
done

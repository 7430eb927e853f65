#!/bin/bash
# Alternating A/B of the default rows (ours): base is dbe61df (workers do not
# preload numpy; a node takes a closed connection for its worker's death),
# cloned to /tmp/base2; head is the clone at /tmp/sc.
ROWS=sync,async,nested,array_value
OUT=/tmp/sc/bench/results/2026-12-07-preload
for i in 1 2; do
  for side in base head; do
    if [ $side = base ]; then dir=/tmp/base2; else dir=/tmp/sc; fi
    echo "== $side $i $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd $dir && PYTHONPATH=$dir/impl:$dir /work/main/.venv/bin/ownership bench --rows $ROWS --systems ours --no-chart --out $OUT/$side$i) > /tmp/ab-$side$i.log 2>&1
    echo "rc $?"
  done
done

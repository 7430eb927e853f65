#!/bin/bash
# Alternating A/B of sync, async and nested (ours): base is 69f4ebb (before
# a finished push was known by its owner and epoch), cloned to /tmp/base and
# checked out there; head is the clone at /work/main.
ROWS=sync,async,nested
OUT=/tmp/ab
mkdir -p $OUT
for i in 1 2 3; do
  for side in base head; do
    if [ $side = base ]; then dir=/tmp/base; else dir=/work/main; fi
    echo "== $side $i $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd $dir && PYTHONPATH=$dir/impl /work/main/.venv/bin/ownership bench --rows $ROWS --systems ours --no-chart --out $OUT/$side$i) > $OUT/$side$i.log 2>&1
    echo "rc $?"
  done
done

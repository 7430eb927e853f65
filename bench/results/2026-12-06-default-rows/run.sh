#!/bin/bash
# Alternating A/B of the default (non-recoverable) rows, ours only: base is
# the code before owner recovery (38889e2, the parent of its first commit),
# checked out with `git worktree add --detach /tmp/base 38889e2`; head is
# this clone. Each side runs with its own package (PYTHONPATH) and bench/.
ROWS=sync,async,actor,nested,array_ref,array_value,borrow,remote_get,recovery
HEAD_DIR=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/ab}
for i in 1 2 3 4 5; do
  for side in base head; do
    if [ $side = base ]; then dir=/tmp/base; else dir=$HEAD_DIR; fi
    echo "== $side $i $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd $dir && PYTHONPATH=$dir/impl $HEAD_DIR/.venv/bin/ownership bench --rows $ROWS --systems ours --no-chart --out $OUT/$side$i) > $OUT/$side$i.log 2>&1
    echo "rc $?"
  done
done

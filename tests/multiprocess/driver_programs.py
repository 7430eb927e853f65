"""Driver programs that tests run as separate processes (not a test module).

    python driver_programs.py hold-actors NODE TOKEN_FILE N
        attach to NODE, start N actors of 1 CPU each, print READY, wait to be killed
    python driver_programs.py from-elsewhere
        connect() to $OWNERSHIP_ADDRESS with $OWNERSHIP_HOME's token, run a
        task that prints, print RESULT with the driver's address and node
    python driver_programs.py two-hosts NODE TOKEN_FILE MARKS GATE N
        attach to NODE, run a small workload, start N gated tasks, print PLACED
        once all run, then (the test cuts a host off and opens GATE) print
        RESULT with every task's value
"""

from __future__ import annotations

import os
import sys

import trio

import ownership
from ownership.runtime.cluster import connect


@ownership.remote(num_cpus=1)
class Sleeper:
    def ping(self):
        return os.getpid()


async def hold_actors(node: str, token_file: str, n: int) -> None:
    async with connect(node, token_file=token_file):
        actors = [Sleeper.remote() for _ in range(n)]
        await ownership.get([a.ping.remote() for a in actors])
        print("READY", flush=True)
        await trio.sleep_forever()


@ownership.remote
def add(a, b):
    return a + b


@ownership.remote
def nested(x):
    return ownership.get(add.remote(x, 1)) * 2


@ownership.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


@ownership.remote
def gated(i: int, marks: str, gate: str):
    import time
    from pathlib import Path

    tmp = Path(marks, f".{i}-{os.getpid()}")
    tmp.write_text(str(os.getppid()))
    tmp.rename(Path(marks, f"{i}-{os.getpid()}"))
    while not os.path.exists(gate):
        time.sleep(0.02)
    return i * 10


async def two_hosts(node: str, token_file: str, marks: str, gate: str, n: int) -> None:
    import json
    from pathlib import Path

    async with connect(node, token_file=token_file):
        counter = Counter.remote()
        warmup = [await add.remote(1, 2), await nested.remote(3), await counter.incr.remote(), await counter.incr.remote()]
        refs = [gated.remote(i, marks, gate) for i in range(n)]
        while len({p.name.split("-")[0] for p in Path(marks).glob("[0-9]*")}) < n:
            await trio.sleep(0.02)
        print("PLACED", flush=True)
        values = await ownership.get(refs)
        print("RESULT " + json.dumps({"warmup": warmup, "values": values}), flush=True)


@ownership.remote
def where_am_i(x):
    print(f"task got {x}")
    return [os.getpid(), x + 1]


async def from_elsewhere() -> None:
    """connect() with no argument ($OWNERSHIP_ADDRESS, $OWNERSHIP_HOME's token)."""
    import json

    async with connect() as driver:
        pid, value = await where_am_i.remote(41)
        print("RESULT " + json.dumps({"driver": driver.address, "node": driver.core.node, "pid": pid, "value": value}), flush=True)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "hold-actors":
        trio.run(hold_actors, rest[0], rest[1], int(rest[2]))
    elif mode == "from-elsewhere":
        trio.run(from_elsewhere)
    elif mode == "two-hosts":
        trio.run(two_hosts, rest[0], rest[1], rest[2], rest[3], int(rest[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")

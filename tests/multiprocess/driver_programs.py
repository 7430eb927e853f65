"""Driver programs that tests run as separate processes (not a test module).

    python driver_programs.py hold-actors NODE TOKEN_FILE N
        attach to NODE, start N actors of 1 CPU each, print READY, wait to be killed
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


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "hold-actors":
        trio.run(hold_actors, rest[0], rest[1], int(rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")

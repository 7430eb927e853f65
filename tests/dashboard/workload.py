"""A driver for the dashboard's browser tests, run as its own process.

    python workload.py HEAD_ADDRESS

Attaches to the cluster that ``ownership start --head`` runs, then: 20
``square`` tasks; a ``parse_port`` task that raises (its traceback is what
the tasks page must show); a ``dies_first_time`` task whose worker kills
itself, retried by its owner; a 256 KiB array this driver owns, shared
with a ``Keeper`` actor that keeps it (a borrower). It prints one line,
``READY <json>``, with what the tests look for, and keeps everything
referenced. Each ``more N`` line on stdin submits N more ``square`` tasks and
answers ``DONE N`` once they finished; end of file detaches.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import cloudpickle
import numpy as np
import trio

import ownership

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def square(x: int) -> int:
    return x * x


@ownership.remote(max_retries=0)
def parse_port(text: str) -> int:
    return int(text)


@ownership.remote(max_retries=2)
def dies_first_time(marker: str) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@ownership.remote
class Keeper:
    def __init__(self) -> None:
        self.kept: list = []

    def keep(self, ref) -> str:
        from ownership.runtime.refs import current_runtime

        self.kept.append(ref)
        return current_runtime().address


async def main(head: str) -> None:
    async with ownership.connect(head) as driver:
        assert sum(await ownership.get([square.remote(i) for i in range(20)])) == sum(i * i for i in range(20))
        try:
            await parse_port.remote("eighty")
        except ownership.TaskError:
            pass
        else:
            raise AssertionError("parse_port('eighty') returned")
        with tempfile.TemporaryDirectory() as tmp:
            marker = Path(tmp) / "first-attempt"
            await dies_first_time.remote(str(marker))
            killed = int(marker.read_text())
        keeper = Keeper.remote()
        shared = ownership.put(np.arange(2**15, dtype=np.float64))
        keeper_worker = await keeper.keep.remote(ownership.shared(shared))
        info = {"driver": driver.address, "shared": shared.object_id, "keeper": keeper_worker, "killed_pid": killed}
        print("READY " + json.dumps(info), flush=True)
        stdin = trio.wrap_file(sys.stdin)
        async for line in stdin:
            words = line.split()
            if words[:1] == ["more"]:
                n = int(words[1])
                await ownership.get([square.remote(i) for i in range(n)])
                print(f"DONE {n}", flush=True)
        del keeper, shared


if __name__ == "__main__":
    trio.run(main, sys.argv[1])

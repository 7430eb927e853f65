"""Implementation -> model over TCP for OwnerRecovery: step logs of real
processes shaped like its Small model, merged, checked by TLC.

The cluster: the driver's node d, then o (where the parent runs: it alone
offers ``parent``), w (where x runs: ``run:X``) and h (the holder actor's
node: ``holder:h``). The parent makes the recoverable x and hands it to the
holder; the holder gets it; o's node is killed; once the driver has taken x
over (every live process answered), the holder lets go of x and the driver
frees it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from conformance.eventlog import read_log
from conformance.replay import model_constants
from conformance.specs import resolve_spec
from conformance.validate import validate
from ownership.cli import main
from ownership.runtime.cluster import cluster

# Workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / "spec"
TRACES = REPO / "traces"


@ownership.remote
def make_x() -> list[str]:
    return ["X"]


@ownership.remote
class Holder:
    def __init__(self) -> None:
        self.ref = None

    def keep(self, box) -> None:
        self.ref = box[0]

    def get(self):
        return ownership.get(self.ref)

    def release(self) -> None:
        self.ref = None


@ownership.remote
def parent(holder) -> None:
    x = make_x.options(recoverable=True, max_retries=1, resources={"run:X": 1}).remote()
    # The holder has x before the parent returns, so before the driver asks
    # it for x (the spec's HolderGet needs the reference received).
    ownership.get(holder.keep.remote([x]))


@pytest.fixture(scope="module")
def constants():
    return model_constants(resolve_spec("OwnerRecovery", SPEC_DIR), "Small", TRACES)


@pytest.fixture(scope="module")
def tcp_run(constants, tmp_path_factory):
    """The step logs of the run described in the module doc."""
    names = {p.name for p in constants["Procs"]}
    shape_ok = (
        names == {"d", "o", "w", "h"}
        and [p.name for p in constants["ParentPlacement"]] == ["o", "w"]
        and [(op["op"], op["obj"].name) for op in constants["Body"]] == [("make", "X"), ("share", "X")]
        and {x.name: [p.name for p in v] for x, v in constants["Placement"].items()} == {"X": ["w", "d"]}
        and {x.name: {p.name for p in v} for x, v in constants["Holders"].items()} == {"X": {"h"}}
        and {x.name: r for x, r in constants["Retries"].items()} == {"X": 1}
    )
    assert shape_ok, f"OwnerRecovery Small changed shape ({constants}): adapt this run to it"
    log_dir = tmp_path_factory.mktemp("tcp") / "steps"

    async def workload() -> None:
        async with cluster(nodes=1, num_cpus=1, config={"inline_threshold": 0}, event_log=log_dir,
                           dashboard=False, node_timeout=1.0) as local:
            with trio.fail_after(120):
                o = await local.add_node(1, {"parent": 1})
                await local.add_node(1, {"run:X": 1})
                await local.add_node(1, {"holder:h": 1})
                holder = Holder.options(resources={"holder:h": 1}).remote()
                await parent.options(resources={"parent": 1}, max_retries=1).remote(holder)
                assert await holder.get.remote() == ["X"]  # x is stored at w before o dies
                [x] = (await local.snapshot()).head["recovery_logs"]
                local.kill(o)
                while local.driver.core.takeover.completed < 1:
                    await trio.sleep(0.02)
                await holder.release.remote()
                # the driver frees x: the head's log of it deleted, no store keeps it
                while (snap := await local.snapshot()).head["recovery_logs"] or any(x in objs for objs in snap.stored().values()):
                    await trio.sleep(0.05)

    trio.run(workload)
    return log_dir


@pytest.mark.slow  # the TCP run (module fixture)
def test_tcp_run_with_the_owner_killed_is_accepted(tcp_run, tmp_path, capsys):
    out = tmp_path / "run.ndjson"
    status = main(["conformance", "log", "--from-dir", str(tcp_run), "--spec", "OwnerRecovery", "--config", "Small",
                   "--traces", str(TRACES), "--spec-dir", str(SPEC_DIR), "-o", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    _header, lines = read_log(out)
    actions = [line.action for line in lines]
    assert actions[0] == "ParentMake" and actions.index("HolderGetReturns") < actions.index("Crash"), actions
    assert actions.count("ProcessHandleOwnerMoved") == 3 and actions.count("NewOwnerHandleReport") == 2, actions
    take_over = ["Crash", "HeadDetectDeath", "NewOwnerComplete", "HolderRelease", "OwnerHandleRefRemoved", "OwnerFree", "StoreFree"]
    assert [a for a in actions if a in take_over] == take_over, actions
    result = validate(out, resolve_spec("OwnerRecovery", SPEC_DIR), "Small")
    assert result.accepted, f"rejected at line {result.consumed + 1}: {result.failed}\n{result.state}"

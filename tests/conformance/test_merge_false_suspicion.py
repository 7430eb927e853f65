"""Merging step logs when a peer lost its connection to a process that lived on."""

from __future__ import annotations

from pathlib import Path

from conformance.merge import Harness, ProcessLog, RawStep, merge
from ownership.core.events import PeerLost, Received, Send, Tick
from ownership.core.messages import ClusterView

HEAD = "127.0.0.1:1#00000001"
NODE = "127.0.0.1:2#00000002"


def _log(address: str, role: str, steps: list[tuple[int, object, tuple]], stop: int | None = 100) -> ProcessLog:
    raw = tuple(RawStep(i, t, ev, fx, None, i + 1) for i, (t, ev, fx) in enumerate(steps, start=1))
    return ProcessLog(Path(f"{role}.steps"), address, role, 1, None, 0, None, raw, stop)


def test_a_connection_lost_to_a_process_that_stepped_on_is_no_crash():
    # The head's connection to the node broke (its probe then found it up);
    # the node took the head's next message after that.
    view = ClusterView(nodes=())
    head = _log(HEAD, "head", [(10, PeerLost(address=NODE), ()), (12, Received(NODE, view), (Send(NODE, view),))])
    node = _log(NODE, "node", [(5, Tick(), (Send(HEAD, view),)), (14, Received(HEAD, view), ())], stop=None)
    run = merge({HEAD: head, NODE: node}, Harness(head=HEAD, nodes=(NODE,)), [])
    assert run.crashed == {}
    assert len(run.steps) == 4


def test_a_connection_lost_after_the_last_step_of_an_unstopped_process_is_its_crash():
    head = _log(HEAD, "head", [(10, PeerLost(address=NODE), ())])
    node = _log(NODE, "node", [(5, Tick(), ())], stop=None)
    run = merge({HEAD: head, NODE: node}, Harness(head=HEAD, nodes=(NODE,)), [])
    assert list(run.crashed) == [NODE]

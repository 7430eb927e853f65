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


def test_a_task_that_failed_as_it_arrived_is_not_lost_when_its_worker_dies_later():
    # The worker replied to the push in the step that took it (the task
    # failed before it ran): no TaskDone follows. Its later death loses no
    # task; a 90 s chaos log was rejected at such a drop.
    from conformance.merge import Kill
    from ownership.core.messages import ErrorInfo, Payload, PushTask, TaskReply, TaskSpec

    driver, worker = "127.0.0.1:3#00000003", "127.0.0.1:4#00000004"
    spec = TaskSpec(task_id=f"{driver}/t1", owner=driver, return_id=f"{driver}/t1.r", function_id="f", function=Payload(data=b"f"), args=())
    push = PushTask(task=spec, lease_id="L1", attempt=1)
    reply = TaskReply(task_id=spec.task_id, return_id=spec.return_id, attempt=1, worker=worker, lease_id="L1",
                      error=ErrorInfo(kind="owner_died", message="an argument's owner died"))
    drv = _log(driver, "driver", [(5, Tick(), (Send(worker, push),)), (9, Received(worker, reply), ())])
    raw = (RawStep(1, 7, Received(driver, push), (Send(driver, reply),), None, 2),)
    wrk = ProcessLog(Path("worker.steps"), worker, "worker", 1, NODE, 0, None, raw, None)
    run = merge({driver: drv, worker: wrk}, Harness(driver=driver, kills=(Kill(worker, 1, 9, 20),)), [])
    assert worker in run.crashed
    drops = [s for s in run.steps if getattr(s.event, "kind", None) == "drop"]
    assert drops == [], drops


def test_a_worker_killed_as_it_registered_dies_after_its_node_took_the_registration():
    # Its RegisterWorker goes out as it starts, before its core's first
    # logged step, and it was killed before taking any: no step of its own.
    # The node registered it, then lost it. Placed before the registration
    # (after its last step, i.e. at its start), the crash made a 90 s chaos
    # log register a dead worker, which Scheduling rejects.
    from conformance.merge import Kill
    from ownership.core.messages import RegisterWorker

    worker = "127.0.0.1:4#00000004"
    register = RegisterWorker(worker=worker, node=NODE)
    # SIGKILLed at 9, its registration (sent before) taken at 12.
    node = _log(NODE, "node", [(12, Received(worker, register), ()), (20, PeerLost(address=worker), ())])
    wrk = ProcessLog(Path("worker.steps"), worker, "worker", 4, NODE, 8, None, (), None)
    run = merge({NODE: node, worker: wrk}, Harness(head=HEAD, nodes=(NODE,), kills=(Kill(worker, 4, 9, 9),)), [])
    assert worker in run.crashed
    order = ["register" if isinstance(s.event, Received) else "lost" if isinstance(s.event, PeerLost) else s.event.kind for s in run.steps]
    assert order == ["register", "crash", "lost"]


def test_a_death_noticed_before_a_message_of_it_was_taken_stays_before_it():
    # The message was in flight when its sender died, and the head had
    # noticed the death first: the crash is not moved after the receipt.
    from conformance.merge import Kill
    from ownership.core.messages import RegisterWorker

    worker = "127.0.0.1:4#00000004"
    register = RegisterWorker(worker=worker, node=NODE)
    head = _log(HEAD, "head", [(15, PeerLost(address=worker), ())])
    node = _log(NODE, "node", [(20, Received(worker, register), ())])
    wrk = ProcessLog(Path("worker.steps"), worker, "worker", 4, NODE, 8, None, (), None)
    run = merge({HEAD: head, NODE: node, worker: wrk}, Harness(head=HEAD, nodes=(NODE,), kills=(Kill(worker, 4, 9, 9),)), [])
    crash = next(i for i, s in enumerate(run.steps) if getattr(s.event, "kind", None) == "crash")
    lost = next(i for i, s in enumerate(run.steps) if isinstance(s.event, PeerLost))
    assert crash < lost

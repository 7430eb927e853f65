"""Every message type against every service: no message ends a process.

Hypothesis draws one message of every registered type (``MESSAGE_TYPES``)
per example, from strategies derived from the message classes' annotations
(the ones the decoder checks), with values of the right type but the wrong
shape (addresses that are not addresses, ids nobody issued, counts at the
ends of their range, payloads that do not unpickle), or with one field
swapped for a value of another type, which must be refused before any core
sees it. A fuzzer process sends them to the head, a node, a worker or the
driver; afterwards the service must still serve, and no core may have
raised (the shells' backstop, ``handler_errors``, stays at 0: a message a
core cannot use is dropped by the core itself).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import secrets
import subprocess
import sys
import typing
from typing import Annotated, Any, Literal

import attrs
import cloudpickle
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ownership
import ownership.core.store  # noqa: F401  (registers FetchObject, ObjectFetched)
import ownership.runtime.objects  # noqa: F401  (registers the object plane's messages)
import ownership.runtime.status  # noqa: F401  (registers StatusRequest, StatusReply)
from ownership.core import messages as m
from ownership.runtime.auth import generate_token, load_token, write_token
from ownership.runtime.cluster import connect, spawn_service
from ownership.runtime.status import StatusReply, StatusRequest, query_status
from ownership.runtime.tcp import TCPTransport, open_tcp_transport
from ownership.testing import memory_cluster

# The TCP test's worker processes cannot import this module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: The fuzzer itself: a message naming it as its sender gets past the
#: receiver's check that a message comes from whom it says.
SELF = "<fuzzer>"
#: Addresses of no process of the cluster under test: malformed, too long,
#: with control characters, plausible but unknown; and the fuzzer's own.
ADDRESSES = (
    SELF,
    "not-an-address",
    "x",
    "w9@n9",
    "n9",
    "head2",
    "127.0.0.1:1",
    "[::1]:2",
    "host:99999",
    "a\nb",
    "é" * 40,
    "z" * 300,
)
IDS = ("", "t1", "x/y", "driver@n1/t999", "driver@n1/t999.r", "w9@n9/p1", "n1/l999", "q", "\x00", "o" * 200)
PICKLES = (
    b"",
    b"junk",
    pickle.dumps(1, protocol=5),
    pickle.dumps((1, "x"), protocol=5),
    pickle.dumps(1, protocol=5)[:-3],  # truncated
    pickle.dumps(None, protocol=5),
)
#: Values of the wrong type for any field.
WRONG = (None, 0, -1, 2**70, 1.5, float("nan"), True, "", "x", b"x", [], ["x"], ("x",), (("CPU", -1.0),), {"a": 1}, object())


def _address() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ADDRESSES), st.text(min_size=1, max_size=12))


def strategy(hint: Any, extra: tuple = ()) -> st.SearchStrategy[Any]:
    """Type-valid values for an annotation (Address, Count and Amount within their bounds)."""
    meta: tuple = extra
    if typing.get_origin(hint) is Annotated:
        hint, *rest = typing.get_args(hint)
        meta = tuple(rest)
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return st.sampled_from((None, 1, "x"))
    if origin in (typing.Union, __import__("types").UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.one_of(st.none(), strategy(inner))
    if origin is Literal:
        return st.sampled_from(typing.get_args(hint))
    bounds = next((x for x in meta if isinstance(x, m.Bounds)), None)
    if hint is str:
        if m.NON_EMPTY in meta:
            return _address()
        return st.one_of(st.sampled_from(IDS), st.text(max_size=12))
    if hint is bool:
        return st.booleans()
    if hint is int:
        if bounds is not None:
            low, high = int(bounds.low), int(bounds.high)
            return st.one_of(st.sampled_from((low, low + 1, high)), st.integers(low, high))
        return st.one_of(st.sampled_from((0, -1, 2**63 - 1, -(2**63))), st.integers(-(2**63), 2**63 - 1))
    if hint is float:
        if bounds is not None:
            return st.one_of(st.sampled_from((bounds.low, 1.0, bounds.high)), st.floats(bounds.low, bounds.high))
        return st.floats(allow_nan=False)
    if hint is bytes:
        return st.sampled_from(PICKLES)
    if hint is dict or origin is dict:
        return st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2)
    if hint is tuple or origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy(args[0]), max_size=3).map(tuple)
        if not args:
            return st.lists(st.text(max_size=4), max_size=2).map(tuple)
        return st.tuples(*(strategy(a) for a in args))
    if isinstance(hint, type) and attrs.has(hint):
        return st.deferred(lambda: valid_instance(hint))
    raise TypeError(f"no strategy for {hint!r}")


def valid_instance(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return st.builds(cls, **{a.name: strategy(hints[a.name]) for a in attrs.fields(cls)})


def invalid_instance(cls: type) -> st.SearchStrategy[Any]:
    """A valid instance with one field swapped for a value of another type
    (possibly still valid: None for an optional field)."""
    names = [a.name for a in attrs.fields(cls)]
    if not names:
        return valid_instance(cls)
    return st.tuples(valid_instance(cls), st.sampled_from(names), st.sampled_from(WRONG)).map(
        lambda t: attrs.evolve(t[0], **{t[1]: t[2]})
    )


def replaced(obj: Any, old: str, new: str) -> Any:
    """``obj`` with every string ``old`` inside it (at any depth) replaced by ``new``."""
    if type(obj) is str:
        return new if obj == old else obj
    if type(obj) is tuple:
        return tuple(replaced(x, old, new) for x in obj)
    if attrs.has(type(obj)):
        return attrs.evolve(obj, **{a.name: replaced(getattr(obj, a.name), old, new) for a in attrs.fields(type(obj))})
    return obj


def sent_by(obj: Any, address: str) -> Any:
    """``obj`` as the process at ``address`` sends it: :data:`SELF` is that process."""
    return replaced(obj, SELF, address)


def message_types() -> list[type]:
    return [m.MESSAGE_TYPES[name] for name in sorted(m.MESSAGE_TYPES)]


def one_of_each() -> st.SearchStrategy[list[Any]]:
    """One message of every registered type (each type-valid or not), in a drawn order."""
    per_type = [st.one_of(valid_instance(cls), invalid_instance(cls)) for cls in message_types()]
    return st.tuples(*per_type).flatmap(lambda msgs: st.permutations(list(msgs)))


def is_valid(msg: Any) -> bool:
    try:
        m.validate(msg)
    except m.InvalidMessage:
        return False
    return True


# -- the in-memory network: every service, many examples ---------------------------


@ownership.remote
def double(x: int) -> int:
    return 2 * x


SERVICES = ("head", "n1", "w1@n1", "driver@n1")
#: What a service may send to a process that does not exist: a task names
#: the owners of its arguments, whom its worker asks for their values, asks
#: to count it (a ref from a caller that is not its owner) and hands its own
#: borrowers to, and a borrower names its borrowers, whom the owner then
#: waits on; nothing can tell a process that never was from one not heard
#: of yet.
TO_THIRD_PARTIES = {"AddBorrower", "GetObject", "RefRemoved", "WaitForRefRemoved"}


@pytest.mark.parametrize("service", SERVICES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages=one_of_each())
async def test_every_message_type_leaves_the_service_serving(service: str, messages: list[Any]) -> None:
    # Room for a second worker: a fuzzed RequestLease may hold the first one.
    async with memory_cluster(nodes=1, workers_per_node=1, cpus_per_node=4, tick_interval=None) as c:
        await c.settle()
        rt = c.runtimes()[service]
        known = {*c.network.addresses, SELF}
        nowhere: list[Any] = []  # what the service sent to no process

        def observe(event: Any) -> None:
            env = event.envelope
            if event.kind == "send" and env.src == service and env.dst not in known:
                nowhere.append(env.msg)

        c.network.observers.append(observe)
        fuzz = c.network.endpoint(SELF)
        with trio.fail_after(20):
            # One at a time: a refused message closes the connection, which
            # loses whatever else was in flight on it.
            for msg in messages:
                fuzz.send_nowait(service, msg)
                await c.settle()
        assert rt.handler_errors == 0, "a core raised on a message (see the log)"
        # An answer goes to whom asked, not to whom the question names.
        assert {type(msg).__name__ for msg in nowhere} <= TO_THIRD_PARTIES, nowhere
        invalid = sum(1 for msg in messages if not is_valid(msg))
        assert sum(c.network.stats["rejected"].values()) == invalid
        # The fuzzer goes away, as a process would; the service still serves.
        c.crash(SELF)
        with trio.fail_after(10):
            await c.settle()
            assert c.network.alive(service) and not rt.closed
            steps = rt.core.log.total
            c.tick(service)
            await c.settle()
            assert rt.core.log.total > steps
            assert await double.remote(21) == 42
        assert rt.handler_errors == 0


# -- over TCP: real processes, a sample of examples ----------------------------------


@attrs.frozen
class TCPCluster:
    head: str
    node: str
    pids: dict
    token_file: str


@pytest.fixture(scope="module")
def tcp_cluster(tmp_path_factory):
    """A head and a node with two workers, for this module's TCP examples only.

    The head never declares a silent node dead here: a fuzzer that sent a
    heartbeat would be one, and its death would (rightly) stop the workers
    it leased, which the test could not tell from a crash.
    """
    token_file = write_token(generate_token(), tmp_path_factory.mktemp("fuzz") / "cluster.token")
    common = ["--tick", "0.1", "--node-timeout", "3600"]
    procs: list[subprocess.Popen] = []
    try:
        head, head_address = spawn_service("head", token_file, *common)
        procs.append(head)
        node, node_address = spawn_service(
            "node", token_file, *common, "--head", head_address, "--num-cpus", "2", "--session", secrets.token_hex(4)
        )
        procs.append(node)
        yield TCPCluster(head_address, node_address, {head_address: head.pid, node_address: node.pid}, str(token_file))
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the lifeline: a clean stop
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


class Fuzzer:
    """Sends one message at a time and learns whether its target refused it (closed the connection).

    A closed connection between two live processes is dialed again at once
    and what it held is sent again (runtime/resend.py), so the status request
    sent after the message is answered either way; its answer says how many
    frames the target has refused so far.
    """

    def __init__(self) -> None:
        self.replies: dict[str, trio.Event] = {}
        self.refused: dict[str, int] = {}  # by target, as of its last answer
        self.leases: list[tuple[str, m.LeaseGranted]] = []  # granted to the fuzzer (it asked for some)
        self.last: Any = None  # the message sent last
        self._ids = itertools.count()

    async def receive_replies(self, transport: TCPTransport) -> None:
        async for env in transport:
            if isinstance(env.msg, m.LeaseGranted):
                self.leases.append((env.src, env.msg))
            if isinstance(env.msg, StatusReply) and env.msg.request_id in self.replies:
                self.refused[env.src] = env.msg.snapshot["tcp"]["frames_rejected"]
                self.replies[env.msg.request_id].set()

    async def ask(self, transport: TCPTransport, target: str) -> int:
        answered = self.replies[rid := f"fuzz-{next(self._ids)}"] = trio.Event()
        transport.send_nowait(target, StatusRequest(request_id=rid))
        with trio.move_on_after(8) as scope:
            await answered.wait()
        assert not scope.cancelled_caught, f"{target} did not answer a status request after {self.last!r}"
        return self.refused[target]

    async def exchange(self, transport: TCPTransport, target: str, msg: Any) -> bool | None:
        """True: the target refused ``msg``; False: it took it; None: ``msg``
        cannot even be encoded here."""
        before = self.refused[target] if target in self.refused else await self.ask(transport, target)
        self.last = msg
        try:
            transport.send_nowait(target, msg)
        except (TypeError, ValueError):
            return None
        return await self.ask(transport, target) != before

    async def leave(self, transport: TCPTransport) -> None:
        """Give back the leases the fuzzer was granted, as an owner that stops does: an owner
        that dies with a lease makes its node kill the leased worker (fate-sharing), and the
        next example would find a worker fewer."""
        for node, grant in self.leases:
            transport.send_nowait(node, m.ReturnLease(lease_id=grant.lease_id, worker=grant.worker, kill=False))
            await self.ask(transport, node)  # handled in order: the lease is back


@pytest.mark.slow
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(messages=one_of_each())
async def test_every_message_type_over_tcp_leaves_head_node_and_worker_serving(tcp_cluster: TCPCluster, messages: list[Any]) -> None:
    token = load_token(tcp_cluster.token_file)
    with trio.fail_after(60):
        [node] = (await snapshots(token, [tcp_cluster.node])).values()
        worker, pid = sorted(node["worker_pids"].items())[0]
        pids = {**tcp_cluster.pids, worker: pid}
        fuzzer = Fuzzer()
        async with open_tcp_transport(token) as transport, trio.open_nursery() as nursery:
            nursery.start_soon(fuzzer.receive_replies, transport)
            for target in pids:
                for msg in messages:
                    msg = sent_by(msg, transport.address)
                    closed = await fuzzer.exchange(transport, target, msg)
                    if closed is not None:
                        # A valid message keeps the connection, an invalid one closes it.
                        assert closed != is_valid(msg), (target, msg)
            await fuzzer.leave(transport)
            nursery.cancel_scope.cancel()
        for target, pid in pids.items():
            os.kill(pid, 0)  # still there
        views = await snapshots(token, list(pids))
        assert {address: view["handler_errors"] for address, view in views.items()} == dict.fromkeys(pids, 0)
        # Neither head nor node answered to an address a message named
        # instead of its sender (only a worker asks third parties, see
        # TO_THIRD_PARTIES).
        assert views[tcp_cluster.head]["messages_unsendable"] == views[tcp_cluster.node]["messages_unsendable"] == 0
        # The driver gives its lease back with the reply (lease_idle_ticks 0)
        # and leaves once that is on the wire: its death would stop a worker
        # it still leased (fate-sharing), and the next example would find
        # one worker fewer.
        async with connect(tcp_cluster.node, token_file=tcp_cluster.token_file, config={"lease_idle_ticks": 0}) as driver:
            assert await double.remote(21) == 42
            assert not driver.core.submitter.leases
            await driver.transport.inner.wait_all_sent()


async def snapshots(token: bytes, addresses: list[str]) -> dict[str, dict]:
    """What each process says it holds (a process that does not answer is missing)."""
    async with open_tcp_transport(token) as transport:
        replies = await query_status(transport, addresses, timeout=10)
    return {address: reply.snapshot for address, reply in replies.items()}


#: What the fuzzer found: each of these ended the process that received it
#: (the head, a node, a worker) over TCP before decoding checked fields and
#: before the cores checked that a message comes from the process it names.
#: ``NODE`` stands for the node's address, ``SELF`` for the sender's.
NODE = "<node>"
BOGUS = "not-an-address"
CRASHERS = {
    # A core answered (or watched) the address a field named, not the sender:
    # the TCP transport refused to dial it, and the exception ended the service.
    "head-Heartbeat": ("head", m.Heartbeat(node=BOGUS, seq=1)),
    "head-RegisterWorker": ("head", m.RegisterWorker(worker=SELF, node=BOGUS)),
    "node-RegisterWorker": ("node", m.RegisterWorker(worker=BOGUS, node=NODE)),
    "node-RequestLease": ("node", m.RequestLease(request_id="q", owner=BOGUS, task_id="t", resources=(("CPU", 1.0),))),
    "node-PullObject": ("node", m.PullObject(object_id="o", requester=BOGUS)),
    "node-PutObject": ("node", m.PutObject(object_id="o", owner=BOGUS, value=m.Payload(data=b"x"))),
    "worker-GetObject": ("worker", m.GetObject(object_id="o", requester=BOGUS)),
    "worker-LeaseGranted": ("worker", m.LeaseGranted(request_id="q", lease_id="l", worker=BOGUS, node=BOGUS)),
    "worker-ObjectStored": ("worker", m.ObjectStored(object_id="o", node=BOGUS)),
    "worker-TaskReply": ("worker", m.TaskReply(task_id="t", return_id="t.r", attempt=1, worker=SELF, lease_id=None, location=BOGUS)),
    "worker-WaitForRefRemoved": ("worker", m.WaitForRefRemoved(object_id="o", owner=BOGUS)),
    "worker-PushTask": (
        "worker",
        m.PushTask(task=m.TaskSpec(task_id="t", owner=BOGUS, return_id="t.r", function_id="f", function=m.Payload(data=PICKLES[2])), lease_id=None, attempt=1),
    ),
    # User code that is not callable: the worker's shell raised while it
    # started the task (and kept the thread it had counted busy).
    "worker-PushTask-not-callable": (
        "worker",
        m.PushTask(task=m.TaskSpec(task_id="t2", owner=SELF, return_id="t2.r", function_id="f2", function=m.Payload(data=PICKLES[2])), lease_id=None, attempt=1),
    ),
    # Fields of the wrong type, which a core trusted: now refused at decode.
    "node-ClusterView-types": ("node", m.ClusterView(nodes=(m.NodeView(node="x", total=5, available=()),))),  # type: ignore[arg-type]
    "head-Heartbeat-types": ("head", m.Heartbeat(node=SELF, seq=1, workers=5)),  # type: ignore[arg-type]
    "worker-NodeDied-types": ("worker", m.NodeDied(node="x", workers=5)),  # type: ignore[arg-type]
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CRASHERS))
async def test_message_that_ended_a_process_closes_at_most_its_connection(tcp_cluster: TCPCluster, case: str) -> None:
    role, msg = CRASHERS[case]
    token = load_token(tcp_cluster.token_file)
    with trio.fail_after(30):
        [node] = (await snapshots(token, [tcp_cluster.node])).values()
        worker, worker_pid = sorted(node["worker_pids"].items())[0]
        target, pid = {
            "head": (tcp_cluster.head, tcp_cluster.pids[tcp_cluster.head]),
            "node": (tcp_cluster.node, tcp_cluster.pids[tcp_cluster.node]),
            "worker": (worker, worker_pid),
        }[role]
        [before] = (await snapshots(token, [target])).values()
        fuzzer = Fuzzer()
        async with open_tcp_transport(token) as transport, trio.open_nursery() as nursery:
            nursery.start_soon(fuzzer.receive_replies, transport)
            msg = replaced(sent_by(msg, transport.address), NODE, tcp_cluster.node)
            closed = await fuzzer.exchange(transport, target, msg)
            nursery.cancel_scope.cancel()
        assert closed is not None
        assert closed != is_valid(msg), "a valid message keeps its connection, an invalid one closes it"
        os.kill(pid, 0)
        [after] = (await snapshots(token, [target])).values()
        assert after["handler_errors"] == 0
        assert after["messages_unsendable"] == before["messages_unsendable"]

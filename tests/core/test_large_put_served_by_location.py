"""An owner never ships a large put through its own socket: a reader is
answered with the store's location once the copy is stored."""

from __future__ import annotations

from ownership.core.config import CoreConfig
from ownership.core.events import Put, Received, Send
from ownership.core.messages import GetObject, ObjectStored, ObjectValue, Payload, PutObject
from ownership.core.worker import WorkerCore

BIG = Payload(data=b"x" * (CoreConfig().inline_threshold + 1))


def test_large_put_get_object_before_stored_is_answered_with_the_location_once_stored() -> None:
    o = WorkerCore("o", "n1")
    fx = o.handle(Put("o/p1", BIG))
    assert [e.msg for e in fx if isinstance(e, Send)] == [PutObject(object_id="o/p1", owner="o", value=BIG)]
    assert o.handle(Received("r", GetObject(object_id="o/p1", requester="r"))) == []
    fx = o.handle(Received("n1", ObjectStored(object_id="o/p1", node="n1")))
    assert fx == [Send("r", ObjectValue(object_id="o/p1", locations=("n1",)))]
    assert o.refs.table["o/p1"].value is None


def test_large_put_get_object_after_stored_gets_the_location_at_once() -> None:
    o = WorkerCore("o", "n1")
    o.handle(Put("o/p1", BIG))
    o.handle(Received("n1", ObjectStored(object_id="o/p1", node="n1")))
    fx = o.handle(Received("r", GetObject(object_id="o/p1", requester="r")))
    assert fx == [Send("r", ObjectValue(object_id="o/p1", locations=("n1",)))]


def test_small_put_is_served_inline_at_once() -> None:
    o = WorkerCore("o", "n1")
    small = Payload(data=b"x")
    o.handle(Put("o/p1", small))
    assert o.handle(Received("r", GetObject(object_id="o/p1", requester="r"))) == [Send("r", ObjectValue(object_id="o/p1", value=small))]

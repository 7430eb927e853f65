"""Wire messages of the protocol.

Every message is an ``@message`` class: an attrs frozen, keyword-only value
named after the spec's message ``type`` string in CamelCase, with the spec's
field names (DESIGN §4). ``@message`` also registers the class by name, so a
transport can encode ``(type_name, fields)`` and decode it back without
trusting the peer to name arbitrary Python classes.

Concrete message classes are defined next to the core part that handles
them; they all register here.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

__all__ = ["MESSAGE_TYPES", "message", "UnknownMessageType", "message_type_of", "message_from_fields", "message_fields"]

MESSAGE_TYPES: dict[str, type] = {}

T = TypeVar("T")


class UnknownMessageType(ValueError):
    """A decoded envelope names a message type that this process does not know."""


def message(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen keyword-only attrs class and register it by name."""
    frozen = attrs.frozen(kw_only=True)(cls)
    name = frozen.__name__
    if name in MESSAGE_TYPES and MESSAGE_TYPES[name] is not frozen:
        raise TypeError(f"message type {name!r} is defined twice")
    MESSAGE_TYPES[name] = frozen
    return frozen


def message_type_of(msg: Any) -> str:
    return type(msg).__name__


def message_fields(msg: Any) -> dict[str, Any]:
    """Shallow field dict of a message (values are left as they are)."""
    return {a.name: getattr(msg, a.name) for a in attrs.fields(type(msg))}


def message_from_fields(type_name: str, fields: dict[str, Any]) -> Any:
    """Rebuild a message; unknown types and bad fields raise clear errors."""
    try:
        cls = MESSAGE_TYPES[type_name]
    except KeyError:
        raise UnknownMessageType(f"unknown message type {type_name!r}") from None
    try:
        return cls(**fields)
    except TypeError as exc:
        raise UnknownMessageType(f"bad fields for message type {type_name!r}: {exc}") from None

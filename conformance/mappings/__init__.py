"""One mapping per spec, used in both directions (DESIGN §5).

A mapping says, for its spec:

- **action -> stimulus** (:meth:`Mapping.apply`): what makes the
  implementation take a spec step: an API call, the delivery of the one
  held message that matches the spec's message, a crash, a failure
  notification, a tick. Actions in :attr:`Mapping.eager` have no stimulus:
  the implementation takes them by itself inside the stimulus that enables
  them (``submit`` sends the lease request at once), so a trace is compared
  with the implementation only in *settled* states, where no such action is
  enabled (see :mod:`conformance.generate`, which keeps only behaviours the
  implementation can follow);
- **projection** (:meth:`Mapping.project`): implementation state (every
  core plus the messages in flight) -> the spec's variables, with
  :meth:`Mapping.abstract` applied to the trace's state when a variable is
  compared through a coarser view (each mapping documents which and why);
- **events** (:meth:`Mapping.log_step`): the NDJSON event log lines of a run,
  for the implementation -> model direction.

Model values (``o1``, ``n1``, ``w1``, ``t1``) are bound to implementation
addresses and ids deterministically: from the model's constants (owners on
their node, workers by node in name order) and, for ids the implementation
chooses (task ids), at the step that creates them.
"""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar

__all__ = ["Mapping", "MAPPINGS", "eager_actions", "load_mapping"]

#: spec name -> module defining ``MAPPING`` (a :class:`Mapping` subclass)
MAPPINGS = {
    "Scheduling": "conformance.mappings.scheduling",
    "RefCounting": "conformance.mappings.refcounting",
    "FateSharing": "conformance.mappings.fatesharing",
    "Ownership": "conformance.mappings.ownership",
    "OwnerRecovery": "conformance.mappings.ownerrecovery",
}


class Mapping(abc.ABC):
    """How one spec's traces drive and observe the implementation."""

    spec: ClassVar[str]
    #: actions the implementation takes by itself, with no stimulus of their own
    eager: ClassVar[frozenset[str]] = frozenset()
    #: spec variables left out of the comparison, with the reason
    unobserved: ClassVar[dict[str, str]] = {"lastAction": "auxiliary: the trace's own label of its steps"}

    def __init__(self, constants: dict[str, Any]) -> None:
        self.constants = constants

    @abc.abstractmethod
    def cluster(self) -> Any:
        """An async context manager that starts the implementation for these constants."""

    @abc.abstractmethod
    async def start(self, cluster: Any) -> None:
        """Bind model values to the started cluster's processes."""

    @abc.abstractmethod
    async def apply(self, action: str, params: dict[str, Any]) -> None:
        """Give the implementation the stimulus of one step (raises
        :class:`~conformance.cluster.StimulusError` when it cannot)."""

    @abc.abstractmethod
    def project(self) -> dict[str, Any]:
        """The spec's variables as the implementation has them now."""

    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        """TLA+ definitions and action formulas (over ``lastAction'``) that
        resolve the spec's choices the way the implementation does, for
        trace generation: traces with a choice the implementation never
        makes cannot be followed, so they are not generated."""
        return [], []

    def expect(self, steps: list[tuple[str, Any]]) -> None:
        """The trace's steps that follow the next stimulus and that the
        implementation takes by itself (eager), in order, with their
        parameters: a mapping that delivers messages below the stimulus can
        deliver them in this order (default: ignored)."""

    def abstract(self, state: dict[str, Any]) -> dict[str, Any]:
        """The trace's state in the projection's terms (default: itself,
        without the unobserved variables)."""
        return {k: v for k, v in state.items() if k not in self.unobserved}


def load_mapping(spec: str) -> type[Mapping] | None:
    """The mapping class of ``spec``, or ``None`` when there is none (yet)."""
    module_name = MAPPINGS.get(spec)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, "MAPPING", None)


def eager_actions(spec: str) -> frozenset[str]:
    mapping = load_mapping(spec)
    return mapping.eager if mapping is not None else frozenset()

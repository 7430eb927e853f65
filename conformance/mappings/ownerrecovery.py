"""OwnerRecovery (spec/OwnerRecovery.tla) <-> the implementation: what a
trace of the model needs from the implementation, as the generator reads it.

Not a mapping yet, and not registered in
:data:`conformance.mappings.MAPPINGS`: the stimuli and the projection are
not written, and the spec and the implementation differ where no
projection can reconcile them (reconstruction, eager in the spec and lazy
here; see spec/docs/OwnerRecovery.md, "Conformance"). This module holds
what is settled: which steps the implementation takes by itself (``eager``)
and the departure traces must avoid (``model_choices``). The generator
reads both when the spec is registered (``MAPPINGS["OwnerRecovery"]``), so
the graph the mapping will replay can be measured before it exists; the
figures are in the spec's docs.

Eager actions (the implementation takes them inside the stimulus that
enables them): a holder's get returns as soon as the owner can answer
(HolderGetReturns); an object nothing refers to is deleted at the head and
freed at once (OwnerFree, and the stores' StoreFree: FreeObject is
delivered at once); a re-executed parent lets go of an adopted object when
its body ends (AdopterRelease: ReleaseAdopted goes to the head at once);
the new owner settles an object on the last answer (NewOwnerComplete,
inside the delivery of that RecoveryReport or of a death) and rebuilds
what is lost (OwnerRebuild).

Departure (``model_choices``): the model's worker keeps running a task of
a dead owner and reports it to the new owner; the implementation's node
stops the workers leased to a dead owner when it hears of the death (their
processes are killed), and the new owner rebuilds what they would have
made. A process is therefore told of a death (ProcessHandleOwnerMoved) in
traces only when it runs no task of the dead owner: the run finishes first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EAGER", "NO_RETARGET", "OwnerRecoveryMapping"]

#: actions the implementation takes by itself, inside the stimulus that enables them
EAGER = frozenset(
    {
        "HolderGetReturns",
        "OwnerFree",
        "StoreFree",
        "AdopterRelease",
        "NewOwnerComplete",
        "OwnerRebuild",
    }
)

#: the departure traces avoid: a process hears of an owner's death only
#: when it runs no task of that owner (the implementation kills such runs)
NO_RETARGET = (
    'lastAction\'.name = "ProcessHandleOwnerMoved" => '
    "~\\E r \\in run[lastAction'.params.p] : r.o = lastAction'.params.m.w"
)


class OwnerRecoveryMapping:
    """What the generator reads of the OwnerRecovery mapping (see the module doc)."""

    spec = "OwnerRecovery"
    eager = EAGER

    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        return [], [NO_RETARGET]


MAPPING = OwnerRecoveryMapping

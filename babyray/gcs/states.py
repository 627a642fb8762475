"""The states of what the GCS keeps: nodes, actors and placement groups, each with its transitions.

Each state is a ``str`` enum whose values are the strings stored in the GCS tables and sent in
messages, so records written before are read back unchanged. Records hold the plain string
(``state.value``); ``advance`` is the one place a change of state is checked: a transition not
listed here raises ``IllegalTransition``.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

__all__ = ["ActorState", "IllegalTransition", "NodeState", "PlacementGroupState", "advance"]


class IllegalTransition(ValueError):
    """A state change its state machine does not allow."""


class NodeState(str, Enum):
    """A node, as the GCS's liveness check sees it. A dead node that heartbeats again is alive."""

    ALIVE = "ALIVE"
    DEAD = "DEAD"


class ActorState(str, Enum):
    """An actor, as Ray names its states.

    PENDING: registered, its constructor not done yet. ALIVE: constructed, serving calls.
    RESTARTING: its process died and a new one is being made (``max_restarts``). DEAD: for good.
    """

    PENDING = "PENDING"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"


class PlacementGroupState(str, Enum):
    """PENDING: waiting for every bundle to be reserved. CREATED: reserved. RESCHEDULING: a node
    holding some of its bundles died; those are being reserved again elsewhere. REMOVED: for good."""

    PENDING = "PENDING"
    CREATED = "CREATED"
    RESCHEDULING = "RESCHEDULING"
    REMOVED = "REMOVED"


# Per machine (the states of different machines compare equal when their strings do).
_TRANSITIONS: dict[type[Enum], dict[Enum, frozenset[Enum]]] = {
    NodeState: {
        NodeState.ALIVE: frozenset({NodeState.DEAD}),
        NodeState.DEAD: frozenset({NodeState.ALIVE}),
    },
    ActorState: {
        # A process that dies before its constructor returns is restarted as well.
        ActorState.PENDING: frozenset({ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD}),
        ActorState.ALIVE: frozenset({ActorState.RESTARTING, ActorState.DEAD}),
        ActorState.RESTARTING: frozenset({ActorState.ALIVE, ActorState.RESTARTING, ActorState.DEAD}),
        ActorState.DEAD: frozenset(),
    },
    PlacementGroupState: {
        PlacementGroupState.PENDING: frozenset({PlacementGroupState.CREATED, PlacementGroupState.REMOVED}),
        PlacementGroupState.CREATED: frozenset(
            {PlacementGroupState.RESCHEDULING, PlacementGroupState.REMOVED}
        ),
        # Another node of the group may die while its lost bundles are being reserved again.
        PlacementGroupState.RESCHEDULING: frozenset(
            {PlacementGroupState.CREATED, PlacementGroupState.RESCHEDULING, PlacementGroupState.REMOVED}
        ),
        PlacementGroupState.REMOVED: frozenset(),
    },
}

S = TypeVar("S", NodeState, ActorState, PlacementGroupState)


def advance(current: S | str, new: S) -> S:
    """Return ``new`` if its machine allows ``current`` (a state or its stored string) -> ``new``.

    Raises:
        IllegalTransition: the machine does not allow it.
    """
    machine = type(new)
    old = machine(current)
    if new not in _TRANSITIONS[machine][old]:
        raise IllegalTransition(f"{type(new).__name__}: {old.value} -> {new.value} is not allowed")
    return new

"""The GCS's state machines without I/O: node, actor and placement group states and their
transitions; the stored strings are today's."""

from __future__ import annotations

import pytest

from babyray.gcs.states import ActorState, IllegalTransition, NodeState, PlacementGroupState, advance

A, N, P = ActorState, NodeState, PlacementGroupState

LEGAL = [
    (N.ALIVE, N.DEAD),
    (N.DEAD, N.ALIVE),
    (A.PENDING, A.ALIVE),
    (A.PENDING, A.RESTARTING),
    (A.PENDING, A.DEAD),
    (A.ALIVE, A.RESTARTING),
    (A.ALIVE, A.DEAD),
    (A.RESTARTING, A.ALIVE),
    (A.RESTARTING, A.RESTARTING),
    (A.RESTARTING, A.DEAD),
    (P.PENDING, P.CREATED),
    (P.PENDING, P.REMOVED),
    (P.CREATED, P.RESCHEDULING),
    (P.CREATED, P.REMOVED),
    (P.RESCHEDULING, P.CREATED),
    (P.RESCHEDULING, P.RESCHEDULING),
    (P.RESCHEDULING, P.REMOVED),
]
ALL = [(old, new) for states in (N, A, P) for old in states for new in states]


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_a_listed_transition_is_taken_from_the_state_or_its_stored_string(old, new) -> None:
    assert advance(old, new) is new
    assert advance(old.value, new) is new


@pytest.mark.parametrize(("old", "new"), [pair for pair in ALL if pair not in LEGAL])
def test_any_other_transition_raises(old, new) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value} is not allowed"):
        advance(old, new)


def test_dead_and_removed_are_final() -> None:
    for state in A:
        with pytest.raises(IllegalTransition):
            advance(A.DEAD, state)
    for pg_state in P:
        with pytest.raises(IllegalTransition):
            advance(P.REMOVED, pg_state)


def test_stored_strings_are_the_names_ray_uses() -> None:
    assert [s.value for s in N] == ["ALIVE", "DEAD"]
    assert [s.value for s in A] == ["PENDING", "ALIVE", "RESTARTING", "DEAD"]
    assert [s.value for s in P] == ["PENDING", "CREATED", "RESCHEDULING", "REMOVED"]
    assert A.DEAD == "DEAD" and A("RESTARTING") is A.RESTARTING  # a stored string reads back


def test_a_string_that_is_no_state_is_rejected() -> None:
    with pytest.raises(ValueError):
        advance("ZOMBIE", A.DEAD)

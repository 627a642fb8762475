"""babyray.serialization without a cluster: plain values take the standard pickle, the same bytes."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from babyray import serialization


class Colour(enum.IntEnum):
    RED = 1


class Tagged(str):
    """A str subclass defined in a test module: not a plain value."""


@pytest.mark.parametrize(
    "value", [None, True, 0, -7, 2**100, 1.5, float("inf"), 2j, "", "é" * 300, b"\0" * 4096]
)
def test_a_plain_value_serializes_to_the_bytes_cloudpickle_writes(value: Any) -> None:
    serialized = serialization.serialize(value)
    assert serialized.meta == serialization._cloudpickle_dumps(value)
    assert serialized.buffers == [] and serialized.contained_refs == []
    assert serialization.deserialize(serialized.to_bytes()) == value


@pytest.mark.parametrize("value", [Colour.RED, Tagged("x"), (1, "a"), [None]])
def test_subclasses_and_containers_still_round_trip_with_their_type(value: Any) -> None:
    back = serialization.deserialize(serialization.serialize(value).to_bytes())
    assert back == value and type(back) is type(value)

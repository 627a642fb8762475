"""ObjectRef: a handle to an object that a task returns or ``put`` stores.

A ref names the object and its owner (the driver or worker that created it, which knows
where the value is). It pickles into task arguments and containers; the serializer is told
about every ref it meets so nested refs can be tracked.
"""
from __future__ import annotations

from typing import Any

from babyray.serialization import note_ref_serialized


class ObjectRef:
    __slots__ = ("id", "owner", "owner_id", "__weakref__")

    def __init__(self, object_id: str, owner: Any, owner_id: str) -> None:
        self.id = object_id
        self.owner = owner
        self.owner_id = owner_id

    def hex(self) -> str:
        return self.id

    def binary(self) -> bytes:
        return bytes.fromhex(self.id)

    def task_id(self) -> str:
        return self.id[:-4]

    def __reduce__(self) -> Any:
        note_ref_serialized(self)
        return (ObjectRef, (self.id, self.owner, self.owner_id))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

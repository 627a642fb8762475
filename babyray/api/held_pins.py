"""The store pins a process keeps for objects it put or read, so that a ``get`` of them
maps the slot at once instead of asking the store.

A put seals its object on the allocation channel keeping one pin (``AllocClient.seal`` with
``hold``), and a read from this node's store pins with ``hold``: the process then knows the
object's slot and that nothing will evict, spill or free it, and a later ``get`` (the common
``get`` right after ``put``, or a second ``get``) reads it with no round trip. Ray's plasma
clients likewise keep the buffers they created or fetched for a while after their release.

A pin is held while an ObjectRef to the object lives in this process, for at most
``IDLE_SECONDS`` after its last use, and while the object is among the most recently used
``budget`` bytes (a fraction of the arena); but never released while a value read from it is
alive. Pinned objects cannot be spilled: the time and the budget bound what held pins keep
in memory, and a put that finds the store full releases the process's unused ones and asks
again. The store releases every pin of a process whose channel closes, so a process that
dies holding them leaves nothing pinned.
"""

from __future__ import annotations

import collections
from typing import NamedTuple

from babyray.ids import ObjectID

BUDGET_FRACTION = 8  # held pins keep at most this fraction of the arena unspillable, per process
IDLE_SECONDS = 1.0  # a held pin not used for this long is released


class Slot(NamedTuple):
    """Where a held object lies in this node's arena."""

    arena_name: str
    offset: int
    size: int


class HeldPins:
    """The held pins of one process: which to keep and which to release. Not thread-safe: the
    caller holds the core lock. ``now``: ``time.monotonic()``; ``views``: the number of live
    values read from each object. Each method returns the ids whose pin to release now."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        # object id -> (slot, last used), least recently used first
        self._slots: collections.OrderedDict[ObjectID, tuple[Slot, float]] = collections.OrderedDict()
        self._bytes = 0
        self._retired: dict[ObjectID, Slot] = {}  # no longer held for reads, values still alive

    def __len__(self) -> int:
        return len(self._slots) + len(self._retired)

    def fits(self, size: int) -> bool:
        return size <= self.budget

    def lookup(self, oid: ObjectID, now: float) -> Slot | None:
        """The slot of ``oid`` if its pin is held (now the most recently used)."""
        entry = self._slots.get(oid)
        if entry is None:
            return None
        self._slots[oid] = (entry[0], now)
        self._slots.move_to_end(oid)
        return entry[0]

    def hold(self, oid: ObjectID, slot: Slot, now: float, views: dict[ObjectID, int]) -> list[ObjectID]:
        """A pin of ``oid`` was taken for this process. One pin of an object is held at most: a
        second (two threads read it at once) is released."""
        if self.lookup(oid, now) is not None:
            return [oid]
        release = []
        if oid in self._retired:  # held again by the pin kept for its live values
            slot = self._retired.pop(oid)
            release.append(oid)
        self._slots[oid] = (slot, now)
        self._bytes += slot.size
        while self._bytes > self.budget and len(self._slots) > 1:
            release += self._retire_oldest(views)
        return release

    def ref_gone(self, oid: ObjectID, views: dict[ObjectID, int]) -> list[ObjectID]:
        """The last ObjectRef to ``oid`` in this process died."""
        entry = self._slots.pop(oid, None)
        if entry is None:
            return []
        self._bytes -= entry[0].size
        return self._retire(oid, entry[0], views)

    def views_gone(self, oid: ObjectID) -> list[ObjectID]:
        """The last value read from ``oid`` died."""
        return [oid] if self._retired.pop(oid, None) is not None else []

    def release_idle(self, now: float, views: dict[ObjectID, int]) -> list[ObjectID]:
        """Stop holding the pins not used for ``IDLE_SECONDS``."""
        release = []
        while self._slots and next(iter(self._slots.values()))[1] < now - IDLE_SECONDS:
            release += self._retire_oldest(views)
        return release

    def release_unused(self, views: dict[ObjectID, int]) -> list[ObjectID]:
        """Stop holding every pin that no live value needs (the store is full)."""
        unused = [oid for oid in self._slots if not views.get(oid)]
        for oid in unused:
            self._bytes -= self._slots.pop(oid)[0].size
        return unused

    def _retire_oldest(self, views: dict[ObjectID, int]) -> list[ObjectID]:
        oid, (slot, _) = self._slots.popitem(last=False)
        self._bytes -= slot.size
        return self._retire(oid, slot, views)

    def _retire(self, oid: ObjectID, slot: Slot, views: dict[ObjectID, int]) -> list[ObjectID]:
        if views.get(oid):
            self._retired[oid] = slot
            return []
        return [oid]

"""The object store's table: every object of one node's arena, its state, pins and slot.

I/O-free: the object store actor (babyray.actors.object_store) is the Thespian shell that
feeds it requests; spill files are written and read through the ``SpillIO`` the shell
passes in, so unit tests drive the table with a fake.

An object's life (``ObjectState``; every move goes through ``TRANSITIONS``)::

    CREATING --seal--> SEALED --spill--> SPILLED --restore--> SEALED
        |                 |  \\--evict (a secondary copy)--> DELETED
        |                 |--free, unpinned--> DELETED          SPILLED --free--> DELETED
        |                 \\--free, pinned--> FREED_PINNED --last unpin--> DELETED
        |--free--> FREED_WRITING --seal--> DELETED
        \\--abort (a pull failed or moved elsewhere; replaced)--> DELETED
    CREATING, FREED_WRITING --recreate (a new writer takes the slot over)--> CREATING

A second create of an id already here (a retried task writing its return again) never
loses a slot: over CREATING or FREED_WRITING (the writer died mid-write) the new writer
takes the slot over, or a new one if the size differs; over a complete object
(SEALED, SPILLED, FREED_PINNED) the copy is a duplicate: it is written into a scratch
slot that its seal frees, and the object already here stays (Ray keeps the first sealed
copy too).

The table remembers the latest ``REMEMBERED`` ids it deleted (``was_deleted``): a pin of an
object that is not here was either deleted, or is on its way (its writer told the store of its
spare slot one-way, on a connection the store has not read yet), and the store answers the two
differently. For the same reason the owner's free can come before the object: the table
remembers the latest ``REMEMBERED`` such frees, and the object is freed as it arrives.

Room is made in least-recently-used order among SEALED, unpinned objects: secondary
copies (pulled from other nodes) are dropped first, then primary copies are spilled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from babyray import exceptions
from babyray.ids import NodeID, ObjectID, WorkerID
from babyray.store.alloc_channel import SpareSlots
from babyray.store.allocator import Allocator

__all__ = [
    "TRANSITIONS",
    "InvalidTransition",
    "ObjectState",
    "ObjectTable",
    "PinOutcome",
    "SealOutcome",
    "SpillIO",
    "StoredObject",
]


class ObjectState(Enum):
    CREATING = "CREATING"  # a slot is reserved, a producer (or a pull) writes it
    SEALED = "SEALED"  # complete in the arena: readable, pinned by readers or evictable
    SPILLED = "SPILLED"  # complete, only in its spill file; a pin restores it
    FREED_WRITING = "FREED_WRITING"  # freed by its owner while being written: deleted at its seal
    FREED_PINNED = "FREED_PINNED"  # freed by its owner while pinned: deleted at the last unpin
    DELETED = "DELETED"  # gone from the table (its slot and spill file released)


S = ObjectState
TRANSITIONS: dict[tuple[ObjectState, str], ObjectState] = {
    (S.CREATING, "seal"): S.SEALED,
    (S.CREATING, "free"): S.FREED_WRITING,
    (S.CREATING, "abort"): S.DELETED,
    (S.CREATING, "recreate"): S.CREATING,
    (S.SEALED, "spill"): S.SPILLED,
    (S.SEALED, "evict"): S.DELETED,
    (S.SEALED, "free"): S.DELETED,
    (S.SEALED, "free_pinned"): S.FREED_PINNED,
    (S.SPILLED, "restore"): S.SEALED,
    (S.SPILLED, "free"): S.DELETED,
    (S.FREED_WRITING, "seal"): S.DELETED,
    (S.FREED_WRITING, "abort"): S.DELETED,
    (S.FREED_WRITING, "recreate"): S.CREATING,
    (S.FREED_PINNED, "last_unpin"): S.DELETED,
}
UNSEALED = (S.CREATING, S.FREED_WRITING)
NO_OWNER = WorkerID("")  # an object whose owner is not known (a copy pulled from another node)
REMEMBERED = (
    10_000  # how many deleted ids, ids freed before they came, readers gone, dead owners it remembers
)
IN_ARENA = (S.CREATING, S.SEALED, S.FREED_WRITING, S.FREED_PINNED)


class InvalidTransition(RuntimeError):
    """An event that the object's state does not allow (a bug in the caller)."""


@dataclass(slots=True)
class StoredObject:
    offset: int | None  # None while the object is only on disk (SPILLED)
    size: int
    writer_id: WorkerID  # the process that writes it here (a put's owner, a task's worker); "" for a pull
    state: ObjectState = S.CREATING
    pins: int = 0
    primary: bool = True  # False for a copy pulled from another node (evicted, never spilled)
    on_disk: bool = False  # a spill file holds the bytes (kept after a restore)
    owner_id: WorkerID = NO_OWNER  # whose object it is: freed when it dies

    @property
    def report_state(self) -> str:
        """The state as the memory report names it."""
        if self.state in UNSEALED:
            return "BEING_WRITTEN"
        if self.state is S.SPILLED:
            return "SPILLED"
        return "PINNED" if self.pins > 0 else "IN_MEMORY"


class SpillIO(Protocol):
    """The file I/O of spilling, done by the shell (arena slot <-> spill file)."""

    def spill(self, oid: ObjectID, offset: int, size: int) -> bool:
        """Write the slot to the object's spill file; False if that failed."""

    def restore(self, oid: ObjectID, offset: int, size: int) -> bool:
        """Read the object's spill file into the slot; False if that failed."""

    def delete(self, oid: ObjectID) -> None:
        """Remove the object's spill file."""


@dataclass(slots=True)
class TableCounters:
    """Cumulative counts for the memory report."""

    spilled_bytes: int = 0
    spilled_objects: int = 0
    restored_bytes: int = 0
    restored_objects: int = 0
    evicted_bytes: int = 0
    evicted_objects: int = 0
    freed_objects: int = 0


class SealOutcome(Enum):
    SEALED = "sealed"  # now readable: tell the GCS, answer readers waiting for it
    FREED = "freed"  # sealed and at once deleted: its owner had freed it meanwhile
    DUPLICATE = "duplicate"  # a second copy of an object already here: its scratch slot is freed
    IGNORED = "ignored"  # nothing to seal (already sealed, or unknown: e.g. a spare released earlier)


@dataclass(frozen=True, slots=True)
class PinOutcome:
    """What a pin of several objects got: ``slots`` if all were pinned, else why not."""

    slots: dict[ObjectID, tuple[int, int]]  # object id -> (offset, size)
    missing: ObjectID | None = None  # not here: deleted (``was_deleted``)
    coming: ObjectID | None = None  # not here, nor deleted here: on its way (ask again at its seal)
    unsealed: ObjectID | None = None  # still being written: ask again at its seal
    no_room: ObjectID | None = None  # spilled, and no room to restore it
    spilled: ObjectID | None = None  # spilled, and the pin was not to restore it


class ObjectTable:
    """The objects of one arena of ``capacity`` bytes. Not thread-safe: the shell serializes calls."""

    def __init__(self, capacity: int, spill_io: SpillIO) -> None:
        self.allocator = Allocator(capacity)
        self.spares = SpareSlots(self.allocator)  # slots reserved for clients' next puts
        self.spill_io = spill_io
        self.objects: dict[ObjectID, StoredObject] = {}
        # SEALED, unpinned objects, least recently used first: the eviction order.
        self.evictable: OrderedDict[ObjectID, None] = OrderedDict()
        self.duplicates: dict[ObjectID, list[int]] = {}  # object id -> scratch slots of duplicate copies
        self.counters = TableCounters()
        self.gone: list[
            ObjectID
        ] = []  # complete objects deleted since ``take_gone``: the GCS lists them here
        self.reader_pins: dict[str, dict[ObjectID, int]] = {}  # reader -> its pins of each object
        self.deleted: OrderedDict[ObjectID, None] = OrderedDict()  # the latest deleted ids, oldest first
        self.freed_before_here: OrderedDict[ObjectID, None] = OrderedDict()  # freed before they came
        self.readers_left: OrderedDict[str, None] = OrderedDict()  # the latest readers gone
        self.dead_owners: OrderedDict[str, None] = OrderedDict()  # the latest owners that died

    def __contains__(self, oid: ObjectID) -> bool:
        return oid in self.objects

    def get(self, oid: ObjectID) -> StoredObject | None:
        return self.objects.get(oid)

    # ---- the one place states change --------------------------------------------------

    def _move(self, oid: ObjectID, obj: StoredObject, event: str) -> ObjectState:
        old = obj.state
        new = TRANSITIONS.get((old, event))
        if new is None:
            raise InvalidTransition(f"object {oid}: {event} is not allowed in state {old.name}")
        obj.state = new
        if new is S.SEALED and obj.pins == 0:
            self._touch(oid)
        else:
            self.evictable.pop(oid, None)
        if new is S.DELETED:
            del self.objects[oid]
            if obj.offset is not None:
                self.allocator.free(obj.offset)
                obj.offset = None
            if obj.on_disk:
                self.spill_io.delete(oid)
                obj.on_disk = False
            if old not in UNSEALED:  # the GCS was told it is here
                self.gone.append(oid)
            _remember(self.deleted, oid)
        return new

    def was_deleted(self, oid: ObjectID) -> bool:
        """Whether ``oid`` was here and deleted (among the latest ``REMEMBERED`` deleted)."""
        return oid in self.deleted

    def _file(self, oid: ObjectID, obj: StoredObject) -> None:
        """A new object in the table: freed at once (to be deleted at its seal) if its owner
        freed it before it came, or died."""
        self.objects[oid] = obj
        if oid in self.freed_before_here:
            del self.freed_before_here[oid]
            self.free(oid)
        elif obj.owner_id in self.dead_owners:
            self.free(oid)

    def take_gone(self) -> list[ObjectID]:
        """The complete objects deleted since the last call (to tell the GCS they left)."""
        gone, self.gone = self.gone, []
        return gone

    # ---- creating and sealing ------------------------------------------------------------

    def create(
        self,
        oid: ObjectID,
        size: int,
        writer_id: WorkerID,
        primary: bool = True,
        owner_id: WorkerID = NO_OWNER,
    ) -> int | None:
        """The slot a producer writes ``oid`` into; None if no room can be made.

        See the module docstring for a second create of an id already here.
        """
        obj = self.objects.get(oid)
        if obj is not None and obj.state not in UNSEALED:
            offset = self.alloc(size)
            if offset is not None:
                self.duplicates.setdefault(oid, []).append(offset)
            return offset
        if obj is not None and obj.size == size:  # the new writer takes the half-written slot over
            self._move(oid, obj, "recreate")
            obj.writer_id, obj.owner_id, obj.primary = writer_id, owner_id, primary
            if owner_id in self.dead_owners:
                self.free(oid)
            return obj.offset
        offset = self.alloc(size)
        if offset is None:
            return None
        if obj is not None:  # a half-written copy of another size: its slot goes
            self._move(oid, obj, "abort")
        self._file(oid, StoredObject(offset, size, writer_id, primary=primary, owner_id=owner_id))
        return offset

    def take_spare(
        self, oid: ObjectID, size: int, writer_id: WorkerID, offset: int, owner_id: WorkerID = NO_OWNER
    ) -> bool:
        """A put of ``oid`` into the spare slot at ``offset`` (reserved by its client earlier):
        the slot becomes the object's, as if created there. False if the spare was released."""
        if not self.spares.claim(offset):
            return False
        obj = self.objects.get(oid)
        if obj is not None and obj.state not in UNSEALED:
            self.duplicates.setdefault(oid, []).append(offset)
            return True
        if obj is not None:  # a half-written copy (its writer died): the spare replaces it
            self._move(oid, obj, "abort")
        self._file(oid, StoredObject(offset, size, writer_id, owner_id=owner_id))
        return True

    def seal(self, oid: ObjectID, size: int, writer_id: WorkerID, reserved_offset: int = -1) -> SealOutcome:
        """The producer finished writing ``oid`` (into the spare at ``reserved_offset`` if >= 0)."""
        if reserved_offset >= 0:
            self.take_spare(oid, size, writer_id, reserved_offset)  # no-op if the channel took it first
            scratch = self.duplicates.get(oid, [])
            if reserved_offset in scratch:
                return self._drop_duplicate(oid, reserved_offset)
        obj = self.objects.get(oid)
        if obj is None or obj.state not in UNSEALED:
            if self.duplicates.get(oid):
                return self._drop_duplicate(oid, self.duplicates[oid][0])
            return SealOutcome.IGNORED
        return SealOutcome.FREED if self._move(oid, obj, "seal") is S.DELETED else SealOutcome.SEALED

    def _drop_duplicate(self, oid: ObjectID, offset: int) -> SealOutcome:
        scratch = self.duplicates[oid]
        scratch.remove(offset)
        if not scratch:
            del self.duplicates[oid]
        self.allocator.free(offset)
        return SealOutcome.DUPLICATE

    def abort(self, oid: ObjectID) -> None:
        """Drop an unsealed object and its slot (a pull that failed or is redirected)."""
        obj = self.objects.get(oid)
        if obj is not None and obj.state in UNSEALED:
            self._move(oid, obj, "abort")

    # ---- reading -------------------------------------------------------------------------

    def pin(self, oids: Iterable[ObjectID], restore: bool = True, reader: str = "") -> PinOutcome:
        """Pin every object of ``oids`` (restoring spilled ones unless not to ``restore``), or none
        of them; counted as ``reader``'s pins if it is named (see ``unpin``, ``reader_gone``)."""
        oids = tuple(oids)
        for oid in oids:
            if oid not in self.objects:
                return PinOutcome({}, missing=oid) if oid in self.deleted else PinOutcome({}, coming=oid)
        for oid in oids:
            state = self.objects[oid].state
            if state in UNSEALED:
                return PinOutcome({}, unsealed=oid)
            if state is S.SPILLED and not restore:
                return PinOutcome({}, spilled=oid)
        keep = set(oids)
        for oid in oids:
            obj = self.objects[oid]
            if obj.state is S.SPILLED and not self._restore(oid, obj, keep):
                return PinOutcome({}, no_room=oid)
        slots = {}
        held = self.reader_pins.setdefault(reader, {}) if reader else None
        for oid in oids:
            obj = self.objects[oid]
            obj.pins += 1
            self.evictable.pop(oid, None)
            slots[oid] = (obj.offset, obj.size)
            if held is not None:
                held[oid] = held.get(oid, 0) + 1
        return PinOutcome(slots)  # type: ignore[arg-type]  # pinned objects are in the arena

    def unpin(self, oid: ObjectID, reader: str = "") -> None:
        """A reader is done with ``oid``; an unpin without a pin (a duplicate message) is ignored,
        and so is a named ``reader``'s unpin of a pin it does not hold (released already, as
        when its channel closed before the message came)."""
        if reader:
            held = self.reader_pins.get(reader, {})
            if not held.get(oid):
                return
            held[oid] -= 1
            if not held[oid]:
                del held[oid]
                if not held:
                    del self.reader_pins[reader]
        obj = self.objects.get(oid)
        if obj is None or obj.pins <= 0:
            return
        obj.pins -= 1
        if obj.pins > 0:
            return
        if obj.state is S.FREED_PINNED:
            self._move(oid, obj, "last_unpin")
        else:
            self._touch(oid)

    def reader_gone(self, reader: str) -> None:
        """``reader`` left (its process ended): release every pin it still holds. The latest
        ``REMEMBERED`` readers that left are remembered (``has_left``)."""
        _remember(self.readers_left, reader)
        for oid, count in self.reader_pins.pop(reader, {}).items():
            for _ in range(count):
                self.unpin(oid)

    def unsealed_written_by(self, writer: str) -> list[ObjectID]:
        """The objects ``writer`` created (or took over) and has not sealed yet."""
        return [oid for oid, obj in self.objects.items() if obj.state in UNSEALED and obj.writer_id == writer]

    def owners_died(self, owners: Iterable[WorkerID]) -> list[ObjectID]:
        """Free the objects of ``owners``, which died: nobody can read them again (Ray frees them
        too). Their objects still to come are freed as they come (the latest ``REMEMBERED``
        owners). Returns the ids freed now."""
        for owner in owners:
            _remember(self.dead_owners, owner)
        owned = [oid for oid, obj in self.objects.items() if obj.owner_id in self.dead_owners]
        for oid in owned:
            self.free(oid)
        return owned

    def has_left(self, reader: str) -> bool:
        """Whether ``reader`` left (``reader_gone``): a pin it sent before it ended must not count."""
        return reader in self.readers_left

    # ---- freeing -------------------------------------------------------------------------

    def free(self, oid: ObjectID) -> None:
        """The owner no longer references ``oid``: deleted now, or when its writer or readers
        finish, or as it comes if it is not here yet (a put whose take the store has not read)."""
        obj = self.objects.get(oid)
        if obj is None and oid not in self.deleted:
            _remember(self.freed_before_here, oid)
        if obj is None or obj.state in (S.FREED_WRITING, S.FREED_PINNED):
            return
        self.counters.freed_objects += 1
        self._move(oid, obj, "free_pinned" if obj.state is S.SEALED and obj.pins > 0 else "free")

    # ---- making room: eviction, spilling, restoring ----------------------------------------

    def _touch(self, oid: ObjectID) -> None:
        """Mark a SEALED, unpinned object as most recently used."""
        self.evictable[oid] = None
        self.evictable.move_to_end(oid)

    def eviction_order(self, keep: set[ObjectID] | frozenset[ObjectID] = frozenset()) -> list[ObjectID]:
        """The objects that may leave the arena, in the order they would: secondary copies
        least recently used first, then primary copies likewise; none of ``keep``."""
        candidates = [oid for oid in self.evictable if oid not in keep]
        return [oid for oid in candidates if not self.objects[oid].primary] + [
            oid for oid in candidates if self.objects[oid].primary
        ]

    def alloc(self, size: int, keep: set[ObjectID] | frozenset[ObjectID] = frozenset()) -> int | None:
        """A slot of ``size`` bytes, evicting or spilling objects (not in ``keep``) to make room.

        None if no room can be made.
        """
        offset = self.allocator.alloc(size)
        if offset is not None or size > self.allocator.capacity:
            return offset
        for oid in self.eviction_order(keep):
            if not self._evict(oid):
                continue
            offset = self.allocator.alloc(size)
            if offset is not None:
                return offset
        return None

    def _evict(self, oid: ObjectID) -> bool:
        """Take a SEALED, unpinned object out of the arena: dropped if secondary, else spilled."""
        obj = self.objects[oid]
        if not obj.primary:
            self.counters.evicted_objects += 1
            self.counters.evicted_bytes += obj.size
            self._move(oid, obj, "evict")
            return True
        if not obj.on_disk:
            if not self.spill_io.spill(oid, obj.offset, obj.size):  # type: ignore[arg-type]  # SEALED: in the arena
                return False
            obj.on_disk = True
            self.counters.spilled_objects += 1
            self.counters.spilled_bytes += obj.size
        self.allocator.free(obj.offset)  # type: ignore[arg-type]
        obj.offset = None
        self._move(oid, obj, "spill")
        return True

    def _restore(self, oid: ObjectID, obj: StoredObject, keep: set[ObjectID]) -> bool:
        """Read a SPILLED object back into the arena; False if no room can be made."""
        offset = self.alloc(obj.size, keep)
        if offset is None:
            return False
        if not self.spill_io.restore(oid, offset, obj.size):
            self.allocator.free(offset)
            return False
        obj.offset = offset
        self.counters.restored_objects += 1
        self.counters.restored_bytes += obj.size
        self._move(oid, obj, "restore")
        return True

    def restore(self, oid: ObjectID) -> bool:
        """Bring ``oid`` into the arena if it is SPILLED; False if it cannot be."""
        obj = self.objects[oid]
        return obj.state is not S.SPILLED or self._restore(oid, obj, {oid})

    # ---- reporting -----------------------------------------------------------------------

    def full_error(
        self, oid: ObjectID, size: int, node_id: NodeID, restoring: bool = False
    ) -> exceptions.ObjectStoreFullError:
        in_arena = [o for o in self.objects.values() if o.offset is not None]
        pinned = sum(o.size for o in in_arena if o.pins > 0)
        writing = sum(o.size for o in in_arena if o.state in UNSEALED)
        what = "restore of spilled object" if restoring else "object"
        return exceptions.ObjectStoreFullError(
            f"{what} {oid} of {size} bytes does not fit in the object store of node {node_id} "
            f"({self.allocator.capacity} bytes): {self.allocator.used} bytes in use, {pinned} bytes pinned by "
            f"readers, {writing} bytes being written, largest free block {self.allocator.largest_free} bytes, "
            f"and nothing else can be spilled. Release the values you got (they pin their objects) or "
            f"start babyray with a larger object_store_memory."
        )

    def held(self) -> tuple[tuple[ObjectID, int], ...]:
        """(id, size) of every complete object its owner still references: the GCS's locations."""
        return tuple((oid, o.size) for oid, o in self.objects.items() if o.state in (S.SEALED, S.SPILLED))

    def stats(self) -> dict:
        """Bytes and object counts of the table (the memory report)."""
        in_memory = [o for o in self.objects.values() if o.offset is not None]
        only_on_disk = [o for o in self.objects.values() if o.offset is None]
        pinned = [o for o in in_memory if o.pins > 0]
        c = self.counters
        spare_bytes = self.spares.bytes
        return {
            "capacity_bytes": self.allocator.capacity,
            "used_bytes": self.allocator.used - spare_bytes,
            "spare_bytes": spare_bytes,
            "largest_free_bytes": self.allocator.largest_free,
            "num_objects": len(self.objects),
            "num_in_memory": len(in_memory),
            "in_memory_bytes": sum(o.size for o in in_memory),
            "num_pinned": len(pinned),
            "pinned_bytes": sum(o.size for o in pinned),
            "num_spilled_now": len(only_on_disk),
            "spilled_now_bytes": sum(o.size for o in only_on_disk),
            "num_spilled": c.spilled_objects,
            "spilled_bytes": c.spilled_bytes,
            "num_restored": c.restored_objects,
            "restored_bytes": c.restored_bytes,
            "num_evicted": c.evicted_objects,
            "evicted_bytes": c.evicted_bytes,
            "num_freed": c.freed_objects,
        }

    def object_states(self) -> dict[ObjectID, dict]:
        """Each object's line in the memory report: where its bytes are and who pins them."""
        return {
            oid: {
                "size": o.size,
                "state": o.report_state,
                "pins": o.pins,
                "primary": o.primary,
                "on_disk": o.on_disk,
            }
            for oid, o in self.objects.items()
        }


def _remember(ids: OrderedDict[Any, None], key: str) -> None:
    """Add ``key`` (an id) to ``ids``, forgetting the oldest past ``REMEMBERED``."""
    ids[key] = None
    ids.move_to_end(key)
    if len(ids) > REMEMBERED:
        ids.popitem(last=False)

"""Moving object values between a process and the object store: ``put`` and reading value records.

A value is serialized inline when small (``inline_threshold``); a larger one gets a slot in
this node's store (reserved over the store's allocation channel when there is one, else by
CreateObject through Thespian) and is written into the store's shared-memory arena, or over
the data plane when the store is not on this host (``core.remote_store_io``). Reading a
stored value pins it in the store (on the allocation channel when it is sealed and in
memory there; else through Thespian, which restores a spilled object, waits for a seal, or
pulls it from another node first) and maps it zero-copy; a value lost with its node is
recovered (``ObjectRecovery``). A put keeps its object pinned and a ``get`` keeps the pin it
took, within a budget (``HeldPins``), so a ``get`` of an object this process just put or read
maps it without asking the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from babyray import config, exceptions, log, serialization
from babyray.api.held_pins import BUDGET_FRACTION, HeldPins, Slot
from babyray.api.object_ref import ObjectRef
from babyray.api.owner_table import Value
from babyray.api.reference_counting import forget_serialized_refs
from babyray.ids import ObjectID, new_put_object_id
from babyray.protocol import objects as om
from babyray.protocol import values as vm
from babyray.store.alloc_channel import AllocClient
from babyray.store.arena import Arena, read_object, write_object

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


_NOT_HELD = object()


class ObjectIO:
    """Writes and reads the values of one process's objects; keeps its store mappings."""

    def __init__(self, core: "CoreClient", lock: threading.RLock) -> None:
        self.core = core
        self.lock = lock
        self.inline_threshold: int = config.Settings().inline_threshold
        self._arenas: dict[str, Arena] = {}
        self._alloc_channel: AllocClient | None = None
        self._store_arena = ""
        self._direct_io: Any = None
        self.held = HeldPins(0)  # its budget is set when the channel opens
        self.unpins_due: list[ObjectID] = []  # held pins released, sent together (flush_unpins)
        self.log = log.get_logger("core")

    # ---- storing values --------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError(
                "Calling 'put' on an ObjectRef is not allowed. If you really want to do "
                "this, you can wrap the ObjectRef in a list and call 'put' on it."
            )
        return self.put_serialized(serialization.serialize(value))

    def put_serialized(self, serialized: serialization.SerializedObject) -> ObjectRef:
        core = self.core
        oid = new_put_object_id()
        stored = self.store_serialized(oid, serialized, hold=True)
        with self.lock:
            core.objects.own_value(oid, None, stored)
        return ObjectRef(oid, core.inbox, core.identity)

    def store_value(self, oid: ObjectID, value: Any, borrower: tuple | None = None) -> Value:
        """Serialize ``value`` as object ``oid``: inline if small, else into the node's arena.

        ``borrower`` = (id, address) of the process the value is for (a task's owner): it is
        registered as a borrower of the refs the value contains before the value travels.
        """
        return self.store_serialized(oid, serialization.serialize(value), borrower)

    def store_returns(
        self, oids: Sequence[ObjectID], values: Sequence[Any], borrower: tuple | None = None
    ) -> tuple:
        """``((oid, value record), ...)`` of a task's return values stored as ``oids``. If one
        fails, those stored before it are freed (its owner gets only the error) and it raises."""
        returns: list[tuple[ObjectID, Value]] = []
        try:
            for oid, value in zip(oids, values, strict=False):
                returns.append((oid, self.store_value(oid, value, borrower)))
        except Exception:
            stored = tuple(oid for oid, record in returns if isinstance(record, vm.StoredValue))
            if stored:
                self.core.transport.send(self.core.store, om.FreeObjects(stored))
            raise
        return tuple(returns)

    def store_serialized(
        self,
        oid: ObjectID,
        serialized: serialization.SerializedObject,
        borrower: tuple | None = None,
        hold: bool = False,
    ) -> Value:
        """``store_value`` of a value serialized already; with ``hold`` (a put, whose ObjectRef
        this process is about to hold) a stored value stays pinned for this process's reads."""
        core = self.core
        if serialized.contained_refs:
            forget_serialized_refs(serialized.contained_refs)
        if serialized.total_size <= self.inline_threshold:
            return core.refs.stored_record(vm.InlineValue(serialized.to_bytes()), serialized, borrower)
        core.refs.drain()  # frees queued so far go to the store before this allocation
        owner = borrower[0] if borrower is not None else core.identity  # the store frees it if they die
        reserved, error = False, None
        if self._alloc_channel is not None:  # a store on this node: reserve the slot beside Thespian
            offset, error, reserved = self._alloc_channel.allocate(
                oid, serialized.total_size, core.identity, owner
            )
            if error is not None and self._release_unused_held():  # their unpins go first on the channel
                offset, error, reserved = self._alloc_channel.allocate(
                    oid, serialized.total_size, core.identity, owner
                )
            arena_name = self._store_arena
        if self._alloc_channel is None or error is not None:
            # Through Thespian: after the frees and unpins sent before it, which the channel may
            # have overtaken, so a store that looked full may have room now.
            reply = core.request(
                core.store,
                lambda r: om.CreateObject(r, oid, serialized.total_size, core.identity, owner_id=owner),
            )
            offset, error, arena_name = reply.offset, reply.error, reply.arena_name
            if error is None and self._alloc_channel is None and not core.remote_store_io:
                self._open_alloc_channel(arena_name)
        if error is not None:
            raise serialization.deserialize(error)
        if core.remote_store_io:
            self._direct().write(core.store, offset, serialized)
        else:
            write_object(self._arena(arena_name), offset, serialized)
        hold = hold and self.held.fits(serialized.total_size)  # (no held pins without a channel)
        if self._seal(oid, serialized.total_size, offset if reserved else -1, hold) and hold:
            with self.lock:
                slot = Slot(arena_name, offset, serialized.total_size)
                self._unpin_held(self.held.hold(oid, slot, time.monotonic(), core.refs.views))
        return core.refs.stored_record(
            vm.StoredValue(core.node_id, serialized.total_size, core.store), serialized, borrower
        )

    def _seal(self, oid: ObjectID, size: int, reserved_offset: int, hold: bool) -> bool:
        """Seal a put: on the allocation channel if open (a get that follows on it finds the object
        sealed), keeping it pinned for this process if ``hold``; else with SealObject through
        Thespian. True if sealed on the channel."""
        core = self.core
        channel = self._alloc_channel
        if channel is not None:
            try:
                channel.seal(oid, size, core.identity, reserved_offset, hold)
                return True
            except OSError:  # the store went away: SealObject reaches its successor, or nobody
                pass
        core.transport.send(core.store, om.SealObject(oid, size, core.identity, reserved_offset))
        return False

    def _open_alloc_channel(self, arena_name: str) -> None:
        """Use the store's allocation channel from now on (see store/alloc_channel.py)."""
        try:
            channel = AllocClient(arena_name, self.core.identity)
        except OSError:  # an older store, or not on its node: keep asking through Thespian
            self.log.info("alloc_channel_unavailable", arena=arena_name)
            return
        budget = self._arena(arena_name).size // BUDGET_FRACTION
        with self.lock:
            if self._alloc_channel is None:
                self._alloc_channel, self._store_arena = channel, arena_name
                self.held = HeldPins(budget)
                return
        channel.close()  # another thread opened one meanwhile

    def store_moved(self) -> None:
        """The store was replaced (a restarted head): the next put opens the new one's channel. Locked."""
        if self._alloc_channel is not None:
            self._alloc_channel.close()  # the store releases the pins held on it
            self._alloc_channel, self._store_arena = None, ""
        self.held = HeldPins(0)
        self.unpins_due = []

    def ref_gone(self, oid: ObjectID) -> None:
        """The last ObjectRef to ``oid`` in this process died: release its held pin, unless a
        value read from it is alive. Locked."""
        if self.held:
            self._unpin_held(self.held.ref_gone(oid, self.core.refs.views))

    def views_gone(self, oid: ObjectID) -> None:
        """The last value read from ``oid`` in this process died. Locked."""
        if self.held:
            self._unpin_held(self.held.views_gone(oid))

    def release_idle(self) -> None:
        """Release the held pins not used for a while (``held_pins.IDLE_SECONDS``). Locked."""
        if self.held:
            self._unpin_held(self.held.release_idle(time.monotonic(), self.core.refs.views))

    def _release_unused_held(self) -> bool:
        """Release the held pins no live value needs (the store is full); whether there were any."""
        with self.lock:
            unused = self.held.release_unused(self.core.refs.views)
            self._unpin_held(unused)
            self.flush_unpins()
        return bool(unused)

    def _unpin_held(self, oids: list[ObjectID]) -> None:
        """Release held pins: sent by the next ``flush_unpins``, a put of 1 MB objects in a loop
        would otherwise send one unpin per put once past the budget. Locked."""
        self.unpins_due += oids

    def flush_unpins(self) -> None:
        """Send the held pins' releases on the channel they were taken on (the counting thread
        calls it every round). Locked."""
        due, self.unpins_due = self.unpins_due, []
        if due and self._alloc_channel is not None:
            try:
                self._alloc_channel.unpin(tuple(due), self.core.identity)
            except OSError:  # the store is gone, and with it the pins
                pass

    def close(self) -> None:
        """Release the allocation channel and the arena mappings. Values read stay mapped, but
        the store releases their pins with the channel: a store that outlives this process's
        session (a joined cluster) may reuse their slots."""
        with self.lock:
            self.store_moved()
            arenas, self._arenas = list(self._arenas.values()), {}
        for arena in arenas:
            arena.close()

    # ---- reading values --------------------------------------------------------------

    def materialize(self, oid: ObjectID, value: Value, deadline: float | None = None) -> Any:
        """Turn a value record into the Python value (raising a task's error), reading and
        rebuilding stored objects before ``deadline`` (``time.monotonic()``), if given.

        Raises:
            GetTimeoutError: a stored object could not be read or rebuilt before the deadline.
        """
        if isinstance(value, vm.InlineValue):
            return serialization.deserialize(value.blob)
        if isinstance(value, vm.ErrorValue):
            error = serialization.deserialize(value.blob)
            if isinstance(error, exceptions.RayTaskError):
                raise error.as_instanceof_cause()
            raise error
        try:
            return self._read_stored(oid, value, deadline)
        except exceptions.ObjectLostError:
            if isinstance(value, vm.StoredValue) and self.core.recovery.is_lost(value, deadline):
                return self._read_recovered(oid, value, deadline)
            raise

    def _read_recovered(self, oid: ObjectID, value: vm.StoredValue, deadline: float | None) -> Any:
        """Read ``oid``, lost with the node of ``value``: from a surviving copy, else rebuilt.

        The object table may still list a copy its store has just dropped (evicted, or freed
        there): such a copy is passed over and recovery asked again.
        """
        recovery = self.core.recovery
        stale: set[str] = set()
        while True:
            found = recovery.recover(oid, value, deadline, frozenset(stale))
            try:
                return self.materialize(oid, found, deadline)
            except exceptions.ObjectLostError:
                copy = isinstance(found, vm.StoredValue) and found.node_id not in stale
                if not copy or recovery.is_lost(found, deadline):
                    raise
                self.log.warning("object_copy_stale", object_id=oid, node=found.node_id)
                stale.add(found.node_id)

    def _read_stored(self, oid: ObjectID, value: vm.StoredValue, deadline: float | None) -> Any:
        core = self.core
        if core.remote_store_io:  # read straight from the holder: ask first whether it is alive
            if core.recovery.is_lost(value, deadline):
                raise exceptions.ObjectLostError(f"object {oid} was on node {value.node_id}, which is dead")
            return self._direct().read(oid, value, deadline)
        # A pull through this node's store needs no such check: the store fails pulls from a dead
        # holder (its pull check) with ObjectLostError, which the caller turns into recovery.
        if value.node_id != core.node_id:  # the local store pulls it over the data plane
            if value.store is None:
                raise exceptions.ObjectLostError(
                    f"object {oid} lives on node {value.node_id}, whose store is unknown"
                )
            reply = core.request_by(
                core.store,
                lambda r: om.PullObject(r, oid, value.size, value.store, value.node_id, core.identity),
                deadline,
            )
        else:
            value_read = self._read_held(oid, value.size)
            if value_read is not _NOT_HELD:
                return value_read
            reply = self.pin_here((oid,), deadline)
        if reply.error is not None:
            raise serialization.deserialize(reply.error)
        offset, size = reply.slots[oid]
        return self.read_pinned(oid, reply.arena_name, offset, size)

    def _read_held(self, oid: ObjectID, size: int) -> Any:
        """``oid`` read from this node's store under a held pin (the one kept, else a new one
        kept from now on), or ``_NOT_HELD``: it cannot be held (too large, spilled, unsealed)."""
        core = self.core
        with self.lock:
            slot = self.held.lookup(oid, time.monotonic())
            if slot is not None:
                view_closed = core.refs.view_opened(oid)
        if slot is None:
            channel = self._alloc_channel
            if channel is None or not self.held.fits(size):
                return _NOT_HELD
            try:
                answer = channel.pin((oid,), core.identity)
            except OSError:  # the store went away: PinObjects reaches its successor or fails
                return _NOT_HELD
            if answer is None:
                return _NOT_HELD
            slot = Slot(answer[0], *answer[1][oid])
            with self.lock:
                view_closed = core.refs.view_opened(oid)
                release = self.held.hold(oid, slot, time.monotonic(), core.refs.views)
                if not core.refs.local.get(oid):  # no ref here to drop: kept while the value lives
                    release += self.held.ref_gone(oid, core.refs.views)
                self._unpin_held(release)
        return read_object(self._arena(slot.arena_name), slot.offset, slot.size, view_closed)

    def pin_here(self, oids: tuple[ObjectID, ...], deadline: float | None = None) -> om.ObjectsPinned:
        """Pin objects of this node's store, each once per occurrence in ``oids``: on the store's
        allocation channel when all are sealed and in memory (no Thespian round trip), else with
        PinObjects through Thespian (which restores spilled objects and waits for seals)."""
        core = self.core
        channel = self._alloc_channel
        if channel is not None:
            try:
                answer = channel.pin(oids, core.identity)
            except OSError:  # the store went away: PinObjects reaches its successor or fails
                answer = None
            if answer is not None:
                return om.ObjectsPinned("", *answer)
        reply = core.request_by(core.store, lambda r: om.PinObjects(r, oids, core.identity), deadline)
        if channel is None and reply.error is None and not core.remote_store_io:
            self._open_alloc_channel(reply.arena_name)
        return reply

    def read_pinned(self, oid: ObjectID, arena_name: str, offset: int, size: int) -> Any:
        """Rebuild ``oid`` from its slot in this node's store, pinned once for this read;
        the pin is released when the value (and every view of it) is gone."""
        core = self.core
        arena = self._arena(arena_name)
        view_closed = core.refs.view_opened(oid)

        def release() -> None:
            view_closed()
            core.transport.send(core.store, om.UnpinObjects((oid,), core.identity))

        return read_object(arena, offset, size, release)

    def _direct(self) -> Any:
        if self._direct_io is None:
            from babyray.transfer.direct import DirectStoreIO

            self._direct_io = DirectStoreIO(self.core)
        return self._direct_io

    def _arena(self, name: str) -> Arena:
        arena = self._arenas.get(name)
        if arena is None:
            arena = self._arenas[name] = Arena.attach(name)
        return arena

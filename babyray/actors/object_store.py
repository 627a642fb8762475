"""The object store actor of one node: metadata of the objects in the node's shared arena.

Bytes never pass through this actor. A producer asks for a slot (CreateObject), writes the
serialized object straight into the arena, and seals it (SealObject). A reader asks for
the slots of sealed objects (PinObjects), maps them without a copy, and unpins them when
its value is garbage collected. The store tells the GCS object table where objects are.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from babyray import exceptions, log, serialization
from babyray.actors import messages as m
from babyray.actors.base import PartActor
from babyray.session import register_pid
from babyray.store.allocator import Allocator
from babyray.store.arena import Arena


@dataclass(slots=True)
class StoredObject:
    offset: int
    size: int
    owner_id: str
    sealed: bool = False
    pins: int = 0
    freed: bool = False
    last_used: float = field(default_factory=time.monotonic)


class ObjectStore(PartActor):
    component = "object_store"
    handlers = {
        m.StartObjectStore: "on_start",
        m.CreateObject: "on_create",
        m.SealObject: "on_seal",
        m.PinObjects: "on_pin",
        m.UnpinObjects: "on_unpin",
        m.FreeObjects: "on_free",
        m.Shutdown: "on_shutdown",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arena: Arena | None = None
        self.allocator: Allocator | None = None
        self.objects: dict[str, StoredObject] = {}
        self.waiting: dict[str, list[tuple[Any, m.PinObjects]]] = {}
        self.node_id = ""
        self.gcs: Any = None

    def on_start(self, msg: m.StartObjectStore, sender: Any) -> None:
        self.node_id = msg.node_id
        self.gcs = msg.gcs
        log.configure(os.path.join(msg.session_dir, "logs"), "object_store", msg.node_id)
        self.log = log.get_logger("object_store")
        register_pid(msg.session_dir, "object_store")
        name = f"babyray_{os.path.basename(msg.session_dir)[-6:]}_{msg.node_id}"
        self.arena = Arena.create(name, msg.capacity, background=True)
        self.allocator = Allocator(msg.capacity)
        self.log.info("object_store_started", arena=name, capacity=msg.capacity)
        self.post(sender, m.Started("object_store", os.getpid(), name))

    def on_create(self, msg: m.CreateObject, sender: Any) -> None:
        offset = self.allocator.alloc(msg.size)
        if offset is None:
            error = exceptions.ObjectStoreFullError(
                f"object {msg.object_id} of {msg.size} bytes does not fit: {self.allocator.used} of "
                f"{self.arena.size} bytes in use, largest free block {self.allocator.largest_free}")
            self.reply(msg, sender, m.ObjectCreated(msg.req_id, msg.object_id, -1, self.arena.name,
                                              serialization.dumps(error)))
            return
        self.objects[msg.object_id] = StoredObject(offset, msg.size, msg.owner_id)
        self.reply(msg, sender, m.ObjectCreated(msg.req_id, msg.object_id, offset, self.arena.name))

    def on_seal(self, msg: m.SealObject, sender: Any) -> None:
        obj = self.objects.get(msg.object_id)
        if obj is None:
            return
        obj.sealed = True
        self.post(self.gcs, m.ObjectLocations(self.node_id, ((msg.object_id, msg.size),)))
        for reader, request in self.waiting.pop(msg.object_id, []):
            self.on_pin(request, reader)

    def on_pin(self, msg: m.PinObjects, sender: Any) -> None:
        unsealed = [oid for oid in msg.object_ids
                    if oid not in self.objects or not self.objects[oid].sealed]
        if unsealed:  # reply once all are sealed
            self.waiting.setdefault(unsealed[0], []).append((sender, msg))
            return
        slots = {}
        for oid in msg.object_ids:
            obj = self.objects[oid]
            obj.pins += 1
            obj.last_used = time.monotonic()
            slots[oid] = (obj.offset, obj.size)
        self.reply(msg, sender, m.ObjectsPinned(msg.req_id, self.arena.name, slots))

    def on_unpin(self, msg: m.UnpinObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            obj = self.objects.get(oid)
            if obj is not None:
                obj.pins -= 1
                if obj.freed and obj.pins <= 0:
                    self._delete(oid)

    def on_free(self, msg: m.FreeObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            obj = self.objects.get(oid)
            if obj is not None:
                obj.freed = True
                if obj.pins <= 0:
                    self._delete(oid)

    def _delete(self, oid: str) -> None:
        obj = self.objects.pop(oid)
        self.allocator.free(obj.offset)
        self.post(self.gcs, m.ObjectLocations(self.node_id, (), (oid,)))

    def on_shutdown(self, msg: m.Shutdown, sender: Any) -> None:
        self._release_arena()
        self.post(sender, m.Started("object_store_stopped", os.getpid()))

    def on_exit(self, msg: Any, sender: Any) -> None:
        self._release_arena()

    def _release_arena(self) -> None:
        if self.arena is not None:
            self.arena.close()
            self.arena.unlink()
            self.arena = None

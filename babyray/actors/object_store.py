"""The object store actor of one node: metadata of the objects in the node's shared arena.

Bytes never pass through this actor. A producer asks for a slot (CreateObject), writes the
serialized object straight into the arena, and seals it (SealObject). A reader asks for
the slots of sealed objects (PinObjects), maps them without a copy, and unpins them when
its value is garbage collected. Owners free objects nobody references (FreeObjects); a
pinned object is deleted only once its last reader unpins it. The store tells the GCS
object table where objects are and how large they are.

When the arena is full, room is made in least-recently-used order among sealed, unpinned
objects: secondary copies (pulled from other nodes) are dropped, primary copies are
spilled to files under ``<session_dir>/spill/<node_id>`` and restored into the arena when
a reader pins them. A spilled object stays on this node (its GCS location does not
change). Only when pinned and half-written objects leave no room does a request fail, with
an ObjectStoreFullError naming the sizes.

Between nodes: a reader whose object lives on another node asks its own store to pull it
(PullObject). The store reserves a slot, asks the holding store to serve the object
(ServeObject: the holder pins it and answers with its data-plane address and the slot), and
a transfer thread streams the bytes from the holder's TransferServer (babyray.transfer)
straight into the arena; the copy is then sealed as a secondary copy. Every store runs a
TransferServer on its node's own address.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from babyray import exceptions, log, serialization
from babyray.protocol import cluster as cm
from babyray.protocol import objects as om
from babyray.actors.base import PartActor
from babyray.session import register_pid
from babyray.store.allocator import Allocator
from babyray.store.alloc_channel import AllocServer, SpareSlots
from babyray.store.arena import Arena
from babyray.store.spill import SpillDir
from babyray.transfer import TcpDataPlane, TransferServer


PULL_CHECK_SECONDS = 1.0  # how often a store with pulls waiting checks their holders are alive


@dataclass(slots=True)
class StoredObject:
    offset: int | None  # None while the object is only on disk
    size: int
    owner_id: str
    sealed: bool = False
    pins: int = 0
    freed: bool = False
    primary: bool = True  # False for a copy pulled from another node (evicted, never spilled)
    on_disk: bool = False  # a spill file holds the bytes (kept after a restore)


@dataclass(slots=True)
class StoreCounters:
    """Cumulative counts for the memory report."""

    spilled_bytes: int = 0
    spilled_objects: int = 0
    restored_bytes: int = 0
    restored_objects: int = 0
    evicted_bytes: int = 0
    evicted_objects: int = 0
    freed_objects: int = 0


class ObjectStore(PartActor):
    component = "object_store"
    handlers = {
        cm.StartObjectStore: "on_start",
        om.CreateObject: "on_create",
        om.SealObject: "on_seal",
        om.PinObjects: "on_pin",
        om.UnpinObjects: "on_unpin",
        om.FreeObjects: "on_free",
        om.GetStoreStats: "on_stats",
        cm.Shutdown: "on_shutdown",
        om.PullObject: "on_pull",
        om.ServeObject: "on_serve",
        om.ObjectServed: "on_served",
        om.PullDone: "on_pull_done",
        om.GetTransferAddress: "on_get_transfer_address",
        cm.GcsRestarted: "on_gcs_restarted",
        cm.Nodes: "on_nodes",
    }
    timers = {"pull_check": "on_pull_check"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state_lock = threading.RLock()  # the actor's turns and the allocation channel
        self.alloc_server: AllocServer | None = None
        self.arena_path = ""  # how processes of this node open the arena
        self.arena: Arena | None = None
        self.allocator: Allocator | None = None
        self.spares: SpareSlots | None = None  # slots reserved for clients' next puts
        self.spill: SpillDir | None = None
        self.objects: dict[str, StoredObject] = {}
        # Sealed, unpinned objects in the arena, least recently used first: eviction order.
        self.evictable: OrderedDict[str, None] = OrderedDict()
        self.waiting: dict[str, list[tuple[Any, om.PinObjects]]] = {}
        self.counters = StoreCounters()
        self.node_id = ""
        self.gcs: Any = None
        self.transfer_server: TransferServer | None = None
        self.data_plane = TcpDataPlane()
        self.pulls: dict[str, tuple[Any, float]] = {}  # object id -> (holding store, start time)
        self.serve_waiting: dict[str, list[tuple[Any, om.ServeObject]]] = {}
        self.pull_nodes: dict[str, str] = {}  # object id -> node pulled from, while the pull lasts

    def on_start(self, msg: cm.StartObjectStore, sender: Any) -> None:
        self.node_id = msg.node_id
        self.gcs = msg.gcs
        log.configure(os.path.join(msg.session_dir, "logs"), "object_store", msg.node_id)
        self.log = log.get_logger("object_store")
        register_pid(msg.session_dir, "object_store")
        name = f"babyray_{os.path.basename(msg.session_dir)[-6:]}_{msg.node_id}"
        self.arena = Arena.create(name, msg.capacity, background=True)
        self.allocator = Allocator(msg.capacity)
        self.spares = SpareSlots(self.allocator)
        self.spill = SpillDir(os.path.join(msg.session_dir, "spill", msg.node_id))
        self.enable_thread_posts()
        self.transfer_server = TransferServer(os.environ.get("THESPIAN_BASE_IPADDR", "127.0.0.1"), self.arena.view)
        # The segment loses its name at once: other processes of the node map it through this
        # process's descriptor, so it goes away with the last of them even after a kill -9.
        self.arena.unlink()
        self.arena_path = f"/proc/{os.getpid()}/fd/{self.arena.fileno()}"
        self.alloc_server = AllocServer(self.arena_path, self._allocate_for_channel, self._reserve_spare,
                                        self._release_spares)
        self.log.info("object_store_started", arena=name, capacity=msg.capacity)
        self.post(sender, cm.Started("object_store", os.getpid(), self.arena_path))

    # ---- creating ------------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        with self.state_lock:
            return super().receiveMessage(message, sender)

    def _allocate_for_channel(self, oid: str, size: int, owner_id: str) -> tuple[int, bytes | None]:
        """CreateObject for a process of this node, from the allocation channel's thread.

        On failure the client asks again through Thespian (``on_create``), which reports it.
        """
        with self.state_lock:
            offset = self._alloc(size)
            if offset is None:
                return -1, serialization.dumps(self._full_error(oid, size))
            self.objects[oid] = StoredObject(offset, size, owner_id)
            return offset, None

    def _reserve_spare(self, client: int, size: int) -> int | None:
        with self.state_lock:
            return self.spares.reserve(client, size)

    def _release_spares(self, client: int, offsets: list[int] | None) -> None:
        with self.state_lock:
            self.spares.release(client, offsets)

    def on_create(self, msg: om.CreateObject, sender: Any) -> None:
        offset = self._alloc(msg.size)
        if offset is None:
            error = self._full_error(msg.object_id, msg.size)
            self.log.warning("object_store_full", object_id=msg.object_id, size=msg.size, error=str(error))
            self.reply(msg, sender, om.ObjectCreated(msg.req_id, msg.object_id, -1, self.arena_path,
                                                    serialization.dumps(error)))
            return
        self.objects[msg.object_id] = StoredObject(offset, msg.size, msg.owner_id)
        self.reply(msg, sender, om.ObjectCreated(msg.req_id, msg.object_id, offset, self.arena_path))

    def on_seal(self, msg: om.SealObject, sender: Any) -> None:
        if msg.reserved_offset >= 0 and msg.object_id not in self.objects:  # written into a spare slot
            if not self.spares.claim(msg.reserved_offset):  # released: its client left meanwhile
                self.log.warning("object_spare_lost", object_id=msg.object_id, owner=msg.owner_id)
                return
            self.objects[msg.object_id] = StoredObject(msg.reserved_offset, msg.size, msg.owner_id)
        obj = self.objects.get(msg.object_id)
        if obj is None or obj.sealed:
            return
        obj.sealed = True
        self.post(self.gcs, om.ObjectLocations(self.node_id, ((msg.object_id, msg.size),)))
        if obj.freed:  # freed while it was being written
            self._delete(msg.object_id)
            return
        self._touch(msg.object_id, obj)
        for reader, request in self.waiting.pop(msg.object_id, []):
            self.on_pin(request, reader)
        for puller, request in self.serve_waiting.pop(msg.object_id, []):
            self.on_serve(request, puller)

    # ---- reading -------------------------------------------------------------------

    def on_pin(self, msg: om.PinObjects, sender: Any) -> None:
        missing = [oid for oid in msg.object_ids if oid not in self.objects]
        if missing:  # created here before any reader learns of it: so it was freed (or never here)
            self.log.warning("object_pin_missing", object_id=missing[0], reader=msg.reader_id)
            lost = exceptions.ObjectLostError(f"object {missing[0]} is not in the store of node {self.node_id}")
            self.reply(msg, sender, om.ObjectsPinned(msg.req_id, "", {}, serialization.dumps(lost)))
            return
        unsealed = [oid for oid in msg.object_ids if not self.objects[oid].sealed]
        if unsealed:  # reply once all are sealed
            self.waiting.setdefault(unsealed[0], []).append((sender, msg))
            return
        keep = set(msg.object_ids)
        for oid in msg.object_ids:
            obj = self.objects[oid]
            if obj.offset is None and not self._restore(oid, obj, keep):
                error = self._full_error(oid, obj.size, restoring=True)
                self.log.warning("object_restore_failed", object_id=oid, size=obj.size, error=str(error))
                self.reply(msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, {}, serialization.dumps(error)))
                return
        slots = {}
        for oid in msg.object_ids:
            obj = self.objects[oid]
            obj.pins += 1
            self.evictable.pop(oid, None)
            slots[oid] = (obj.offset, obj.size)
        self.reply(msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, slots))

    def on_unpin(self, msg: om.UnpinObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            obj = self.objects.get(oid)
            if obj is None:
                continue
            obj.pins -= 1
            if obj.pins > 0:
                continue
            if obj.freed:
                self._delete(oid)
            else:
                self._touch(oid, obj)

    # ---- freeing -------------------------------------------------------------------

    def on_free(self, msg: om.FreeObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            obj = self.objects.get(oid)
            if obj is not None and not obj.freed:
                obj.freed = True
                self.counters.freed_objects += 1
                if obj.pins <= 0 and obj.sealed:
                    self._delete(oid)

    def _delete(self, oid: str) -> None:
        obj = self.objects.pop(oid)
        self.evictable.pop(oid, None)
        if obj.offset is not None:
            self.allocator.free(obj.offset)
        if obj.on_disk:
            self.spill.delete(oid)
        self.post(self.gcs, om.ObjectLocations(self.node_id, (), (oid,)))

    # ---- making room: eviction, spilling, restoring --------------------------------

    def _touch(self, oid: str, obj: StoredObject) -> None:
        """Mark a sealed, unpinned object in the arena as most recently used."""
        if obj.offset is not None:
            self.evictable[oid] = None
            self.evictable.move_to_end(oid)

    def _alloc(self, size: int, keep: set | frozenset = frozenset()) -> int | None:
        """A slot of ``size`` bytes, evicting or spilling LRU objects (not in ``keep``) to make room.

        Secondary copies go first, then primary copies are spilled. None if no room can be made.
        """
        offset = self.allocator.alloc(size)
        if offset is not None:
            return offset
        if size > self.allocator.capacity:
            return None
        for primary in (False, True):
            for oid in [o for o in self.evictable if self.objects[o].primary is primary and o not in keep]:
                if not self._evict(oid):
                    continue
                offset = self.allocator.alloc(size)
                if offset is not None:
                    return offset
        return None

    def _evict(self, oid: str) -> bool:
        """Take a sealed, unpinned object out of the arena: dropped if secondary, else spilled."""
        obj = self.objects[oid]
        if not obj.primary:
            self.counters.evicted_objects += 1
            self.counters.evicted_bytes += obj.size
            self.log.debug("object_evicted", object_id=oid, size=obj.size)
            self._delete(oid)
            return True
        if not obj.on_disk:
            started = time.perf_counter()
            try:
                self.spill.spill(oid, self.arena.view(obj.offset, obj.size))
            except OSError as exc:
                self.log.error("object_spill_failed", object_id=oid, size=obj.size, error=repr(exc))
                return False
            obj.on_disk = True
            self.counters.spilled_objects += 1
            self.counters.spilled_bytes += obj.size
            self.log.info("object_spilled", object_id=oid, size=obj.size,
                          seconds=round(time.perf_counter() - started, 4))
        self.evictable.pop(oid, None)
        self.allocator.free(obj.offset)
        obj.offset = None
        return True

    def _restore(self, oid: str, obj: StoredObject, keep: set) -> bool:
        """Read a spilled object back into the arena; False if no room can be made."""
        offset = self._alloc(obj.size, keep)
        if offset is None:
            return False
        started = time.perf_counter()
        try:
            self.spill.restore(oid, self.arena.view(offset, obj.size))
        except (OSError, EOFError, KeyError) as exc:
            self.allocator.free(offset)
            self.log.error("object_restore_io_failed", object_id=oid, error=repr(exc))
            return False
        obj.offset = offset
        self.counters.restored_objects += 1
        self.counters.restored_bytes += obj.size
        self.log.info("object_restored", object_id=oid, size=obj.size,
                      seconds=round(time.perf_counter() - started, 4))
        return True

    def _full_error(self, oid: str, size: int, restoring: bool = False) -> exceptions.ObjectStoreFullError:
        pinned = sum(o.size for o in self.objects.values() if o.offset is not None and o.pins > 0)
        writing = sum(o.size for o in self.objects.values() if o.offset is not None and not o.sealed)
        what = "restore of spilled object" if restoring else "object"
        return exceptions.ObjectStoreFullError(
            f"{what} {oid} of {size} bytes does not fit in the object store of node {self.node_id} "
            f"({self.allocator.capacity} bytes): {self.allocator.used} bytes in use, {pinned} bytes pinned by "
            f"readers, {writing} bytes being written, largest free block {self.allocator.largest_free} bytes, "
            f"and nothing else can be spilled. Release the values you got (they pin their objects) or "
            f"start babyray with a larger object_store_memory.")

    # ---- data plane: pulling objects from other nodes, serving ours ---------------

    def on_pull(self, msg: om.PullObject, sender: Any) -> None:
        """Reply like PinObjects once ``object_id`` is here, pulling it first if it is not."""
        oid = msg.object_id
        stale = self.objects.get(oid)
        if stale is not None and not stale.sealed and (
                oid not in self.pulls or self.pull_nodes.get(oid) != msg.source_node):
            # Unsealed here while the reader knows a sealed copy elsewhere: its writer died
            # mid-write (the task was retried on another node), or the holder we pull from is
            # gone (the object was rebuilt). Pull the copy the reader knows instead of waiting.
            self.log.warning("object_pull_redirected", object_id=oid, old_source=self.pull_nodes.get(oid),
                             source=msg.source_node)
            if stale.size == msg.size and stale.offset is not None:
                stale.primary = False
                self._start_pull(oid, msg)
            else:
                self.objects.pop(oid)
                if stale.offset is not None:
                    self.allocator.free(stale.offset)
        if oid not in self.objects:
            offset = self._alloc(msg.size)
            if offset is None:
                error = self._full_error(oid, msg.size)
                self.reply(msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, {}, serialization.dumps(error)))
                return
            self.objects[oid] = StoredObject(offset, msg.size, "", primary=False)
            self._start_pull(oid, msg)
        self.on_pin(om.PinObjects(msg.req_id, (oid,), msg.reader_id, msg.reply_to), sender)

    def _start_pull(self, oid: str, msg: om.PullObject) -> None:
        self.pulls[oid] = (msg.source_store, time.monotonic())
        self.pull_nodes[oid] = msg.source_node
        self.log.info("object_pull_started", object_id=oid, size=msg.size, source=msg.source_node)
        self.post(msg.source_store, om.ServeObject(f"pull-{oid}", oid, self.myAddress))
        self.every(PULL_CHECK_SECONDS, "pull_check")

    def on_pull_check(self, msg: Any, sender: Any) -> None:
        """While pulls wait, ask the GCS which nodes are dead: a dead holder never answers."""
        self.pull_nodes = {oid: node for oid, node in self.pull_nodes.items() if oid in self.pulls}
        if not self.pulls:
            self.stop_timer("pull_check")
            return
        self.post(self.gcs, cm.GetNodes("store-pull-check"))

    def on_nodes(self, msg: cm.Nodes, sender: Any) -> None:
        dead = {n.node_id for n in msg.nodes if not n.alive}
        for oid, node in list(self.pull_nodes.items()):
            if node in dead and oid in self.pulls:
                self.pulls.pop(oid)
                del self.pull_nodes[oid]
                self.log.warning("object_pull_source_dead", object_id=oid, node=node)
                lost = exceptions.ObjectLostError(f"object {oid} was being pulled from node {node}, which died")
                self._pull_failed(oid, serialization.dumps(lost))

    def on_serve(self, msg: om.ServeObject, sender: Any) -> None:
        """Pin the object for a pulling store and tell it where to read it."""
        obj = self.objects.get(msg.object_id)
        if obj is not None and not obj.sealed:
            self.serve_waiting.setdefault(msg.object_id, []).append((sender, msg))
            return
        if obj is not None and obj.offset is None and not self._restore(msg.object_id, obj, {msg.object_id}):
            obj = None
        if obj is None:
            lost = exceptions.ObjectLostError(f"object {msg.object_id} is not available on node {self.node_id}")
            self.reply(msg, sender, om.ObjectServed(msg.req_id, msg.object_id, -1, 0, "", 0,
                                                   serialization.dumps(lost)))
            return
        obj.pins += 1
        self.evictable.pop(msg.object_id, None)
        host, port = self.transfer_server.address
        self.reply(msg, sender, om.ObjectServed(msg.req_id, msg.object_id, obj.offset, obj.size, host, port))

    def on_served(self, msg: om.ObjectServed, sender: Any) -> None:
        obj = self.objects.get(msg.object_id)
        if msg.object_id not in self.pulls or obj is None:
            return
        if msg.error is not None:  # the holder does not have it: nothing was pinned there
            self.pulls.pop(msg.object_id, None)
            self._pull_failed(msg.object_id, msg.error)
            return
        dest = self.arena.view(obj.offset, obj.size)

        def transfer() -> None:
            started = time.monotonic()
            try:
                self.data_plane.read_into(msg.host, msg.port, msg.offset, dest)
                done = om.PullDone(msg.object_id, None, time.monotonic() - started)
            except Exception as exc:
                lost = exceptions.ObjectLostError(f"pulling object {msg.object_id} from {msg.host}:{msg.port} "
                                                  f"failed: {exc}")
                done = om.PullDone(msg.object_id, serialization.dumps(lost), time.monotonic() - started)
            self.post_from_thread(self.myAddress, done)
        threading.Thread(target=transfer, name="babyray-pull", daemon=True).start()

    def on_pull_done(self, msg: om.PullDone, sender: Any) -> None:
        source, started = self.pulls.pop(msg.object_id, (None, 0.0))
        if source is not None:  # the holder pinned the object while we read it
            self.post(source, om.UnpinObjects((msg.object_id,), self.node_id))
        obj = self.objects.get(msg.object_id)
        if obj is None:
            return
        if msg.error is not None:
            self._pull_failed(msg.object_id, msg.error)
            return
        seconds = max(msg.seconds, 1e-9)
        self.log.info("object_pulled", object_id=msg.object_id, size=obj.size, seconds=round(seconds, 4),
                      gbps=round(obj.size / seconds / 1e9, 3), total_seconds=round(time.monotonic() - started, 4))
        self.on_seal(om.SealObject(msg.object_id, obj.size), sender)

    def _pull_failed(self, oid: str, error: bytes) -> None:
        obj = self.objects.pop(oid, None)
        if obj is not None and obj.offset is not None:
            self.allocator.free(obj.offset)
        self.log.warning("object_pull_failed", object_id=oid)
        for reader, request in self.waiting.pop(oid, []):
            self.reply(request, reader, om.ObjectsPinned(request.req_id, self.arena_path, {}, error))

    def on_gcs_restarted(self, msg: cm.GcsRestarted, sender: Any) -> None:
        """Report to the restarted head's GCS from now on, starting with every object held here."""
        self.gcs = msg.gcs
        held = tuple((oid, o.size) for oid, o in self.objects.items() if o.sealed and not o.freed)
        self.log.info("gcs_moved_objects_reported", objects=len(held))
        if held:
            self.post(self.gcs, om.ObjectLocations(self.node_id, held))

    def on_get_transfer_address(self, msg: om.GetTransferAddress, sender: Any) -> None:
        host, port = self.transfer_server.address
        self.reply(msg, sender, om.TransferAddress(msg.req_id, host, port))

    # ---- reporting -----------------------------------------------------------------

    def stats(self) -> dict:
        """Bytes and object counts of this store (the memory report)."""
        in_memory = [o for o in self.objects.values() if o.offset is not None]
        only_on_disk = [o for o in self.objects.values() if o.offset is None]
        pinned = [o for o in in_memory if o.pins > 0]
        c = self.counters
        spare_bytes = self.spares.bytes
        return {
            "node_id": self.node_id,
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

    def on_stats(self, msg: om.GetStoreStats, sender: Any) -> None:
        stats = self.stats()
        if msg.objects:
            stats["objects"] = {oid: self._object_state(obj) for oid, obj in self.objects.items()}
        self.reply(msg, sender, om.StoreStats(msg.req_id, self.node_id, stats))

    @staticmethod
    def _object_state(obj: StoredObject) -> dict:
        """An object's line in the memory report: where its bytes are and who pins them."""
        state = ("BEING_WRITTEN" if not obj.sealed else "SPILLED" if obj.offset is None
                 else "PINNED" if obj.pins > 0 else "IN_MEMORY")
        return {"size": obj.size, "state": state, "pins": obj.pins, "primary": obj.primary,
                "on_disk": obj.on_disk}

    # ---- shutdown ------------------------------------------------------------------

    def on_shutdown(self, msg: cm.Shutdown, sender: Any) -> None:
        self._release_arena()
        self.post(sender, cm.Stopped("object_store", os.getpid()))

    def on_exit(self, msg: Any, sender: Any) -> None:
        self._release_arena()

    def _release_arena(self) -> None:
        if self.alloc_server is not None:
            self.alloc_server.close()
            self.alloc_server = None
        if self.transfer_server is not None:
            self.transfer_server.close()
            self.transfer_server = None
        if self.arena is not None:
            self.arena.close()
            self.arena.unlink()
            self.arena = None
        if self.spill is not None:
            self.spill.cleanup()
            self.spill = None

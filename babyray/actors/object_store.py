"""The object store actor of one node: the Thespian shell over its object table.

The table (babyray.store.object_table.ObjectTable, I/O-free) holds every object's state,
pins and slot and decides what to evict or spill; this actor owns the arena, the spill
directory, the allocation channel and the transfer server, answers the messages, keeps the
readers and pulls waiting for a seal, and tells the GCS where objects are.

Bytes never pass through this actor. A producer asks for a slot (CreateObject), writes the
serialized object straight into the arena, and seals it (SealObject); a process of this node
does both on the allocation channel. A reader asks for the slots of sealed objects
(PinObjects, or a pin on the channel when they are in memory), maps them without a copy, and
unpins them when its value is garbage collected. Owners free objects nobody references
(FreeObjects); a pinned object is deleted only once its last reader unpins it. The store tells the GCS
object table where objects are and how large they are.

When the arena is full, the table makes room: secondary copies (pulled from other nodes)
are dropped, primary copies are spilled to files under ``<session_dir>/spill/<node_id>``
and restored into the arena when a reader pins them. A spilled object stays on this node (its GCS location does not
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
from typing import Any

from thespian.actors import ActorExitRequest, WakeupMessage

from babyray import exceptions, log, serialization, thespian_patches
from babyray.actors.base import PartActor
from babyray.ids import NodeID, ObjectID, WorkerID
from babyray.protocol import cluster as cm
from babyray.protocol import objects as om
from babyray.session import register_pid
from babyray.store.alloc_channel import AllocServer
from babyray.store.arena import Arena
from babyray.store.object_table import UNSEALED, ObjectTable, SealOutcome
from babyray.store.spill import SpillDir
from babyray.transfer import TcpDataPlane, TransferServer

PULL_CHECK_SECONDS = 1.0  # how often a store with pulls waiting checks their holders are alive
# How long a pin on the allocation channel waits for an unsealed object's seal (a put's
# SealObject travels through Thespian and may still be on its way) before the reader is told
# to ask through Thespian, which waits for the seal however long it takes.
CHANNEL_PIN_SEAL_WAIT_SECONDS = 0.05
# How long a pin waits for an object that is not here and was not deleted here before it is
# answered ObjectLostError. Such an object is on its way: a put into a spare slot tells the
# store one-way on its writer's channel connection (``AllocClient``), and the writer tells the
# object's owner at once; the owner's pin, on its own connection or through Thespian, can be
# read first.
ABSENT_PIN_WAIT_SECONDS = 2.0
ABSENT_CHECK_SECONDS = 0.25  # how often a store with pins waiting for absent objects checks their deadlines


class _ArenaSpillIO:
    """The table's spill I/O: slots of the arena to and from the spill files, logged."""

    def __init__(self, arena: Arena, spill: SpillDir, logger: Any) -> None:
        self.arena = arena
        self.spill_dir = spill
        self.log = logger

    def spill(self, oid: ObjectID, offset: int, size: int) -> bool:
        started = time.perf_counter()
        try:
            self.spill_dir.spill(oid, self.arena.view(offset, size))
        except OSError as exc:
            self.log.error("object_spill_failed", object_id=oid, size=size, error=repr(exc))
            return False
        self.log.info(
            "object_spilled", object_id=oid, size=size, seconds=round(time.perf_counter() - started, 4)
        )
        return True

    def restore(self, oid: ObjectID, offset: int, size: int) -> bool:
        started = time.perf_counter()
        try:
            self.spill_dir.restore(oid, self.arena.view(offset, size))
        except (OSError, EOFError, KeyError) as exc:
            self.log.error("object_restore_io_failed", object_id=oid, error=repr(exc))
            return False
        self.log.info(
            "object_restored", object_id=oid, size=size, seconds=round(time.perf_counter() - started, 4)
        )
        return True

    def delete(self, oid: ObjectID) -> None:
        self.spill_dir.delete(oid)


class ObjectStore(PartActor):
    component = "object_store"
    handlers = {
        cm.StartObjectStore: "on_start",
        om.CreateObject: "on_create",
        om.SealObject: "on_seal",
        om.PinObjects: "on_pin",
        om.UnpinObjects: "on_unpin",
        om.FreeObjects: "on_free",
        om.OwnersDied: "on_owners_died",
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
    timers = {"pull_check": "on_pull_check", "absent_check": "on_absent_check"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state_lock = threading.RLock()  # the actor's turns and the allocation channel
        self.turn_done = threading.Condition(self.state_lock)  # notified after each turn: pins wait for seals
        self.alloc_server: AllocServer | None = None
        self.arena_path = ""  # how processes of this node open the arena
        self.arena: Arena | None = None
        self.spill: SpillDir | None = None
        self.table: ObjectTable = None  # type: ignore[assignment]  # made by on_start, the first message
        self.waiting: dict[ObjectID, list[tuple[Any, om.PinObjects]]] = {}
        # Objects pinned while not here (nor deleted here) -> when their pins are answered lost.
        self.absent_deadlines: dict[ObjectID, float] = {}
        self.node_id = NodeID("")
        self.gcs: Any = None
        self.transfer_server: TransferServer | None = None
        self.data_plane = TcpDataPlane()
        self.pulls: dict[ObjectID, tuple[Any, float]] = {}  # object id -> (holding store, start time)
        self.serve_waiting: dict[str, list[tuple[Any, om.ServeObject]]] = {}
        self.pull_nodes: dict[ObjectID, NodeID] = {}  # object id -> node pulled from, while the pull lasts

    def on_start(self, msg: cm.StartObjectStore, sender: Any) -> None:
        thespian_patches.use_stock_selector()  # faster puts here (see its docstring)
        self.node_id = msg.node_id
        self.gcs = msg.gcs
        log.configure(os.path.join(msg.session_dir, "logs"), "object_store", msg.node_id)
        self.log = log.get_logger("object_store")
        register_pid(msg.session_dir, "object_store")
        name = f"babyray_{os.path.basename(msg.session_dir)[-6:]}_{msg.node_id}"
        arena = self.arena = Arena.create(name, msg.capacity, background=True)
        self.spill = SpillDir(os.path.join(msg.session_dir, "spill", msg.node_id))
        self.table = ObjectTable(msg.capacity, _ArenaSpillIO(arena, self.spill, self.log))
        self.enable_thread_posts()
        self.transfer_server = TransferServer(os.environ.get("THESPIAN_BASE_IPADDR", "127.0.0.1"), arena.view)
        # The segment loses its name at once: other processes of the node map it through this
        # process's descriptor, so it goes away with the last of them even after a kill -9.
        arena.unlink()
        self.arena_path = f"/proc/{os.getpid()}/fd/{arena.fileno()}"
        self.alloc_server = AllocServer(
            self.arena_path,
            self._allocate_for_channel,
            self._reserve_spare,
            self._release_spares,
            self._take_spare,
            self._pin_for_channel,
            self._seal_for_channel,
            self._unpin_for_channel,
            self._reader_gone,
        )
        self.log.info("object_store_started", arena=name, capacity=msg.capacity)
        # The segment's name, for a clean-up that looks for it under /dev/shm should this
        # process die before it unlinks; processes of the node open ``arena_path``, named in
        # every reply that gives them a slot.
        self.post(sender, cm.Started("object_store", os.getpid(), name))

    # ---- creating ------------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        with self.state_lock:
            try:
                return super().receiveMessage(message, sender)
            finally:
                self._report_gone()
                self.turn_done.notify_all()

    def _report_gone(self) -> None:
        """Tell the GCS which objects left this store. Through the thread outbox: this runs after
        a turn's messages were sent, or in the allocation channel's thread."""
        gone = self.table.take_gone() if self.table is not None else []
        if gone:
            self.post_from_thread(self.gcs, om.ObjectLocations(self.node_id, (), tuple(gone)))

    def _allocate_for_channel(
        self, oid: ObjectID, size: int, writer_id: WorkerID, owner_id: WorkerID
    ) -> tuple[int, bytes | None]:
        """CreateObject for a process of this node, from the allocation channel's thread.

        On failure the client asks again through Thespian (``on_create``), which reports it.
        """
        with self.state_lock:
            offset = self.table.create(oid, size, writer_id, owner_id=owner_id)
            self._report_gone()  # secondary copies evicted to make room
            if offset is None:
                return -1, serialization.dumps(self.table.full_error(oid, size, self.node_id))
            return offset, None

    def _reserve_spare(self, client: int, size: int) -> int | None:
        with self.state_lock:
            return self.table.spares.reserve(client, size)

    def _release_spares(self, client: int, offsets: list[int] | None) -> None:
        with self.state_lock:
            self.table.spares.release(client, offsets)

    def _take_spare(
        self, oid: ObjectID, size: int, writer_id: WorkerID, offset: int, owner_id: WorkerID
    ) -> None:
        with self.state_lock:
            self.table.take_spare(oid, size, writer_id, offset, owner_id)

    def _seal_for_channel(
        self, oid: ObjectID, size: int, writer_id: WorkerID, reserved_offset: int, keep_pinned: bool
    ) -> None:
        """SealObject from a process of this node, in the allocation channel's thread: ``on_seal``,
        whose messages (to the GCS, to readers waiting) leave through the thread outbox. With
        ``keep_pinned`` the object is pinned for its writer in the same step, so nothing evicts or
        spills it before its writer reads it."""
        with self.turn_done:
            self.on_seal(om.SealObject(oid, size, writer_id, reserved_offset), None)
            if keep_pinned:
                self.table.pin((oid,), restore=False, reader=writer_id)
            self._send_posted_from_thread()
            self._report_gone()
            self.turn_done.notify_all()

    def _send_posted_from_thread(self) -> None:
        """Send what a handler called from the allocation channel's thread posted. Under the
        state lock: between turns the turn outbox is empty (each turn sends it under this lock)."""
        posted = self._outbox.drain()
        for dest, msg in posted:
            self.post_from_thread(dest, msg, wake=False)
        if posted:
            self.wake_from_thread()

    def _unpin_for_channel(self, oids: tuple[ObjectID, ...], reader: str) -> None:
        """UnpinObjects from a process of this node, in the allocation channel's thread."""
        with self.state_lock:
            self.on_unpin(om.UnpinObjects(oids, reader), None)
            self._report_gone()  # objects freed while pinned are deleted at their last unpin

    def _reader_gone(self, reader: str) -> None:
        """A process of this node closed its allocation channel (it ended, or was killed): the
        pins it still holds are released, those it took through Thespian too, and the objects it
        was still writing go (their seal can no longer come; readers waiting for them get
        ObjectLostError)."""
        with self.turn_done:
            self.table.reader_gone(reader)
            for oid in self.table.unsealed_written_by(reader):
                self._writer_died(oid)
            self._send_posted_from_thread()
            self._report_gone()
            self.turn_done.notify_all()  # pins waiting on the channel for those seals look again

    def _pin_for_channel(
        self, oids: tuple[ObjectID, ...], reader: str
    ) -> tuple[str, dict[ObjectID, tuple[int, int]]] | None:
        """PinObjects for a process of this node, from the allocation channel's thread: the
        slots if every object is sealed and in memory (waiting briefly for seals, and puts, on
        their way), else None and nothing pinned: the reader asks through Thespian (``on_pin``)."""
        deadline = time.monotonic() + CHANNEL_PIN_SEAL_WAIT_SECONDS
        with self.turn_done:
            while True:
                pinned = self.table.pin(oids, restore=False, reader=reader)
                left = deadline - time.monotonic()
                if (pinned.unsealed is None and pinned.coming is None) or left <= 0:
                    return (self.arena_path, pinned.slots) if pinned.slots else None
                self.turn_done.wait(left)

    def on_create(self, msg: om.CreateObject, sender: Any) -> None:
        offset = self.table.create(
            msg.object_id, msg.size, msg.writer_id, owner_id=msg.owner_id or msg.writer_id
        )
        if offset is None:
            error = self.table.full_error(msg.object_id, msg.size, self.node_id)
            self.log.warning("object_store_full", object_id=msg.object_id, size=msg.size, error=str(error))
            self.reply(
                msg,
                sender,
                om.ObjectCreated(msg.req_id, msg.object_id, -1, self.arena_path, serialization.dumps(error)),
            )
            return
        self.reply(msg, sender, om.ObjectCreated(msg.req_id, msg.object_id, offset, self.arena_path))

    def on_seal(self, msg: om.SealObject, sender: Any) -> None:
        outcome = self.table.seal(msg.object_id, msg.size, msg.writer_id, msg.reserved_offset)
        if outcome is SealOutcome.IGNORED:
            if msg.reserved_offset >= 0 and msg.object_id not in self.table:
                self.log.warning("object_spare_lost", object_id=msg.object_id, writer=msg.writer_id)
            return
        if outcome is SealOutcome.DUPLICATE:
            self.log.info("object_duplicate_dropped", object_id=msg.object_id, writer=msg.writer_id)
            return
        if outcome is SealOutcome.SEALED:  # (FREED: its owner freed it while it was being written)
            self.post(self.gcs, om.ObjectLocations(self.node_id, ((msg.object_id, msg.size),)))
        for reader, pin in self.waiting.pop(msg.object_id, []):
            self.on_pin(pin, reader)
        for puller, serve in self.serve_waiting.pop(msg.object_id, []):
            self.on_serve(serve, puller)

    # ---- reading -------------------------------------------------------------------

    def on_pin(self, msg: om.PinObjects, sender: Any) -> None:
        if msg.reader_id and self.table.has_left(msg.reader_id):  # sent, or waiting here, as it ended
            self.log.info("object_pin_of_reader_gone", reader=msg.reader_id, object_ids=list(msg.object_ids))
            return
        pinned = self.table.pin(msg.object_ids, reader=msg.reader_id)
        if pinned.missing is not None:
            self.log.warning("object_pin_missing", object_id=pinned.missing, reader=msg.reader_id)
            lost = exceptions.ObjectLostError(
                f"object {pinned.missing} was deleted from the store of node {self.node_id}"
            )
            self.reply(msg, sender, om.ObjectsPinned(msg.req_id, "", {}, serialization.dumps(lost)))
        elif pinned.coming is not None:  # on its way (ABSENT_PIN_WAIT_SECONDS): answered at its seal
            self.waiting.setdefault(pinned.coming, []).append((sender, msg))
            self._wait_for_absent(pinned.coming)
        elif pinned.unsealed is not None:  # reply once all are sealed
            self.waiting.setdefault(pinned.unsealed, []).append((sender, msg))
        elif pinned.no_room is not None:
            oid = pinned.no_room
            size = self.table.objects[oid].size
            error = self.table.full_error(oid, size, self.node_id, restoring=True)
            self.log.warning("object_restore_failed", object_id=oid, size=size, error=str(error))
            self.reply(
                msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, {}, serialization.dumps(error))
            )
        else:
            self.reply(msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, pinned.slots))

    def _wait_for_absent(self, oid: ObjectID) -> None:
        """Pins (and serves) of ``oid``, not here, wait for it until ``ABSENT_PIN_WAIT_SECONDS`` from now."""
        self.absent_deadlines.setdefault(oid, time.monotonic() + ABSENT_PIN_WAIT_SECONDS)
        self.every(ABSENT_CHECK_SECONDS, "absent_check")

    def on_absent_check(self, msg: WakeupMessage, sender: Any) -> None:
        """Pins and serves that waited ``ABSENT_PIN_WAIT_SECONDS`` for an object that never came: lost."""
        now = time.monotonic()
        for oid, deadline in list(self.absent_deadlines.items()):
            if oid in self.table or (oid not in self.waiting and oid not in self.serve_waiting):
                del self.absent_deadlines[oid]  # it came: its pins and serves wait for its seal
            elif deadline <= now:
                del self.absent_deadlines[oid]
                self.log.warning("object_pin_missing", object_id=oid, waited=ABSENT_PIN_WAIT_SECONDS)
                lost = exceptions.ObjectLostError(f"object {oid} is not in the store of node {self.node_id}")
                self._abort(oid, serialization.dumps(lost))
        if not self.absent_deadlines:
            self.stop_timer("absent_check")

    def on_unpin(self, msg: om.UnpinObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            self.table.unpin(oid, msg.reader_id)

    # ---- freeing -------------------------------------------------------------------

    def on_free(self, msg: om.FreeObjects, sender: Any) -> None:
        for oid in msg.object_ids:
            obj = self.table.get(oid)
            if msg.writer_died and obj is not None and obj.state in UNSEALED:
                self._writer_died(oid)
            self.table.free(oid)

    def on_owners_died(self, msg: om.OwnersDied, sender: Any) -> None:
        freed = self.table.owners_died(msg.worker_ids)
        if freed:
            self.log.info("objects_of_dead_owners_freed", owners=list(msg.worker_ids), count=len(freed))

    def _writer_died(self, oid: ObjectID) -> None:
        """Drop unsealed ``oid``, whose writer died: its slot goes, its waiting readers get the error."""
        obj = self.table.get(oid)
        self.log.info("object_writer_died", object_id=oid, size=obj.size if obj else None)
        lost = exceptions.ObjectLostError(
            f"object {oid} was being written on node {self.node_id} by a process that died"
        )
        self._abort(oid, serialization.dumps(lost))

    # ---- data plane: pulling objects from other nodes, serving ours ---------------

    def on_pull(self, msg: om.PullObject, sender: Any) -> None:
        """Reply like PinObjects once ``object_id`` is here, pulling it first if it is not."""
        oid = msg.object_id
        stale = self.table.get(oid)
        if (
            stale is not None
            and stale.state in UNSEALED
            and (oid not in self.pulls or self.pull_nodes.get(oid) != msg.source_node)
        ):
            # Unsealed here while the reader knows a sealed copy elsewhere: its writer died
            # mid-write (the task was retried on another node), or the holder we pull from is
            # gone (the object was rebuilt). Pull the copy the reader knows instead of waiting.
            self.log.warning(
                "object_pull_redirected",
                object_id=oid,
                old_source=self.pull_nodes.get(oid),
                source=msg.source_node,
            )
            if stale.size == msg.size:
                self.table.create(oid, msg.size, WorkerID(""), primary=False)  # the pull takes the slot over
                self._start_pull(oid, msg)
            else:
                self.table.abort(oid)
        if oid not in self.table:
            if self.table.create(oid, msg.size, WorkerID(""), primary=False) is None:
                error = self.table.full_error(oid, msg.size, self.node_id)
                self.reply(
                    msg, sender, om.ObjectsPinned(msg.req_id, self.arena_path, {}, serialization.dumps(error))
                )
                return
            self._start_pull(oid, msg)
        self.on_pin(om.PinObjects(msg.req_id, (oid,), msg.reader_id, msg.reply_to), sender)

    def _start_pull(self, oid: ObjectID, msg: om.PullObject) -> None:
        self.pulls[oid] = (msg.source_store, time.monotonic())
        self.pull_nodes[oid] = msg.source_node
        self.log.info("object_pull_started", object_id=oid, size=msg.size, source=msg.source_node)
        self.post(msg.source_store, om.ServeObject(f"pull-{oid}", oid, self.myAddress, self.node_id))
        self.every(PULL_CHECK_SECONDS, "pull_check")

    def on_pull_check(self, msg: WakeupMessage, sender: Any) -> None:
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
                lost = exceptions.ObjectLostError(
                    f"object {oid} was being pulled from node {node}, which died"
                )
                self._pull_failed(oid, serialization.dumps(lost))

    def on_serve(self, msg: om.ServeObject, sender: Any) -> None:
        """Pin the object for a pulling store and tell it where to read it."""
        pinned = self.table.pin((msg.object_id,), reader=msg.reader_id)
        if pinned.unsealed is not None or pinned.coming is not None:  # served at its seal
            self.serve_waiting.setdefault(msg.object_id, []).append((sender, msg))
            if pinned.coming is not None:
                self._wait_for_absent(msg.object_id)
            return
        if not pinned.slots:
            lost = exceptions.ObjectLostError(
                f"object {msg.object_id} is not available on node {self.node_id}"
            )
            self.reply(
                msg,
                sender,
                om.ObjectServed(msg.req_id, msg.object_id, -1, 0, "", 0, serialization.dumps(lost)),
            )
            return
        offset, size = pinned.slots[msg.object_id]
        host, port = self._transfer_address()
        self.reply(msg, sender, om.ObjectServed(msg.req_id, msg.object_id, offset, size, host, port))

    def on_served(self, msg: om.ObjectServed, sender: Any) -> None:
        obj = self.table.get(msg.object_id)
        if msg.object_id not in self.pulls or obj is None or obj.offset is None or self.arena is None:
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
                lost = exceptions.ObjectLostError(
                    f"pulling object {msg.object_id} from {msg.host}:{msg.port} failed: {exc}"
                )
                done = om.PullDone(msg.object_id, serialization.dumps(lost), time.monotonic() - started)
            self.post_from_thread(self.myAddress, done)

        threading.Thread(target=transfer, name="babyray-pull", daemon=True).start()

    def on_pull_done(self, msg: om.PullDone, sender: Any) -> None:
        source, started = self.pulls.pop(msg.object_id, (None, 0.0))
        if source is not None:  # the holder pinned the object while we read it
            self.post(source, om.UnpinObjects((msg.object_id,), self.node_id))
        obj = self.table.get(msg.object_id)
        if obj is None:
            return
        if msg.error is not None:
            self._pull_failed(msg.object_id, msg.error)
            return
        seconds = max(msg.seconds, 1e-9)
        self.log.info(
            "object_pulled",
            object_id=msg.object_id,
            size=obj.size,
            seconds=round(seconds, 4),
            gbps=round(obj.size / seconds / 1e9, 3),
            total_seconds=round(time.monotonic() - started, 4),
        )
        self.on_seal(om.SealObject(msg.object_id, obj.size), sender)

    def _pull_failed(self, oid: ObjectID, error: bytes) -> None:
        self.log.warning("object_pull_failed", object_id=oid)
        self._abort(oid, error)

    def _abort(self, oid: ObjectID, error: bytes) -> None:
        """Drop the unsealed ``oid``, whose seal is not coming: readers and pulling stores
        waiting for it get ``error`` (a pickled exception)."""
        self.table.abort(oid)
        for reader, request in self.waiting.pop(oid, []):
            self.reply(request, reader, om.ObjectsPinned(request.req_id, self.arena_path, {}, error))
        for puller, serve in self.serve_waiting.pop(oid, []):
            self.reply(serve, puller, om.ObjectServed(serve.req_id, oid, -1, 0, "", 0, error))

    def on_gcs_restarted(self, msg: cm.GcsRestarted, sender: Any) -> None:
        """Report to the restarted head's GCS from now on, starting with every object held here."""
        self.gcs = msg.gcs
        held = self.table.held()
        self.log.info("gcs_moved_objects_reported", objects=len(held))
        if held:
            self.post(self.gcs, om.ObjectLocations(self.node_id, held))

    def _transfer_address(self) -> tuple[str, int]:
        assert self.transfer_server is not None, "the store serves transfers from its start to its shutdown"
        return self.transfer_server.address

    def on_get_transfer_address(self, msg: om.GetTransferAddress, sender: Any) -> None:
        host, port = self._transfer_address()
        self.reply(msg, sender, om.TransferAddress(msg.req_id, host, port))

    # ---- reporting -----------------------------------------------------------------

    def on_stats(self, msg: om.GetStoreStats, sender: Any) -> None:
        stats = {"node_id": self.node_id, **self.table.stats()}
        if msg.objects:
            stats["objects"] = self.table.object_states()
        self.reply(msg, sender, om.StoreStats(msg.req_id, self.node_id, stats))

    # ---- shutdown ------------------------------------------------------------------

    def on_shutdown(self, msg: cm.Shutdown, sender: Any) -> None:
        self._release_arena()
        self.post(sender, cm.Stopped("object_store", os.getpid()))

    def on_exit(self, msg: ActorExitRequest, sender: Any) -> None:
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

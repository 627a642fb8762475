"""The core of every babyray client process (driver or worker): ownership and object access.

A ``CoreClient`` owns the objects its process creates (task returns and ``put``s): it
knows whether each is pending, ready (inline bytes or a slot in a node's store) or failed.
It resolves the top-level ObjectRef arguments of tasks before submitting them, answers
other processes that borrow its objects, and serves ``get``/``wait``/``put``.

It is a thin facade over collaborators, each in its own module:

- ``objects`` (``OwnerTable``): owned and borrowed value records, their callbacks, lookups;
- ``tasks`` (``TaskSubmitter``): submitted tasks, their results, retries and lineage;
- ``actor_calls`` (``ActorSubmitter``): calls to actors, in order per actor;
- ``io`` (``ObjectIO``): put and get against the object store, inline values;
- ``requests`` (``Requests``): requests sent and the replies routed back to them;
- ``refs`` (``ReferenceCounter``), ``recovery`` (``ObjectRecovery``), ``generators``
  (``GeneratorStreams``), ``router`` (``TaskRouter``);
- ``task_events`` (``TaskEventBuffer``) and ``metrics`` (``MetricsReporter``): what the process
  tells the GCS, sent by one ``PeriodicFlusher`` thread.

Threads: user threads call the public methods; the process's message loop (the driver's
listener thread or the worker actor) calls ``handle``. One lock (``lock``) guards all state,
and callbacks run under it must not block. Messages leave through ``transport.send``, which
never blocks and batches per destination.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

from babyray import exceptions, log
from babyray.api import reference_report
from babyray.api.actor_calls import ActorSubmitter
from babyray.api.flusher import PeriodicFlusher
from babyray.api.generator import GeneratorStreams
from babyray.api.infeasible_warnings import InfeasibleWarnings
from babyray.api.metrics_report import MetricsReporter
from babyray.api.object_io import ObjectIO
from babyray.api.object_ref import ObjectRef
from babyray.api.owner_table import OwnerTable
from babyray.api.recovery import ObjectRecovery
from babyray.api.reference_counting import ReferenceCounter
from babyray.api.request_routing import REQUEST_TIMEOUT, Requests, Transport
from babyray.api.task_events import FLUSH_INTERVAL, TaskEventBuffer
from babyray.api.task_routing import TaskRouter
from babyray.api.task_submission import TaskSubmitter
from babyray.ids import FunctionID, JobID, NodeID, ObjectID, WorkerID
from babyray.protocol import actors as am
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.protocol import state as sm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm


class CoreClient:
    """Ownership, dependency resolution and object access for one process."""

    def __init__(
        self,
        transport: Transport,
        identity: WorkerID,
        inbox: Any,
        node_id: NodeID,
        scheduler: Any,
        store: Any,
        gcs: Any,
        job_id: JobID,
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.inbox = inbox
        self.job_id = job_id
        # Where this process's messages go; changed by ``retarget`` when the head restarts.
        self.node_id = node_id
        self.scheduler = scheduler
        self.store = store
        self.gcs = gcs
        self.remote_store_io = False  # no store on this host: objects move over the data plane
        self.lock = threading.RLock()
        self.log = log.get_logger("core")
        self.requests = Requests(transport, identity, inbox, self.lock)
        self.objects = OwnerTable(identity, self.lock, self._ask_owner)
        self.tasks = TaskSubmitter(self)
        self.io = ObjectIO(self, self.lock)
        self.actor_calls = ActorSubmitter(self)
        self.router = TaskRouter(self)
        self.recovery = ObjectRecovery(self)
        self.generators = GeneratorStreams(self)
        self.infeasible = InfeasibleWarnings()
        self.task_events: TaskEventBuffer | None = None
        self.metrics: MetricsReporter | None = None
        self.flusher: PeriodicFlusher | None = None
        if gcs is not None:  # what this process tells the GCS, sent every FLUSH_INTERVAL
            self.task_events = TaskEventBuffer(transport, gcs)
            self.metrics = MetricsReporter(transport, gcs, str(identity))
            self.flusher = PeriodicFlusher(FLUSH_INTERVAL)
            self.flusher.add(self.task_events.flush)
            self.flusher.add(self.metrics.flush)
        self.refs = ReferenceCounter(self)  # frees objects once no ObjectRef to them remains
        self._registered_functions: dict[str, gm.RegisterFunction] = {}  # sent to the GCS, by function id

    @property
    def on_block(self) -> Callable[[], None] | None:
        """Called before a task's thread first waits in get/wait (a worker releases its CPU)."""
        return self.objects.on_block

    @on_block.setter
    def on_block(self, hook: Callable[[], None] | None) -> None:
        self.objects.on_block = hook

    @property
    def on_unblock(self) -> Callable[[], None] | None:
        """Called when that wait is over."""
        return self.objects.on_unblock

    @on_unblock.setter
    def on_unblock(self, hook: Callable[[], None] | None) -> None:
        self.objects.on_unblock = hook

    # ---- requests -------------------------------------------------------------------

    def request(self, dest: Any, build: Callable[[str], Any], timeout: float = REQUEST_TIMEOUT) -> Any:
        """Send ``build(req_id)`` to ``dest``; its reply (see ``Requests.request``)."""
        return self.requests.request(dest, build, timeout)

    def request_many(self, requests: list[tuple[Any, Callable[[str], Any]]], timeout: float) -> list[Any]:
        return self.requests.request_many(requests, timeout)

    def request_by(self, dest: Any, build: Callable[[str], Any], deadline: float | None) -> Any:
        return self.requests.request_by(dest, build, deadline)

    # ---- functions -------------------------------------------------------------------

    def ensure_function(self, function_id: FunctionID, name: str, blob: bytes) -> None:
        if function_id not in self._registered_functions:
            registration = self._registered_functions[function_id] = gm.RegisterFunction(
                function_id, name, blob
            )
            self.transport.send(self.gcs, registration)

    def fetch_function(self, function_id: FunctionID, timeout: float = REQUEST_TIMEOUT) -> bytes:
        reply = self.request(self.gcs, lambda r: gm.GetFunction(r, function_id), timeout)
        return reply.blob

    # ---- tasks ------------------------------------------------------------------------

    def submit(self, spec: vm.TaskSpec, dest: Any = None) -> list[ObjectRef]:
        """Submit a task; the refs of its returns (see ``TaskSubmitter.submit``)."""
        return self.tasks.submit(spec, dest)

    def submit_actor_call(self, spec: vm.TaskSpec, info: am.ActorInfo) -> list[ObjectRef]:
        return self.actor_calls.submit(spec, info)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool = True) -> None:
        self.tasks.cancel(ref, force, recursive)

    def resubmit_lost_with_head(self, head_node_id: NodeID, alive_nodes: set[NodeID]) -> int:
        return self.tasks.resubmit_lost_with_head(head_node_id, alive_nodes)

    # ---- values -----------------------------------------------------------------------

    def put(self, value: Any) -> ObjectRef:
        return self.io.put(value)

    def store_value(self, oid: ObjectID, value: Any, borrower: tuple | None = None) -> Any:
        """A value record for ``value`` as object ``oid`` (see ``ObjectIO.store_value``)."""
        return self.io.store_value(oid, value, borrower)

    def store_returns(
        self, oids: Sequence[ObjectID], values: Sequence[Any], borrower: tuple | None = None
    ) -> tuple:
        """A task's return values stored (see ``ObjectIO.store_returns``)."""
        return self.io.store_returns(oids, values, borrower)

    def materialize(self, oid: ObjectID, value: Any, deadline: float | None = None) -> Any:
        """The Python value of a value record (see ``ObjectIO.materialize``)."""
        return self.io.materialize(oid, value, deadline)

    def get(self, refs: list[ObjectRef], timeout: float | None = None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        unique = list({r.id: r for r in refs}.values())
        found = self.objects.collect(unique, len(unique), timeout)
        if len(found) < len(unique):
            missing = [r.id for r in unique if r.id not in found]
            raise exceptions.GetTimeoutError(
                f"get timed out after {timeout}s waiting for {len(missing)} object(s), e.g. {missing[0]}"
            )
        return [self.io.materialize(r.id, found[r.id], deadline) for r in refs]

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> tuple[list, list]:
        found = self.objects.collect(refs, num_returns, timeout)
        ready = [r for r in refs if r.id in found][:num_returns]
        chosen = {r.id for r in ready}
        return ready, [r for r in refs if r.id not in chosen]

    def _ask_owner(self, ref: ObjectRef) -> None:
        """Ask the owner of borrowed ``ref`` for its value (answered by ObjectValues)."""
        self.transport.send(ref.owner, om.GetObjects(self.requests.new_req_id(), (ref.id,), self.inbox))

    # ---- incoming messages ---------------------------------------------------------

    def handle(self, msg: Any) -> bool:
        """Process one incoming message; False if it is not a core message."""
        kind = type(msg)
        if kind is tm.TaskResults:
            with self.lock:
                self.tasks.results(msg)
        elif kind is om.ObjectValues:
            with self.lock:
                self.objects.borrowed_arrived(msg.values)
        elif kind is tm.GeneratorItem:
            with self.lock:
                self.generators.on_item(msg)
        elif kind is om.GetObjects:
            self._serve_get_objects(msg)
        elif kind is tm.TasksLost:
            with self.lock:
                self.tasks.nodes_lost(msg)
        elif kind is tm.LeaseEnded:
            with self.lock:
                self.tasks.lease_ended(msg)
        elif kind is tm.LeaseLost:
            with self.lock:
                self.tasks.lease_lost(msg)
        elif kind is am.ActorStateChanged:
            with self.lock:
                self.actor_calls.state_changed(msg)
        elif kind is tm.TaskInfeasible:
            self.infeasible.warn(msg)
        elif kind is om.AddBorrowers or kind is om.RemoveBorrowers:
            self.refs.handle(msg)
        elif kind is om.DeadWorkers:
            self.refs.borrowers_dead(msg.worker_ids)
            with self.lock:
                self.objects.owners_dead(msg.worker_ids)
        elif kind is sm.GetReferences:
            self.transport.send(
                msg.reply_to,
                sm.References(
                    msg.req_id, self.identity, os.getpid(), self.node_id, reference_report.snapshot(self)
                ),
            )
        else:
            return self.requests.route(msg)
        return True

    def _serve_get_objects(self, msg: om.GetObjects) -> None:
        def reply(oid: ObjectID) -> Callable:
            return lambda value: self.transport.send(
                msg.reply_to, om.ObjectValues(msg.req_id, ((oid, value),))
            )

        with self.lock:
            for oid in msg.object_ids:
                self.objects.answer(oid, reply(oid))

    # ---- a restarted head, shutdown ----------------------------------------------------

    def retarget(
        self,
        gcs: Any,
        scheduler: Any = None,
        store: Any = None,
        node_id: NodeID | None = None,
        remote_store_io: bool | None = None,
    ) -> None:
        """Send to a restarted head's parts from now on: its GCS, and for a driver whose node was
        the head's, that node's scheduler and store (those not given stay as they are)."""
        with self.lock:
            self.gcs = gcs
            if scheduler is not None:
                self.scheduler = scheduler
            if node_id is not None:
                self.node_id = node_id
            if remote_store_io is not None:
                self.remote_store_io = remote_store_io
            if store is not None:
                self.store = store
                self.io.store_moved()
            for registration in self._registered_functions.values():  # one sent while it was down is lost
                self.transport.send(gcs, registration)
            self.actor_calls.resubscribe()
        if self.task_events is not None:
            self.task_events.retarget(gcs)
        if self.metrics is not None:
            self.metrics.retarget(gcs)

    def close(self) -> None:
        """Release what this client holds in its process (at shutdown): the counting thread,
        the store's allocation channel and the arena mappings (values read stay valid)."""
        self.refs.close()
        self.io.close()


def function_id_of(blob: bytes) -> FunctionID:
    return FunctionID(hashlib.sha1(blob).hexdigest()[:16])

"""The core of every babyray client process (driver or worker): ownership and object access.

A ``CoreClient`` owns the objects its process creates (task returns and ``put``s): it
knows whether each is pending, ready (inline bytes or a slot in a node's store) or failed.
It resolves the top-level ObjectRef arguments of tasks before submitting them, answers
other processes that borrow its objects, and serves ``get``/``wait``/``put``.

Threads: user threads call the public methods; the process's message loop (the driver's
listener thread or the worker actor) calls ``handle``. One lock guards all state, and
callbacks run under it must not block. Messages leave through ``transport.send``, which
never blocks and batches per destination.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from babyray import config, exceptions, log, serialization
from babyray.protocol import Reply
from babyray.protocol import actors as am
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.protocol import state as sm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.api import reference_report
from babyray.api.actor_calls import ActorSubmitter
from babyray.api.arguments import arg_resolver
from babyray.api.generator import GeneratorStreams
from babyray.api.object_ref import ObjectRef
from babyray.api.task_routing import TaskRouter
from babyray.api.recovery import ObjectRecovery
from babyray.api.task_events import TaskEventBuffer, error_fields
from babyray.api.reference_counting import ReferenceCounter, forget_serialized_refs, take_serialized_refs
from babyray.ids import new_put_object_id, new_task_id, object_id_for
from babyray.store.alloc_channel import AllocClient
from babyray.store.arena import Arena, read_object, write_object
from babyray.task_failure import failed_result, failed_returns, take_retry

Value = Any  # vm.InlineValue | vm.StoredValue | vm.ErrorValue

REQUEST_TIMEOUT = 60.0



class Transport(Protocol):
    def send(self, dest: Any, msg: Any) -> None: ...


@dataclass(slots=True)
class _Owned:
    value: Value | None = None
    callbacks: list = field(default_factory=list)
    task_id: str | None = None


@dataclass(slots=True)
class _PendingTask:
    spec: vm.TaskSpec
    unresolved: int
    failed: Value | None = None


class _Reply:
    __slots__ = ("event", "msg")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.msg: Any = None


class CoreClient:
    """Ownership, dependency resolution and object access for one process."""

    def __init__(self, transport: Transport, identity: str, inbox: Any, node_id: str,
                 scheduler: Any, store: Any, gcs: Any, job_id: str) -> None:
        self.transport = transport
        self.identity = identity
        self.inbox = inbox
        self.node_id = node_id
        self.scheduler = scheduler
        self.store = store
        self.gcs = gcs
        self.job_id = job_id
        self.inline_threshold = config.Settings().inline_threshold
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.owned: dict[str, _Owned] = {}
        self.borrowed: dict[str, Value] = {}
        self.borrow_callbacks: dict[str, list] = {}
        self.pending_tasks: dict[str, _PendingTask] = {}
        self.submitted: dict[str, vm.TaskSpec] = {}
        self.replies: dict[str, _Reply] = {}
        self.registered_functions: dict[str, gm.RegisterFunction] = {}  # sent to the GCS, by function id
        self.actor_calls = ActorSubmitter(self)
        self.router = TaskRouter(self)
        self.recovery = ObjectRecovery(self)
        self.generators = GeneratorStreams(self)
        self.arenas: dict[str, Arena] = {}
        self.alloc_channel: AllocClient | None = None
        self.store_arena = ""
        # No store on this host: objects go to/come from remote stores over the data plane.
        self.remote_store_io = False
        self._direct_io: Any = None
        self._req_ids = itertools.count()
        # Called around waits in get/wait from a task's thread (a worker releases its CPU).
        self.on_block: Callable[[], None] | None = None
        self.on_unblock: Callable[[], None] | None = None
        self.log = log.get_logger("core")
        self.task_events = TaskEventBuffer(transport, gcs) if gcs is not None else None
        self.refs = ReferenceCounter(self)  # frees objects once no ObjectRef to them remains

    # ---- requests and replies ------------------------------------------------------

    def new_req_id(self) -> str:
        return f"{self.identity}-{next(self._req_ids)}"

    def request(self, dest: Any, build: Callable[[str], Any], timeout: float = REQUEST_TIMEOUT) -> Any:
        """Send ``build(req_id)`` to ``dest`` and wait for the reply carrying that req_id."""
        reply = self.request_many([(dest, build)], timeout)[0]
        if reply is None:
            raise exceptions.RayError(f"no reply from {dest} within {timeout}s")
        return reply

    def request_many(self, requests: list[tuple[Any, Callable[[str], Any]]], timeout: float) -> list[Any]:
        """Send every ``build(req_id)`` to its ``dest`` at once; the replies in the same order
        (None for those that did not come within ``timeout`` seconds)."""
        waiting = []
        for dest, build in requests:
            req_id = self.new_req_id()
            reply = _Reply()
            with self.lock:
                self.replies[req_id] = reply
            msg = build(req_id)
            if getattr(msg, "reply_to", False) is None:
                msg = dataclasses.replace(msg, reply_to=self.inbox)
            self.transport.send(dest, msg)
            waiting.append((req_id, reply))
        deadline = time.monotonic() + timeout
        replies = []
        for req_id, reply in waiting:
            if reply.event.wait(max(0.0, deadline - time.monotonic())):
                replies.append(reply.msg)
                continue
            with self.lock:
                self.replies.pop(req_id, None)
            replies.append(None)
        return replies

    def request_by(self, dest: Any, build: Callable[[str], Any], deadline: float | None) -> Any:
        """``request``, answered before a ``get``'s ``deadline`` (``time.monotonic()``; None: none).

        Raises:
            GetTimeoutError: no reply before the deadline.
        """
        if deadline is None:
            return self.request(dest, build)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            try:
                return self.request(dest, build, min(remaining, REQUEST_TIMEOUT))
            except exceptions.RayError:
                if time.monotonic() < deadline:
                    raise
        raise exceptions.GetTimeoutError(f"get timed out waiting for a reply from {dest}")

    def _complete(self, msg: Any) -> None:
        with self.lock:
            reply = self.replies.pop(msg.req_id, None)
        if reply is not None:
            reply.msg = msg
            reply.event.set()

    # ---- functions -------------------------------------------------------------------

    def ensure_function(self, function_id: str, name: str, blob: bytes) -> None:
        if function_id not in self.registered_functions:
            registration = self.registered_functions[function_id] = gm.RegisterFunction(function_id, name, blob)
            self.transport.send(self.gcs, registration)

    def fetch_function(self, function_id: str, timeout: float = REQUEST_TIMEOUT) -> bytes:
        reply = self.request(self.gcs, lambda r: gm.GetFunction(r, function_id), timeout)
        return reply.blob

    # ---- submitting tasks ------------------------------------------------------------

    def new_returns(self, num_returns: int) -> tuple[str, list[str]]:
        task_id = new_task_id()
        return task_id, [object_id_for(task_id, i) for i in range(max(num_returns, 1))]

    def submit(self, spec: vm.TaskSpec, dest: Any = None) -> list[ObjectRef]:
        """Own the spec's returns, resolve its top-level ObjectRef args, then send it.

        ``spec.args``/``spec.kwargs`` hold InlineValue for plain values and ObjectRef for
        top-level refs; refs are replaced by ValueArg once their values are known. The spec
        goes to ``dest`` (default: this node's local scheduler).
        """
        dest = dest or self.scheduler
        deps = [(i, a) for i, a in enumerate(spec.args) if isinstance(a, ObjectRef)]
        kwdeps = [(k, a) for k, a in spec.kwargs.items() if isinstance(a, ObjectRef)]
        pending = _PendingTask(spec, len(deps) + len(kwdeps))
        refs = [ObjectRef(oid, self.inbox, self.identity) for oid in spec.return_ids]
        with self.lock:
            self.own_returns(spec, [a for _, a in deps] + [a for _, a in kwdeps])
            self.pending_tasks[spec.task_id] = pending
            def send() -> None:
                self._send_task(pending, dest)
            if pending.unresolved == 0:
                send()
            for pos, ref in deps:
                self._lookup(ref, arg_resolver(pending, spec.args, pos, ref.id, send))
            for key, ref in kwdeps:
                self._lookup(ref, arg_resolver(pending, spec.kwargs, key, ref.id, send))
        return refs[: spec.num_returns] if spec.num_returns else []

    def own_returns(self, spec: vm.TaskSpec, dep_refs: list[ObjectRef]) -> None:
        """Own a new task's return objects; its argument refs stay alive until it ends. Locked."""
        for oid in spec.return_ids:
            self.owned[oid] = _Owned(task_id=spec.task_id)
        self.refs.hold_for_task(spec.task_id, dep_refs + take_serialized_refs())

    def submit_actor_call(self, spec: vm.TaskSpec) -> list[ObjectRef]:
        return self.actor_calls.submit(spec)

    def _send_task(self, pending: _PendingTask, dest: Any) -> None:
        spec = pending.spec
        if self.pending_tasks.pop(spec.task_id, None) is None:
            return  # cancelled while its arguments were being resolved
        if pending.failed is not None:  # a dependency failed: so does this task
            self._finish(tm.TaskResult(spec.task_id, tuple((o, pending.failed) for o in spec.return_ids)))
            return
        self.submitted[spec.task_id] = spec
        dest = self.router.destination(spec, dest)
        self.transport.send(dest, tm.SubmitTasks((spec,)))
        self._submitted_event(spec)

    def task_placed(self, spec: vm.TaskSpec, node_id: str) -> None:
        """Tell the GCS this owner placed ``spec`` on ``node_id`` (resubmitted if it dies)."""
        self._task_event(spec.task_id, "placed", placed_node=node_id, owner_address=spec.owner)

    def _submitted_event(self, spec: vm.TaskSpec) -> None:
        """Record a task's lineage (its spec) in the GCS task table."""
        self._task_event(spec.task_id, "submitted", name=spec.function_name, function_id=spec.function_id,
                         job_id=spec.job_id, owner_id=spec.owner_id, actor_id=spec.actor_id,
                         return_ids=tuple(spec.return_ids), spec=spec, submitted_at=time.time())

    def _task_event(self, task_id: str, state: str, **fields: Any) -> None:
        """Tell the GCS of a task's state change (its lineage); batched, never blocks."""
        if self.task_events is not None:
            self.task_events.add(task_id, state, fields)

    def reset_returns(self, spec: vm.TaskSpec) -> None:
        """Make a re-executed task's returns pending again (entries freed meanwhile come back). Locked."""
        for oid in spec.return_ids:
            entry = self.owned.get(oid)
            if entry is None:
                self.owned[oid] = _Owned(task_id=spec.task_id)
            else:
                entry.value = None
        if spec.generator:
            self.generators.reset_items(spec.task_id)

    def resubmit(self, spec: vm.TaskSpec) -> None:
        with self.lock:
            self.submitted[spec.task_id] = spec
        self.transport.send(self.scheduler, tm.SubmitTasks((spec,)))

    # ---- results -----------------------------------------------------------------------

    def _finish(self, result: tm.TaskResult) -> None:
        """Record a task's outcome (under the lock) and wake whoever waits for it."""
        spec = self.submitted.pop(result.task_id, None)
        if spec is not None and self._should_retry(spec, result):
            return
        self.actor_calls.finished(result.task_id)
        error = next((value for _, value in result.returns if isinstance(value, vm.ErrorValue)), None)
        state, fields = error_fields(error.blob) if error is not None else ("finished", {})
        self._task_event(result.task_id, state, finished_at=time.time(), worker_id=result.worker_id,
                         node_id=result.node_id, attempt=spec.attempt if spec else None,
                         started_at=result.started_at or None, **fields)
        self.refs.task_finished(result.task_id)
        for oid, value in result.returns:
            self._set_value(oid, value)
        if spec is not None and result.store is not None:  # see TaskResult.store
            self.transport.send(result.store, om.FreeObjects(tuple(spec.return_ids), writer_died=True))

    def _should_retry(self, spec: vm.TaskSpec, result: tm.TaskResult) -> bool:
        if not result.returns:
            return False
        value = result.returns[0][1]
        if self.recovery.lost_input(spec, value):
            return True
        if not spec.retry_exceptions:
            return False
        if not isinstance(value, vm.ErrorValue) or result.retryable_crash:
            return False
        if isinstance(spec.retry_exceptions, (list, tuple)):
            cause = getattr(serialization.deserialize(value.blob), "cause", None)
            if not isinstance(cause, tuple(spec.retry_exceptions)):
                return False
        retry = take_retry(spec)
        if retry is None:
            return False
        spec = retry
        fields = error_fields(value.blob)[1]
        self.log.info("task_retry_on_exception", task_id=spec.task_id, attempt=spec.attempt,
                      error_type=fields.get("error_type"), worker_id=result.worker_id, node=result.node_id)
        self._task_event(spec.task_id, "retried", attempt=spec.attempt, **fields)
        self.submitted[spec.task_id] = spec
        self.transport.send(self.scheduler, tm.SubmitTasks((spec,)))
        return True

    def _resubmit_lost(self, msg: tm.TasksLost) -> None:
        """Run again the tasks still awaited that were on a node that died. Locked."""
        for task_id in msg.task_ids:
            spec = self.submitted.get(task_id)
            if spec is None:
                continue  # finished meanwhile, or not ours
            retry = take_retry(spec)
            if retry is None:
                self.log.warning("task_failed_node_died", task_id=task_id, node=msg.node_id, attempt=spec.attempt)
                self._finish(failed_result(spec, exceptions.WorkerCrashedError(
                    f"Task {task_id} ({spec.function_name}) was on node {msg.node_id}, which died; retries "
                    f"exhausted ({spec.attempt}/{spec.max_retries}).")))
                continue
            spec = self.submitted[task_id] = retry
            if spec.generator:  # the values it yielded so far were on that node: wait for the new ones
                self.generators.reset_items(task_id)
            self.log.warning("task_resubmitted_node_died", task_id=task_id, node=msg.node_id, attempt=spec.attempt,
                             reason=msg.reason or "node died")
            self._task_event(task_id, "retried", attempt=spec.attempt, error_type="NodeDied",
                             error_message=f"node {msg.node_id} died")
            self.transport.send(self.scheduler, tm.SubmitTasks((spec,)))

    def close(self) -> None:
        """Release what this client holds in its process (at shutdown): the counting thread,
        the store's allocation channel and the arena mappings (values read stay valid)."""
        self.refs.close()
        with self.lock:
            if self.alloc_channel is not None:
                self.alloc_channel.close()
                self.alloc_channel, self.store_arena = None, ""
            arenas, self.arenas = list(self.arenas.values()), {}
        for arena in arenas:
            arena.close()

    # ---- a restarted head --------------------------------------------------------------

    def retarget(self, gcs: Any, scheduler: Any, store: Any, node_id: str, remote_store_io: bool) -> None:
        """Send to a restarted head's parts from now on (a driver's; its node too if on the head)."""
        with self.lock:
            self.gcs, self.scheduler, self.store, self.node_id = gcs, scheduler, store, node_id
            self.remote_store_io = remote_store_io
            if self.alloc_channel is not None:  # the old store's channel: the next put opens the new one
                self.alloc_channel.close()
                self.alloc_channel, self.store_arena = None, ""
            for registration in self.registered_functions.values():  # one sent while it was down is lost
                self.transport.send(gcs, registration)
            self.actor_calls.resubscribe()
        if self.task_events is not None:
            self.task_events.retarget(gcs)

    def resubmit_lost_with_head(self, head_node_id: str, alive_nodes: set[str]) -> int:
        """Submit again, with their lineage, the tasks in flight that the restarted GCS does not
        know on an alive node (queued or run on the old head, or sent while it was down);
        within their retries, as for a dead node. Returns how many."""
        with self.lock:
            task_ids = tuple(self.submitted)
        if not task_ids:
            return 0
        reply = self.request(self.gcs, lambda r: gm.GetTableEntries(r, "tasks", task_ids))
        records = dict(reply.entries) if reply.error is None else {}
        lost = tuple(t for t in task_ids if (records.get(t) or {}).get("node_id") not in alive_nodes)
        with self.lock:
            for task_id in lost:
                if task_id in self.submitted:
                    self._submitted_event(self.submitted[task_id])
            self._resubmit_lost(tm.TasksLost(head_node_id, lost, "head restarted"))
        return len(lost)

    def own_value(self, oid: str, task_id: str, value: Value) -> None:
        """Own object ``oid``, made by ``task_id``, whose value is known (a generator's item). Locked."""
        self.owned[oid] = _Owned(task_id=task_id)
        self._set_value(oid, value)

    def _set_value(self, oid: str, value: Value) -> None:
        entry = self.owned.get(oid)
        if entry is None:
            entry = self.owned[oid] = _Owned()
        if entry.value is not None:
            return
        entry.value = value
        callbacks, entry.callbacks = entry.callbacks, []
        for callback in callbacks:
            callback(value)
        self.changed.notify_all()

    # ---- incoming messages ---------------------------------------------------------

    def handle(self, msg: Any) -> bool:
        """Process one incoming message; False if it is not a core message."""
        kind = type(msg)
        if kind is tm.TaskResults:
            with self.lock:
                for result in msg.results:
                    self._finish(result)
        elif kind is om.ObjectValues:
            with self.lock:
                for oid, value in msg.values:
                    self.borrowed[oid] = value
                    for callback in self.borrow_callbacks.pop(oid, []):
                        callback(value)
                self.changed.notify_all()
        elif kind is tm.GeneratorItem:
            with self.lock:
                self.generators.on_item(msg)
        elif kind is om.GetObjects:
            self._serve_get_objects(msg)
        elif kind is tm.TasksLost:
            with self.lock:
                self._resubmit_lost(msg)
        elif kind is am.ActorStateChanged:
            with self.lock:
                self.actor_calls.state_changed(msg)
        elif kind is om.AddBorrowers or kind is om.RemoveBorrowers:
            self.refs.handle(msg)
        elif kind is sm.GetReferences:
            self.transport.send(msg.reply_to, sm.References(msg.req_id, self.identity, os.getpid(), self.node_id,
                                                            reference_report.snapshot(self)))
        elif isinstance(msg, Reply):  # the answer to a request(): see babyray.protocol
            self._complete(msg)
        else:
            return False
        return True

    def _serve_get_objects(self, msg: om.GetObjects) -> None:
        def reply(oid: str) -> Callable:
            return lambda value: self.transport.send(msg.reply_to, om.ObjectValues(msg.req_id, ((oid, value),)))
        with self.lock:
            for oid in msg.object_ids:
                entry = self.owned.get(oid)
                if entry is None:
                    lost = exceptions.ObjectLostError(f"object {oid} is not known to its owner {self.identity}")
                    reply(oid)(vm.ErrorValue(serialization.dumps(lost)))
                elif entry.value is not None:
                    reply(oid)(entry.value)
                else:
                    entry.callbacks.append(reply(oid))

    # ---- looking up values -----------------------------------------------------------

    def _lookup(self, ref: ObjectRef, callback: Callable[[Value], None]) -> None:
        """Call ``callback(value)`` once ``ref``'s value is known (maybe right now). Locked."""
        entry = self.owned.get(ref.id)
        if entry is not None:
            if entry.value is not None:
                callback(entry.value)
            else:
                entry.callbacks.append(callback)
            return
        value = self.borrowed.get(ref.id)
        if value is not None:
            callback(value)
            return
        if ref.owner_id == self.identity:
            lost = exceptions.ObjectLostError(f"object {ref.id} is no longer known to its owner")
            callback(vm.ErrorValue(serialization.dumps(lost)))
            return
        waiting = self.borrow_callbacks.setdefault(ref.id, [])
        waiting.append(callback)
        if len(waiting) == 1:
            self.transport.send(ref.owner, om.GetObjects(self.new_req_id(), (ref.id,), self.inbox))

    def _collect(self, refs: list[ObjectRef], want: int, timeout: float | None,
                 others_ready: Callable[[], int] | None = None) -> dict[str, Value]:
        """Wait until ``want`` of ``refs`` have values (or timeout); return those known.

        ``others_ready()`` (called locked) counts more things ready, e.g. generators for ``wait``.
        """
        found: dict[str, Value] = {}

        def keep(oid: str) -> Callable:
            def store(value: Value) -> None:
                found[oid] = value
            return store

        deadline = None if timeout is None else time.monotonic() + timeout
        blocked = False
        try:
            with self.lock:
                for ref in refs:
                    if ref.id not in found:
                        self._lookup(ref, keep(ref.id))
                while len(found) + (others_ready() if others_ready else 0) < want:
                    if not blocked and self.on_block is not None:
                        blocked = True
                        self.on_block()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self.changed.wait(remaining)
        finally:
            if blocked and self.on_unblock is not None:
                self.on_unblock()
        return found

    def get(self, refs: list[ObjectRef], timeout: float | None = None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        unique = list({r.id: r for r in refs}.values())
        found = self._collect(unique, len(unique), timeout)
        if len(found) < len(unique):
            missing = [r.id for r in unique if r.id not in found]
            raise exceptions.GetTimeoutError(
                f"get timed out after {timeout}s waiting for {len(missing)} object(s), e.g. {missing[0]}")
        return [self.materialize(r.id, found[r.id], deadline) for r in refs]

    def wait(self, refs: list[ObjectRef], num_returns: int, timeout: float | None) -> tuple[list, list]:
        found = self._collect(refs, num_returns, timeout)
        ready = [r for r in refs if r.id in found][:num_returns]
        chosen = {r.id for r in ready}
        return ready, [r for r in refs if r.id not in chosen]

    def materialize(self, oid: str, value: Value, deadline: float | None = None) -> Any:
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
            if isinstance(value, vm.StoredValue) and self.recovery.is_lost(value, deadline):
                return self._read_recovered(oid, value, deadline)
            raise

    def _read_recovered(self, oid: str, value: vm.StoredValue, deadline: float | None) -> Any:
        """Read ``oid``, lost with the node of ``value``: from a surviving copy, else rebuilt.

        The object table may still list a copy its store has just dropped (evicted, or freed
        there): such a copy is passed over and recovery asked again.
        """
        stale: set[str] = set()
        while True:
            found = self.recovery.recover(oid, value, deadline, frozenset(stale))
            try:
                return self.materialize(oid, found, deadline)
            except exceptions.ObjectLostError:
                copy = isinstance(found, vm.StoredValue) and found.node_id not in stale
                if not copy or self.recovery.is_lost(found, deadline):
                    raise
                self.log.warning("object_copy_stale", object_id=oid, node=found.node_id)
                stale.add(found.node_id)

    def _read_stored(self, oid: str, value: vm.StoredValue, deadline: float | None) -> Any:
        if self.remote_store_io:  # read straight from the holder: ask first whether it is alive
            if self.recovery.is_lost(value, deadline):
                raise exceptions.ObjectLostError(f"object {oid} was on node {value.node_id}, which is dead")
            return self._direct().read(oid, value, deadline)
        # A pull through this node's store needs no such check: the store fails pulls from a dead
        # holder (its pull check) with ObjectLostError, which the caller turns into recovery.
        if value.node_id != self.node_id:  # the local store pulls it over the data plane
            if value.store is None:
                raise exceptions.ObjectLostError(f"object {oid} lives on node {value.node_id}, whose store is unknown")
            reply = self.request_by(self.store, lambda r: om.PullObject(r, oid, value.size, value.store,
                                                                       value.node_id, self.identity), deadline)
        else:
            reply = self.request_by(self.store, lambda r: om.PinObjects(r, (oid,), self.identity), deadline)
        if reply.error is not None:
            raise serialization.deserialize(reply.error)
        offset, size = reply.slots[oid]
        arena = self._arena(reply.arena_name)
        view_closed = self.refs.view_opened(oid)

        def release() -> None:
            view_closed()
            self.transport.send(self.store, om.UnpinObjects((oid,), self.identity))
        return read_object(arena, offset, size, release)

    def _direct(self) -> Any:
        if self._direct_io is None:
            from babyray.transfer.direct import DirectStoreIO
            self._direct_io = DirectStoreIO(self)
        return self._direct_io

    def _arena(self, name: str) -> Arena:
        arena = self.arenas.get(name)
        if arena is None:
            arena = self.arenas[name] = Arena.attach(name)
        return arena

    # ---- storing values --------------------------------------------------------------

    def store_value(self, oid: str, value: Any, borrower: tuple | None = None) -> Value:
        """Serialize ``value`` as object ``oid``: inline if small, else into the node's arena.

        ``borrower`` = (id, address) of the process the value is for (a task's owner): it is
        registered as a borrower of the refs the value contains before the value travels.
        """
        return self._store_serialized(oid, serialization.serialize(value), borrower)

    def store_returns(self, oids: Sequence[str], values: Sequence[Any], borrower: tuple | None = None) -> tuple:
        """``((oid, value record), ...)`` of a task's return values stored as ``oids``. If one
        fails, those stored before it are freed (its owner gets only the error) and it raises."""
        returns: list[tuple[str, Value]] = []
        try:
            for oid, value in zip(oids, values, strict=False):
                returns.append((oid, self.store_value(oid, value, borrower)))
        except Exception:
            stored = tuple(oid for oid, record in returns if isinstance(record, vm.StoredValue))
            if stored:
                self.transport.send(self.store, om.FreeObjects(stored))
            raise
        return tuple(returns)

    def _store_serialized(self, oid: str, serialized: serialization.SerializedObject,
                          borrower: tuple | None = None) -> Value:
        if serialized.contained_refs:
            forget_serialized_refs(serialized.contained_refs)
        if serialized.total_size <= self.inline_threshold:
            return self.refs.stored_record(vm.InlineValue(serialized.to_bytes()), serialized, borrower)
        self.refs.drain()  # frees queued so far go to the store before this allocation
        reserved, error = False, None
        if self.alloc_channel is not None:  # a store on this node: reserve the slot beside Thespian
            offset, error, reserved = self.alloc_channel.allocate(oid, serialized.total_size, self.identity)
            arena_name = self.store_arena
        if self.alloc_channel is None or error is not None:
            # Through Thespian: after the frees and unpins sent before it, which the channel may
            # have overtaken, so a store that looked full may have room now.
            reply = self.request(self.store, lambda r: om.CreateObject(r, oid, serialized.total_size, self.identity))
            offset, error, arena_name = reply.offset, reply.error, reply.arena_name
            if error is None and self.alloc_channel is None and not self.remote_store_io:
                self._open_alloc_channel(arena_name)
        if error is not None:
            raise serialization.deserialize(error)
        if self.remote_store_io:
            self._direct().write(self.store, offset, serialized)
        else:
            write_object(self._arena(arena_name), offset, serialized)
        self.transport.send(self.store, om.SealObject(oid, serialized.total_size, self.identity,
                                                     offset if reserved else -1))
        return self.refs.stored_record(vm.StoredValue(self.node_id, serialized.total_size, self.store),
                                       serialized, borrower)

    def _open_alloc_channel(self, arena_name: str) -> None:
        """Use the store's allocation channel from now on (see store/alloc_channel.py)."""
        try:
            self.alloc_channel = AllocClient(arena_name)
            self.store_arena = arena_name
        except OSError:  # an older store, or not on its node: keep asking through Thespian
            self.log.info("alloc_channel_unavailable", arena=arena_name)

    def put(self, value: Any) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to do "
                            "this, you can wrap the ObjectRef in a list and call 'put' on it.")
        return self.put_serialized(serialization.serialize(value))

    def put_serialized(self, serialized: serialization.SerializedObject) -> ObjectRef:
        oid = new_put_object_id()
        stored = self._store_serialized(oid, serialized)
        with self.lock:
            self.owned[oid] = _Owned()
            self._set_value(oid, stored)
        return ObjectRef(oid, self.inbox, self.identity)

    # ---- cancellation ----------------------------------------------------------------

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        with self.lock:
            entry = self.owned.get(ref.id)
            if entry is None or entry.task_id is None or entry.value is not None:
                return
            task_id = entry.task_id
            pending = self.pending_tasks.pop(task_id, None)
            if pending is not None:
                for oid, error in failed_returns(pending.spec, exceptions.TaskCancelledError(task_id)):
                    self._set_value(oid, error)
                return
        self.transport.send(self.scheduler, tm.CancelTask(task_id, force))


def function_id_of(blob: bytes) -> str:
    return hashlib.sha1(blob).hexdigest()[:16]

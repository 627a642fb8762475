"""Recovering objects lost with a dead node, from lineage (the paper's Figure 11).

When the only copy of an object in a node's store is gone with the node, its owner
rebuilds it: a copy on another node is used if the GCS object table knows one; otherwise
the task that made it is re-executed from the lineage in the GCS task table (fetched back
from the store if it was flushed), after recovering, recursively, the lost inputs of that
task that this process owns. Each task may be re-executed at most ``max_retries`` times.
Objects made by ``put`` cannot be rebuilt: ObjectLostError. A ``get`` with a timeout waits
for a rebuild no longer than its deadline (GetTimeoutError); the rebuild goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from babyray import exceptions, log, serialization
from babyray.api.object_ref import ObjectRef
from babyray.ids import ObjectID, TaskID, is_put_object, task_id_of
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.protocol import values as vm
from babyray.task_failure import failed_result, retry_allowed, take_retry

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


class ObjectRecovery:
    def __init__(self, core: "CoreClient") -> None:
        self.core = core
        self.reexecutions: dict[str, int] = {}
        self.lock = threading.Lock()
        self.log = log.get_logger("recovery")

    def _ask_gcs(self, build: Callable[[str], Any], deadline: float | None) -> Any:
        return self.core.request_by(self.core.gcs, build, deadline)

    def dead_nodes(self, deadline: float | None = None) -> set[str]:
        infos = self._ask_gcs(lambda r: cm.GetNodes(r), deadline).nodes
        return {n.node_id for n in infos if not n.alive}

    def node_stores(self, deadline: float | None = None) -> dict[str, Any]:
        infos = self._ask_gcs(lambda r: cm.GetNodes(r), deadline).nodes
        return {n.node_id: n.store for n in infos if n.alive}

    def is_lost(self, value: Any, deadline: float | None = None) -> bool:
        return isinstance(value, vm.StoredValue) and value.node_id in self.dead_nodes(deadline)

    def recover(
        self,
        oid: ObjectID,
        value: vm.StoredValue,
        deadline: float | None = None,
        stale: frozenset[str] = frozenset(),
    ) -> Any:
        """A new value record for ``oid``, whose copy on ``value.node_id`` is gone; waits for it
        until ``deadline`` (``time.monotonic()``; None: until it is rebuilt or fails). Copies on
        the ``stale`` nodes (listed by the object table, but not there when read) are passed over.

        Raises:
            ObjectLostError: the object was made by put, or its lineage is unknown.
            ObjectReconstructionFailedError: re-executing its task failed or ran out of retries.
            GetTimeoutError: the deadline passed first (the rebuild goes on).
        """
        core = self.core
        self.log.warning("object_lost", object_id=oid, node=value.node_id, size=value.size)
        copy = self.live_copy(oid, value.size, deadline, stale)
        if copy is not None:
            self.log.info("object_copy_used", object_id=oid, node=copy.node_id)
            return copy
        if is_put_object(ObjectID(oid)):
            self.log.warning("object_lost_unrecoverable", object_id=oid, node=value.node_id, reason="put")
            raise exceptions.ObjectLostError(
                f"Object {oid} was made by put() and its only copy was on node {value.node_id}, which died; "
                f"objects made by put cannot be rebuilt from lineage."
            )
        spec = self._lineage(task_id_of(ObjectID(oid)), deadline)
        if spec.owner_id != core.identity:
            raise exceptions.ObjectLostError(
                f"Object {oid} was lost with node {value.node_id}; this process "
                f"({core.identity}) is not its owner and cannot rebuild it."
            )
        with self.lock:
            done = self.reexecutions.get(spec.task_id, 0)
            if not retry_allowed(done, spec.max_retries):
                self.log.warning(
                    "object_reconstruction_failed",
                    object_id=oid,
                    task_id=spec.task_id,
                    node=value.node_id,
                    reason="retries exhausted",
                    attempts=done,
                )
                raise exceptions.ObjectReconstructionFailedError(
                    f"Object {oid} was lost with node {value.node_id}, and its task {spec.task_id} "
                    f"({spec.function_name}) has no retries left to rebuild it ({done}/{spec.max_retries})."
                )
            self.reexecutions[spec.task_id] = done + 1
        self._recover_inputs(spec, deadline)
        self.log.warning(
            "object_reconstructing",
            object_id=oid,
            task_id=spec.task_id,
            function=spec.function_name,
            attempt=done + 1,
        )
        with core.lock:
            core.tasks.reset_returns(spec)
        spec = spec.next_attempt()
        core.tasks.resubmit(spec)
        ref = ObjectRef(oid, core.inbox, core.identity)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        new_value = core.objects.collect([ref], 1, remaining).get(oid)
        if new_value is None:
            self.log.warning("object_reconstruction_wait_timed_out", object_id=oid, task_id=spec.task_id)
            raise exceptions.GetTimeoutError(
                f"get timed out while object {oid} was being rebuilt by re-executing task {spec.task_id} "
                f"({spec.function_name}); the rebuild goes on"
            )
        if isinstance(new_value, vm.ErrorValue):
            cause = serialization.deserialize(new_value.blob)
            self.log.warning(
                "object_reconstruction_failed",
                object_id=oid,
                task_id=spec.task_id,
                node=value.node_id,
                reason=type(cause).__name__,
            )
            raise exceptions.ObjectReconstructionFailedError(
                f"Rebuilding object {oid} by re-executing task {spec.task_id} ({spec.function_name}) failed: "
                f"{cause}"
            ) from cause
        return new_value

    def live_copy(
        self, oid: ObjectID, size: int, deadline: float | None = None, stale: frozenset[str] = frozenset()
    ) -> vm.StoredValue | None:
        """A copy of ``oid`` in the store of an alive node not in ``stale``, per the GCS object table."""
        reply = self._ask_gcs(lambda r: gm.GetTableEntries(r, "objects", (oid,)), deadline)
        record = dict(reply.entries).get(oid) if reply.error is None else None
        if not record:
            return None
        stores = self.node_stores(deadline)
        for node_id in record.get("locations") or ():
            if node_id in stores and node_id not in stale:
                return vm.StoredValue(node_id, size, stores[node_id])
        return None

    def lost_input(self, spec: vm.TaskSpec, value: Any) -> bool:
        """If the task failed because an input was lost, rebuild it and run the task again.

        Called by the owner (locked) for every failed result; True if a re-run was started.
        """
        if not isinstance(value, vm.ErrorValue) or not any(
            isinstance(a, vm.ValueArg) and isinstance(a.value, vm.StoredValue)
            for a in [*spec.args, *spec.kwargs.values()]
        ):
            return False
        error = serialization.deserialize(value.blob)
        if not isinstance(getattr(error, "cause", error), exceptions.ObjectLostError):
            return False
        retry = take_retry(spec)
        if retry is None:
            return False
        spec = retry
        self.log.warning(
            "task_input_lost_rebuilding",
            task_id=spec.task_id,
            attempt=spec.attempt,
            error=str(getattr(error, "cause", error))[:300],
        )

        def rebuild_and_rerun() -> None:
            try:
                self._recover_inputs(spec)
            except exceptions.RayError as exc:
                with self.core.lock:
                    self.core.tasks.finish(failed_result(spec, exc))
                return
            self.core.tasks.resubmit(spec)

        threading.Thread(target=rebuild_and_rerun, name="babyray-recovery", daemon=True).start()
        return True

    def _lineage(self, task_id: TaskID, deadline: float | None) -> vm.TaskSpec:
        reply = self._ask_gcs(lambda r: gm.GetTableEntries(r, "tasks", (task_id,)), deadline)
        record = dict(reply.entries).get(task_id) if reply.error is None else None
        spec = (record or {}).get("spec")
        if spec is None:
            self.log.warning("object_lineage_missing", task_id=task_id)
            raise exceptions.ObjectLostError(
                f"The lineage of task {task_id} is not in the GCS: cannot rebuild its objects"
            )
        return spec

    def _recover_inputs(self, spec: vm.TaskSpec, deadline: float | None = None) -> None:
        """Replace the task's stored arguments that no alive node holds any more by rebuilt ones.

        Each argument is held by a reference until the task ends: an input the owner had
        already dropped (a chain's intermediate) would otherwise be freed again as soon as
        it is rebuilt, before the task reads it.
        """
        core = self.core
        held = []
        for container, slot in [(spec.args, i) for i in range(len(spec.args))] + [
            (spec.kwargs, k) for k in list(spec.kwargs)
        ]:
            arg = container[slot]
            if (
                isinstance(arg, vm.ValueArg)
                and isinstance(arg.value, vm.StoredValue)
                and arg.object_id is not None
            ):
                oid = arg.object_id
                if spec.owner_id == core.identity:
                    held.append(ObjectRef(oid, core.inbox, core.identity))
                copy = self.live_copy(oid, arg.value.size, deadline)
                container[slot] = vm.ValueArg(oid, copy or self.recover(oid, arg.value, deadline))
        if held:
            core.refs.hold_more_for_task(spec.task_id, held)

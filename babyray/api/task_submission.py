"""The tasks one process owns, from submission to result (the owner side of Ray's normal tasks).

A task's returns are owned from the moment it is submitted. Its top-level ObjectRef
arguments are resolved first (``PendingTask``); then it goes to a local scheduler (this
node's, or the one ``TaskRouter`` picks for locality), or straight to a worker of this node
leased to this owner (``leases``), and waits in ``submitted`` for its result. A result may
start a retry instead (a retryable exception, a lost input); a task on a node that died, or
pushed to a leased worker that died, is run again within its retries; its lineage goes to the
GCS task table.

Methods marked Locked run under the owner's lock (``core.lock``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from babyray import exceptions, serialization
from babyray.api import context
from babyray.api.leases import OwnerLeases
from babyray.api.object_ref import ObjectRef
from babyray.api.pending_tasks import PendingTask, ref_arguments
from babyray.api.reference_counting import take_serialized_refs
from babyray.api.task_events import HIDDEN, error_fields
from babyray.ids import NodeID, ObjectID, TaskID, new_task_id, object_id_for
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.task_failure import failed_result, failed_returns, take_retry

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


def new_returns(num_returns: int) -> tuple[TaskID, list[ObjectID]]:
    """A new task id and the ids of its ``num_returns`` returns (at least one)."""
    task_id = new_task_id()
    return task_id, [object_id_for(task_id, i) for i in range(max(num_returns, 1))]


class TaskSubmitter:
    """Submitted tasks of one owner: those resolving their arguments and those sent, by task id."""

    def __init__(self, core: "CoreClient") -> None:
        self.core = core
        self._pending: dict[str, PendingTask] = {}  # arguments not all known yet
        self._submitted: dict[TaskID, vm.TaskSpec] = {}  # sent, result not arrived
        # Tasks in flight retried on application exceptions: the exception types (None: any). Kept
        # here, not in the spec: the classes may be unknown to the processes the spec goes through.
        self._retry_exceptions: dict[str, tuple[type[BaseException], ...] | None] = {}
        self.leases = OwnerLeases()  # workers leased to this owner
        # In a worker: each task and actor call in flight -> the task that submitted it, for a
        # recursive cancel of that task
        self._parent_of: dict[TaskID, TaskID] = {}
        self._cancels_sent: set[TaskID] = set()  # in flight, cancelled: never run again

    def retry_on_exceptions(self, task_id: TaskID, retry_exceptions: Any) -> None:
        """Retry ``task_id`` when it raises one of ``retry_exceptions`` (a list of exception
        types; True: any exception). Call before submitting it; its spec has ``retry_exceptions``."""
        allowlist = None if retry_exceptions is True else tuple(retry_exceptions)
        with self.core.lock:
            self._retry_exceptions[task_id] = allowlist

    def submit(self, spec: vm.TaskSpec, dest: Any = None) -> list[ObjectRef]:
        """Own the spec's returns, resolve its top-level ObjectRef args, then send it.

        ``spec.args``/``spec.kwargs`` hold InlineValue for plain values and ObjectRef for
        top-level refs; refs are replaced by ValueArg once their values are known. The spec
        goes to ``dest`` (default: this node's local scheduler), one level deeper than the
        task submitting it (its ``nesting_depth``).
        """
        core = self.core
        dest = dest or core.scheduler
        spec = spec.at_depth(context.nesting_depth_of_submission())
        deps = ref_arguments(spec)
        pending = PendingTask(spec, len(deps))
        refs = [ObjectRef(oid, core.inbox, core.identity) for oid in spec.return_ids]
        with core.lock:
            self.note_parent(spec.task_id)
            self.own_returns(spec, [ref for _, _, ref in deps])
            self._pending[spec.task_id] = pending

            def send() -> None:
                self._send(pending, dest)

            if pending.unresolved == 0:
                send()
            pending.resolve(deps, core.objects, send)
        return refs[: spec.num_returns] if spec.num_returns else []

    def own_returns(self, spec: vm.TaskSpec, dep_refs: list[ObjectRef]) -> None:
        """Own a new task's return objects; its argument refs stay alive until it ends. Locked."""
        objects = self.core.objects
        for oid in spec.return_ids:
            objects.own_pending(oid, spec.task_id)
        self.core.refs.hold_for_task(spec.task_id, dep_refs + take_serialized_refs())

    def _send(self, pending: PendingTask, dest: Any) -> None:
        spec = pending.spec
        if self._pending.pop(spec.task_id, None) is None:
            return  # cancelled while its arguments were being resolved
        if pending.failed is not None:  # a dependency failed: so does this task
            self.finish(tm.TaskResult(spec.task_id, tuple((o, pending.failed) for o in spec.return_ids)))
            return
        self._submitted[spec.task_id] = spec
        dest = self.core.router.destination(spec, dest)
        lease = (
            self.leases.take(spec, time.monotonic()) if self.leases and dest is self.core.scheduler else None
        )
        if lease is not None:
            self.core.transport.send(lease.address, tm.ExecuteTasks((spec,), lease_id=lease.lease_id))
        else:
            self.core.transport.send(dest, tm.SubmitTasks((spec,)))
        self._submitted_event(spec)

    def spec_of(self, task_id: TaskID) -> vm.TaskSpec | None:
        """The spec of a task submitted here whose result has not arrived. Locked."""
        spec = self._submitted.get(task_id)
        if spec is None and task_id in self._pending:
            spec = self._pending[task_id].spec
        return spec

    # ---- lineage: the GCS task table ---------------------------------------------------

    def task_placed(self, spec: vm.TaskSpec, node_id: NodeID) -> None:
        """Tell the GCS this owner placed ``spec`` on ``node_id`` (resubmitted if it dies)."""
        self._task_event(spec.task_id, "placed", placed_node=node_id, owner_address=spec.owner)

    def _submitted_event(self, spec: vm.TaskSpec) -> None:
        """Record a task's lineage (its spec) in the GCS task table."""
        self._task_event(
            spec.task_id,
            "submitted",
            name=spec.display_name,
            function_id=spec.function_id,
            job_id=spec.job_id,
            owner_id=spec.owner_id,
            actor_id=spec.actor_id,
            return_ids=tuple(spec.return_ids),
            spec=spec,
            submitted_at=time.time(),
            **HIDDEN if not spec.task_events else {},
        )

    def _task_event(self, task_id: TaskID, state: str, **fields: Any) -> None:
        """Tell the GCS of a task's state change (its lineage); batched, never blocks."""
        task_events = self.core.task_events
        if task_events is not None:
            task_events.add(task_id, state, fields)

    # ---- running again -------------------------------------------------------------------

    def reset_returns(self, spec: vm.TaskSpec) -> None:
        """Make a re-executed task's returns pending again (entries freed meanwhile come back). Locked."""
        for oid in spec.return_ids:
            self.core.objects.make_pending(oid, spec.task_id)
        if spec.generator:
            self.core.generators.reset_items(spec.task_id)

    def resubmit(self, spec: vm.TaskSpec) -> None:
        """Send ``spec`` (its next attempt) to this node's scheduler again. Takes the lock."""
        with self.core.lock:
            self._submitted[spec.task_id] = spec
        self.core.transport.send(self.core.scheduler, tm.SubmitTasks((spec,)))

    def nodes_lost(self, msg: tm.TasksLost) -> None:
        """Run again the tasks still awaited that were on a node that died, or that finished
        on a worker that died before their results surely left it. Locked."""
        for task_id in msg.task_ids:
            spec = self._submitted.get(task_id)
            if spec is None:
                continue  # finished meanwhile, or not ours
            self.leases.forget_task(task_id)
            if self._fail_if_cancelled(spec):
                continue
            if msg.finished:  # it did not fail: the same attempt runs again
                self.core.log.warning("task_resubmitted_result_lost", task_id=task_id, reason=msg.reason)
                self.core.transport.send(self.core.scheduler, tm.SubmitTasks((spec,)))
                continue
            self._run_again(
                spec,
                f"Task {task_id} ({spec.function_name}) was on node {msg.node_id}, which died",
                "NodeDied",
                f"node {msg.node_id} died",
                "node_died",
                log_fields={"node": msg.node_id, "reason": msg.reason or "node died"},
            )

    def _fail_if_cancelled(self, spec: vm.TaskSpec, **failed_fields: Any) -> bool:
        """Fail ``spec``, which lost its worker or node, as cancelled if we cancelled it (Ray runs a
        cancelled task never again); whether it did. Locked."""
        if spec.task_id not in self._cancels_sent:
            return False
        self.finish(failed_result(spec, exceptions.TaskCancelledError(spec.task_id), **failed_fields))
        return True

    def _run_again(
        self,
        spec: vm.TaskSpec,
        failure: str,
        error_type: str,
        error_message: str,
        cause: str,
        log_fields: dict[str, Any],
        **failed_fields: Any,
    ) -> None:
        """Resubmit ``spec``'s next attempt to this node's scheduler, within its retries; else
        fail it with WorkerCrashedError (``failure``, retries exhausted). Logged as
        ``task_resubmitted_<cause>`` or ``task_failed_<cause>`` with ``log_fields``. Locked."""
        core, task_id = self.core, spec.task_id
        if self._fail_if_cancelled(spec, **failed_fields):
            return
        retry = take_retry(spec)
        if retry is None:
            core.log.warning(f"task_failed_{cause}", task_id=task_id, attempt=spec.attempt, **log_fields)
            error = exceptions.WorkerCrashedError(
                f"{failure}; retries exhausted ({spec.attempt}/{spec.max_retries})."
            )
            self.finish(failed_result(spec, error, **failed_fields))
            return
        self._submitted[task_id] = retry
        if retry.generator:  # the values it yielded so far went with it: wait for the new ones
            core.generators.reset_items(task_id)
        core.log.warning(f"task_resubmitted_{cause}", task_id=task_id, attempt=retry.attempt, **log_fields)
        self._task_event(
            task_id, "retried", attempt=retry.attempt, error_type=error_type, error_message=error_message
        )
        core.transport.send(core.scheduler, tm.SubmitTasks((retry,)))

    def lease_ended(self, msg: tm.LeaseEnded) -> None:
        """A worker ended its lease; a task pushed to it that it handed back goes to the
        scheduler now (or fails, if cancelled meanwhile). Locked."""
        spec, cancelled = self.leases.ended(msg.worker_id, msg.lease_id, msg.refused)
        if spec is None or self._submitted.get(spec.task_id) is not spec:
            return  # not ours any more: finished, or run again after its worker died
        if cancelled:
            self.finish(failed_result(spec, exceptions.TaskCancelledError(spec.task_id)))
        else:
            self.core.transport.send(self.core.scheduler, tm.SubmitTasks((spec,)))

    def lease_lost(self, msg: tm.LeaseLost) -> None:
        """A worker that may be leased to us died: run again the task we pushed to it (a result
        that still arrives from it is then ignored), within its retries if it was running; one
        we cancelled fails as cancelled. Locked."""
        core = self.core
        for pushed in self.leases.lost(msg.worker_id):
            spec = self._submitted.get(pushed.task_id)
            if spec is None:
                continue  # its result arrived before the news
            if self._fail_if_cancelled(spec, worker_id=msg.worker_id, store=core.store):
                continue
            if spec.task_id != msg.running:  # not started (the push crossed the death), or done
                core.log.warning("task_resubmitted_push_not_running", task_id=spec.task_id)
                core.transport.send(core.scheduler, tm.SubmitTasks((spec,)))
                continue
            self._run_again(
                spec,
                f"The worker {msg.worker_id} ({msg.reason}) running task {spec.task_id} "
                f"({spec.function_name}) under a lease died",
                "WorkerDied",
                f"worker {msg.worker_id} died ({msg.reason})",
                "leased_worker_died",
                log_fields={"worker_id": msg.worker_id},
                worker_id=msg.worker_id,
                node_id=core.node_id,
                store=core.store,
            )

    def resubmit_lost_with_head(self, head_node_id: NodeID, alive_nodes: set[NodeID]) -> int:
        """Submit again, with their lineage, the tasks in flight that the restarted GCS does not
        know on an alive node (queued or run on the old head, or sent while it was down);
        within their retries, as for a dead node. Returns how many."""
        core = self.core
        with core.lock:
            task_ids = tuple(self._submitted)
        if not task_ids:
            return 0
        reply = core.request(core.gcs, lambda r: gm.GetTableEntries(r, "tasks", task_ids))
        records = dict(reply.entries) if reply.error is None else {}
        lost = tuple(t for t in task_ids if (records.get(t) or {}).get("node_id") not in alive_nodes)
        with core.lock:
            for task_id in lost:
                if task_id in self._submitted:
                    self._submitted_event(self._submitted[task_id])
            self.nodes_lost(tm.TasksLost(head_node_id, lost, "head restarted"))
        return len(lost)

    # ---- results -----------------------------------------------------------------------

    def results(self, msg: tm.TaskResults) -> None:
        """Results of tasks (or actor calls), perhaps with a lease granted. Locked."""
        for result in msg.results:
            self.finish(result)
        if self.leases or msg.grant is not None:
            self.leases.results_arrived(
                [r.task_id for r in msg.results], msg.grant, self.core.node_id, time.monotonic()
            )

    def finish(self, result: tm.TaskResult) -> None:
        """Record a task's (or actor call's) outcome and wake whoever waits for it. Locked."""
        core = self.core
        spec = self._submitted.pop(result.task_id, None)
        if spec is not None and self._should_retry(spec, result):
            return
        if spec is None:
            call = core.actor_calls.retryable_call(result.task_id)
            retry = self._exception_retry(call, result) if call is not None else None
            if retry is not None:
                core.actor_calls.resend(retry)
                return
        self._retry_exceptions.pop(result.task_id, None)
        result = core.actor_calls.outcome(result)
        call = core.actor_calls.finished(result.task_id)
        objects = core.objects
        for oid, value in result.returns:  # first: a get waiting for it wakes while the rest is done
            objects.set_value(oid, value)
        error = next((value for _, value in result.returns if isinstance(value, vm.ErrorValue)), None)
        state, fields = error_fields(error.blob) if error is not None else ("finished", {})
        if call is not None:  # an actor call has no "submitted" event: its record starts here
            fields.update(name=call.display_name, actor_id=call.actor_id)
        if call is None or call.task_events:  # a call with enable_task_events=False sends none
            self._task_event(
                result.task_id,
                state,
                finished_at=time.time(),
                worker_id=result.worker_id,
                node_id=result.node_id,
                attempt=spec.attempt if spec else None,
                started_at=result.started_at or None,
                **fields,
            )
        core.refs.task_finished(result.task_id)
        self._parent_of.pop(result.task_id, None)
        self._cancels_sent.discard(result.task_id)
        if spec is not None and result.store is not None:  # see TaskResult.store
            core.transport.send(result.store, om.FreeObjects(tuple(spec.return_ids), writer_died=True))

    def _should_retry(self, spec: vm.TaskSpec, result: tm.TaskResult) -> bool:
        if not result.returns:
            return False
        if self.core.recovery.lost_input(spec, result.returns[0][1]):
            return True
        retry = self._exception_retry(spec, result)
        if retry is None:
            return False
        self._submitted[retry.task_id] = retry
        self.core.transport.send(self.core.scheduler, tm.SubmitTasks((retry,)))
        return True

    def _exception_retry(self, spec: vm.TaskSpec, result: tm.TaskResult) -> vm.TaskSpec | None:
        """The next attempt of ``spec`` (a task or actor call) if ``result`` is an application
        exception it retries on and it has a retry left (spent); else None."""
        if not result.returns or not spec.retry_exceptions or spec.task_id not in self._retry_exceptions:
            return None  # (not in it: a re-run rebuilding a lost object, after the task finished)
        value = result.returns[0][1]
        if (
            not isinstance(value, vm.ErrorValue)
            or result.retryable_crash
            or spec.task_id in self._cancels_sent
        ):
            return None  # (a cancelled task is never run again, as in Ray)
        allowlist = self._retry_exceptions[spec.task_id]
        if allowlist is not None:
            cause = getattr(serialization.deserialize(value.blob), "cause", None)
            if not isinstance(cause, allowlist):
                return None
        retry = take_retry(spec)
        if retry is None:
            return None
        fields = error_fields(value.blob)[1]
        self.core.log.info(
            "task_retry_on_exception",
            task_id=retry.task_id,
            attempt=retry.attempt,
            error_type=fields.get("error_type"),
            worker_id=result.worker_id,
            node=result.node_id,
        )
        self._task_event(retry.task_id, "retried", attempt=retry.attempt, **fields)
        return retry

    # ---- cancellation ----------------------------------------------------------------

    def note_parent(self, task_id: TaskID) -> None:
        """``task_id`` (a task or actor call) is being submitted: by the task running here, if
        any. Locked."""
        parent = context.current_task_id()
        if parent is not None:
            self._parent_of[task_id] = parent

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        """Cancel the task making ``ref`` (see ``cancel_task``)."""
        with self.core.lock:
            entry = self.core.objects.owned(ref.id)
            if entry is None or entry.task_id is None or entry.value is not None:
                return
            task_id = entry.task_id
        self.cancel_task(task_id, force, recursive)

    def cancel_children(self, parent: TaskID, force: bool) -> None:
        """Cancel, recursively, the tasks and actor calls ``parent`` submitted that are in flight
        (force is ignored for actor calls, as in Ray)."""
        with self.core.lock:
            children = [child for child, of in self._parent_of.items() if of == parent]
        for child in children:
            self.cancel_task(child, force, True, child=True)

    def cancel_task(self, task_id: TaskID, force: bool, recursive: bool, child: bool = False) -> None:
        """Cancel ``task_id``: failed here if still resolving, else asked of its worker (if pushed
        under a lease) or the scheduler; ``recursive``: its children too, by their owner.

        Raises:
            ValueError: ``force`` for an actor call (not for a ``child``: force is ignored then).
        """
        core = self.core
        with core.lock:
            pending = self._pending.pop(task_id, None)
            if pending is not None:
                self._retry_exceptions.pop(task_id, None)
                self._parent_of.pop(task_id, None)
                for oid, error in failed_returns(pending.spec, exceptions.TaskCancelledError(task_id)):
                    core.objects.set_value(oid, error)
                return
            if core.actor_calls.cancel(task_id, force and not child, recursive):
                return
            if task_id in self._submitted:
                self._cancels_sent.add(task_id)
            elif child:
                return
            dest = core.scheduler
            lease = self.leases.holder(task_id)
            if lease is not None:  # pushed to a leased worker
                dest = lease.address
                self.leases.cancel_requested(task_id)
                if force:  # the worker will be killed: push nothing more to it
                    self.leases.drop_worker(lease.worker_id)
        core.transport.send(dest, tm.CancelTask(task_id, force, recursive))

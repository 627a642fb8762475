"""Submitting actor method calls from one process (the caller side of Ray's actor tasks).

Calls go straight to the actor's worker, not through a scheduler. Each caller keeps one
FIFO per actor and sends a call only after every earlier call to that actor was sent, so
calls run in submission order even when their arguments become ready out of order. The
caller learns where the actor runs, and when it restarts or dies, from the GCS
(SubscribeActor / ActorStateChanged). Calls in flight when the actor's process dies are
sent again after the restart while ``max_task_retries`` allows; otherwise they fail. A call
that raised an exception its ``retry_exceptions`` names is sent again within the same
``max_task_retries`` (TaskSubmitter decides), ahead of the calls not sent yet.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babyray import exceptions
from babyray.api.object_ref import ObjectRef
from babyray.api.pending_tasks import PendingTask, ref_arguments
from babyray.gcs.states import ActorState
from babyray.ids import ActorID, TaskID
from babyray.protocol import actors as am
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.task_failure import error_value, failed_result, take_retry

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


@dataclass(slots=True)
class _ActorState:
    state: str = ActorState.PENDING.value
    address: Any = None
    death_cause: str = ""
    queue: deque[PendingTask] = field(default_factory=deque)  # not yet sent, in submission order
    out_of_order: bool = False  # a call whose arguments are ready may pass earlier ones
    inflight: dict[str, vm.TaskSpec] = field(default_factory=dict)  # task_id -> spec, sent and unanswered


class ActorSubmitter:
    """Per-process state of every actor this process calls. Methods run under core.lock."""

    def __init__(self, core: "CoreClient") -> None:
        self.core = core
        self._actors: dict[ActorID, _ActorState] = {}
        self._actor_of_call: dict[TaskID, ActorID] = {}  # task id of a call in flight -> actor id
        self._cancelled: set[str] = set()  # calls in flight that ray.cancel cancelled

    def _actor(self, actor_id: ActorID) -> _ActorState:
        state = self._actors.get(actor_id)
        if state is None:
            state = self._actors[actor_id] = _ActorState()
            self.core.transport.send(self.core.gcs, am.SubscribeActor(actor_id, self.core.inbox))
        return state

    def submit(self, spec: vm.TaskSpec, info: am.ActorInfo) -> list[ObjectRef]:
        """Queue a call of the actor ``info`` describes; sent once its arguments are ready, after
        the earlier calls (unless the actor allows out-of-order execution).

        Raises:
            PendingCallsLimitExceeded: ``info.max_pending_calls`` calls of this process to the
                actor are queued or running.
        """
        core = self.core
        actor_id = spec.actor_id
        assert actor_id is not None, "an actor call names its actor"
        deps = ref_arguments(spec)
        call = PendingTask(spec, len(deps))
        with core.lock:
            actor = self._actor(actor_id)
            limit = info.max_pending_calls
            if 0 <= limit <= len(actor.queue) + len(actor.inflight):
                raise exceptions.PendingCallsLimitExceeded(
                    f"The task {spec.function_name} could not be submitted to actor {actor_id} because "
                    f"more than {limit} tasks are queued on the actor. This limit can be adjusted "
                    f"with the `max_pending_calls` actor option."
                )
            actor.out_of_order = info.allow_out_of_order_execution
            core.tasks.note_parent(spec.task_id)
            core.tasks.own_returns(spec, [ref for _, _, ref in deps])
            actor.queue.append(call)
            call.resolve(deps, core.objects, lambda: self._pump(actor_id))
            self._pump(actor_id)
        return [ObjectRef(oid, core.inbox, core.identity) for oid in spec.return_ids][: spec.num_returns]

    def _pump(self, actor_id: ActorID) -> None:
        """Send the calls at the head of the actor's FIFO whose arguments are ready."""
        actor = self._actors[actor_id]
        if actor.state == ActorState.DEAD:
            self._fail_all(actor_id, actor)
            return
        if actor.out_of_order:
            self._pump_ready(actor_id, actor)
            return
        while actor.queue and actor.queue[0].unresolved == 0:
            call = actor.queue[0]
            if call.failed is not None:
                actor.queue.popleft()
                self._fail(call.spec, call.failed)
                continue
            if actor.state != ActorState.ALIVE:
                return
            actor.queue.popleft()
            actor.inflight[call.spec.task_id] = call.spec
            self._actor_of_call[call.spec.task_id] = actor_id
            self.core.transport.send(actor.address, tm.ExecuteTasks((call.spec,)))

    def _pump_ready(self, actor_id: ActorID, actor: _ActorState) -> None:
        """Send every queued call whose arguments are ready, in submission order among them."""
        ready = [call for call in actor.queue if call.unresolved == 0]
        for call in ready:
            if call.failed is None and actor.state != ActorState.ALIVE:
                return
            actor.queue.remove(call)
            if call.failed is not None:
                self._fail(call.spec, call.failed)
                continue
            actor.inflight[call.spec.task_id] = call.spec
            self._actor_of_call[call.spec.task_id] = actor_id
            self.core.transport.send(actor.address, tm.ExecuteTasks((call.spec,)))

    def resubscribe(self) -> None:
        """Ask a restarted GCS for the state of every actor called from here (Locked)."""
        for actor_id in self._actors:
            self.core.transport.send(self.core.gcs, am.SubscribeActor(actor_id, self.core.inbox))

    def spec_of(self, task_id: TaskID) -> vm.TaskSpec | None:
        """The spec of a call made here, queued or in flight (None: not found). Locked."""
        for actor in self._actors.values():
            spec = actor.inflight.get(task_id) or next(
                (call.spec for call in actor.queue if call.spec.task_id == task_id), None
            )
            if spec is not None:
                return spec
        return None

    def cancel(self, task_id: TaskID, force: bool, recursive: bool = True) -> bool:
        """ray.cancel of a call made here: one still queued here fails at once; one in flight is
        cancelled by the actor's worker (a running async call is interrupted, a sync one only sees
        ``is_canceled()``) and fails whatever it returns. False: no such call.

        Raises:
            ValueError: ``force`` (as in Ray: ``ray.kill`` ends an actor, a call is never killed).
        """
        actor_id = self._actor_of_call.get(task_id)
        queued = self._queued(task_id) if actor_id is None else None
        if actor_id is None and queued is None:
            return False
        if force:
            raise ValueError(
                "force=True is not supported for actor tasks: ray.kill(actor) ends the actor "
                "(ray.cancel without force cancels the call)"
            )
        if actor_id is not None:
            self._cancelled.add(task_id)
            self.core.transport.send(self._actors[actor_id].address, tm.CancelTask(task_id, force, recursive))
            return True
        assert queued is not None, "a call not in flight is queued here"
        actor, call = queued
        actor.queue.remove(call)
        self._fail(call.spec, exceptions.TaskCancelledError(task_id))
        return True

    def _queued(self, task_id: TaskID) -> tuple[_ActorState, PendingTask] | None:
        """The actor and the call ``task_id`` still queued here (not sent yet), if it is."""
        for actor in self._actors.values():
            call = next((c for c in actor.queue if c.spec.task_id == task_id), None)
            if call is not None:
                return actor, call
        return None

    def outcome(self, result: tm.TaskResult) -> tm.TaskResult:
        """``result``, or for a call cancelled in flight its TaskCancelledError (a RayTaskError
        too, as in Ray)."""
        if result.task_id not in self._cancelled:
            return result
        self._cancelled.discard(result.task_id)
        spec = self.spec_of(result.task_id)
        cancelled = exceptions.TaskCancelledError(result.task_id)
        error = error_value(
            exceptions.RayTaskError(
                spec.function_name if spec else "actor method",
                f"TaskCancelledError: {cancelled}",
                cancelled,
                result.task_id,
                result.node_id,
                result.worker_id,
            )
        )
        return tm.TaskResult(
            result.task_id,
            tuple((oid, error) for oid, _ in result.returns),
            result.worker_id,
            result.node_id,
            started_at=result.started_at,
        )

    def retryable_call(self, task_id: TaskID) -> vm.TaskSpec | None:
        """The spec of call ``task_id`` in flight and not cancelled (None: not one). Locked."""
        actor_id = self._actor_of_call.get(task_id)
        if actor_id is None or task_id in self._cancelled:
            return None
        return self._actors[actor_id].inflight.get(task_id)

    def resend(self, spec: vm.TaskSpec) -> None:
        """Send a call in flight again (``spec``: its next attempt), before the calls not sent yet. Locked."""
        actor_id = self._actor_of_call.pop(spec.task_id)
        actor = self._actors[actor_id]
        del actor.inflight[spec.task_id]
        actor.queue.appendleft(PendingTask(spec, 0))
        self._pump(actor_id)

    def finished(self, task_id: TaskID) -> vm.TaskSpec | None:
        """Forget a call that ended; its spec if it was one in flight (None: not one). Locked."""
        actor_id = self._actor_of_call.pop(task_id, None)
        return None if actor_id is None else self._actors[actor_id].inflight.pop(task_id, None)

    def state_changed(self, msg: am.ActorStateChanged) -> None:
        actor = self._actor(msg.actor_id)
        if actor.state == ActorState.DEAD:  # killed here already; the GCS may still report the old state
            return
        actor.state, actor.address, actor.death_cause = msg.state, msg.address, msg.death_cause
        if msg.state == ActorState.RESTARTING:
            self._requeue_inflight(actor)
        self._pump(msg.actor_id)

    def _requeue_inflight(self, actor: _ActorState) -> None:
        """The actor's process died: resend calls in flight within max_task_retries."""
        retry = []
        for spec in actor.inflight.values():
            next_try = take_retry(spec)
            if next_try is not None:
                retry.append(PendingTask(next_try, 0))
            else:
                self._actor_of_call.pop(spec.task_id, None)
                self._fail(
                    spec,
                    exceptions.RayActorError(
                        f"The actor {spec.actor_id} died while running {spec.function_name} "
                        f"(task {spec.task_id}); max_task_retries={spec.max_retries} allows no retry."
                    ),
                )
        actor.inflight.clear()
        actor.queue.extendleft(reversed(retry))

    def kill(self, actor_id: ActorID) -> None:
        """ray.kill(no_restart=True): every pending and later call fails from now on."""
        actor = self._actor(actor_id)
        actor.state, actor.death_cause = ActorState.DEAD.value, "The actor was killed by ray.kill()."
        self._fail_all(actor_id, actor)

    def _fail_all(self, actor_id: ActorID, actor: _ActorState) -> None:
        error = error_value(
            exceptions.ActorDiedError(f"The actor {actor_id} is dead. {actor.death_cause}".strip())
        )
        for spec in list(actor.inflight.values()):
            self._actor_of_call.pop(spec.task_id, None)
            self._fail(spec, error)
        actor.inflight.clear()
        while actor.queue:
            self._fail(actor.queue.popleft().spec, error)

    def _fail(self, spec: vm.TaskSpec, error: BaseException | vm.ErrorValue) -> None:
        self.core.tasks.finish(failed_result(spec, error))

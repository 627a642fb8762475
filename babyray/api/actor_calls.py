"""Submitting actor method calls from one process (the caller side of Ray's actor tasks).

Calls go straight to the actor's worker, not through a scheduler. Each caller keeps one
FIFO per actor and sends a call only after every earlier call to that actor was sent, so
calls run in submission order even when their arguments become ready out of order. The
caller learns where the actor runs, and when it restarts or dies, from the GCS
(SubscribeActor / ActorStateChanged). Calls in flight when the actor's process dies are
sent again after the restart while ``max_task_retries`` allows; otherwise they fail.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babyray import exceptions
from babyray.api.arguments import arg_resolver
from babyray.api.object_ref import ObjectRef
from babyray.gcs.states import ActorState
from babyray.protocol import actors as am
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.task_failure import error_value, failed_result, take_retry

if TYPE_CHECKING:
    from babyray.api.core import CoreClient


@dataclass(slots=True)
class _Call:
    spec: vm.TaskSpec
    unresolved: int
    failed: Any = None


@dataclass(slots=True)
class _ActorState:
    state: str = ActorState.PENDING.value
    address: Any = None
    death_cause: str = ""
    queue: deque = field(default_factory=deque)  # _Call, not yet sent, in submission order
    inflight: dict = field(default_factory=dict)  # task_id -> spec, sent and unanswered


class ActorSubmitter:
    """Per-process state of every actor this process calls. Methods run under core.lock."""

    def __init__(self, core: "CoreClient") -> None:
        self.core = core
        self.actors: dict[str, _ActorState] = {}
        self.actor_of_call: dict[str, str] = {}  # task id of a call in flight -> actor id

    def _actor(self, actor_id: str) -> _ActorState:
        state = self.actors.get(actor_id)
        if state is None:
            state = self.actors[actor_id] = _ActorState()
            self.core.transport.send(self.core.gcs, am.SubscribeActor(actor_id, self.core.inbox))
        return state

    def submit(self, spec: vm.TaskSpec) -> list[ObjectRef]:
        core = self.core
        deps = [(spec.args, i, a) for i, a in enumerate(spec.args) if isinstance(a, ObjectRef)]
        deps += [(spec.kwargs, k, a) for k, a in spec.kwargs.items() if isinstance(a, ObjectRef)]
        call = _Call(spec, len(deps))
        with core.lock:
            core.own_returns(spec, [ref for _, _, ref in deps])
            actor = self._actor(spec.actor_id)
            actor.queue.append(call)
            for container, slot, ref in deps:
                core._lookup(ref, arg_resolver(call, container, slot, ref.id,
                                               lambda: self._pump(spec.actor_id)))
            self._pump(spec.actor_id)
        return [ObjectRef(oid, core.inbox, core.identity) for oid in spec.return_ids][: spec.num_returns]

    def _pump(self, actor_id: str) -> None:
        """Send the calls at the head of the actor's FIFO whose arguments are ready."""
        actor = self.actors[actor_id]
        if actor.state == ActorState.DEAD:
            self._fail_all(actor_id, actor)
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
            self.actor_of_call[call.spec.task_id] = actor_id
            self.core.transport.send(actor.address, tm.ExecuteTasks((call.spec,)))

    def resubscribe(self) -> None:
        """Ask a restarted GCS for the state of every actor called from here (Locked)."""
        for actor_id in self.actors:
            self.core.transport.send(self.core.gcs, am.SubscribeActor(actor_id, self.core.inbox))

    def finished(self, task_id: str) -> None:
        actor_id = self.actor_of_call.pop(task_id, None)
        if actor_id is not None:
            self.actors[actor_id].inflight.pop(task_id, None)

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
                retry.append(_Call(next_try, 0))
            else:
                self.actor_of_call.pop(spec.task_id, None)
                self._fail(spec, exceptions.RayActorError(
                    f"The actor {spec.actor_id} died while running {spec.function_name} "
                    f"(task {spec.task_id}); max_task_retries={spec.max_retries} allows no retry."))
        actor.inflight.clear()
        actor.queue.extendleft(reversed(retry))

    def kill(self, actor_id: str) -> None:
        """ray.kill(no_restart=True): every pending and later call fails from now on."""
        actor = self._actor(actor_id)
        actor.state, actor.death_cause = ActorState.DEAD.value, "The actor was killed by ray.kill()."
        self._fail_all(actor_id, actor)

    def _fail_all(self, actor_id: str, actor: _ActorState) -> None:
        error = error_value(exceptions.ActorDiedError(
            f"The actor {actor_id} is dead. {actor.death_cause}".strip()))
        for spec in list(actor.inflight.values()):
            self.actor_of_call.pop(spec.task_id, None)
            self._fail(spec, error)
        actor.inflight.clear()
        while actor.queue:
            self._fail(actor.queue.popleft().spec, error)

    def _fail(self, spec: vm.TaskSpec, error: BaseException | vm.ErrorValue) -> None:
        self.core._finish(failed_result(spec, error))

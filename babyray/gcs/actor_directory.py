"""The GCS's actor manager: the actor table's lifecycle (as Ray's GcsActorManager).

States (``ActorState``): PENDING (registered, constructor not yet done) -> ALIVE ->
RESTARTING -> ALIVE ... -> DEAD. The directory decides restarts (``max_restarts``), keeps
names unique per namespace (a name is found only in the namespace it was registered in), and
tells subscribed callers of every change. It returns the messages to send; the GCS actor sends them.

An actor shares the fate of its owner, the process that created it (as in Ray): when the
owner's worker dies, its node dies, or its job's driver ends, the actor dies for good and
its process is killed. A detached actor (``lifetime="detached"``) has no owner and lives on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from babyray.actors.batching import address_key
from babyray.gcs.durable_gate import Outgoing
from babyray.gcs.states import ActorState, advance
from babyray.gcs.tables import Table
from babyray.ids import ActorID, JobID, NodeID, WorkerID
from babyray.protocol import actors as am
from babyray.protocol import values as vm


@dataclass
class _Live:
    """Per-actor state that is not persisted: subscribers and where it runs."""

    subscribers: dict = field(default_factory=dict)  # address key -> address
    node_id: NodeID = NodeID("")
    scheduler: Any = None
    no_restart: bool = False


def _state(record: dict) -> ActorState:
    return ActorState(record["state"])


_UNKNOWN_ACTOR = (
    "this cluster has no such actor: its handle was made in an earlier session (before "
    "shutdown()) or by another cluster"
)


class ActorDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.live: dict[str, _Live] = {}

    def _state_message(self, actor_id: ActorID) -> am.ActorStateChanged:
        r = self.table.get(actor_id) or {"state": ActorState.DEAD.value, "death_cause": _UNKNOWN_ACTOR}
        return am.ActorStateChanged(
            actor_id, r["state"], r.get("address"), r.get("death_cause", ""), r.get("num_restarts", 0)
        )

    def _broadcast(self, actor_id: ActorID) -> Outgoing:
        msg = self._state_message(actor_id)
        return [(addr, msg) for addr in self.live.get(actor_id, _Live()).subscribers.values()]

    def _change(self, actor_id: ActorID, record: dict, state: ActorState, **fields: Any) -> None:
        """Move the actor to ``state`` (IllegalTransition if its machine forbids it), with ``fields``."""
        self.table.update(actor_id, state=advance(_state(record), state).value, **fields)

    def _not_dead(self, actor_id: ActorID) -> dict | None:
        record = self.table.get(actor_id)
        return None if record is None or _state(record) is ActorState.DEAD else record

    def register(self, actor_id: ActorID, msg: am.RegisterActor, owner_ip: str = "") -> str | None:
        """Record a new actor as PENDING; returns an error text if its name is taken in its
        namespace. ``owner_ip``: the host of its owner's process."""
        name = msg.info.name
        if name and self.named(name, msg.namespace) is not None:
            return (
                f"The name {name} (namespace={msg.namespace}) is already taken. Please use a different name "
                f"or get the existing actor using ray.get_actor('{name}', namespace='{msg.namespace}')"
            )
        self.table.put(
            actor_id,
            {
                "actor_id": actor_id,
                "state": ActorState.PENDING.value,
                "name": name,
                "info": msg.info,
                "spec": msg.spec,
                "max_restarts": msg.max_restarts,
                "num_restarts": 0,
                "detached": msg.detached,
                "address": None,
                "death_cause": "",
                "class_name": msg.info.class_name,
                "namespace": msg.namespace,
                "owner_node": msg.owner_node,
                "owner_ip": owner_ip,
                "owner_pid": msg.owner_pid,
            },
        )
        self.live[actor_id] = _Live()
        return None

    def subscribe(self, actor_id: ActorID, address: Any) -> Outgoing:
        self.live.setdefault(actor_id, _Live()).subscribers[address_key(address)] = address
        return [(address, self._state_message(actor_id))]

    def started(self, msg: am.ActorStarted, scheduler: Any) -> Outgoing:
        """The actor's constructor returned: ALIVE (news of a dead actor, or a repeat, is ignored;
        a process started for an actor ended before it started is killed). News of an earlier
        incarnation is ignored too: a process killed just after its constructor returned may
        have its news arrive after its death started the restart, and taking it would leave the
        actor ALIVE at the dead process's address, the restarted one's news then a "repeat"."""
        record = self._not_dead(msg.actor_id)
        live = self.live.get(msg.actor_id)
        if record is None and live is not None and live.no_restart and scheduler is not None:
            return [(scheduler, am.KillActorWorker(msg.actor_id))]  # ended (killed) before it started
        if record is None or _state(record) is ActorState.ALIVE:
            return []
        if msg.attempt != record.get("num_restarts", 0):
            return []
        live = self.live.setdefault(msg.actor_id, _Live())
        live.node_id, live.scheduler = msg.node_id, scheduler
        self._change(
            msg.actor_id,
            record,
            ActorState.ALIVE,
            address=msg.address,
            node_id=msg.node_id,
            worker_id=msg.worker_id,
            pid=msg.pid,
        )
        return self._broadcast(msg.actor_id)

    def init_failed(self, msg: am.ActorInitFailed) -> Outgoing:
        return self._dead(msg.actor_id, f"The actor's constructor raised:\n{msg.cause}")

    def _dead(self, actor_id: ActorID, cause: str) -> Outgoing:
        record = self._not_dead(actor_id)
        if record is None:
            return []
        self._change(actor_id, record, ActorState.DEAD, address=None, death_cause=cause)
        return self._broadcast(actor_id)

    def kill(self, msg: am.KillActor) -> Outgoing:
        """Kill the actor's process; with ``no_restart`` the actor is DEAD at once."""
        record = self._not_dead(msg.actor_id)
        live = self.live.get(msg.actor_id)
        if record is None or live is None:
            return []
        if msg.no_restart:  # dead at once, as in Ray: its name is free for a new actor
            return self.end(msg.actor_id, "The actor was killed by ray.kill()")
        if live.scheduler is None:  # not started yet: it is dead before it ran
            return self._dead(msg.actor_id, "The actor was killed by ray.kill() before it started")
        return [(live.scheduler, am.KillActorWorker(msg.actor_id))]

    def group_removed(self, actor_id: ActorID, pg_id: str) -> Outgoing:
        """The actor's placement group was removed: it is dead now (no restart), its process
        killed."""
        return self.end(actor_id, f"The actor's placement group {pg_id} was removed")

    def end(self, actor_id: ActorID, cause: str) -> Outgoing:
        """The actor is dead for good (no restart) for ``cause``; its process is killed."""
        live = self.live.get(actor_id)
        outgoing: Outgoing = []
        if live is not None and self._not_dead(actor_id) is not None:
            live.no_restart = True
            if live.scheduler is not None:
                outgoing.append((live.scheduler, am.KillActorWorker(actor_id)))
        return outgoing + self._dead(actor_id, cause)

    # ---- owners (fate sharing): each query returns the ids of the actors to ``end`` ----

    def _owned(self, owned: Callable[[dict], bool]) -> list[ActorID]:
        return [
            ActorID(actor_id)
            for actor_id, record in self.table.items()
            if not record.get("detached") and _state(record) is not ActorState.DEAD and owned(record)
        ]

    def owned_by(self, owner_id: WorkerID) -> list[ActorID]:
        """Actors created by ``owner_id`` (a driver, or a worker in a task or an actor): it died."""
        return self._owned(lambda record: record["spec"].owner_id == owner_id)

    def owner_process(self, actor_id: ActorID) -> tuple[WorkerID, str, int] | None:
        """(owner id, host, pid) of the process that created the actor, if it is alive and not
        detached (None: no owner to check)."""
        record = self._not_dead(actor_id)
        if record is None or record.get("detached") or not record.get("owner_pid"):
            return None
        return record["spec"].owner_id, record["owner_ip"], record["owner_pid"]

    def owned_on_node(self, node_id: NodeID) -> list[ActorID]:
        """Actors created by a worker of ``node_id`` (not by a driver): the node died."""
        return self._owned(lambda record: record.get("owner_node") == node_id)

    def owned_by_job(self, job_id: JobID) -> list[ActorID]:
        """Actors of ``job_id``, whose driver ended: the driver created them, or a worker of
        the job that ends with it. Those created by a detached actor live on with it."""
        survivors = {
            record.get("worker_id")
            for _, record in self.table.items()
            if record.get("detached") and _state(record) is not ActorState.DEAD
        }
        return self._owned(
            lambda record: record["spec"].job_id == job_id and record["spec"].owner_id not in survivors
        )

    def worker_died(self, msg: am.ActorWorkerDied) -> tuple[Outgoing, vm.TaskSpec | None]:
        """The actor's process ended: restart it (returns its creation spec) or declare it dead."""
        record = self._not_dead(msg.actor_id)
        live = self.live.get(msg.actor_id, _Live())
        if record is None:
            return [], None
        if msg.final:
            return self._dead(msg.actor_id, msg.reason), None
        if live.no_restart:
            return self._dead(msg.actor_id, f"The actor was killed by ray.kill() ({msg.reason})"), None
        max_restarts = record["max_restarts"]
        if max_restarts != -1 and record["num_restarts"] >= max_restarts:
            return self._dead(
                msg.actor_id,
                f"The actor's process died ({msg.reason}) and it has no restarts "
                f"left ({record['num_restarts']}/{max_restarts})",
            ), None
        restarts = record["num_restarts"] + 1
        self._change(msg.actor_id, record, ActorState.RESTARTING, address=None, num_restarts=restarts)
        live.scheduler, live.node_id = None, NodeID("")
        # The creation spec's attempt counts restarts: the new instance knows it was reconstructed.
        return self._broadcast(msg.actor_id), dataclasses.replace(record["spec"], attempt=restarts)

    def unplaced(self) -> list[vm.TaskSpec]:
        """Creation specs (with the attempt of their restart count) of the actors PENDING or
        RESTARTING that this GCS has not seen since it started: after a GCS restart, the global
        scheduler that held them is gone, so they must be scheduled again."""
        waiting = (ActorState.PENDING, ActorState.RESTARTING)
        return [
            dataclasses.replace(record["spec"], attempt=record["num_restarts"])
            for actor_id, record in self.table.items()
            if _state(record) in waiting and actor_id not in self.live
        ]

    def actors_on(self, node_id: NodeID) -> list[ActorID]:
        """Actors alive (or starting) on ``node_id``: they die with the node. An alive actor this
        GCS has not seen start (the GCS restarted since) is placed by its table record."""
        found = []
        for actor_id, record in self.table.items():
            live = self.live.get(actor_id)
            where = (
                live.node_id
                if live is not None and live.node_id
                else (record.get("node_id") if _state(record) is ActorState.ALIVE else "")
            )
            if where == node_id and _state(record) is not ActorState.DEAD:
                found.append(ActorID(actor_id))
        return found

    def _holds_name(self, actor_id: str, record: dict) -> bool:
        """Whether the actor still holds its name: not dead, nor killed for good (as in Ray, the
        name is free as soon as ray.kill(no_restart=True) is received, before the process ends)."""
        live = self.live.get(actor_id)
        return (
            bool(record.get("name"))
            and _state(record) is not ActorState.DEAD
            and not (live is not None and live.no_restart)
        )

    def info(self, actor_id: ActorID) -> am.ActorInfo | None:
        """What a handle of ``actor_id`` needs, if the actor was ever registered here."""
        record = self.table.get(actor_id)
        return record["info"] if record is not None else None

    def named(self, name: str, namespace: str) -> am.ActorInfo | None:
        """The actor holding ``name`` in ``namespace``, if any."""
        for actor_id, r in self.table.items():
            if r.get("name") == name and r.get("namespace") == namespace and self._holds_name(actor_id, r):
                return r["info"]
        return None

    def names(self, namespace: str | None) -> tuple[tuple[str, str], ...]:
        """(namespace, name) of the actors holding a name in ``namespace`` (in any namespace if None)."""
        return tuple(
            sorted(
                (r["namespace"], r["name"])
                for actor_id, r in self.table.items()
                if self._holds_name(actor_id, r) and namespace in (None, r["namespace"])
            )
        )

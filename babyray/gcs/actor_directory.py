"""The GCS's actor manager: the actor table's lifecycle (as Ray's GcsActorManager).

States: PENDING (registered, constructor not yet done) -> ALIVE -> RESTARTING -> ALIVE ...
-> DEAD. The directory decides restarts (``max_restarts``), keeps names unique per
cluster, and tells subscribed callers of every change. It returns the messages to send;
the GCS actor sends them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from babyray.actors.batching import address_key
from babyray.gcs.tables import Table
from babyray.protocol import actors as am
from babyray.protocol import values as vm

PENDING, ALIVE, RESTARTING, DEAD = "PENDING", "ALIVE", "RESTARTING", "DEAD"

Outgoing = list[tuple[Any, Any]]  # (destination, message)


@dataclass
class _Live:
    """Per-actor state that is not persisted: subscribers and where it runs."""

    subscribers: dict = field(default_factory=dict)  # address key -> address
    node_id: str = ""
    scheduler: Any = None
    no_restart: bool = False


class ActorDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.live: dict[str, _Live] = {}

    def _state_message(self, actor_id: str) -> am.ActorStateChanged:
        r = self.table.get(actor_id) or {"state": DEAD, "death_cause": "unknown actor"}
        return am.ActorStateChanged(actor_id, r["state"], r.get("address"), r.get("death_cause", ""),
                                   r.get("num_restarts", 0))

    def _broadcast(self, actor_id: str) -> Outgoing:
        msg = self._state_message(actor_id)
        return [(addr, msg) for addr in self.live.get(actor_id, _Live()).subscribers.values()]

    def register(self, msg: am.RegisterActor) -> str | None:
        """Record a new actor; returns an error text if its name is taken."""
        name = msg.info.name
        if name:
            for _, r in self.table.items():
                if r.get("name") == name and r["state"] != DEAD:
                    return f"An actor named '{name}' already exists in this cluster"
        self.table.put(msg.spec.actor_id, {
            "actor_id": msg.spec.actor_id, "state": PENDING, "name": name, "info": msg.info,
            "spec": msg.spec, "max_restarts": msg.max_restarts, "num_restarts": 0,
            "detached": msg.detached, "address": None, "death_cause": "", "class_name": msg.info.class_name,
        })
        self.live[msg.spec.actor_id] = _Live()
        return None

    def subscribe(self, actor_id: str, address: Any) -> Outgoing:
        self.live.setdefault(actor_id, _Live()).subscribers[address_key(address)] = address
        return [(address, self._state_message(actor_id))]

    def started(self, msg: am.ActorStarted, scheduler: Any) -> Outgoing:
        record = self.table.get(msg.actor_id)
        if record is None or record["state"] == DEAD:
            return []
        live = self.live.setdefault(msg.actor_id, _Live())
        live.node_id, live.scheduler = msg.node_id, scheduler
        self.table.update(msg.actor_id, state=ALIVE, address=msg.address, node_id=msg.node_id,
                          worker_id=msg.worker_id, pid=msg.pid)
        return self._broadcast(msg.actor_id)

    def init_failed(self, msg: am.ActorInitFailed) -> Outgoing:
        return self._dead(msg.actor_id, f"The actor's constructor raised:\n{msg.cause}")

    def _dead(self, actor_id: str, cause: str) -> Outgoing:
        if self.table.get(actor_id) is None:
            return []
        self.table.update(actor_id, state=DEAD, address=None, death_cause=cause)
        return self._broadcast(actor_id)

    def kill(self, msg: am.KillActor) -> Outgoing:
        """Mark the actor for killing; returns the message to its local scheduler."""
        record = self.table.get(msg.actor_id)
        live = self.live.get(msg.actor_id)
        if record is None or record["state"] == DEAD or live is None:
            return []
        live.no_restart = live.no_restart or msg.no_restart
        if live.scheduler is None:  # not started yet: it is dead before it ran
            return self._dead(msg.actor_id, "The actor was killed by ray.kill() before it started")
        return [(live.scheduler, am.KillActorWorker(msg.actor_id))]

    def group_removed(self, actor_id: str, pg_id: str) -> Outgoing:
        """The actor's placement group was removed: it is dead now (no restart), its process
        killed."""
        live = self.live.get(actor_id)
        outgoing: Outgoing = []
        if live is not None:
            live.no_restart = True
            if live.scheduler is not None:
                outgoing.append((live.scheduler, am.KillActorWorker(actor_id)))
        return outgoing + self._dead(actor_id, f"The actor's placement group {pg_id} was removed")

    def worker_died(self, msg: am.ActorWorkerDied) -> tuple[Outgoing, vm.TaskSpec | None]:
        """The actor's process ended: restart it (returns its creation spec) or declare it dead."""
        record = self.table.get(msg.actor_id)
        live = self.live.get(msg.actor_id, _Live())
        if record is None or record["state"] == DEAD:
            return [], None
        if msg.final:
            return self._dead(msg.actor_id, msg.reason), None
        if live.no_restart:
            return self._dead(msg.actor_id, f"The actor was killed by ray.kill() ({msg.reason})"), None
        max_restarts = record["max_restarts"]
        if max_restarts != -1 and record["num_restarts"] >= max_restarts:
            return self._dead(msg.actor_id, f"The actor's process died ({msg.reason}) and it has no restarts "
                                            f"left ({record['num_restarts']}/{max_restarts})"), None
        restarts = record["num_restarts"] + 1
        self.table.update(msg.actor_id, state=RESTARTING, address=None, num_restarts=restarts)
        live.scheduler, live.node_id = None, ""
        # The creation spec's attempt counts restarts: the new instance knows it was reconstructed.
        return self._broadcast(msg.actor_id), dataclasses.replace(record["spec"], attempt=restarts)

    def actors_on(self, node_id: str) -> list[str]:
        """Actors alive (or starting) on ``node_id``: they die with the node. An alive actor this
        GCS has not seen start (the GCS restarted since) is placed by its table record."""
        found = []
        for actor_id, record in self.table.items():
            live = self.live.get(actor_id)
            where = live.node_id if live is not None and live.node_id else (
                record.get("node_id") if record["state"] == ALIVE else "")
            if where == node_id and record["state"] != DEAD:
                found.append(actor_id)
        return found

    def named(self, name: str) -> am.ActorInfo | None:
        for _, r in self.table.items():
            if r.get("name") == name and r["state"] != DEAD:
                return r["info"]
        return None

    def names(self) -> tuple:
        return tuple(sorted(r["name"] for _, r in self.table.items() if r.get("name") and r["state"] != DEAD))

"""The GCS's node table and which nodes are alive: registrations, heartbeats and deadlines.

A node is ALIVE from its registration (or a heartbeat) until it stays silent for ``timeout``
seconds; then it is DEAD. A node alive before a GCS restart is DEAD in the recovered table
until it registers again; if it has not within ``timeout`` of the restart announcement, it
died meanwhile. No I/O and no clock: every call takes ``now`` (monotonic seconds). The record's
``alive`` field (a bool, as stored since the first schema) holds the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babyray.gcs.states import NodeState, advance
from babyray.gcs.tables import Table
from babyray.ids import NodeID
from babyray.protocol import cluster as cm

__all__ = ["NodeDeath", "NodeLiveness"]


@dataclass(frozen=True, slots=True)
class NodeDeath:
    """A node found dead by ``expire``: silent for ``silent_for`` s, or (None) not back after a
    GCS restart."""

    node_id: NodeID
    silent_for: float | None


class NodeLiveness:
    def __init__(self, table: Table, timeout: float) -> None:
        self.table = table
        self.timeout = timeout
        self._last_seen: dict[str, float] = {}
        self._awaited: dict[NodeID, float] = {}  # alive before a GCS restart, not registered again: by when

    @staticmethod
    def state_of(record: dict) -> NodeState:
        return NodeState.ALIVE if record.get("alive") else NodeState.DEAD

    def _set_state(self, node_id: str, record: dict, state: NodeState) -> None:
        record["alive"] = advance(self.state_of(record), state) is NodeState.ALIVE
        self.table.put(node_id, record)

    def register(self, msg: cm.RegisterNode, now: float, wall_time: float) -> None:
        """A node joined (or joined again, with new parts): it is ALIVE."""
        self.table.put(
            msg.node_id,
            {
                "node_id": msg.node_id,
                "address": msg.address,
                "alive": True,
                "resources": dict(msg.resources),
                "available": dict(msg.resources),
                "queue_length": 0,
                "scheduler": msg.scheduler,
                "store": msg.store,
                "registered_at": wall_time,
            },
        )
        self._last_seen[msg.node_id] = now
        self._awaited.pop(msg.node_id, None)

    def heartbeat(self, msg: cm.Heartbeat, now: float) -> bool:
        """Record the node's load; True if it was DEAD and is ALIVE again."""
        record = self.table.get(msg.node_id)
        if record is None:
            return False
        self._last_seen[msg.node_id] = now
        record.update(
            available=dict(msg.available), queue_length=msg.queue_length, num_workers=msg.num_workers
        )
        if msg.resources is not None:  # the node's total changed (placement group bundles)
            record["resources"] = dict(msg.resources)
        revived = self.state_of(record) is NodeState.DEAD
        if revived:
            self._set_state(msg.node_id, record, NodeState.ALIVE)
        else:
            self.table.put(msg.node_id, record)
        return revived

    def expire(self, now: float) -> list[NodeDeath]:
        """Declare DEAD the ALIVE nodes silent for longer than the timeout, and the nodes awaited
        since a GCS restart whose deadline passed."""
        dead = []
        for node_id, record in self.table.items():
            silent_for = now - self._last_seen.get(node_id, now)
            if self.state_of(record) is NodeState.ALIVE and silent_for > self.timeout:
                self._set_state(node_id, record, NodeState.DEAD)
                dead.append(NodeDeath(NodeID(node_id), silent_for))
        for node_id, by in list(self._awaited.items()):
            if now > by:
                del self._awaited[node_id]
                dead.append(NodeDeath(node_id, None))
        return dead

    def recovered(self) -> None:
        """The table was just read back after a GCS restart: a node alive before is DEAD until it
        registers again."""
        for node_id, record in self.table.items():
            if self.state_of(record) is NodeState.ALIVE:
                record["alive_before_restart"] = True
                self._set_state(node_id, record, NodeState.DEAD)

    def announce_restart(self, now: float) -> list[tuple[str, dict]]:
        """The recovered nodes to tell where the new GCS is: (node id, record) of those with a
        local scheduler. The ones alive before the restart must register again by ``now`` plus
        the timeout."""
        told = []
        for node_id, record in self.table.items():
            if record.get("scheduler") is not None:
                told.append((node_id, record))
            if record.get("alive_before_restart"):
                self._awaited[NodeID(node_id)] = now + self.timeout
        return told

    def alive_parts(self, part: str) -> list[Any]:
        """The addresses of ``part`` ("store" or "scheduler") of the ALIVE nodes."""
        return [
            record[part]
            for _, record in self.table.items()
            if self.state_of(record) is NodeState.ALIVE and record.get(part) is not None
        ]

    def infos(self) -> tuple[cm.NodeInfo, ...]:
        return tuple(
            cm.NodeInfo(
                r["node_id"],
                r["address"],
                r["alive"],
                r["resources"],
                r["available"],
                r["queue_length"],
                r["scheduler"],
                r["store"],
            )
            for _, r in self.table.items()
        )

    def scheduler_of(self, node_id: NodeID) -> Any:
        """The node's local scheduler address, None if unknown."""
        record = self.table.get(node_id)
        return None if record is None else record.get("scheduler")

    def known_dead(self, node_id: NodeID) -> bool:
        """Whether the node is in memory and DEAD (an unknown node is not known to be dead)."""
        record = self.table.cached(node_id)
        return record is not None and self.state_of(record) is NodeState.DEAD

"""The GCS's placement group manager: the placement group table's lifecycle.

States (``PlacementGroupState``), as in Ray: PENDING (recorded, waiting for the global
scheduler to reserve every bundle; also while no node can fit it) -> CREATED (every bundle reserved; the node of each in
``bundles_to_node_id``) -> REMOVED. When a node holding some of a group's bundles dies, the group
goes RESCHEDULING: those bundles leave ``bundles_to_node_id`` and are reserved again on other
nodes (the others stay where they are), and it is CREATED again once they are. Names are unique
among groups not removed. The manager only keeps the table; the GCS actor sends the messages its
answers call for.
"""

from __future__ import annotations

import time
from typing import Any

from babyray.gcs.states import ActorState, PlacementGroupState, advance
from babyray.gcs.tables import Table
from babyray.ids import ActorID, JobID, NodeID
from babyray.protocol import placement as pm
from babyray.util.scheduling_strategies import placement_group_id

WAITING = (PlacementGroupState.PENDING, PlacementGroupState.RESCHEDULING)  # for bundles to be reserved


class PlacementGroupDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table

    def create(self, msg: pm.CreatePlacementGroup) -> str | None:
        """Record a new group as PENDING; returns an error text if its name is taken."""
        if msg.name and self.named(msg.name) is not None:
            return f"Failed to create placement group '{msg.name}': a placement group with this name already exists"
        self.table.put(
            msg.pg_id,
            {
                "placement_group_id": msg.pg_id,
                "name": msg.name,
                "bundles": [dict(b) for b in msg.bundles],
                "strategy": msg.strategy,
                "state": PlacementGroupState.PENDING.value,
                "lifetime": msg.lifetime,
                "job_id": msg.job_id,
                "bundles_to_node_id": {},
                "created_at": time.time(),
                "placed_at": None,
                "removed_at": None,
            },
        )
        return None

    def placed(self, msg: pm.PlacementGroupPlaced) -> bool:
        """Mark the group CREATED on its nodes; False if it was removed meanwhile."""
        record = self.table.get(msg.pg_id)
        if record is None or record["state"] not in WAITING:
            return False
        self.table.update(
            msg.pg_id,
            state=advance(record["state"], PlacementGroupState.CREATED).value,
            bundles_to_node_id=dict(enumerate(msg.nodes)),
            placed_at=time.time(),
        )
        return True

    def remove(self, pg_id: str) -> dict | None:
        """Mark the group REMOVED; returns its record as it was (None if unknown or removed)."""
        record = self.table.get(pg_id)
        if record is None or record["state"] == PlacementGroupState.REMOVED:
            return None
        before = dict(record)
        self.table.update(
            pg_id,
            state=advance(record["state"], PlacementGroupState.REMOVED).value,
            bundles_to_node_id={},
            removed_at=time.time(),
        )
        return before

    def node_died(self, node_id: NodeID) -> list[pm.PlacePlacementGroup]:
        """Make every placed group with bundles on ``node_id`` RESCHEDULING without them; the
        requests to reserve those bundles again."""
        requests = []
        for pg_id, record in self.table.items():
            if record["state"] not in (PlacementGroupState.CREATED, PlacementGroupState.RESCHEDULING):
                continue
            where = record.get("bundles_to_node_id") or {}
            kept = {index: node for index, node in where.items() if node != node_id}
            if len(kept) == len(where):
                continue
            self.table.update(
                pg_id,
                state=advance(record["state"], PlacementGroupState.RESCHEDULING).value,
                bundles_to_node_id=kept,
            )
            requests.append(placement_request(self.table.get(pg_id) or record))
        return requests

    def not_on(self, node_id: NodeID) -> list[str]:
        """Groups placed or rescheduling with no bundle on ``node_id``: a node declared dead that
        heartbeats again must give back the bundles it held of these (placed again elsewhere)."""
        return [
            pg_id
            for pg_id, record in self.table.items()
            if record["state"] in (PlacementGroupState.CREATED, PlacementGroupState.RESCHEDULING)
            and node_id not in bundle_nodes(record)
        ]

    def to_place(self) -> list[pm.PlacePlacementGroup]:
        """The requests for every group waiting for bundles: PENDING or RESCHEDULING."""
        return [placement_request(record) for _, record in self.table.items() if record["state"] in WAITING]

    def get(self, pg_id: str) -> dict | None:
        return self.table.get(pg_id)

    def is_removed(self, pg_id: str) -> bool:
        record = self.table.get(pg_id)
        return record is not None and record["state"] == PlacementGroupState.REMOVED

    def named(self, name: str) -> dict | None:
        for _, record in self.table.items():
            if record.get("name") == name and record["state"] != PlacementGroupState.REMOVED:
                return record
        return None

    def removed(self) -> list[str]:
        return [
            pg_id for pg_id, record in self.table.items() if record["state"] == PlacementGroupState.REMOVED
        ]

    def owned_by_job(self, job_id: JobID) -> list[str]:
        """Groups that fate-share with job ``job_id`` (not detached), not yet removed."""
        return [
            pg_id
            for pg_id, r in self.table.items()
            if r.get("job_id") == job_id
            and r.get("lifetime") != "detached"
            and r["state"] != PlacementGroupState.REMOVED
        ]


def placement_request(record: dict[str, Any]) -> pm.PlacePlacementGroup:
    """What the global scheduler is sent to reserve the group's bundles not reserved yet: all of
    them while PENDING; while RESCHEDULING, those not in ``bundles_to_node_id`` (``kept``)."""
    kept: tuple = ()
    if record["state"] == PlacementGroupState.RESCHEDULING:
        where = record.get("bundles_to_node_id") or {}
        kept = tuple(where.get(index, "") for index in range(len(record["bundles"])))
    return pm.PlacePlacementGroup(
        record["placement_group_id"], tuple(record["bundles"]), record["strategy"], kept
    )


def actors_in_group(actors: Table, pg_id: str) -> list[ActorID]:
    """Actors not dead whose creation runs in a bundle of group ``pg_id``."""
    return [
        ActorID(actor_id)
        for actor_id, record in actors.items()
        if record.get("state") != ActorState.DEAD
        and placement_group_id(getattr(record.get("spec"), "scheduling_strategy", None)) == pg_id
    ]


def bundle_nodes(record: dict[str, Any]) -> set[NodeID]:
    return set((record.get("bundles_to_node_id") or {}).values())

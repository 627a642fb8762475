"""The GCS's task table (lineage) and where each unfinished task was placed.

Task events merge into the task's record (``merge_task_event``). A ``placed`` event (the
global scheduler's choice) is kept in memory until the task ends, so that when a node dies
the owners of the tasks placed or running there learn of them (``TasksLost``) and resubmit.
Answers are returned as (destination, message) pairs to send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from babyray.actors.batching import address_key
from babyray.gcs.durable_gate import Outgoing
from babyray.gcs.tables import Table
from babyray.gcs.task_states import FINAL, merge_task_event
from babyray.ids import NodeID, TaskID
from babyray.protocol import tasks as tm

__all__ = ["TaskDirectory"]


class TaskDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._placements: dict[TaskID, tuple[NodeID, Any]] = {}  # task id -> (node, owner) until it ends

    def record(
        self, events: Iterable[tuple[TaskID, str, dict]], node_dead: Callable[[NodeID], bool]
    ) -> Outgoing:
        """Merge (task id, state, fields) events; a task placed on a node known dead is lost at once.

        A "submitted" event carries the whole lineage record, so it needs no read of an
        evicted earlier version; any other event merges into the record, faulting it back:
        all the records the events need are read from the store in one query first (one per
        event cost the GCS more CPU than the call it recorded), and each task's record is
        stored once per batch, after all its events in the batch merged in order.
        """
        events = list(events)
        self._fault_back(events)
        lost: Outgoing = []
        merged: dict[TaskID, dict] = {}  # each task's record after this batch's events: stored once
        for task_id, state, fields in events:
            if state == "placed":
                node, owner = fields["placed_node"], fields["owner_address"]
                if node_dead(node):  # placed from a stale node table
                    lost.append((owner, tm.TasksLost(node, (task_id,))))
                else:
                    self._placements[task_id] = (node, owner)
                continue
            if state in FINAL:
                self._placements.pop(task_id, None)
            record = merged[task_id] if task_id in merged else self.table.cached(task_id)
            merged[task_id] = merge_task_event(record, state, fields)
        for task_id, record in merged.items():
            self.table.put(task_id, record)
        return lost

    def _fault_back(self, events: list[tuple[TaskID, str, dict]]) -> None:
        """Bring back into memory, in one read, the stored records these events merge into."""
        submitted: set[TaskID] = set()
        wanted: dict[TaskID, None] = {}
        for task_id, state, _fields in events:
            if state == "submitted":
                submitted.add(task_id)
            elif state != "placed" and task_id not in submitted and self.table.cached(task_id) is None:
                wanted[task_id] = None
        if wanted:
            self.table.get_many(wanted)

    def lost_with(self, node_id: NodeID) -> Outgoing:
        """One TasksLost per owner: its unfinished tasks (not actor calls) placed or running on
        the dead node."""
        by_owner: dict[Any, list[TaskID]] = {}
        owners: dict[Any, Any] = {}  # ActorAddress is unhashable: key by address_key

        def add(owner: Any, task_id: TaskID) -> None:
            key = address_key(owner)
            owners.setdefault(key, owner)
            by_owner.setdefault(key, []).append(task_id)

        for task_id, (placed_node, owner) in list(self._placements.items()):
            if placed_node == node_id:
                del self._placements[task_id]
                add(owner, task_id)
        for stored_id, record in self.table.items():
            if record.get("state") in FINAL or record.get("actor_id"):
                continue
            owner = getattr(record.get("spec"), "owner", None)
            if record.get("node_id") == node_id and owner is not None:
                add(owner, TaskID(stored_id))
        return [
            (owners[key], tm.TasksLost(node_id, tuple(dict.fromkeys(task_ids))))
            for key, task_ids in by_owner.items()
        ]

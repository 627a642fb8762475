"""The GCS's object table: which nodes hold a copy of each object.

An object with no copy left is kept, in state "freed" (its size and lineage stay queryable).
"""

from __future__ import annotations

from collections.abc import Iterable

from babyray.gcs.tables import Table
from babyray.ids import NodeID, ObjectID

__all__ = ["ObjectDirectory"]


class ObjectDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table

    def update(
        self, node_id: NodeID, added: Iterable[tuple[ObjectID, int]], removed: Iterable[ObjectID]
    ) -> None:
        """Add the node's new copies (object id, size) and remove the ones it dropped."""
        added, removed = list(added), list(removed)
        known = self.table.get_many([object_id for object_id, _ in added] + removed)
        for object_id, size in added:
            record = known.get(object_id) or {"locations": set(), "size": size}
            record["locations"].add(node_id)
            record.update(size=size, state="stored")
            known[object_id] = record
            self.table.put(object_id, record)
        for object_id in removed:
            found = known.get(object_id)
            if found is not None:
                found["locations"].discard(node_id)
                if not found["locations"]:
                    found["state"] = "freed"
                self.table.put(object_id, found)

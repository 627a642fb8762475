"""The GCS tables: object, task (lineage), function, actor and node tables.

Each table maps a string key to a record (a plain dict). This in-memory version is the
interface the GCS actor programs against; a store-backed table (``gcs/store.py``) adds
write-behind persistence and fault-back of evicted entries behind the same methods.
"""
from __future__ import annotations

from typing import Any, Iterator

TABLE_NAMES = ("objects", "tasks", "functions", "actors", "nodes")


class Table:
    """One GCS table in memory."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._rows: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def put(self, key: str, record: dict) -> None:
        self._rows[key] = record

    def update(self, key: str, **fields: Any) -> dict:
        """Merge ``fields`` into the record (created if missing) and return it."""
        record = self.get(key)
        if record is None:
            record = {}
        record.update(fields)
        self.put(key, record)
        return record

    def delete(self, key: str) -> None:
        self._rows.pop(key, None)

    def items(self) -> Iterator[tuple[str, dict]]:
        return iter(list(self._rows.items()))

    def __len__(self) -> int:
        return len(self._rows)


class GcsTables:
    """The five tables of one GCS."""

    def __init__(self) -> None:
        self.objects = Table("objects")
        self.tasks = Table("tasks")
        self.functions = Table("functions")
        self.actors = Table("actors")
        self.nodes = Table("nodes")

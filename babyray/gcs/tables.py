"""The GCS tables: object, task (lineage), function, actor, node and placement group tables.

Each table maps a string key to a record (a plain dict). ``Table`` keeps records in memory
only; ``StoredTable`` has the same interface and adds write-behind persistence through a
``StoreWriter`` and fault-back of evicted entries through a ``StoreReader``. Both are used on
the GCS actor's thread only.

A record handed to ``put`` is snapshotted (pickled) at once for the store, so a caller that
changes a record in place must ``put`` it again for the change to be stored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from babyray.gcs.flushing import FlushPolicy
    from babyray.gcs.reader import StoreReader
    from babyray.gcs.writer import StoreWriter

TABLE_NAMES = ("objects", "tasks", "functions", "actors", "nodes", "placement_groups")


class Table:
    """One GCS table in memory."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._rows: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Return {key: record} for those of keys that exist."""
        return {key: record for key in keys if (record := self.get(key)) is not None}

    def cached(self, key: str) -> dict | None:
        """The record if it is in memory, without reading the store."""
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
        """The records in memory (a stored table's evicted entries are not among them)."""
        return iter(list(self._rows.items()))

    def __len__(self) -> int:
        return len(self._rows)


class StoredTable(Table):
    """A GCS table written through to the store, whose durable entries may leave memory.

    Writes reach the store through the writer, off the caller's critical path. A ``get``
    that misses memory faults the entry back from the store (it is cached again until the
    next flush pass evicts it); while the store cannot be read, a miss answers None. Only
    entries whose latest write is durable are ever evicted, so nothing pending is lost.
    """

    def __init__(self, name: str, writer: "StoreWriter", reader: "StoreReader") -> None:
        super().__init__(name)
        self._writer = writer
        self._reader = reader
        self.faults = 0  # entries read back from the store
        self.misses = 0  # gets that found the entry neither in memory nor in the store
        self.evicted = 0

    def get(self, key: str) -> dict | None:
        record = self._rows.get(key)
        if record is None:
            record = self._fault([key]).get(key)
        return record

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        missing = []
        for key in keys:
            record = self._rows.get(key)
            if record is None:
                missing.append(key)
            else:
                found[key] = record
        if missing:
            found.update(self._fault(missing))
        return found

    def put(self, key: str, record: dict) -> None:
        self._rows[key] = record
        self._writer.enqueue_put(self.name, key, record)  # type: ignore[arg-type]

    def delete(self, key: str) -> None:
        self._rows.pop(key, None)
        self._writer.enqueue_delete(self.name, key)  # type: ignore[arg-type]

    def load(self, records: Iterable[tuple[str, dict]]) -> int:
        """Put records read from the store into memory without writing them back."""
        count = 0
        for key, record in records:
            self._rows.setdefault(key, record)
            count += 1
        return count

    def scan(
        self, where: Mapping[str, str | None] | None = None, limit: int | None = None
    ) -> list[tuple[str, dict]] | None:
        """(key, record) pairs from store and memory (memory wins), filtered on equal fields.

        None if the store cannot be read now.
        """
        stored = self._reader.scan(self.name, where, None)  # type: ignore[arg-type]
        if stored is None:
            return None
        merged = dict(stored)
        for key, record in self._rows.items():
            if all(record.get(field) == value for field, value in (where or {}).items()):
                merged[key] = record
        items = list(merged.items())
        return items if limit is None else items[:limit]

    def evict(self, policy: "FlushPolicy") -> int:
        """Drop from memory the durable entries the policy lets go; return how many."""
        candidates = [key for key, record in self._rows.items() if policy.evictable(self.name, record)]
        bound = policy.bound(self.name)
        evicted = self._drop(candidates)
        if bound and len(self._rows) > bound:
            oldest = list(itertools.islice(self._rows, len(self._rows) - bound))
            evicted += self._drop(oldest)
        return evicted

    def _drop(self, keys: list[str]) -> int:
        if not keys:
            return 0
        durable = self._writer.durable_among(self.name, keys)  # type: ignore[arg-type]
        for key in durable:
            del self._rows[key]
        self.evicted += len(durable)
        return len(durable)

    def _fault(self, keys: list[str]) -> dict[str, dict]:
        stored = self._reader.get_many(self.name, keys)  # type: ignore[arg-type]
        if stored is None:
            return {}
        self._rows.update(stored)
        self.faults += len(stored)
        self.misses += len(keys) - len(stored)
        return stored


class GcsTables:
    """The tables of one GCS: in memory only, or stored when given a writer and reader."""

    def __init__(self, writer: "StoreWriter | None" = None, reader: "StoreReader | None" = None) -> None:
        make: Callable[[str], Table] = (
            Table if writer is None or reader is None else (lambda name: StoredTable(name, writer, reader))
        )
        self.objects = make("objects")
        self.tasks = make("tasks")
        self.functions = make("functions")
        self.actors = make("actors")
        self.nodes = make("nodes")
        self.placement_groups = make("placement_groups")

    def table(self, name: str) -> Table:
        """The table called ``name``; ValueError for an unknown name."""
        if name not in TABLE_NAMES:
            raise ValueError(f"unknown GCS table {name!r}; expected one of {', '.join(TABLE_NAMES)}")
        return getattr(self, name)

    def all(self) -> list[Table]:
        return [getattr(self, name) for name in TABLE_NAMES]

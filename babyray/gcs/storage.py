"""The GCS's tables and the store behind them: opening, recovery after a restart, flush passes.

Every table is written through to the store (SQLite in the session directory, or
``gcs_url``) by a background writer; a flush pass evicts durable entries of finished work
(``FlushPolicy``) and a miss faults them back. Until ``open`` the tables are in memory only.
Used on the GCS actor's thread; the writer calls ``on_durable`` on its own thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from babyray import config
from babyray.gcs.durable_gate import DurableGate
from babyray.gcs.flushing import FlushPolicy
from babyray.gcs.reader import StoreReader
from babyray.gcs.store import GcsStore, TableName, redact_url
from babyray.gcs.tables import GcsTables, StoredTable
from babyray.gcs.writer import StoreWriter
from babyray.protocol import gcs as gm

__all__ = ["GcsStorage", "RECOVERED_TABLES"]

RECOVERED_TABLES = ("nodes", "actors", "functions", "placement_groups")  # tasks and objects fault back
_WRITER_CLOSE_TIMEOUT = 3.0  # seconds a stopping GCS waits for the store to take pending writes


class GcsStorage:
    def __init__(self) -> None:
        self.tables = GcsTables()
        self.policy = FlushPolicy(enabled=False)
        self.writer: StoreWriter | None = None
        self.reader: StoreReader | None = None
        self.actor_gate = DurableGate(None, "actors")  # actor messages held until their record is durable
        self.url = ""
        """The store URL, password redacted."""
        self.recovered = False

    def open(
        self, session_dir: str, settings: dict, on_durable: Callable[[list[tuple[TableName, str]]], None]
    ) -> bool:
        """Make stored tables, and read the recovered ones back; False if the store is unreachable
        now (the tables serve from memory meanwhile; ``recover`` retries).

        Raises:
            ValueError: the URL names an unsupported backend.
            GcsSchemaVersionError: the store was written by another schema version.
        """
        resolved = config.Settings(settings)
        url = resolved.gcs_url or f"sqlite:///{os.path.join(session_dir, 'gcs.sqlite')}"
        prefix = resolved.gcs_table_prefix
        self.url = redact_url(url)
        self.policy = FlushPolicy.from_settings(resolved)

        def open_store() -> GcsStore:
            return GcsStore(url, prefix=prefix)

        self.writer = StoreWriter(open_store, on_durable=on_durable)
        self.actor_gate = DurableGate(self.writer, "actors")
        self.reader = StoreReader(open_store, self.writer.is_healthy, self.url)
        self.tables = GcsTables(self.writer, self.reader)
        return self.reader.open()

    def recover(self) -> dict[str, int] | None:
        """Load the recovered tables from the store; entries per table, or None if it went away."""
        loaded: dict[str, int] = {}
        for name in RECOVERED_TABLES:
            table = self.tables.table(name)
            if not isinstance(table, StoredTable):
                return None
            items = table.scan()
            if items is None:
                return None
            loaded[name] = table.load(items)
        self.recovered = True
        return loaded

    def recovery_due(self) -> bool:
        """The tables were not recovered yet and the store can be read now."""
        return not self.recovered and self.reader is not None and self.reader.available()

    def flush_pass(self) -> int:
        """Evict what the policy lets go; entries evicted."""
        if not self.policy.enabled:
            return 0
        return sum(t.evict(self.policy) for t in self.tables.all() if isinstance(t, StoredTable))

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for pending writes; whether all became durable."""
        return self.writer.flush(timeout) if self.writer else False

    def stats(self, req_id: str, pid: int) -> gm.GcsStats:
        stored = [t for t in self.tables.all() if isinstance(t, StoredTable)]
        return gm.GcsStats(
            req_id,
            pid,
            self.url,
            self.writer.is_healthy() if self.writer else False,
            self.writer.pending_count() if self.writer else 0,
            {t.name: len(t) for t in self.tables.all()},
            {t.name: t.evicted for t in stored},
            {t.name: t.faults for t in stored},
            self.recovered,
            self.policy.enabled,
        )

    def list(self, table_name: str, where: dict | None, limit: int | None) -> list[tuple[str, dict]]:
        """Records of a table whose fields equal ``where``'s (store and memory).

        Raises:
            ValueError: unknown table. ConnectionError: the store cannot be read now.
        """
        table = self.tables.table(table_name)
        if isinstance(table, StoredTable):
            items = table.scan(where, limit)
            if items is None:
                raise ConnectionError(f"GCS store {self.url} is unavailable")
            return items
        return [(k, r) for k, r in table.items() if all(r.get(f) == v for f, v in (where or {}).items())][
            :limit
        ]

    def close(self) -> None:
        """Write what is pending (waiting a little for the store), then close it."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close(timeout=_WRITER_CLOSE_TIMEOUT)
        if self.reader is not None:
            self.reader.close()

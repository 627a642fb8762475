"""Reads from the GCS store on the GCS actor's thread, without ever stalling it on an outage.

The GCS reads the store to fault evicted entries back, to recover its tables on start and to
answer queries. While the store is known to be down (the background writer is failing, or
the last open or read failed) a read is not attempted and reports "unknown" (None), so the
actor keeps serving from memory; ``retry`` reopens the store at most every few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import structlog

from babyray.gcs.store import GcsStore, GcsStoreUnavailable, Record, TableName

__all__ = ["StoreReader"]

log = structlog.get_logger(__name__)

_RETRY_S = 1.0


class StoreReader:
    """The GCS actor's read side of the store; called only on the actor's thread."""

    def __init__(
        self, open_store: Callable[[], GcsStore], writer_healthy: Callable[[], bool], url: str
    ) -> None:
        self._open = open_store
        self._writer_healthy = writer_healthy
        self.url = url
        """The store URL, password redacted."""
        self._store: GcsStore | None = None
        self._next_try = 0.0
        self.failures = 0

    def open(self) -> bool:
        """Open the store now; False (and the error logged) if it is unreachable.

        Raises:
            ValueError, GcsSchemaVersionError: the URL or the store's schema is wrong.
        """
        if self._store is not None:
            return True
        self._next_try = time.monotonic() + _RETRY_S
        try:
            self._store = self._open()
        except GcsStoreUnavailable as exc:
            self._failed(exc)
            return False
        return True

    def available(self) -> bool:
        """Whether a read may be tried now (reopening the store if a retry is due)."""
        return self._readable() is not None

    def _readable(self) -> GcsStore | None:
        """The open store if a read may be tried now (reopening it if a retry is due)."""
        if not self._writer_healthy():
            return None
        if self._store is None and time.monotonic() >= self._next_try:
            self.open()
        return self._store

    def get_many(self, table: TableName, keys: Iterable[str]) -> dict[str, Record] | None:
        """Return the stored records of keys, or None if the store cannot be read now."""
        store = self._readable()
        if store is None:
            return None
        try:
            return store.get_many(table, keys)
        except GcsStoreUnavailable as exc:
            self._failed(exc)
            return None

    def scan(
        self, table: TableName, where: Mapping[str, str | None] | None = None, limit: int | None = None
    ) -> list[tuple[str, Record]] | None:
        """Return (key, record) pairs as GcsStore.scan filters them, or None if unreadable."""
        store = self._readable()
        if store is None:
            return None
        try:
            return store.scan_items(table, where, limit)
        except GcsStoreUnavailable as exc:
            self._failed(exc)
            return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _failed(self, exc: GcsStoreUnavailable) -> None:
        self.failures += 1
        if self._store is not None:
            self._store.close()
            self._store = None
        self._next_try = time.monotonic() + _RETRY_S
        log.error("gcs_store_read_failed", url=exc.url, error=exc.cause)

"""Background writing of GCS records to a GcsStore: batched, coalesced, riding out store outages."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable

import structlog

from babyray.gcs.store import (
    GcsStore,
    GcsStoreUnavailable,
    Record,
    StoreRow,
    TableName,
    check_table,
    encode_row,
)

__all__ = ["StoreWriter"]

log = structlog.get_logger(__name__)

Key = tuple[TableName, str]
_BACKOFF_START_S = 0.05
_BACKOFF_CAP_S = 2.0


class StoreWriter:
    """Writes enqueued puts and deletes to a GcsStore from one background thread.

    Any thread may enqueue: a put pickles its record at once (a snapshot) and neither call ever
    waits for the store. Writes to the same key coalesce to the latest, and reach the store in
    enqueue order. A batch (one transaction) is written at once when the writer is idle, and at
    most every flush_interval while it is busy.

    When the store cannot be opened or a write fails, the writer logs ``gcs_store_unavailable``
    once for the outage, keeps every entry in memory, retries the same batch with exponential
    backoff (capped at 2 s) and logs ``gcs_store_recovered`` once a write succeeds.
    """

    def __init__(
        self,
        store: GcsStore | Callable[[], GcsStore],
        on_durable: Callable[[list[Key]], None] | None = None,
        *,
        flush_interval: float = 0.05,
        max_batch: int = 5000,
    ) -> None:
        """Start the writer thread.

        Args:
            store: an open store, which the caller closes; or a factory, which the writer
                thread calls to open a store when it first writes and again after a failure,
                and whose stores the writer closes.
            on_durable: called on the writer thread after each batch commits, with the keys
                whose latest enqueued write is now in the store (a key may be enqueued again
                while it runs). An exception from it is logged and otherwise ignored.
            flush_interval: least time in seconds between the starts of two batches.
            max_batch: most entries in one batch.
        """
        self._open: Callable[[], GcsStore] = store if callable(store) else lambda: store
        self._owns_store = callable(store)
        self._store: GcsStore | None = None
        self._url: str | None = None
        self._on_durable = on_durable
        self._flush_interval = flush_interval
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: dict[Key, tuple[int, StoreRow | None]] = {}  # in enqueue order; None deletes
        self._batch: list[tuple[Key, StoreRow | None]] = []  # taken from _pending, being written
        self._batch_keys: set[Key] = set()  # the keys of _batch, for durable_among
        self._enqueued = 0  # sequence number of the latest enqueue
        self._durable = 0  # every enqueue up to this number is durable, or superseded by one
        self._next_batch_at = 0.0
        self._healthy = True
        self._outage_started = 0.0
        self._stopping = False  # close() was called: write what is pending, then stop
        self._abandoned = False  # close() timed out: stop without writing
        self._thread = threading.Thread(target=self._run, name="babyray-gcs-writer", daemon=True)
        self._thread.start()

    def enqueue_put(self, table: TableName, key: str, record: Record) -> None:
        """Queue an upsert of record under key.

        Raises:
            ValueError, TypeError: as encode_row, in the caller's thread.
            RuntimeError: the writer is closed.
        """
        self._enqueue((table, key), encode_row(table, key, record))

    def enqueue_delete(self, table: TableName, key: str) -> None:
        """Queue a delete of key.

        Raises:
            ValueError: table is not a GCS table.
            RuntimeError: the writer is closed.
        """
        check_table(table)
        self._enqueue((table, key), None)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything enqueued before this call is durable; None waits forever.

        Returns False if that did not happen within timeout (the store is down) or if close()
        gave up.
        """
        with self._cond:
            target = self._enqueued
            return (
                self._cond.wait_for(lambda: self._durable >= target or self._abandoned, timeout)
                and not self._abandoned
            )

    def close(self, timeout: float | None = 10.0) -> bool:
        """Write everything pending, stop the thread and close a store the writer opened.

        If the store stays unreachable for timeout seconds (None: wait forever), the thread stops
        anyway, the entries still pending are lost, ``gcs_store_writer_abandoned`` is logged and
        False is returned. Enqueueing after close() raises RuntimeError.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        flushed = self.flush(timeout)
        if not flushed:
            with self._cond:
                self._abandoned = True
                lost = len(self._pending) + len(self._batch)
                self._cond.notify_all()
            log.error("gcs_store_writer_abandoned", url=self._url, lost=lost)
        self._thread.join()
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None
        return flushed

    def pending_count(self) -> int:
        """Return how many (coalesced) writes are not yet durable."""
        with self._cond:
            return len(self._pending) + len(self._batch)

    def durable_among(self, table: TableName, keys: Iterable[str]) -> list[str]:
        """Return those of keys of table that have no write pending or being written.

        A key whose every enqueued write has committed is durable; so is a key never enqueued.
        Keys can only become pending again through the caller's own enqueues, so a key returned
        here stays durable until the caller writes it.
        """
        with self._cond:
            pending, batch = self._pending, self._batch_keys
            return [key for key in keys if (table, key) not in pending and (table, key) not in batch]

    def is_healthy(self) -> bool:
        """Return False while the store is unreachable or failing, True otherwise."""
        return self._healthy

    def _enqueue(self, key: Key, row: StoreRow | None) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("StoreWriter is closed")
            self._enqueued += 1
            self._pending.pop(key, None)  # re-insert at the end, keeping _pending in sequence order
            self._pending[key] = (self._enqueued, row)
            if len(self._pending) == 1 or len(self._pending) >= self._max_batch:
                self._cond.notify_all()

    def _run(self) -> None:
        while self._take_batch():
            if self._write_batch():
                self._report_durable()

    def _take_batch(self) -> bool:
        """Wait for a due batch and move it into _batch; return False when it is time to stop."""
        with self._cond:
            while True:
                if self._abandoned or (self._stopping and not self._pending):
                    return False
                wait = self._next_batch_at - time.monotonic()
                if self._pending and (wait <= 0 or self._stopping or len(self._pending) >= self._max_batch):
                    break
                self._cond.wait(wait if self._pending else None)
            self._next_batch_at = time.monotonic() + self._flush_interval
            keys = list(itertools.islice(self._pending, self._max_batch))
            self._batch = [(key, self._pending.pop(key)[1]) for key in keys]
            self._batch_keys = set(keys)
            return True

    def _write_batch(self) -> bool:
        """Write _batch, retrying with backoff; return False if close() gave up first."""
        backoff = _BACKOFF_START_S
        while True:
            try:
                self._write()
                return True
            except Exception as exc:  # retried: whatever the failure, no entry is dropped
                self._note_failure(exc)
            with self._cond:
                if self._cond.wait_for(lambda: self._abandoned, backoff):
                    return False
            backoff = min(2 * backoff, _BACKOFF_CAP_S)

    def _write(self) -> None:
        if self._store is None:
            self._store = self._open()
            self._url = self._store.url
        try:
            self._store.write(
                puts=[row for _, row in self._batch if row is not None],
                deletes=[key for key, row in self._batch if row is None],
            )
        except Exception:
            if self._owns_store:  # reopen through the factory on the next try
                self._store.close()
                self._store = None
            raise

    def _note_failure(self, exc: Exception) -> None:
        if isinstance(exc, GcsStoreUnavailable):
            self._url, error = exc.url, exc.cause
        else:
            error = f"{type(exc).__name__}: {exc}"
        if not self._healthy:
            return
        self._healthy = False
        self._outage_started = time.monotonic()
        log.error(
            "gcs_store_unavailable",
            url=self._url,
            error=error,
            pending=self.pending_count(),
            exc_info=not isinstance(exc, GcsStoreUnavailable),
        )

    def _report_durable(self) -> None:
        with self._cond:
            written = [key for key, _ in self._batch]
            self._batch = []
            self._batch_keys = set()
            self._durable = next(iter(self._pending.values()))[0] - 1 if self._pending else self._enqueued
            durable = [key for key in written if key not in self._pending]
            self._cond.notify_all()
        if not self._healthy:
            self._healthy = True
            log.info(
                "gcs_store_recovered",
                url=self._url,
                outage_s=round(time.monotonic() - self._outage_started, 3),
            )
        if self._on_durable is not None and durable:
            try:
                self._on_durable(durable)
            except Exception:
                log.exception("gcs_store_on_durable_failed", keys=len(durable))

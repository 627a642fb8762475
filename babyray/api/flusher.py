"""One daemon thread per client process that sends what its buffers collected, periodically.

Task state changes (``TaskEventBuffer``) and metric values (``MetricsReporter``) leave the
process off the caller's path: each buffer has a ``flush`` that sends what it holds through the
process's transport, and the ``PeriodicFlusher`` calls every registered ``flush`` each
``interval`` seconds, and a last time on ``close``.
"""

from __future__ import annotations

import threading
from typing import Callable

from babyray import log


class PeriodicFlusher:
    def __init__(self, interval: float, name: str = "babyray-flusher") -> None:
        self._interval = interval
        self._flushes: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def add(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` every round from now on."""
        self._flushes = [*self._flushes, flush]  # replaced, never changed: the loop reads it unlocked

    def flush_all(self) -> None:
        for flush in self._flushes:
            try:
                flush()
            except Exception:  # one failed buffer must not stop the others, nor the flushing
                log.get_logger("flusher").exception("flush_failed", flush=getattr(flush, "__qualname__", "?"))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush_all()

    def close(self) -> None:
        """Stop the thread and flush a last time."""
        self._stop.set()
        self.flush_all()

"""Sending this process's metric values (``metric_registry.REGISTRY``) to the GCS.

The process's ``PeriodicFlusher`` calls ``flush``: it sends the series changed since the last
round as one ``MetricsReport``, and every ``FULL_REPORT_PERIOD`` seconds all of them, which
also tells the GCS that the process is alive (it drops the series of a process silent for
longer, see babyray/gcs/metrics_table.py). The first report to a GCS, and the first after a
head restart, is a full one.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from babyray.api.metric_registry import REGISTRY, MetricRegistry
from babyray.protocol import gcs as gm

FULL_REPORT_PERIOD = 10.0


class MetricsReporter:
    def __init__(
        self,
        transport: Any,
        gcs: Any,
        reporter: str,
        registry: MetricRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._gcs = gcs
        self._reporter = reporter
        self._registry = registry
        self._clock = clock
        self._lock = threading.Lock()
        self._next_full = clock()  # now: the new GCS learns every value of this process

    def retarget(self, gcs: Any) -> None:
        """Report to a restarted GCS from now on, starting with every value."""
        with self._lock:
            self._gcs = gcs
            self._next_full = self._clock()

    def flush(self) -> None:
        with self._lock:
            now = self._clock()
            full = now >= self._next_full
            if full:
                self._next_full = now + FULL_REPORT_PERIOD
            series = self._registry.take(everything=full)
            if series:
                self._transport.send(self._gcs, gm.MetricsReport(self._reporter, series))

"""This process's custom metrics (``babyray.util.metrics``): their current values per tag set.

Every ``Counter``, ``Gauge`` and ``Histogram`` of a process records into the one ``REGISTRY``:
a counter's running total, a gauge's last value, a histogram's per-bucket counts, sum and
count, each per (metric name, tag values). ``take`` hands the series changed since the last
take (or all of them) to the ``MetricsReporter``, which sends them to the GCS. No I/O.

A series travels as ``(name, kind, description, tags, value)``: ``tags`` is a tuple of
``(key, value)`` pairs in the metric's declared order; ``value`` is a float for a counter or
a gauge, and ``(boundaries, bucket_counts, sum, count)`` for a histogram, whose
``bucket_counts`` has one count per boundary (values up to and including it, above the
previous one) and a last one for values above every boundary.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"


@dataclass(slots=True)
class _Declared:
    kind: str
    description: str
    boundaries: tuple[float, ...] = ()


@dataclass(slots=True)
class _Series:
    value: float = 0.0  # a counter's total, a gauge's last value, a histogram's sum
    counts: list[int] = field(default_factory=list)  # a histogram's buckets
    count: int = 0  # a histogram's observations


class MetricRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._declared: dict[str, _Declared] = {}
        self._series: dict[tuple[str, tuple], _Series] = {}
        self._changed: set[tuple[str, tuple]] = set()

    def declare(self, name: str, kind: str, description: str, boundaries: tuple[float, ...] = ()) -> None:
        """Note a metric made in this process; another of the same name must be of the same
        kind (and, for a histogram, have the same boundaries): both record into one series.

        Raises:
            ValueError: ``name`` is already a metric of another kind or other boundaries.
        """
        with self._lock:
            known = self._declared.get(name)
            if known is None:
                self._declared[name] = _Declared(kind, description, boundaries)
            elif known.kind != kind or known.boundaries != boundaries:
                had = f"a {known.kind}" + (
                    f" with boundaries {list(known.boundaries)}" if known.boundaries else ""
                )
                raise ValueError(f"Metric {name} is already {had} in this process.")

    def clear(self) -> None:
        """Forget every metric and value: a process forked from a driver starts without the driver's."""
        with self._lock:
            self._declared.clear()
            self._series.clear()
            self._changed.clear()

    def inc(self, name: str, tags: tuple, value: float) -> None:
        with self._lock:
            self._get(name, tags).value += value

    def set(self, name: str, tags: tuple, value: float) -> None:
        with self._lock:
            self._get(name, tags).value = float(value)

    def observe(self, name: str, tags: tuple, value: float) -> None:
        with self._lock:
            boundaries = self._declared[name].boundaries
            series = self._get(name, tags)
            if not series.counts:
                series.counts = [0] * (len(boundaries) + 1)
            series.counts[bisect.bisect_left(boundaries, value)] += 1  # le: upper bounds included
            series.value += value
            series.count += 1

    def _get(self, name: str, tags: tuple) -> _Series:
        key = (name, tags)
        self._changed.add(key)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        return series

    def take(self, everything: bool = False) -> tuple:
        """The series changed since the last take, or every series; as described above."""
        with self._lock:
            keys = list(self._series) if everything else list(self._changed)
            self._changed.clear()
            return tuple(self._row(name, tags) for name, tags in keys)

    def _row(self, name: str, tags: tuple) -> tuple:
        declared = self._declared[name]
        series = self._series[(name, tags)]
        if declared.kind == HISTOGRAM:
            value: object = (declared.boundaries, tuple(series.counts), series.value, series.count)
        else:
            value = series.value
        return (name, declared.kind, declared.description, tags, value)


REGISTRY = MetricRegistry()

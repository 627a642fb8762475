"""``MetricsTable``: the latest custom metric values of every process, rendered for Prometheus.

The GCS keeps each reported series per (metric, tags, reporting process), as Ray's metrics
agent keeps them per worker: a process's series carry its labels (``WorkerId``, ``NodeAddress``,
``Component``, ``SessionName``), so two processes recording the same metric and tags are two
series, summed by the query that wants the total. A process that has not reported for
``stale_after`` seconds (it reports everything at least every 10 s while alive) has ended:
its series are dropped, as Ray drops those of a worker silent for ``RAY_WORKER_TIMEOUT_S``
(120 s by default).

``render`` gives the Prometheus text exposition format (version 0.0.4), names prefixed with
``ray_`` as Ray exports them: a counter as ``ray_<name>_total``, a gauge as ``ray_<name>``, a
histogram as ``ray_<name>_bucket{le=...}`` (cumulative, ``+Inf`` last), ``_sum`` and
``_count``. Where processes declared one name as different kinds, the kind first reported
wins and the other series are left out. No I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from babyray.api.metric_registry import COUNTER, HISTOGRAM

STALE_AFTER = 120.0
NAMESPACE = "ray"
_LABEL_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(slots=True)
class _Reporter:
    labels: tuple  # ((key, value), ...) added to each of its series
    last_report: float
    series: dict[tuple[str, tuple], tuple] = field(default_factory=dict)  # (name, tags) -> row


class MetricsTable:
    def __init__(self, session_name: str = "", stale_after: float = STALE_AFTER) -> None:
        self._session_name = session_name
        self._stale_after = stale_after
        self._reporters: dict[str, _Reporter] = {}

    def __len__(self) -> int:
        return sum(len(reporter.series) for reporter in self._reporters.values())

    def update(self, reporter: str, node_address: str, series: tuple, now: float) -> None:
        """Take a process's report: ``series`` rows as babyray/api/metric_registry.py describes."""
        entry = self._reporters.get(reporter)
        if entry is None:
            labels = (
                ("Component", "core_worker"),
                ("NodeAddress", node_address),
                ("SessionName", self._session_name),
                ("WorkerId", reporter),
            )
            entry = self._reporters[reporter] = _Reporter(labels, now)
        entry.last_report = now
        for row in series:
            entry.series[(row[0], row[3])] = row

    def drop_stale(self, now: float) -> list[str]:
        """Forget the processes silent for ``stale_after`` seconds; their ids."""
        gone = [r for r, entry in self._reporters.items() if now - entry.last_report > self._stale_after]
        for reporter in gone:
            del self._reporters[reporter]
        return gone

    def render(self) -> str:
        """Every series in Prometheus text format, grouped by metric, one line per sample."""
        families: dict[str, tuple[str, str, list[str]]] = {}  # exported name -> kind, help, lines
        for entry in self._reporters.values():
            for name, kind, description, tags, value in entry.series.values():
                exported = _exported_name(name, kind)
                family = families.get(exported)
                if family is None:
                    family = families[exported] = (kind, description, [])
                elif family[0] != kind:
                    continue
                family[2].extend(_samples(exported, kind, tags + entry.labels, value))
        out: list[str] = []
        for exported in sorted(families):
            kind, description, lines = families[exported]
            out.append(f"# HELP {exported} {_escape_help(description)}")
            out.append(f"# TYPE {exported} {kind}")
            out.extend(lines)
        return "\n".join(out) + "\n" if out else ""


def _exported_name(name: str, kind: str) -> str:
    exported = f"{NAMESPACE}_{name}"
    if kind == COUNTER and not exported.endswith("_total"):
        exported += "_total"
    return exported


def _samples(exported: str, kind: str, labels: tuple, value: Any) -> list[str]:
    if kind != HISTOGRAM:
        return [f"{exported}{_labels(labels)} {_number(value)}"]
    boundaries, counts, total, count = value
    lines = []
    cumulative = 0
    for boundary, bucket in zip(boundaries, counts[:-1], strict=True):  # the last: above them all
        cumulative += bucket
        lines.append(f"{exported}_bucket{_labels(labels + (('le', _number(boundary)),))} {cumulative}")
    lines.append(f"{exported}_bucket{_labels(labels + (('le', '+Inf'),))} {count}")
    lines.append(f"{exported}_sum{_labels(labels)} {_number(total)}")
    lines.append(f"{exported}_count{_labels(labels)} {count}")
    return lines


def _labels(labels: tuple) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{_label_name(key)}="{_escape_value(str(value))}"' for key, value in labels)
    return "{" + inner + "}"


def _label_name(key: str) -> str:
    safe = _LABEL_UNSAFE.sub("_", key)
    return "_" + safe if safe[:1].isdigit() else safe


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)

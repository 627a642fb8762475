"""Reading the JSON log events ``babyray.log`` writes: load, filter, follow, and measure tasks.

Every babyray process writes structlog events, one JSON object per line, to
``<session_dir>/logs/<component>-<pid>.jsonl`` (``babyray.log``): ``ts``, ``level``,
``event``, ``component``, ``node_id``, ``pid`` and the event's ids. This module turns them
back into a list of dicts (no pandas), filters them by node, worker, task, component or
event name, follows them as they are written (``babyray logs``, babyray.cli.log_commands),
and computes what benchmarks report from the workers' ``task_executed`` events (start, end
per execution) instead of ad-hoc timers: latencies, throughput, executions per worker.

    events = babyray.log_reader.load(ray.init().address_info["session_dir"])
    runs = babyray.log_reader.task_executions(events)
    babyray.log_reader.latency_summary(runs)   # {"count":..., "mean_ms":..., "p50_ms":..., ...}
    babyray.log_reader.throughput(runs)        # executions per second over the busy span
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "filter_events",
    "follow",
    "latency_summary",
    "load",
    "log_files",
    "session_dirs",
    "task_executions",
    "throughput",
]


def session_dirs(extra: Iterable[str] = (), temp_dir: str | None = None) -> list[str]:
    """Session directories readable on this host: the given ones, this driver's session
    (after ``init()``) and those of the nodes ``babyray start`` recorded on this host (in the
    records of ``temp_dir``, default: the setting's)."""
    dirs = [d for d in extra if d]
    try:
        from babyray.api import context

        runtime = context.runtime_or_none()
        if runtime is not None and getattr(runtime, "session_dir", None):
            dirs.append(runtime.session_dir)
    except ImportError:
        pass
    from babyray.cli.node_records import read_records

    dirs.extend(record["session_dir"] for _, record in read_records(temp_dir) if record.get("session_dir"))
    seen: dict[str, None] = {}
    for d in dirs:
        seen.setdefault(os.path.abspath(d), None)
    return list(seen)


def log_files(dirs: str | Iterable[str]) -> list[str]:
    """The ``*.jsonl`` event files of session directories, log directories or files."""
    if isinstance(dirs, str):
        dirs = [dirs]
    files: list[str] = []
    for d in dirs:
        if os.path.isfile(d):
            files.append(d)
            continue
        log_dir = os.path.join(d, "logs") if os.path.isdir(os.path.join(d, "logs")) else d
        files.extend(sorted(glob.glob(os.path.join(log_dir, "*.jsonl"))))
    return files


def _parse_lines(lines: Iterable[str], source: str) -> Iterator[dict]:
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(event, dict):
            event.setdefault("source", source)
            yield event


def load(dirs: str | Iterable[str], events: Iterable[str] | None = None, **filters: Any) -> list[dict]:
    """All events of the sessions (``dirs``: session or log directories), ordered by time.

    Args:
        events: keep only these event names (e.g. ``("task_executed",)``).
        filters: as ``filter_events`` (``node``, ``worker``, ``task``, ``component``, ...).
    """
    wanted = set(events) if events is not None else None
    out = []
    for path in log_files(dirs):
        try:
            with open(path, errors="replace") as f:
                for event in _parse_lines(f, os.path.basename(path)):
                    if wanted is None or event.get("event") in wanted:
                        out.append(event)
        except OSError:
            continue  # a file removed while we read
    out.sort(key=lambda e: e.get("ts", 0))
    return filter_events(out, **filters) if filters else out


def _prefix_match(value: Any, wanted: str | None) -> bool:
    return wanted is None or (value is not None and str(value).startswith(wanted))


def filter_events(
    events: Iterable[dict],
    node: str | None = None,
    worker: str | None = None,
    task: str | None = None,
    component: str | None = None,
    event: str | None = None,
    level: str | None = None,
    since: float | None = None,
) -> list[dict]:
    """The events matching every given criterion; ids match by prefix (as printed short).

    ``task`` also matches events naming one of the task's objects (``object_id`` starts
    with the task id).
    """
    out = []
    for e in events:
        if not (
            _prefix_match(e.get("node_id") or e.get("node"), node)
            and _prefix_match(e.get("worker_id"), worker)
            and (component is None or e.get("component") == component)
            and (event is None or e.get("event") == event)
            and (level is None or str(e.get("level", "")).lower() == level.lower())
            and (since is None or e.get("ts", 0) >= since)
        ):
            continue
        if task is not None and not (
            _prefix_match(e.get("task_id"), task) or _prefix_match(e.get("object_id"), task)
        ):
            continue
        out.append(e)
    return out


def follow(
    dirs: str | Iterable[str], poll: float = 0.2, from_start: bool = False, stop: Any = None
) -> Iterator[dict]:
    """Yield events as processes append them (new log files are picked up too).

    Runs until ``stop()`` (if given) is true; without ``from_start`` only new events.
    """
    offsets: dict[str, int] = {}
    first = True
    while stop is None or not stop():
        for path in log_files(dirs):
            if path not in offsets:
                offsets[path] = 0 if (from_start or not first) else os.path.getsize(path)
            try:
                with open(path, errors="replace") as f:
                    f.seek(offsets[path])
                    chunk = f.read()
            except OSError:
                continue
            complete = chunk[: chunk.rfind("\n") + 1]  # a partial last line waits for its end
            offsets[path] += len(complete.encode())
            yield from sorted(
                _parse_lines(complete.splitlines(), os.path.basename(path)), key=lambda e: e.get("ts", 0)
            )
        first = False
        time.sleep(poll)


# ---- measuring tasks from events --------------------------------------------------------------


def task_executions(events: Iterable[dict]) -> list[dict]:
    """One dict per execution of a task or actor method, from workers' ``task_executed``
    events: ``task_id``, ``function``, ``state``, ``start``, ``end``, ``duration_s``,
    ``node_id``, ``worker_id``, ``pid``, ``attempt``; ordered by start."""
    runs = []
    for e in events:
        if e.get("event") != "task_executed" or e.get("start") is None or e.get("end") is None:
            continue
        runs.append(
            {
                "task_id": e.get("task_id"),
                "function": e.get("function", "?"),
                "state": e.get("state"),
                "start": float(e["start"]),
                "end": float(e["end"]),
                "duration_s": float(e["end"]) - float(e["start"]),
                "node_id": e.get("node_id") or "",
                "worker_id": e.get("worker_id") or str(e.get("pid", "")),
                "pid": e.get("pid"),
                "attempt": e.get("attempt", 0),
            }
        )
    runs.sort(key=lambda r: r["start"])
    return runs


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(runs: Iterable[dict], key: str = "duration_s") -> dict:
    """Count, mean, p50, p90, p99 and max of ``key`` (seconds) over runs, in milliseconds."""
    values = sorted(float(r[key]) for r in runs if r.get(key) is not None)
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean_ms": 1e3 * sum(values) / len(values),
        "p50_ms": 1e3 * _quantile(values, 0.5),
        "p90_ms": 1e3 * _quantile(values, 0.9),
        "p99_ms": 1e3 * _quantile(values, 0.99),
        "max_ms": 1e3 * values[-1],
    }


def throughput(runs: list[dict], since: float | None = None) -> float:
    """Executions per second between the first start and the last end (0 if none)."""
    runs = [r for r in runs if since is None or r["start"] >= since]
    if not runs:
        return 0.0
    span = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return len(runs) / span if span > 0 else float("inf")

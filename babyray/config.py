"""Configuration defaults, one table; ``BABYRAY_<NAME>`` environment variables override them.

Precedence, read once where a component is constructed: argument > environment > default.
"""
from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Values up to this many bytes travel inline in messages; larger ones go to the node's
    # shared-memory arena. benchmarks/arena_probe.py measured it: two message crossings of a
    # 128 KB value cost at most ~0.5 ms, no more than the arena path's extra round trip.
    "inline_threshold": 128 * 1024,
    # Size of each node's shared-memory object arena, in bytes.
    "object_store_memory": 512 * 1024 * 1024,
    # Root of the per-session directories (logs, spill files, SQLite GCS store) and of the
    # CLI's node records; not named like the package, which it would shadow for a script run
    # from /tmp.
    "temp_dir": "/tmp/babyray-sessions",
    # Default retries of a task whose worker dies (Ray's default is 3; -1 is unbounded).
    "task_max_retries": 3,
    # Seconds between a node's heartbeats, and of silence after which it is marked dead.
    "heartbeat_period": 0.5,
    "node_timeout": 5.0,
    # Tasks a worker may hold queued behind the running one when the node is saturated.
    "worker_pipeline_depth": 16,
    # Most worker processes a node runs (blocked workers need replacements to avoid deadlock).
    "max_workers": 256,
    # Seconds an idle worker above the CPU count lives before it is stopped.
    "idle_worker_timeout": 10.0,
    # GCS store URL; empty means a SQLite file in the session directory.
    "gcs_url": "",
    # Prefix of the GCS store's table names (several clusters may share one database).
    "gcs_table_prefix": "babyray_",
    # Evict durable GCS entries of finished work from memory (the paper's Figure 10b).
    "gcs_flushing": True,
    # Seconds between two GCS flush passes.
    "gcs_flush_period": 1.0,
    # Most entries one GCS table keeps in memory when flushing (0: only finished work leaves).
    "gcs_flush_max_entries": 0,
}


def get(name: str, override: Any = None) -> Any:
    """The value of setting ``name``: ``override`` if given, else environment, else default."""
    if override is not None:
        return override
    default = DEFAULTS[name]
    raw = os.environ.get(f"BABYRAY_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(float(raw))
    if isinstance(default, float):
        return float(raw)
    return raw

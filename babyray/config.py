"""Configuration defaults, one table, and ``Settings``, the one way to read a setting.

Precedence, read once where a component is constructed: explicit value (an ``init()`` or
``babyray start`` argument, a value carried in a start message) > the ``BABYRAY_<NAME>``
environment variable > the default below. An explicit ``None`` counts as not given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Values up to this many bytes travel inline in messages; larger ones go to the node's
    # shared-memory arena. benchmarks/arena_probe.py measured it: two message crossings of a
    # 128 KB value cost at most ~0.5 ms, no more than the arena path's extra round trip.
    "inline_threshold": 128 * 1024,
    # Size of each node's shared-memory object arena, in bytes; 0 means Ray's default, 30% of
    # the machine's memory capped by the free space of /dev/shm (``object_store_default``).
    # Only its first 512 MiB are pre-faulted at start (babyray.store.arena.PREFAULT_MAX).
    "object_store_memory": 0,
    # Root of the per-session directories (logs, spill files, SQLite GCS store) and of the
    # CLI's node records; not named like the package, which it would shadow for a script run
    # from /tmp.
    "temp_dir": "/tmp/babyray-sessions",
    # Directory of the CLI's node records; empty means ``<temp_dir>/nodes``.
    "state_dir": "",
    # This host's address in the cluster; empty means the address on the route to the head
    # (127.0.0.1 for a head).
    "node_ip": "",
    # Default retries of a task whose worker dies (Ray's default is 3; -1 is unbounded).
    "task_max_retries": 3,
    # Seconds between a node's heartbeats, and of silence after which it is marked dead.
    "heartbeat_period": 0.5,
    "node_timeout": 5.0,
    # Placement policy of the whole cluster: "locality" (inputs' location counts) or "queue".
    "scheduling_policy": "locality",
    # Tasks a worker may hold queued behind the running one when the node is saturated.
    "worker_pipeline_depth": 16,
    # Most worker processes a node runs. Hard for actors; soft for tasks: when every worker is
    # blocked in get and a task waits, one more starts (with a warning) rather than deadlock.
    "max_workers": 256,
    # Seconds an idle worker above the CPU count lives before it is stopped.
    "idle_worker_timeout": 10.0,
    # Seconds a worker stays leased to a task's owner with nothing to run (the owner pushes its
    # next task of that shape straight to the worker meanwhile); 0 turns worker leases off.
    "lease_idle_timeout": 0.1,
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
    # Port on the head's address where the GCS serves custom metrics (ray.util.metrics) in
    # Prometheus format, GET /metrics; 0: not served. Ray's init(_metrics_export_port=).
    "metrics_export_port": 0,
}

_TRUE = ("1", "true", "yes", "on")
OBJECT_STORE_MEMORY_PROPORTION = 0.3  # as Ray's default


def object_store_default(mem_total: int, shm_free: int) -> int:
    """A node's arena size when none is given: 30% of the machine's memory (``mem_total``
    bytes), but no more than the free space of /dev/shm (``shm_free`` bytes), where it lives."""
    return min(int(mem_total * OBJECT_STORE_MEMORY_PROPORTION), shm_free)


def machine_object_store_default() -> int:
    """``object_store_default`` for this machine: MemTotal of /proc/meminfo, /dev/shm's free space."""
    with open("/proc/meminfo") as f:
        mem_total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    shm = os.statvfs("/dev/shm")
    return object_store_default(mem_total, shm.f_bavail * shm.f_frsize)


class Settings:
    """Every setting of ``DEFAULTS`` as a typed attribute, resolved when read in the order of
    the module docstring; values are converted to the default's type.

        settings = Settings(msg.config)       # the explicit values a start message carries
        settings.max_workers                  # 256 unless given or BABYRAY_MAX_WORKERS is set

    Raises:
        ValueError: an explicit name that is no setting (on construction), or a value that
            does not convert (on reading, naming the setting and where the value came from).
    """

    inline_threshold: int
    object_store_memory: int
    temp_dir: str
    state_dir: str
    node_ip: str
    task_max_retries: int
    heartbeat_period: float
    node_timeout: float
    scheduling_policy: str
    worker_pipeline_depth: int
    max_workers: int
    idle_worker_timeout: float
    lease_idle_timeout: float
    gcs_url: str
    gcs_table_prefix: str
    gcs_flushing: bool
    gcs_flush_period: float
    gcs_flush_max_entries: int
    metrics_export_port: int

    def __init__(
        self, explicit: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        given = {name: value for name, value in (explicit or {}).items() if value is not None}
        unknown = set(given) - DEFAULTS.keys()
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        self._explicit = given
        self._environ = os.environ if environ is None else environ

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"{type(self).__name__!r} has no setting {name!r}")
        if name in self._explicit:
            value, source = self._explicit[name], "the argument"
        else:
            variable = f"BABYRAY_{name.upper()}"
            if variable not in self._environ:
                return DEFAULTS[name]
            value, source = self._environ[variable], variable
        try:
            return _convert(value, DEFAULTS[name])
        except ValueError:
            raise ValueError(
                f"setting {name}: {value!r} from {source} is not a {type(DEFAULTS[name]).__name__}"
            ) from None


def _convert(value: Any, default: Any) -> Any:
    """``value`` (an argument, or an environment variable's text) as the type of ``default``."""
    if isinstance(default, bool):
        return value.strip().lower() in _TRUE if isinstance(value, str) else bool(value)
    if isinstance(default, int):
        return int(float(value)) if isinstance(value, str) else int(value)
    if isinstance(default, float):
        return float(value)
    return str(value)

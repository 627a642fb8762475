"""The memory report: what every node's object store holds, pins, spilled and restored.

Like Ray's ``memory_summary`` (``ray._private.internal_api``), but also as data:
``memory_stats()`` returns one dict per node, ``memory_summary()`` a printable table.
"""
from __future__ import annotations

from typing import Any

from babyray.actors import messages as m
from babyray.actors import object_messages as om
from babyray.api import context

__all__ = ["memory_stats", "memory_summary"]

_MB = 1024 * 1024


def memory_stats(timeout: float = 30.0) -> list[dict]:
    """Per node: used, pinned, spilled and restored bytes and object counts of its store.

    Frees of refs dropped before the call are sent first, so the numbers include them.
    Each dict has ``node_id``, ``capacity_bytes``, ``used_bytes`` (objects), ``spare_bytes``
    (slots reserved for processes' next puts), ``num_objects``,
    ``num_pinned``/``pinned_bytes``, ``num_spilled_now``/``spilled_now_bytes`` (only on
    disk now), cumulative ``num_spilled``/``spilled_bytes`` and ``num_restored``/
    ``restored_bytes``, and ``num_freed``.

    Raises:
        RuntimeError: before ``init()``.
        RayError: if a store does not answer within ``timeout`` seconds.
    """
    core = context.runtime().core
    core.refs.drain()
    stores = _stores(core)
    return [core.request(store, lambda r: om.GetStoreStats(r), timeout).stats for store in stores]


def _stores(core: Any) -> list:
    try:
        nodes = core.request(core.gcs, lambda r: m.GetNodes(r), 10.0).nodes
    except Exception:  # the GCS is slow or away: report this node's store at least
        nodes = ()
    stores = [n.store for n in nodes if n.alive and n.store is not None]
    return stores or [core.store]


def memory_summary() -> str:
    """A table of ``memory_stats()``, one line per node, sizes in MB."""
    lines = [f"{'node':<18}{'used MB':>10}{'cap MB':>10}{'objects':>9}{'pinned MB':>11}"
             f"{'spilled MB (now)':>18}{'spilled MB':>12}{'restored MB':>13}"]
    for s in memory_stats():
        lines.append(f"{s['node_id']:<18}{s['used_bytes'] / _MB:>10.1f}{s['capacity_bytes'] / _MB:>10.1f}"
                     f"{s['num_objects']:>9}{s['pinned_bytes'] / _MB:>11.1f}{s['spilled_now_bytes'] / _MB:>18.1f}"
                     f"{s['spilled_bytes'] / _MB:>12.1f}{s['restored_bytes'] / _MB:>13.1f}")
    return "\n".join(lines)

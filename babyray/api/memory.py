"""The memory report: what every node's object store holds, and who holds references to what.

Like Ray's ``ray memory`` and ``memory_summary`` (``ray._private.internal_api``), but also as
data: ``memory_stats()`` returns one dict per node's store (used, pinned, spilled, restored),
``memory_references()`` one row per object each driver and worker holds a reference to
(asked of every one of them now, see ``reference_report`` for the reference types),
``memory_report()`` both with the stores' objects, and ``memory_summary()`` that as text.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from babyray import exceptions
from babyray.api import cluster_processes, context
from babyray.api.reference_report import REFERENCE_TYPES
from babyray.ids import TaskID, is_put_object, task_id_of
from babyray.protocol import gcs as gm
from babyray.protocol import objects as om
from babyray.text_table import format_table

if TYPE_CHECKING:
    from babyray.api.core import CoreClient

__all__ = ["format_memory_report", "memory_references", "memory_report", "memory_stats", "memory_summary"]

_MB = 1024 * 1024
DEFAULT_TIMEOUT = 10.0

_REFERENCE_COLUMNS = [
    ("pid", "PID", 7),
    ("type", "TYPE", 6),
    ("worker_id", "WORKER ID", 15),
    ("object_id", "OBJECT ID", 20),
    ("size", "SIZE", 10),
    ("reference_type", "REFERENCE TYPE", 20),
    ("store_state", "IN STORE", 12),
    ("made_by", "MADE BY", 14),
    ("detail", "DETAIL", 40),
]


def memory_stats(timeout: float = 30.0, objects: bool = False) -> list[dict]:
    """Per node: used, pinned, spilled and restored bytes and object counts of its store.

    Frees of refs dropped before the call are sent first, so the numbers include them.
    Each dict has ``node_id``, ``capacity_bytes``, ``used_bytes`` (objects), ``spare_bytes``
    (slots reserved for processes' next puts), ``num_objects``,
    ``num_pinned``/``pinned_bytes``, ``num_spilled_now``/``spilled_now_bytes`` (only on
    disk now), cumulative ``num_spilled``/``spilled_bytes`` and ``num_restored``/
    ``restored_bytes``, and ``num_freed``. With ``objects``, also ``objects``: object id ->
    ``size``, ``state`` (IN_MEMORY, PINNED, SPILLED or BEING_WRITTEN), ``pins``, ``primary``
    (the first copy, not one pulled from another node) and ``on_disk``.

    Raises:
        RuntimeError: before ``init()``.
        RayError: if a store does not answer within ``timeout`` seconds.
    """
    core = context.runtime().core
    core.refs.drain()
    stores = _stores(core)
    replies = core.request_many(
        [(store, lambda r: om.GetStoreStats(r, objects=objects)) for store in stores], timeout
    )
    silent = [str(store) for store, reply in zip(stores, replies, strict=True) if reply is None]
    if silent:
        raise exceptions.RayError(f"no reply within {timeout}s from the object store(s) {', '.join(silent)}")
    return [reply.stats for reply in replies]


def _stores(core: CoreClient) -> list:
    try:
        nodes = cluster_processes.alive_nodes(core, DEFAULT_TIMEOUT)
    except Exception:  # the GCS is slow or away: report this node's store at least
        nodes = ()
    return [n.store for n in nodes if n.store is not None] or [core.store]


def memory_references(timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Who holds references to which objects: every driver and worker is asked now.

    Returns ``{"references": [...], "unreachable": [...]}``. A reference row is one object in
    one process: the process's ``type`` (driver or worker), ``pid``, ``ip``, ``node_id``,
    ``worker_id``, ``job_id``, ``actor_id``; the object's ``reference_type`` and counts (see
    ``babyray.api.reference_report``), its ``owner_id``, ``size_bytes`` (None if unknown)
    and ``made_by`` ("put", or the function of the task that returned it). ``unreachable``
    lists the processes that did not answer within ``timeout`` seconds.

    Raises:
        RuntimeError: before ``init()``.
        RayError: the GCS did not answer.
    """
    core = context.runtime().core
    answered, silent = cluster_processes.reference_snapshots(core, timeout)
    rows = [
        {**{k: v for k, v in p.items() if k != "references"}, **ref}
        for p in answered
        for ref in p["references"]
    ]
    owners = {r["object_id"]: r["worker_id"] for r in rows if r["owned"]}
    sizes = {r["object_id"]: r["size_bytes"] for r in rows if r["size_bytes"] is not None}
    tasks = {task_id_of(r["object_id"]) for r in rows if not is_put_object(r["object_id"])}
    names = _task_names(core, tasks, timeout)
    for r in rows:
        oid = r["object_id"]
        r.update(
            owner_id=owners.get(oid),
            size_bytes=sizes.get(oid),
            made_by="put" if is_put_object(oid) else names.get(task_id_of(oid)) or "task",
        )
    rows.sort(
        key=lambda r: (r["node_id"] or "", r["type"] != "driver", r["pid"] or 0, -(r["size_bytes"] or 0))
    )
    return {"references": rows, "unreachable": silent}


def _task_names(core: "CoreClient", task_ids: set[TaskID], timeout: float) -> dict[str, str]:
    """Function names of tasks, from the GCS task table (tasks it does not know are left out)."""
    if not task_ids:
        return {}
    reply = core.request(core.gcs, lambda r: gm.GetTableEntries(r, "tasks", tuple(task_ids)), timeout)
    return {key: record.get("name", "") for key, record in reply.entries if record}


def memory_report(timeout: float = DEFAULT_TIMEOUT) -> dict:
    """What ``babyray memory`` shows: ``stores`` (``memory_stats``), ``objects_by_node`` (the
    objects each node's store holds, from the GCS object table) and ``memory_references()``.

    For drivers (the object table is read through the state API).
    """
    from babyray.util import state

    stats = memory_stats(timeout, objects=True)
    by_node: dict[str, list[dict]] = {}
    for obj in state.list_objects(filters=[("state", "=", "STORED")], limit=None, timeout=timeout):
        for node in obj["locations"]:
            by_node.setdefault(node, []).append(obj)
    return {"stores": stats, "objects_by_node": by_node, **memory_references(timeout)}


def memory_summary(limit: int = 50) -> str:
    """``memory_report()`` as text: store totals, then per node its store and the references
    held by the processes on it (at most ``limit`` per node)."""
    return format_memory_report(memory_report(), limit)


def format_memory_report(report: dict, limit: int = 50) -> str:
    """The text of ``babyray memory`` for a ``memory_report()``."""
    stats, refs = report["stores"], report["references"]
    total = {
        k: sum(s[k] for s in stats)
        for k in (
            "capacity_bytes",
            "used_bytes",
            "num_objects",
            "pinned_bytes",
            "spilled_now_bytes",
            "num_spilled_now",
        )
    }
    kinds = Counter(r["reference_type"] for r in refs)
    lines = [
        f"object stores: {len(stats)} node(s), {total['used_bytes'] / _MB:.1f} of "
        f"{total['capacity_bytes'] / _MB:.1f} MB used by {total['num_objects']} objects; "
        f"{total['pinned_bytes'] / _MB:.1f} MB pinned; {total['num_spilled_now']} spilled "
        f"({total['spilled_now_bytes'] / _MB:.1f} MB on disk)",
        f"references: {len(refs)} held by {len({(r['ip'], r['pid']) for r in refs})} processes ("
        + ", ".join(f"{kinds[t]} {t}" for t in REFERENCE_TYPES)
        + ")",
    ]
    store_of = {s["node_id"]: s for s in stats}
    held = {r["object_id"] for r in refs}
    nodes = list(store_of) + sorted(
        {r["node_id"] for r in refs if r["node_id"] and r["node_id"] not in store_of}
    )
    for node in nodes + ([None] if any(r["node_id"] is None for r in refs) else []):
        rows = [r for r in refs if r["node_id"] == node]
        ips = sorted({r["ip"] for r in rows if r["ip"]})
        lines.append(
            f"\n--- node {node} ({', '.join(ips) or 'no process holds references'}) ---"
            if node
            else f"\n--- hosts without a node ({', '.join(ips)}) ---"
        )
        if node in store_of:
            s = store_of[node]
            lines.append(
                f"store: used {s['used_bytes'] / _MB:.1f}/{s['capacity_bytes'] / _MB:.1f} MB, "
                f"{s['num_objects']} objects, pinned {s['num_pinned']} ({s['pinned_bytes'] / _MB:.1f} MB), "
                f"spilled now {s['num_spilled_now']} ({s['spilled_now_bytes'] / _MB:.1f} MB), "
                f"restored {s['num_restored']}"
            )
        if rows:
            held_here = (store_of.get(node) or {}).get("objects", {})
            lines.append(format_table([_display(r, held_here) for r in rows[:limit]], _REFERENCE_COLUMNS))
            if len(rows) > limit:
                lines.append(f"... {len(rows) - limit} more")
        in_store = (store_of.get(node) or {}).get("objects", {})
        loose = [
            o["object_id"] for o in report["objects_by_node"].get(node, []) if o["object_id"] not in held
        ]
        if loose:
            lines.append(
                "in this store, held by no process that answered: "
                + ", ".join(f"{oid} ({in_store[oid]['state']})" if oid in in_store else oid for oid in loose)
            )
    for p in report["unreachable"]:
        lines.append(
            f"\nno answer from {p['type']} pid {p['pid']} at {p['ip']} ({p['worker_id'] or p['job_id']})"
        )
    return "\n".join(lines)


def _display(r: dict, in_store: dict) -> dict:
    """A reference row with its SIZE, IN STORE and DETAIL cells; ``in_store`` is the state of
    the objects in the store of the row's node (an object not there lives on another node)."""

    def first(items: list[str]) -> str:
        return items[0] + (f" +{len(items) - 1}" if len(items) > 1 else "")

    detail = []
    if r["pending_tasks"]:
        detail.append(
            "arg of task " + first([f"{t} ({name or '?'})" for t, name in r["pending_tasks"].items()])
        )
    if r["captured_in"]:
        detail.append("in " + first(r["captured_in"]))
    if r["pinned_views"]:
        detail.append(f"{r['pinned_views']} zero-copy value(s)")
    if r["owned"] and r["borrowers"]:
        detail.append("borrowed by " + ",".join(r["borrowers"]))
    elif not r["owned"]:
        detail.append(f"owner {r['owner_id'] or '?'}")
    stored = in_store.get(r["object_id"], {})
    size = r["size_bytes"] if r["size_bytes"] is not None else stored.get("size")
    inline = r["size_bytes"] is not None and r["stored_on"] is None  # the holder has the value itself
    state = stored.get("state") or ("INLINE" if inline else "-")
    return {**r, "size": "?" if size is None else size, "store_state": state, "detail": "; ".join(detail)}

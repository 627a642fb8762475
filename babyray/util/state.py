"""The state API: what the cluster's tasks, actors, objects, nodes and workers are doing.

Like ``ray.util.state``: ``list_tasks(filters=[("state", "=", "FAILED")], limit=100)``,
``get_task(task_id)``, ``summarize_tasks()`` and friends return plain dicts (JSON-able),
read from the GCS tables, including entries the GCS flushed out of memory to its store.
Called by a driver after ``init()`` (the ``babyray list``/``get``/``summary`` commands
connect as one); each call is a request to the GCS through a private Thespian context, and
``list_workers`` also asks every node's local scheduler for its worker table.

Task states: PENDING (submitted, waiting for resources or a node), SCHEDULED (queued in a
worker), RUNNING, FINISHED, FAILED, RETRIED (an attempt failed and the task was submitted
again), CANCELLED. A failed task carries ``error_type``, ``error_message`` and the remote
``traceback``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Union

from babyray.api import cluster_processes, context
from babyray.exceptions import RayError
from babyray.gcs.node_liveness import NodeLiveness
from babyray.ids import ActorID, NodeID, ObjectID, TaskID, is_put_object, task_id_of
from babyray.protocol import gcs as gm

__all__ = [
    "DEFAULT_LIMIT",
    "StateApiError",
    "get_actor",
    "get_object",
    "get_task",
    "list_actors",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_tasks",
]

DEFAULT_LIMIT = 100
DEFAULT_TIMEOUT = 30.0

Filter = tuple[str, str, Any]
Filters = Union[Iterable[Filter], Mapping[str, Any], None]

_TASK_STATE = {
    "submitted": "PENDING",
    "scheduled": "SCHEDULED",
    "running": "RUNNING",
    "finished": "FINISHED",
    "failed": "FAILED",
    "retried": "RETRIED",
    "cancelled": "CANCELLED",
}
_STORED_TASK_STATE = {shown: stored for stored, shown in _TASK_STATE.items()}


class StateApiError(RuntimeError):
    """The GCS did not answer a state query, or answered with an error."""


# ---- talking to the GCS -------------------------------------------------------------------


def _ask(msg: Any, timeout: float) -> Any:
    runtime = context.runtime()
    if not getattr(runtime, "is_driver", False):
        raise StateApiError("the state API is for drivers (call it outside tasks and actors)")
    if runtime.core.task_events is not None:
        runtime.core.task_events.flush()  # this driver's own buffered task events first
    with runtime.head.system.private() as ctx:
        reply = ctx.ask(runtime.gcs, msg, timeout)
    if reply is None:
        raise StateApiError(f"the GCS did not answer {type(msg).__name__} within {timeout}s")
    if getattr(reply, "error", None):
        raise StateApiError(f"the GCS could not answer: {reply.error}")
    return reply


def _scan(table: str, where: dict | None, timeout: float) -> list[tuple[str, dict]]:
    return list(_ask(gm.ListTable(f"state-{table}", table, where), timeout).entries)


def _get(table: str, key: str, timeout: float) -> dict | None:
    entries = dict(_ask(gm.GetTableEntries(f"state-get-{table}", table, (key,)), timeout).entries)
    return entries.get(key)


# ---- filters -------------------------------------------------------------------------------


def _normalize_filters(filters: Filters) -> list[Filter]:
    """``{"state": "FAILED"}`` or ``[("state", "=", "FAILED")]`` -> a list of triples."""
    if filters is None:
        return []
    if isinstance(filters, Mapping):
        return [(key, "=", value) for key, value in filters.items()]
    out = []
    for item in filters:
        if len(item) != 3 or item[1] not in ("=", "!="):
            raise ValueError(f"bad filter {item!r}: expected (key, '=' or '!=', value)")
        out.append(tuple(item))
    return out


def _matches(row: dict, filters: list[Filter]) -> bool:
    for key, op, value in filters:
        actual = row.get(key)
        if isinstance(actual, bool) or isinstance(value, bool):
            equal = str(actual).lower() == str(value).lower()
        elif isinstance(actual, (int, float)) and not isinstance(value, (int, float)):
            try:
                equal = actual == float(value)
            except ValueError:
                equal = False
        else:
            equal = str(actual).lower() == str(value).lower() if actual is not None else value in (None, "")
        if equal != (op == "="):
            return False
    return True


def _select(rows: Iterable[dict], filters: list[Filter], limit: int | None) -> list[dict]:
    out = []
    for row in rows:
        if _matches(row, filters):
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
    return out


# ---- tasks -----------------------------------------------------------------------------------


def _task_row(task_id: TaskID, r: dict) -> dict:
    spec = r.get("spec")
    started, finished = r.get("started_at"), r.get("finished_at")
    row = {
        "task_id": task_id,
        "name": r.get("name") or getattr(spec, "function_name", ""),
        "state": _TASK_STATE.get(r.get("state", ""), str(r.get("state", "")).upper()),
        "type": "ACTOR_TASK" if r.get("actor_id") else "NORMAL_TASK",
        "job_id": r.get("job_id") or getattr(spec, "job_id", None),
        "actor_id": r.get("actor_id"),
        "node_id": r.get("node_id"),
        "worker_id": r.get("worker_id"),
        "attempt": int(r.get("attempt") or 0),
        "required_resources": dict(getattr(spec, "resources", None) or {}),
        "submitted_at": r.get("submitted_at"),
        "started_at": started,
        "finished_at": finished,
        "duration_s": round(finished - started, 6) if started and finished and finished >= started else None,
    }
    for key in ("error_type", "error_message", "traceback"):
        if r.get(key):
            row[key] = r[key]
    return row


def list_tasks(
    filters: Filters = None,
    limit: int | None = DEFAULT_LIMIT,
    timeout: float = DEFAULT_TIMEOUT,
    detail: bool = False,
) -> list[dict]:
    """The tasks (and actor method calls) the GCS knows, oldest update first; not those
    submitted with ``enable_task_events=False``.

    Args:
        filters: ``[(key, "=" | "!=", value)]`` or ``{key: value}`` on the row fields,
            e.g. ``[("state", "=", "FAILED")]``, ``{"name": "f", "node_id": "..."}``.
            Comparison is on the text, case-insensitive.
        limit: at most this many rows (None: all).
        detail: keep ``traceback`` (failed tasks); without it only the error text is kept.

    Raises:
        StateApiError: the GCS did not answer within ``timeout`` or could not read its store.
    """
    filters = _normalize_filters(filters)
    where = None
    for key, op, value in filters:
        stored = _STORED_TASK_STATE.get(str(value).upper())
        if key == "state" and op == "=" and stored is not None:
            where = {"state": stored}  # the store's indexed column narrows the scan
    rows = (_task_row(TaskID(k), r) for k, r in _scan("tasks", where, timeout) if not r.get("hidden"))
    rows_out = _select(rows, filters, limit)
    if not detail:
        for row in rows_out:
            row.pop("traceback", None)
    return rows_out


def get_task(task_id: TaskID, timeout: float = DEFAULT_TIMEOUT) -> dict | None:
    """One task with every field (traceback included), or None if the GCS never saw it (or it
    was submitted with ``enable_task_events=False``)."""
    record = _get("tasks", task_id, timeout)
    return None if record is None or record.get("hidden") else _task_row(task_id, record)


def summarize_tasks(timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Task counts by function name and state: ``{"summary": {name: {"state_counts":
    {STATE: n}, "type": ...}}, "total_tasks": n}``."""
    summary: dict[str, dict] = {}
    total = 0
    for row in list_tasks(limit=None, timeout=timeout):
        entry = summary.setdefault(row["name"], {"state_counts": Counter(), "type": row["type"]})
        entry["state_counts"][row["state"]] += 1
        total += 1
    for entry in summary.values():
        entry["state_counts"] = dict(entry["state_counts"])
    return {"summary": dict(sorted(summary.items())), "total_tasks": total}


# ---- actors --------------------------------------------------------------------------------


def _actor_row(actor_id: ActorID, r: dict) -> dict:
    return {
        "actor_id": actor_id,
        "class_name": r.get("class_name") or getattr(r.get("info"), "class_name", ""),
        "name": r.get("name") or "",
        "state": r.get("state", ""),
        "node_id": r.get("node_id"),
        "worker_id": r.get("worker_id"),
        "pid": r.get("pid"),
        "num_restarts": r.get("num_restarts", 0),
        "max_restarts": r.get("max_restarts", 0),
        "detached": bool(r.get("detached")),
        "death_cause": r.get("death_cause") or "",
    }


def list_actors(
    filters: Filters = None, limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
) -> list[dict]:
    """The actors (state PENDING, ALIVE, RESTARTING or DEAD, node, worker, pid, restarts)."""
    rows = (_actor_row(ActorID(k), r) for k, r in _scan("actors", None, timeout))
    return _select(rows, _normalize_filters(filters), limit)


def get_actor(actor_id: ActorID, timeout: float = DEFAULT_TIMEOUT) -> dict | None:
    record = _get("actors", actor_id, timeout)
    return None if record is None else _actor_row(actor_id, record)


# ---- objects -------------------------------------------------------------------------------


def _object_row(object_id: ObjectID, r: dict) -> dict:
    put = _is_put(object_id)
    return {
        "object_id": object_id,
        "size_bytes": r.get("size", 0),
        "state": str(r.get("state", "")).upper(),
        "locations": sorted(r.get("locations") or ()),
        "made_by": "put" if put else "task",
        "task_id": None if put else task_id_of(object_id),
    }


def _is_put(object_id: ObjectID) -> bool:
    try:
        return is_put_object(object_id)
    except ValueError:
        return False


def list_objects(
    filters: Filters = None, limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
) -> list[dict]:
    """Objects held in node stores (small inline values never reach a store: not listed).

    ``state`` is STORED (a copy exists on ``locations``) or FREED (no copy left).
    """
    rows = (_object_row(ObjectID(k), r) for k, r in _scan("objects", None, timeout))
    return _select(rows, _normalize_filters(filters), limit)


def get_object(object_id: ObjectID, timeout: float = DEFAULT_TIMEOUT) -> dict | None:
    record = _get("objects", object_id, timeout)
    return None if record is None else _object_row(ObjectID(object_id), record)


# ---- placement groups ----------------------------------------------------------------------


def _placement_group_row(pg_id: str, r: dict) -> dict:
    return {
        "placement_group_id": pg_id,
        "name": r.get("name") or "",
        "state": r.get("state", ""),
        "strategy": r.get("strategy", ""),
        "bundles": [dict(b) for b in r.get("bundles") or ()],
        "bundles_to_node_id": dict(r.get("bundles_to_node_id") or {}),
        "creator_job_id": r.get("job_id"),
        "is_detached": r.get("lifetime") == "detached",
    }


def list_placement_groups(
    filters: Filters = None, limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
) -> list[dict]:
    """The placement groups (state PENDING, CREATED or REMOVED), their bundles and nodes."""
    rows = (_placement_group_row(k, r) for k, r in _scan("placement_groups", None, timeout))
    return _select(rows, _normalize_filters(filters), limit)


# ---- nodes and workers ---------------------------------------------------------------------


def _node_row(node_id: NodeID, r: dict) -> dict:
    return {
        "node_id": node_id,
        "address": r.get("address", ""),
        "state": NodeLiveness.state_of(r).value,
        "resources_total": dict(r.get("resources") or {}),
        "resources_available": dict(r.get("available") or {}),
        "queue_length": r.get("queue_length", 0),
        "num_workers": r.get("num_workers"),
        "registered_at": r.get("registered_at"),
    }


def list_nodes(
    filters: Filters = None, limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
) -> list[dict]:
    """The nodes that ever registered (ALIVE or DEAD), with total and free resources."""
    rows = (_node_row(NodeID(k), r) for k, r in _scan("nodes", None, timeout))
    return _select(rows, _normalize_filters(filters), limit)


def list_workers(
    filters: Filters = None, limit: int | None = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
) -> list[dict]:
    """The worker processes of every alive node, idle ones included, with the tasks each ran.

    Live workers come from the local schedulers' worker tables: ``state`` is STARTING, IDLE,
    BUSY, BLOCKED (its task waits in ``get``, its CPU lent), LEASED (to an owner that pushes
    tasks straight to it) or ACTOR, with ``pid``,
    ``running_task_id`` and ``num_queued``. Workers that ran tasks (task table) but are gone
    are listed DEAD, their ``pid`` from the session logs on this host when readable; the
    workers of a node whose scheduler does not answer within ``timeout`` are left out.
    ``num_tasks``/``task_states`` count the tasks of each in the task table.

    Raises:
        StateApiError: the GCS did not answer within ``timeout`` or could not read its store.
    """
    core = context.runtime().core
    try:
        live, _ = cluster_processes.workers(core, cluster_processes.alive_nodes(core, timeout), timeout)
    except RayError as exc:
        raise StateApiError(str(exc)) from exc
    workers = {w["worker_id"]: {k: v for k, v in w.items() if k not in ("address", "ip")} for w in live}
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in list_tasks(limit=None, timeout=timeout):
        worker_id = row["worker_id"]
        if not worker_id:
            continue
        counts[worker_id][row["state"]] += 1
        if worker_id not in workers:
            workers[worker_id] = {
                "worker_id": worker_id,
                "node_id": row["node_id"],
                "pid": None,
                "state": "DEAD",
                "actor_id": row["actor_id"],
                "running_task_id": None,
                "num_queued": 0,
                "started_at": None,
            }
    dead = [w for w in workers.values() if w["state"] == "DEAD"]
    if dead:
        started = _worker_starts()
        for w in dead:
            w["pid"], w["started_at"] = started.get(w["worker_id"], (None, None))
    rows = [
        {**w, "num_tasks": sum(counts[w["worker_id"]].values()), "task_states": dict(counts[w["worker_id"]])}
        for w in workers.values()
    ]
    rows.sort(key=lambda w: (w["node_id"] or "", w["state"] == "DEAD", w["started_at"] or 0, w["worker_id"]))
    return _select(rows, _normalize_filters(filters), limit)


def _worker_starts() -> dict[str, tuple]:
    """worker_id -> (pid, start time) from the ``worker_started`` events in local logs."""
    from babyray import log_reader

    found = {}
    try:
        for event in log_reader.load(log_reader.session_dirs(), events=("worker_started",)):
            if event.get("worker_id"):
                found[event["worker_id"]] = (event.get("pid"), event.get("ts"))
    except OSError:
        pass
    return found

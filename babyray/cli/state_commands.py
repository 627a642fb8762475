"""``babyray list``, ``get``, ``summary``, ``timeline`` and ``memory``: the cluster's state.

``list``/``get``/``summary``/``memory`` join the running cluster as a driver (see
babyray.cli.connection) and read the GCS through ``babyray.util.state``; ``memory`` also
asks every driver and worker for its references (``babyray.api.memory``). ``timeline``
reads the session logs on this host and falls back to the GCS task table when there are none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from babyray.cli.connection import add_connection_arguments, cluster_address, connected
from babyray.text_table import cell, format_table

__all__ = ["add_commands"]

RESOURCES = ("tasks", "actors", "objects", "nodes", "workers", "placement-groups")

# Columns of ``babyray list`` in table format: (field, header, width).
_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "tasks": [
        ("task_id", "TASK ID", 16),
        ("name", "NAME", 22),
        ("state", "STATE", 9),
        ("attempt", "TRY", 3),
        ("node_id", "NODE", 16),
        ("worker_id", "WORKER", 12),
        ("duration_s", "SECONDS", 8),
        ("error_type", "ERROR", 20),
    ],
    "actors": [
        ("actor_id", "ACTOR ID", 16),
        ("class_name", "CLASS", 18),
        ("name", "NAME", 12),
        ("state", "STATE", 10),
        ("node_id", "NODE", 16),
        ("worker_id", "WORKER", 12),
        ("pid", "PID", 7),
        ("num_restarts", "RESTARTS", 8),
    ],
    "objects": [
        ("object_id", "OBJECT ID", 20),
        ("size_bytes", "BYTES", 11),
        ("state", "STATE", 7),
        ("made_by", "BY", 4),
        ("task_id", "TASK", 16),
        ("locations", "NODES", 34),
    ],
    "nodes": [
        ("node_id", "NODE ID", 16),
        ("address", "ADDRESS", 21),
        ("state", "STATE", 5),
        ("resources_total", "RESOURCES", 30),
        ("resources_available", "AVAILABLE", 30),
        ("queue_length", "QUEUE", 5),
    ],
    "placement-groups": [
        ("placement_group_id", "PLACEMENT GROUP ID", 18),
        ("name", "NAME", 14),
        ("state", "STATE", 8),
        ("strategy", "STRATEGY", 13),
        ("bundles", "BUNDLES", 30),
        ("bundles_to_node_id", "NODES", 40),
    ],
    "workers": [
        ("worker_id", "WORKER ID", 12),
        ("node_id", "NODE", 16),
        ("pid", "PID", 7),
        ("state", "STATE", 8),
        ("num_tasks", "TASKS", 6),
        ("actor_id", "ACTOR", 16),
        ("task_states", "TASK STATES", 40),
    ],
}


# ---- formatting -----------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _parse_filters(items: list[str] | None) -> list[tuple[str, str, str]]:
    filters = []
    for item in items or []:
        op = "!=" if "!=" in item else "="
        key, sep, value = item.partition(op)
        if not sep or not key:
            raise SystemExit(f"bad --filter {item!r}: expected KEY=VALUE or KEY!=VALUE")
        filters.append((key.strip(), op, value.strip()))
    return filters


# ---- list, get, summary -------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from babyray.util import state

    lister = getattr(state, f"list_{args.resource.replace('-', '_')}")
    options: dict[str, Any] = {"filters": _parse_filters(args.filter), "limit": args.limit}
    if args.resource == "tasks":
        options["detail"] = args.detail
    with connected(args):
        rows = lister(**options)
    if args.format == "json":
        _print_json(rows)
        return 0
    print(format_table(rows, _COLUMNS[args.resource]))
    shown = f"{len(rows)} {args.resource}" + (
        f" (limit {args.limit})" if args.limit and len(rows) >= args.limit else ""
    )
    print(f"\n{shown}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from babyray.util import state

    getter = getattr(state, f"get_{args.resource}")
    with connected(args):
        row = getter(args.id)
    if row is None:
        print(f"no {args.resource} {args.id} is known to the GCS", file=sys.stderr)
        return 1
    if args.format == "json":
        _print_json(row)
        return 0
    traceback = row.pop("traceback", None)
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {cell(value)}")
    if traceback:
        print(f"\nremote traceback:\n{traceback.rstrip()}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from babyray.util import state

    with connected(args):
        summary = state.summarize_tasks()
    if args.format == "json":
        _print_json(summary)
        return 0
    states = sorted({s for entry in summary["summary"].values() for s in entry["state_counts"]})
    print(f"{'FUNCTION':<28} {'TYPE':<12} " + " ".join(f"{s:>9}" for s in states) + f" {'TOTAL':>7}")
    for name, entry in summary["summary"].items():
        counts = entry["state_counts"]
        print(
            f"{name[:28]:<28} {entry['type']:<12} "
            + " ".join(f"{counts.get(s, 0):>9}" for s in states)
            + f" {sum(counts.values()):>7}"
        )
    print(f"\n{summary['total_tasks']} tasks")
    return 0


# ---- timeline ----------------------------------------------------------------------------------


def cmd_timeline(args: argparse.Namespace) -> int:
    from babyray import log_reader
    from babyray import tracing as timeline
    from babyray.progress import progress

    dirs = log_reader.session_dirs(args.session_dir or (), args.temp_dir)
    events: list[dict] = []
    for path in progress(log_reader.log_files(dirs), desc="reading logs"):
        events.extend(log_reader.load(path, events=("task_executed",)))
    runs = log_reader.task_executions(events)
    source = "session logs"
    if not runs and cluster_address(args):
        with connected(args):
            runs = timeline.executions(dirs=(), use_gcs=True)
        source = "GCS task table"
    trace = timeline.chrome_trace(runs)
    output = args.output or f"babyray-timeline-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with open(output, "w") as f:
        json.dump(trace, f)
    workers = len({(r["node_id"], r["worker_id"]) for r in runs})
    nodes = len({r["node_id"] for r in runs})
    print(
        f"wrote {output}: {len(runs)} task executions on {workers} workers, {nodes} nodes (from {source}); "
        f"open it in https://ui.perfetto.dev or chrome://tracing"
    )
    if args.plot:
        timeline.plot(runs, args.plot)
        print(f"wrote {args.plot}")
    return 0


# ---- memory ------------------------------------------------------------------------------------


def cmd_memory(args: argparse.Namespace) -> int:
    from babyray.api import memory

    with connected(args):
        report = memory.memory_report()
    if args.format == "json":
        _print_json(report)
    else:
        print(memory.format_memory_report(report, args.limit))
    return 0


# ---- the parser ------------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add list, get, summary, timeline and memory to the ``babyray`` subparsers."""
    p = sub.add_parser(
        "list", help="list tasks, actors, objects, nodes, workers or placement groups from the GCS"
    )
    p.add_argument("resource", choices=RESOURCES)
    p.add_argument(
        "--filter", action="append", metavar="KEY=VALUE", help="keep rows where KEY=VALUE (or KEY!=VALUE)"
    )
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--detail", action="store_true", help="tasks: include remote tracebacks (json)")
    add_connection_arguments(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("get", help="one task, actor or object with every field")
    p.add_argument("resource", choices=("task", "actor", "object"))
    p.add_argument("id")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_connection_arguments(p)
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("summary", help="task counts by function and state")
    p.add_argument("resource", choices=("tasks",))
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_connection_arguments(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("timeline", help="Chrome-trace/Perfetto JSON of task executions (and a plot)")
    p.add_argument("--output", help="trace file (default: babyray-timeline-<time>.json)")
    p.add_argument("--plot", help="also draw executions per worker over time into this image")
    p.add_argument("--session-dir", action="append", help="read this session's logs too")
    add_connection_arguments(p)
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("memory", help="object store use per node and who holds references to which objects")
    p.add_argument("--limit", type=int, default=50, help="references shown per node")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_connection_arguments(p)
    p.set_defaults(func=cmd_memory)

"""The timeline of task executions (``babyray.timeline``): Chrome-trace (Perfetto) JSON and a picture.

``babyray.timeline(filename)`` works like ``ray.timeline``: one complete event (``"ph":
"X"``) per execution of a task or actor method, its process the node and its thread the
worker, so Perfetto (ui.perfetto.dev) or chrome://tracing draw a lane per worker grouped by
node. Executions come from the workers' ``task_executed`` log events (exact start and end);
when no log of the session is readable on this host, from the GCS task table (start as
reported by the worker, end when the owner got the result). Metadata events name each
process and thread with the node and worker ids (pid and tid are small integers, which
every trace viewer accepts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from babyray import log_reader

__all__ = ["chrome_trace", "executions", "plot", "timeline"]


def executions(dirs: Iterable[str] | None = None, use_gcs: bool = True) -> list[dict]:
    """The executions to draw: from the session logs readable here, else the task table."""
    events = log_reader.load(log_reader.session_dirs(dirs or ()), events=("task_executed",))
    runs = log_reader.task_executions(events)
    if runs or not use_gcs:
        return runs
    from babyray.api import context

    if context.runtime_or_none() is None:
        return []
    from babyray.util import state

    runs = []
    for task in state.list_tasks(limit=None):
        if task["started_at"] and task["finished_at"]:
            runs.append(
                {
                    "task_id": task["task_id"],
                    "function": task["name"],
                    "state": task["state"].lower(),
                    "start": task["started_at"],
                    "end": task["finished_at"],
                    "duration_s": task["finished_at"] - task["started_at"],
                    "node_id": task["node_id"] or "",
                    "worker_id": task["worker_id"] or "",
                    "pid": None,
                    "attempt": task["attempt"],
                }
            )
    runs.sort(key=lambda r: r["start"])
    return runs


def chrome_trace(runs: Iterable[dict]) -> list[dict]:
    """Chrome-trace events: process/thread name metadata, then one "X" event per run."""
    pids: dict[str, int] = {}
    tids: dict[tuple[str, str], int] = {}
    meta: list[dict] = []
    events: list[dict] = []
    for run in runs:
        node, worker = run["node_id"] or "driver", run["worker_id"] or "?"
        if node not in pids:
            pids[node] = len(pids) + 1
            meta.append(
                {
                    "name": "process_name",
                    "ph": "M",
                    "pid": pids[node],
                    "tid": 0,
                    "args": {"name": f"node {node}"},
                }
            )
        if (node, worker) not in tids:
            tids[(node, worker)] = len(tids) + 1
            meta.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "pid": pids[node],
                    "tid": tids[(node, worker)],
                    "args": {"name": f"worker {worker}" + (f" (pid {run['pid']})" if run.get("pid") else "")},
                }
            )
        events.append(
            {
                "name": run["function"],
                "cat": "task" if run.get("state") != "failed" else "task,failed",
                "ph": "X",
                "ts": round(run["start"] * 1e6, 3),
                "dur": round(max(run["end"] - run["start"], 0) * 1e6, 3),
                "pid": pids[node],
                "tid": tids[(node, worker)],
                "args": {
                    "task_id": run["task_id"],
                    "state": run.get("state"),
                    "attempt": run.get("attempt", 0),
                    "node_id": run["node_id"],
                    "worker_id": run["worker_id"],
                },
            }
        )
    return meta + events


def timeline(filename: str | None = None, session_dirs: Iterable[str] | None = None) -> list[dict] | None:
    """Write the cluster's task timeline as Chrome-trace JSON to ``filename``, or return
    the events when no filename is given (as ``ray.timeline``)."""
    events = chrome_trace(executions(session_dirs))
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None


def plot(runs: list[dict], path: str, title: str = "babyray task executions") -> int:
    """Draw executions per worker over time (one row per worker, one colour per function)
    into ``path`` (PNG, SVG, ... by extension); returns the number of bars drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes = sorted({(r["node_id"], r["worker_id"]) for r in runs})
    row = {lane: i for i, lane in enumerate(lanes)}
    functions = sorted({r["function"] for r in runs})
    colours: dict[str, Any] = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(functions)}
    t0 = min((r["start"] for r in runs), default=0.0)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * max(len(lanes), 1)))
    for r in runs:
        failed = r.get("state") == "failed"
        ax.broken_barh(
            [(r["start"] - t0, max(r["end"] - r["start"], 1e-4))],
            (row[(r["node_id"], r["worker_id"])] - 0.4, 0.8),
            facecolors=colours[r["function"]],
            edgecolors="red" if failed else "white",
            linewidth=1.5 if failed else 0.6,
        )
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"{str(n)[:8]}/{str(w)[:10]}" for n, w in lanes], fontsize=8)
    ax.set_xlabel("seconds since the first task started")
    ax.set_ylabel("node/worker")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if functions:
        from matplotlib.patches import Patch

        handles = [Patch(color=colours[f], label=f) for f in functions[:10]]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(runs)

"""``babyray logs``: the session logs on this host, filtered and readable (no connection).

Which sessions: those given with ``--session-dir``, and those of the nodes ``babyray start``
recorded under the temp dir (``--temp-dir``, else BABYRAY_TEMP_DIR, else the default); with
none of these, the newest session under the temp dir (a private cluster of ``init()`` leaves
no record), as Ray's tools read its ``session_latest``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from datetime import datetime
from typing import Any

from babyray import config, log_reader

__all__ = ["add_commands", "render"]

_ID_FIELDS = ("task_id", "actor_id", "object_id", "function", "name", "state")
_SKIP_IN_RENDER = {"ts", "level", "event", "component", "node_id", "pid", "worker_id"}


def cmd_logs(args: argparse.Namespace) -> int:
    dirs = log_reader.session_dirs(args.session_dir or (), args.temp_dir) or _newest_session(args.temp_dir)
    if not dirs:
        print(
            "no babyray session on this host: start one, or pass --session-dir or --temp-dir",
            file=sys.stderr,
        )
        return 1
    criteria = {
        "node": args.node,
        "worker": args.worker,
        "task": args.task,
        "component": args.component,
        "event": args.event,
        "level": args.level,
    }

    def show(event: dict) -> None:
        print(json.dumps(event, default=str) if args.json else render(event), flush=args.follow)

    events = log_reader.load(dirs, **criteria)
    for event in events[-args.tail :] if args.tail else events:
        show(event)
    if args.follow:
        try:
            for event in log_reader.follow(dirs):
                if log_reader.filter_events([event], **criteria):
                    show(event)
        except KeyboardInterrupt:
            pass
    return 0


def _newest_session(temp_dir: str | None) -> list[str]:
    """The newest session directory under ``temp_dir`` (default: the setting's), if any."""
    root = config.Settings({"temp_dir": temp_dir}).temp_dir
    sessions = [d for d in glob.glob(os.path.join(root, "session_*")) if os.path.isdir(d)]
    return [max(sessions, key=os.path.getmtime)] if sessions else []


def render(event: dict) -> str:
    """One readable line: time, level, component, node/worker, event, then its fields."""
    ts = event.get("ts")
    when = datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3] if isinstance(ts, (int, float)) else "?"
    where = str(event.get("node_id") or event.get("node") or "-")[:8]
    if event.get("worker_id"):
        where += f"/{str(event['worker_id'])[:12]}"
    level = str(event.get("level", "")).upper()[:5]
    fields = [f"{k}={_short(event[k])}" for k in _ID_FIELDS if event.get(k) is not None]
    fields += [
        f"{k}={_short(v)}"
        for k, v in event.items()
        if k not in _SKIP_IN_RENDER and k not in _ID_FIELDS and k != "source" and v is not None
    ]
    return (
        f"{when} {level:<5} {str(event.get('component', '?')):<16} {where:<22} {event.get('event', '?')}  "
        + " ".join(fields)
    )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if "\n" in text:
        text = text.rstrip().replace("\n", "\n    ")
        return "\n    " + text
    return text if len(text) <= 200 else text[:197] + "..."


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add logs to the ``babyray`` subparsers."""
    p = sub.add_parser("logs", help="the session's JSON log events, filtered and readable")
    p.add_argument("--node", help="node id (prefix)")
    p.add_argument("--worker", help="worker id (prefix)")
    p.add_argument("--task", help="task id (prefix); also matches the task's objects")
    p.add_argument("--component", help="gcs, worker, local_scheduler, object_store, driver, ...")
    p.add_argument("--event", help="event name, e.g. task_executed")
    p.add_argument("--level", help="info, warning, error")
    p.add_argument("--tail", type=int, help="only the last N matching events")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="raw JSON lines")
    p.add_argument("--session-dir", action="append", help="read this session's logs too")
    p.add_argument(
        "--temp-dir",
        help="root of session directories and node records (default: the temp_dir setting): "
        "the sessions of the nodes recorded there, else its newest session",
    )
    p.set_defaults(func=cmd_logs)

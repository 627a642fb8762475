"""Remote recursion (each task ``get``s the subtasks it submitted) on a 2-CPU node: the node
runs the most deeply nested tasks first, so it finishes with a few workers per level, and a
recursion that needs more workers than ``max_workers`` still finishes (the limit is soft for
tasks whose submitters are all blocked), with a warning naming the setting."""

from __future__ import annotations

import glob
import json
import os

from conftest import assert_session_clean

import babyray as ray
from babyray.util import state


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)], timeout=300))


def test_remote_recursion_finishes_with_a_few_workers_per_level(cluster):
    assert ray.get(fib.remote(12), timeout=300) == 144
    workers = state.list_workers(limit=None)  # the idle ones and those stopped after running tasks
    # First in first out, every one of its 232 inner tasks would take a worker (the limit is 256).
    assert len(workers) <= 64, f"{len(workers)} workers for fib(12) on 2 CPUs"


def test_recursion_deeper_than_max_workers_finishes_with_a_warning(tmp_path):
    info = ray.init(
        num_cpus=2, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024, max_workers=6
    ).address_info
    try:
        assert ray.get(fib.remote(10), timeout=300) == 55  # 9 levels of inner tasks blocked in get
        assert len(state.list_workers(limit=None)) > 6
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])
    warnings = [e for e in _scheduler_events(info["session_dir"]) if e["event"] == "worker_cap_exceeded"]
    assert warnings and all(w["level"] == "warning" and w["max_workers"] == 6 for w in warnings)
    assert "max_workers" in warnings[0]["reason"]


def _scheduler_events(session_dir: str) -> list[dict]:
    events = []
    for path in glob.glob(os.path.join(session_dir, "logs", "local_scheduler-*.jsonl")):
        with open(path) as lines:
            events += [json.loads(line) for line in lines]
    return events

"""A process without the cluster token attacks a private init() cluster on this host.

It sends a pickle whose ``__reduce__`` creates a marker file (tests/auth_outsider.py) to the
head admin's port, over an object in the data plane, and to the allocation channel. Nothing
may run: the marker is never created, every attempt is logged as ``auth_rejected``, the
object still reads back intact and the cluster keeps running tasks.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api import context
from babyray.api.memory import memory_stats
from babyray.protocol import objects as om

ROOT = Path(__file__).resolve().parents[1]
OUTSIDER = ROOT / "tests" / "auth_outsider.py"


def outsider_env() -> dict:
    env = {k: v for k, v in os.environ.items() if "AUTH_TOKEN" not in k}
    env["PYTHONPATH"] = str(ROOT)
    return env


def rejections(session_dir: str) -> list[dict]:
    found = []
    for path in glob.glob(os.path.join(session_dir, "logs", "*.jsonl")):
        with open(path) as f:
            found += [event for event in map(json.loads, f) if event.get("event") == "auth_rejected"]
    return found


def _object_slot(ref: ray.ObjectRef) -> tuple[int, str, int, str]:
    """(offset in the arena, data-plane host, port, the path the node's processes open the arena by)
    of a stored object."""
    core = context.runtime().core
    pinned = core.request(core.store, lambda r: om.PinObjects(r, (ref.hex(),), "auth-test"))
    core.transport.send(core.store, om.UnpinObjects((ref.hex(),), "auth-test"))
    where = core.request(core.store, lambda r: om.GetTransferAddress(r))
    return pinned.slots[ref.hex()][0], where.host, where.port, pinned.arena_name


@ray.remote
def kind_and_sum(value):
    return type(value).__name__, int(np.asarray(value).sum()) if isinstance(value, np.ndarray) else None


@ray.remote
def add(a, b):
    return a + b


def test_an_outsider_without_the_token_runs_nothing_in_a_private_cluster(cluster, tmp_path):
    marker = tmp_path / "outsider-was-here"
    victim = ray.put(np.ones(1 << 20, dtype=np.uint8))
    offset, host, port, arena = _object_slot(victim)
    result = subprocess.run(
        [
            sys.executable,
            str(OUTSIDER),
            "--marker",
            str(marker),
            "--thespian",
            cluster["address"],
            "--data-plane",
            f"{host}:{port}:{offset}",
            "--alloc",
            arena,
            "--alloc-pin",
            f"{arena}={victim.hex()}",
        ],
        env=outsider_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    assert ray.get(kind_and_sum.remote(victim), timeout=60) == ("ndarray", 1 << 20)
    assert ray.get([add.remote(i, i) for i in range(20)], timeout=60) == [2 * i for i in range(20)]
    assert not marker.exists(), result.stdout
    rejected = rejections(cluster["session_dir"])
    assert {event["channel"] for event in rejected} == {"thespian", "data_plane", "alloc_channel"}, rejected
    by_channel = {event["channel"]: event for event in rejected}
    assert by_channel["thespian"]["peer"].startswith("127.0.0.1:")
    assert by_channel["data_plane"]["peer"].startswith("127.0.0.1:")
    assert by_channel["alloc_channel"]["peer"].startswith("pid ")
    assert len([event for event in rejected if event["channel"] == "alloc_channel"]) == 2, rejected
    # The outsider's pin was not served: it would hold the object pinned for good.
    wait_until(
        lambda: memory_stats(objects=True)[0]["objects"][victim.hex()]["pins"] == 0,
        15,
        "the task's pin of its argument released, and no other pin",
    )

"""``list_workers`` reads the local schedulers' worker tables: idle workers that never ran a
task are listed, with their pid and state, next to the task counts of the task table; a
worker leased to the driver after its task is listed LEASED until the lease ends."""

from __future__ import annotations

import os

from test_gcs_cluster import wait_until

import babyray as ray
from babyray.util import state


@ray.remote
def pid() -> int:
    return os.getpid()


def _idle_never_ran() -> list[dict]:
    return [w for w in state.list_workers() if w["state"] == "IDLE" and w["num_tasks"] == 0]


def test_idle_workers_that_never_ran_a_task_are_listed(cluster):
    wait_until(lambda: len(_idle_never_ran()) == 2, 15, "both workers started and idle")
    workers = _idle_never_ran()
    assert all(
        w["pid"] and w["node_id"] == cluster["node_id"] and w["running_task_id"] is None for w in workers
    )
    assert ray.get(pid.remote()) in {w["pid"] for w in workers}
    wait_until(
        lambda: any(w["num_tasks"] == 1 for w in state.list_workers()), 10, "the task in the task table"
    )
    # The worker that ran it stays leased to this driver until idle for lease_idle_timeout.
    wait_until(lambda: {w["state"] for w in state.list_workers()} == {"IDLE"}, 10, "its lease returned")
    listed = state.list_workers()
    assert len(listed) == 2 and {w["state"] for w in listed} == {"IDLE"}
    assert sorted(w["num_tasks"] for w in listed) == [0, 1]

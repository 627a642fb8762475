"""Who holds which ObjectRef (``babyray.api.memory``) and the worker tables (``list_workers``)
on a live private cluster: the driver and the workers are asked for their references."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from conftest import assert_session_clean
from test_gcs_cluster import wait_until

import babyray as ray
from babyray.api.memory import memory_references
from babyray.util import state

MB = 1024 * 1024


@ray.remote(resources={"unobtainium": 1})
def never(x: object) -> int:
    return 1


@ray.remote
def hold(array: np.ndarray, nested: list, seconds: float) -> int:
    time.sleep(seconds)
    return len(nested)


@ray.remote
def make_nested() -> list:
    return [ray.put(np.ones(MB // 8))]


@pytest.fixture(scope="module")
def memory_cluster(tmp_path_factory):
    info = ray.init(
        num_cpus=2, temp_dir=str(tmp_path_factory.mktemp("memory")), object_store_memory=128 * MB
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def _rows(object_id: str, **where) -> list[dict]:
    return [
        r
        for r in memory_references()["references"]
        if r["object_id"] == object_id and all(r[k] == v for k, v in where.items())
    ]


def _row(object_id: str, **where) -> dict:
    found: list = []

    def seen() -> bool:
        found[:] = _rows(object_id, **where)
        return len(found) == 1

    wait_until(seen, 15, f"one reference row of {object_id} with {where}")
    return found[0]


def test_the_driver_holds_a_put_object_and_one_captured_in_another(memory_cluster):
    me = ray.get_runtime_context().get_worker_id()
    held = ray.put(np.zeros(MB // 8))
    inner = ray.put(np.ones(MB // 8))
    outer = ray.put([inner])
    both = ray.put(np.ones(MB // 8))
    outer_too = ray.put({"x": both})
    inner_id = inner.id
    del inner
    row = _row(held.id, type="driver")
    assert row["reference_type"] == "LOCAL_REFERENCE" and row["pid"] == os.getpid() and row["worker_id"] == me
    assert row["node_id"] == memory_cluster["node_id"] and row["ip"] == "127.0.0.1"
    assert row["owned"] and row["owner_id"] == me and row["made_by"] == "put" and row["size_bytes"] >= MB
    captured = _row(inner_id, type="driver")
    assert captured["reference_type"] == "CAPTURED_IN_OBJECT" and captured["captured_in"] == [outer.id]
    assert captured["local_refs"] == 0
    # still held by the driver's code as well: a local reference first, as in Ray
    also_local = _row(both.id, type="driver")
    assert also_local["reference_type"] == "LOCAL_REFERENCE" and also_local["captured_in"] == [outer_too.id]


def test_a_pending_task_and_the_worker_running_a_task_hold_their_arguments(memory_cluster):
    me = ray.get_runtime_context().get_worker_id()
    waiting_arg = ray.put(np.ones(MB // 8))
    pending = never.remote(waiting_arg)
    array, nested = ray.put(np.ones(MB // 4)), ray.put(np.ones(MB // 8))
    running = hold.remote(array, [nested], 60)
    row = _row(waiting_arg.id, type="driver")
    assert row["reference_type"] == "USED_BY_PENDING_TASK"
    assert row["pending_tasks"] == {pending.task_id(): "never"}
    worker = _row(array.id, type="worker")  # the running task maps the array from the store
    assert (
        worker["reference_type"] == "PINNED_IN_MEMORY"
        and worker["owner_id"] == me
        and worker["pid"] != os.getpid()
    )
    borrowed = _row(nested.id, type="worker")  # a ref nested in an argument: borrowed from the driver
    assert (
        borrowed["reference_type"] == "LOCAL_REFERENCE"
        and not borrowed["owned"]
        and borrowed["owner_id"] == me
    )
    assert borrowed["worker_id"] == worker["worker_id"]
    assert _row(array.id, type="driver")["reference_type"] == "USED_BY_PENDING_TASK"
    summary = ray.memory_summary()
    for kind in ("PINNED_IN_MEMORY", "USED_BY_PENDING_TASK", "LOCAL_REFERENCE"):
        assert kind in summary
    ray.cancel(running, force=True)
    ray.cancel(pending)


def test_a_ref_a_worker_put_and_returned_is_captured_here_and_borrowed_there(memory_cluster):
    outer = make_nested.remote()
    inner_id = ray.get(outer)[0].id
    here = _row(inner_id, type="driver")
    assert here["reference_type"] == "CAPTURED_IN_OBJECT" and here["captured_in"] == [outer.id]
    there = _row(inner_id, type="worker", reference_type="BORROWED")
    assert there["owned"] and there["borrowers"] == [ray.get_runtime_context().get_worker_id()]
    assert here["owner_id"] == there["worker_id"] and here["made_by"] == "put"


def test_an_object_whose_last_ref_is_dropped_disappears(memory_cluster):
    dropped = ray.put(np.ones(MB))
    object_id = dropped.id
    assert _row(object_id, type="driver")["reference_type"] == "LOCAL_REFERENCE"
    wait_until(
        lambda: (state.get_object(object_id) or {}).get("state") == "STORED", 10, "the object in the GCS"
    )
    del dropped
    wait_until(lambda: not _rows(object_id), 10, "the dropped object's reference gone")
    wait_until(
        lambda: state.get_object(object_id)["state"] == "FREED", 10, "the dropped object freed in the store"
    )
    assert object_id not in ray.memory_summary()


def test_the_report_gives_each_objects_state_in_its_store(memory_cluster):
    from babyray.api.memory import format_memory_report, memory_report

    spilled = ray.put(np.ones(50 * MB // 8))
    pinned_ref = ray.put(np.ones(50 * MB // 8))
    pinned_value = ray.get(pinned_ref)  # zero-copy: pins the object while it lives
    latest = ray.put(np.ones(50 * MB // 8))  # 150 MB through a 128 MB store: the first is spilled
    report = memory_report()
    states = {oid: obj["state"] for store in report["stores"] for oid, obj in store["objects"].items()}
    assert states[spilled.hex()] == "SPILLED"
    assert states[pinned_ref.hex()] == "PINNED"
    assert states[latest.hex()] == "IN_MEMORY"
    text = format_memory_report(report)
    assert "IN STORE" in text
    line = next(line for line in text.splitlines() if spilled.hex() in line and "LOCAL_REFERENCE" in line)
    assert "SPILLED" in line
    del pinned_value, spilled, pinned_ref, latest

"""Threads that user code starts inside a task, and coroutines of an async actor's call, see
the job of the task they run for, as in Ray: its job id, namespace and resources, and the
tasks they submit are one level deeper than that task (the node runs deeper tasks first).
A task's thread gets a task id of its own (Ray gives such a thread a fresh one), an async
actor's call the id of the call."""

from __future__ import annotations

import threading

from conftest import assert_session_clean, wait_for_file

import babyray as ray


@ray.remote
def record(path, name):
    with open(path, "a") as f:
        f.write(name + "\n")


@ray.remote
def parent(path, started, go):
    open(started, "w").close()
    wait_for_file(go)
    refs = []
    thread = threading.Thread(target=lambda: refs.append(record.remote(path, "child")))
    thread.start()
    thread.join()
    ray.get(refs[0], timeout=60)  # blocked in get, the task lends its CPU to the queued tasks


def test_a_task_submitted_from_a_thread_of_a_task_runs_before_the_driver_s_queued_ones(tmp_path):
    """On one CPU: the driver's tasks queue while the parent runs; the child its thread submits
    is one level deeper, so it runs first when the parent lends its CPU (at the driver's depth
    it would wait behind them)."""
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024)
    try:
        order, started, go = (str(tmp_path / name) for name in ("order", "started", "go"))
        running = parent.remote(order, started, go)
        wait_for_file(started)
        queued = [record.remote(order, f"driver {i}") for i in range(3)]
        open(go, "w").close()
        ray.get([running, *queued], timeout=120)
        with open(order) as f:
            assert f.read().splitlines() == ["child", "driver 0", "driver 1", "driver 2"]
    finally:
        ray.shutdown()
    assert_session_clean(info.address_info["session_dir"])


@ray.remote
def facts_in_a_thread():
    seen = {}

    def run():
        context = ray.get_runtime_context()
        seen.update(
            task_id=context.get_task_id(),
            job_id=context.get_job_id(),
            namespace=context.namespace,
            resources=context.get_assigned_resources(),
            canceled=context.is_canceled(),
        )

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen, ray.get_runtime_context().get_task_id()


@ray.remote
class AsyncProbe:
    async def task_id(self):
        return ray.get_runtime_context().get_task_id()


def test_a_thread_of_a_task_sees_the_task_s_job_namespace_and_resources(shared_cluster):
    seen, task_id = ray.get(facts_in_a_thread.options(num_cpus=1).remote(), timeout=60)
    driver = ray.get_runtime_context()
    assert seen["job_id"] == driver.get_job_id() and seen["namespace"] == driver.namespace
    assert seen["resources"] == {"CPU": 1.0} and seen["canceled"] is False
    assert seen["task_id"] is not None and seen["task_id"] != task_id


def test_an_async_actor_s_call_sees_its_own_task_id(shared_cluster):
    probe = AsyncProbe.remote()
    refs = [probe.task_id.remote() for _ in range(3)]
    assert ray.get(refs, timeout=60) == [ref.task_id() for ref in refs]

"""Smaller Ray Core APIs real programs call, each checked against Ray's documentation: the
runtime context (get_job_id, get_actor_name, get_assigned_resources,
was_current_actor_reconstructed), ray.util.get_node_ip_address, ray.util.inspect_serializability
and actor concurrency groups ('Limiting Concurrency Per-Method with Concurrency Groups')."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time

import pytest

import babyray as ray


@ray.remote
def task_context():
    ctx = ray.get_runtime_context()
    return ctx.get_job_id(), ctx.get_assigned_resources(), ctx.get_actor_id(), ctx.get_actor_name()


@ray.remote
class Probe:
    def context(self):
        ctx = ray.get_runtime_context()
        return (
            ctx.get_job_id(),
            ctx.get_actor_id(),
            ctx.get_actor_name(),
            ctx.get_assigned_resources(),
            ctx.was_current_actor_reconstructed,
        )

    def pid(self):
        return os.getpid()


def test_job_id_and_assigned_resources_inside_tasks(shared_cluster):
    """Ray: get_job_id() is the current job's id in tasks too; get_assigned_resources() is
    {'CPU': 1} for a task by default and what the task asked for otherwise."""
    job_id = ray.get_runtime_context().get_job_id()
    assert job_id
    got_job, resources, actor_id, actor_name = ray.get(task_context.remote(), timeout=60)
    assert got_job == job_id
    assert resources == {"CPU": 1.0}
    assert actor_id is None and actor_name is None
    _, resources, _, _ = ray.get(
        task_context.options(num_cpus=2, resources={"custom": 0.5}).remote(), timeout=60
    )
    assert resources == {"CPU": 2.0, "custom": 0.5}
    with pytest.raises(RuntimeError):
        ray.get_runtime_context().get_assigned_resources()  # a driver holds no task's resources


def test_actor_context_name_resources_and_threads(shared_cluster):
    """Ray: inside an actor get_actor_name() is its name ('' if unnamed), get_assigned_resources()
    is {} by default (actors hold no CPU), the actor id is the handle's - in every thread of a
    threaded actor and in async actors."""
    job_id = ray.get_runtime_context().get_job_id()
    named = Probe.options(name="probe-ctx", num_cpus=1).remote()
    got = ray.get(named.context.remote(), timeout=60)
    assert got == (job_id, named.actor_id, "probe-ctx", {"CPU": 1.0}, False)

    unnamed = Probe.options(max_concurrency=3).remote()
    results = ray.get([unnamed.context.remote() for _ in range(6)], timeout=60)
    assert all(r == (job_id, unnamed.actor_id, "", {}, False) for r in results)

    @ray.remote
    class AsyncProbe:
        async def context(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_id(), ctx.get_actor_name()

    async_actor = AsyncProbe.options(name="async-probe").remote()
    assert ray.get(async_actor.context.remote(), timeout=60) == (async_actor.actor_id, "async-probe")


def test_was_current_actor_reconstructed_after_a_restart(shared_cluster):
    """Ray: was_current_actor_reconstructed tells whether this actor has ever been restarted."""
    actor = Probe.options(max_restarts=1).remote()
    assert ray.get(actor.context.remote(), timeout=60)[4] is False
    os.kill(ray.get(actor.pid.remote(), timeout=60), 9)
    deadline = time.monotonic() + 60
    while True:
        try:
            assert ray.get(actor.context.remote(), timeout=60)[4] is True
            break
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    with pytest.raises(RuntimeError):
        ray.get_runtime_context().was_current_actor_reconstructed  # noqa: B018 - not in an actor


def test_get_node_ip_address_is_the_nodes_address(shared_cluster):
    """Ray: ray.util.get_node_ip_address() is the IP address of the current node (driver and tasks)."""
    node_ip = ray.nodes()[0]["NodeManagerAddress"]
    assert ray.util.get_node_ip_address() == node_ip

    @ray.remote
    def ip():
        return ray.util.get_node_ip_address()

    assert ray.get(ip.remote(), timeout=60) == node_ip


def test_inspect_serializability_finds_the_culprit():
    """Ray: inspect_serializability(obj, name) returns (serializable, set of FailureTuple) and prints
    its search ('Checking Serializability of ...')."""
    lock = threading.Lock()

    def uses_lock():
        return lock

    out = io.StringIO()
    ok, failures = ray.util.inspect_serializability(uses_lock, name="uses_lock", print_file=out)
    assert ok is False
    assert [(f.name, f.obj) for f in failures] == [("lock", lock)]
    text = out.getvalue()
    assert "Checking Serializability of" in text and "Serializing 'lock'" in text and "FailTuple(lock" in text

    class Holder:
        def __init__(self):
            self.fine = 1
            self.bad = threading.Lock()

    ok, failures = ray.util.inspect_serializability(Holder(), print_file=io.StringIO())
    assert not ok and {f.name for f in failures} == {"bad"}

    ok, failures = ray.util.inspect_serializability(lambda: 1, print_file=io.StringIO())
    assert ok is True and failures == set()


@ray.remote(concurrency_groups={"io": 1, "health": 1})
class Grouped:
    def __init__(self):
        self.release = threading.Event()

    @ray.method(concurrency_group="io")
    def block_io(self):
        self.release.wait(60)
        return "io done"

    @ray.method(concurrency_group="health")
    def health(self):
        return threading.current_thread().name

    def unblock(self):
        self.release.set()
        return threading.current_thread().name

    def default_thread(self):
        return threading.current_thread().name


def test_concurrency_groups_in_a_threaded_actor(shared_cluster):
    """Ray: methods in a concurrency group run on the group's own thread(s) with its own limit,
    so a busy group does not stop the others; '.options(concurrency_group=)' picks a group per call;
    the default group has concurrency 1."""
    actor = Grouped.remote()
    blocked = actor.block_io.remote()
    assert "health" in ray.get(actor.health.remote(), timeout=30)  # runs while "io" is busy
    second_io = actor.block_io.remote()  # "io" allows 1: this waits
    assert "babyray-executor" in ray.get(actor.default_thread.remote(), timeout=30)
    assert ray.wait([second_io], timeout=0.3)[0] == []
    assert "health" in ray.get(actor.unblock.options(concurrency_group="health").remote(), timeout=30)
    assert ray.get([blocked, second_io], timeout=60) == ["io done", "io done"]


def test_concurrency_groups_in_an_async_actor(shared_cluster):
    """Ray: 'Concurrency groups work with both asyncio and threaded actors': each group's limit
    is enforced; other groups keep running."""

    @ray.remote(concurrency_groups={"io": 2, "compute": 1})
    class AsyncGrouped:
        def __init__(self):
            self.running = {"io": 0, "compute": 0}
            self.peak = {"io": 0, "compute": 0}

        async def _work(self, group):
            self.running[group] += 1
            self.peak[group] = max(self.peak[group], self.running[group])
            await asyncio.sleep(0.3)
            self.running[group] -= 1

        @ray.method(concurrency_group="io")
        async def io(self):
            await self._work("io")

        @ray.method(concurrency_group="compute")
        async def compute(self):
            await self._work("compute")

        async def peaks(self):
            return dict(self.peak)

    actor = AsyncGrouped.remote()
    ray.get([actor.io.remote() for _ in range(4)] + [actor.compute.remote() for _ in range(3)], timeout=60)
    assert ray.get(actor.peaks.remote(), timeout=30) == {"io": 2, "compute": 1}


def test_concurrency_group_bad_input(shared_cluster):
    """Bad input: a method in an undefined group, or a call to an undefined group, is refused clearly."""
    with pytest.raises(ValueError, match="nope"):

        @ray.remote(concurrency_groups={"io": 1})
        class Bad:
            @ray.method(concurrency_group="nope")
            def f(self):
                return 1

    actor = Grouped.remote()
    with pytest.raises(ValueError, match="missing"):
        actor.health.options(concurrency_group="missing").remote()
    with pytest.raises(ValueError):
        ray.remote(concurrency_groups={"io": 0})(type("Zero", (), {"f": lambda self: 1}))

"""ray.cancel of actor method calls, as Ray's ray.cancel documents for actor tasks: a queued call
is not run; a running async call gets asyncio.CancelledError; a running sync call goes on and
may poll ``get_runtime_context().is_canceled()``; the ref raises TaskCancelledError."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import wait_for_file

import babyray as ray
from babyray.exceptions import RayTaskError, TaskCancelledError


@ray.remote
class SyncWorker:
    def __init__(self):
        self.calls = []

    def poll_until_cancelled(self, started_file):
        open(started_file, "w").close()
        while not ray.get_runtime_context().is_canceled():
            time.sleep(0.01)
        return "stopped"

    def record(self, name):
        self.calls.append(name)
        return name

    def recorded(self):
        return self.calls


@ray.remote
class AsyncWorker:
    def __init__(self):
        self.outcome = None

    async def sleep_long(self, started_file):
        open(started_file, "w").close()
        try:
            await asyncio.sleep(300)
        except asyncio.CancelledError:
            self.outcome = "cancelled"
            raise

    async def outcome_of_sleep(self):
        return self.outcome

    async def is_canceled_here(self):
        try:
            ray.get_runtime_context().is_canceled()
        except RuntimeError as exc:
            return str(exc)
        return "no error"


def test_a_sync_call_sees_is_canceled_and_its_ref_raises_task_cancelled(shared_cluster, tmp_path):
    worker = SyncWorker.remote()
    started = str(tmp_path / "started")
    ref = worker.poll_until_cancelled.remote(started)
    wait_for_file(started)
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    assert ray.get(worker.record.remote("after"), timeout=60) == "after"  # the actor lives on


def test_a_call_queued_behind_a_running_one_never_runs(shared_cluster, tmp_path):
    worker = SyncWorker.remote()
    started = str(tmp_path / "started")
    running = worker.poll_until_cancelled.remote(started)
    wait_for_file(started)
    queued = worker.record.remote("queued")
    ray.cancel(queued)
    ray.cancel(running)
    for ref in (queued, running):
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=60)
    assert ray.get(worker.recorded.remote(), timeout=60) == []


def test_a_running_async_call_gets_cancelled_error(shared_cluster, tmp_path):
    worker = AsyncWorker.remote()
    started = str(tmp_path / "started")
    ref = worker.sleep_long.remote(started)
    wait_for_file(started)
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError) as raised:
        ray.get(ref, timeout=60)
    assert isinstance(raised.value, RayTaskError)  # as in Ray: both, whatever the call returned
    assert ray.get(worker.outcome_of_sleep.remote(), timeout=60) == "cancelled"


def test_is_canceled_raises_in_an_async_actor_and_in_the_driver(shared_cluster):
    worker = AsyncWorker.remote()
    assert "async actor" in ray.get(worker.is_canceled_here.remote(), timeout=60)
    with pytest.raises(RuntimeError, match="driver"):
        ray.get_runtime_context().is_canceled()

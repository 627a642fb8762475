"""ray.cancel of the calls of threaded actors, as Ray documents it: a running call on any of
the actor's threads (``max_concurrency`` > 1, a concurrency group's pool) sees
``is_canceled()``; a call waiting for a thread of its group never runs; ``force=True`` is
refused for actor calls with ValueError (``ray.kill`` ends an actor)."""

from __future__ import annotations

import time

import pytest
from conftest import wait_for_file

import babyray as ray
from babyray.exceptions import TaskCancelledError

POLL_LIMIT = 60  # seconds a method polls is_canceled() before it gives up


def _poll_until_cancelled(started_file: str) -> None:
    """Tell the test this call runs, poll is_canceled(), then leave a file saying it saw it."""
    open(started_file, "w").close()
    deadline = time.monotonic() + POLL_LIMIT
    while not ray.get_runtime_context().is_canceled():
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)
    open(started_file + ".seen", "w").close()


@ray.remote(max_concurrency=3)
class Threaded:
    def poll(self, started_file):
        _poll_until_cancelled(started_file)

    def ping(self):
        return "pong"


@ray.remote(concurrency_groups={"io": 1})
class Grouped:
    def __init__(self):
        self.ran = []

    @ray.method(concurrency_group="io")
    def poll(self, started_file):
        _poll_until_cancelled(started_file)

    @ray.method(concurrency_group="io")
    def record(self, name):
        self.ran.append(name)
        return name

    def recorded(self):
        return self.ran


def _start_polling(actor, tmp_path) -> tuple:
    """A call of ``actor.poll`` once it runs: (its ref, its started file)."""
    started = str(tmp_path / f"started-{time.monotonic_ns()}")
    ref = actor.poll.remote(started)
    wait_for_file(started)
    return ref, started


def _cancel_running(ref, started: str) -> None:
    """Cancel the running poll call ``ref``: it fails, after it saw is_canceled() become True."""
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    wait_for_file(started + ".seen")


def test_a_running_call_of_a_max_concurrency_actor_sees_is_canceled(shared_cluster, tmp_path):
    actor = Threaded.remote()
    _cancel_running(*_start_polling(actor, tmp_path))
    assert ray.get(actor.ping.remote(), timeout=60) == "pong"


def test_a_running_call_in_a_concurrency_group_sees_is_canceled(shared_cluster, tmp_path):
    _cancel_running(*_start_polling(Grouped.remote(), tmp_path))


def test_a_call_waiting_for_its_group_s_thread_never_runs(shared_cluster, tmp_path):
    actor = Grouped.remote()
    running = _start_polling(actor, tmp_path)
    waiting = actor.record.remote("waiting")
    assert ray.get(actor.recorded.remote(), timeout=60) == []  # the call reached the actor meanwhile
    ray.cancel(waiting)
    _cancel_running(*running)
    with pytest.raises(TaskCancelledError):
        ray.get(waiting, timeout=60)
    assert ray.get(actor.record.remote("after"), timeout=60) == "after"
    assert ray.get(actor.recorded.remote(), timeout=60) == ["after"]


def test_force_is_refused_for_an_actor_call_queued_or_running(shared_cluster, tmp_path):
    actor = Threaded.remote()
    queued = actor.ping.remote()  # the actor may not be up yet: still queued here
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(queued, force=True)
    running, started = _start_polling(actor, tmp_path)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(running, force=True)
    _cancel_running(running, started)  # the call went on until a cancel without force
    assert ray.get(queued, timeout=60) == "pong"

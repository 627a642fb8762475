"""Actors through the public API: Ray's actor semantics on a real cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

import babyray as ray
from babyray.exceptions import ActorDiedError, RayActorError, RayTaskError


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def increment(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value

    def pid(self):
        return os.getpid()

    @ray.method(num_returns=2)
    def pair(self):
        return self.value, -self.value

    def fail(self):
        raise KeyError("no such thing")


@ray.remote
class Recorder:
    def __init__(self):
        self.seen = []

    def record(self, item):
        self.seen.append(item)
        return len(self.seen)

    def items(self):
        return self.seen


@ray.remote
def slow_value(value, delay):
    time.sleep(delay)
    return value


@ray.remote
def call_counter(counter, times):
    return [ray.get(counter.increment.remote()) for _ in range(times)][-1]


@ray.remote
def call_counters_in_container(holder):
    return ray.get(holder["counter"].increment.remote(10))


def test_actor_keeps_state_between_calls(shared_cluster):
    counter = Counter.remote(5)
    assert ray.get(counter.increment.remote()) == 6
    assert ray.get(counter.increment.remote(4)) == 10
    assert ray.get(counter.get.remote()) == 10


def test_two_hundred_calls_from_one_caller_run_in_submission_order(shared_cluster):
    recorder = Recorder.remote()
    refs = []
    for i in range(200):
        # every tenth argument is a ref that becomes ready later than the calls after it
        arg = slow_value.remote(i, 0.05) if i % 10 == 0 else i
        refs.append(recorder.record.remote(arg))
    assert ray.get(refs) == list(range(1, 201))
    assert ray.get(recorder.items.remote()) == list(range(200))


def test_object_ref_arguments_are_resolved_for_methods(shared_cluster):
    counter = Counter.remote()
    assert ray.get(counter.increment.remote(ray.put(7))) == 7


def test_method_num_returns_gives_that_many_refs(shared_cluster):
    counter = Counter.remote(3)
    first, second = counter.pair.remote()
    assert ray.get([first, second]) == [3, -3]
    assert ray.get(counter.increment.options(num_returns=1).remote()) == 4


def test_method_exception_is_ray_task_error_and_actor_stays_usable(shared_cluster):
    counter = Counter.remote()
    with pytest.raises(KeyError) as info:
        ray.get(counter.fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert ray.get(counter.increment.remote()) == 1


def test_constructor_exception_makes_every_call_raise_actor_died_error_with_the_cause(shared_cluster):
    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("constructor exploded")

        def ping(self):
            return "pong"

    broken = Broken.remote()
    for _ in range(2):
        with pytest.raises(ActorDiedError, match="constructor exploded"):
            ray.get(broken.ping.remote(), timeout=30)


def test_instantiating_a_remote_class_directly_raises_type_error(shared_cluster):
    with pytest.raises(TypeError, match="remote"):
        Counter()


def test_calling_a_missing_method_raises_attribute_error(shared_cluster):
    counter = Counter.remote()
    with pytest.raises(AttributeError, match="no_such_method"):
        counter.no_such_method.remote()


def test_handles_can_be_passed_to_tasks_and_called_there(shared_cluster):
    counter = Counter.remote()
    assert ray.get(call_counter.remote(counter, 5)) == 5
    assert ray.get(call_counters_in_container.remote({"counter": counter})) == 15
    assert ray.get(counter.get.remote()) == 15


def test_handles_can_be_passed_to_other_actors(shared_cluster):
    @ray.remote
    class Caller:
        def __init__(self, counters):
            self.counters = counters

        def poke(self):
            return ray.get([c.increment.remote() for c in self.counters])

    counters = [Counter.remote(), Counter.remote(100)]
    caller = Caller.remote(counters)
    assert ray.get(caller.poke.remote()) == [1, 101]


def test_actors_create_tasks_and_actors_and_tasks_create_actors(shared_cluster):
    @ray.remote
    class Spawner:
        def spawn(self):
            child = Counter.remote(40)
            return ray.get(child.increment.remote(2)) + ray.get(slow_value.remote(0, 0))

    @ray.remote
    def make_actor():
        counter = Counter.remote(1)
        return ray.get(counter.increment.remote())

    assert ray.get(Spawner.remote().spawn.remote()) == 42
    assert ray.get(make_actor.remote()) == 2


def test_named_actor_is_found_by_name_and_names_are_unique(shared_cluster):
    counter = Counter.options(name="global-counter").remote()
    ray.get(counter.increment.remote())
    found = ray.get_actor("global-counter")
    assert ray.get(found.increment.remote()) == 2
    assert "global-counter" in ray.util.list_named_actors()
    with pytest.raises(ValueError, match="global-counter"):
        Counter.options(name="global-counter").remote()
    ray.kill(counter)


def test_get_actor_of_an_unknown_name_raises_value_error(shared_cluster):
    with pytest.raises(ValueError, match="nobody"):
        ray.get_actor("nobody")


def test_kill_makes_pending_and_later_calls_raise_actor_died_error(shared_cluster):
    counter = Counter.remote()
    ray.get(counter.increment.remote())
    pending = counter.increment.remote(slow_value.remote(1, 1.0))
    ray.kill(counter)
    with pytest.raises(ActorDiedError):
        ray.get(pending, timeout=30)
    with pytest.raises(ActorDiedError):
        ray.get(counter.increment.remote(), timeout=30)
    assert issubclass(ActorDiedError, RayActorError)


def test_kill_frees_the_name_of_a_named_actor(shared_cluster):
    first = Counter.options(name="reusable").remote()
    ray.get(first.increment.remote())
    ray.kill(first)
    deadline = time.time() + 10
    while "reusable" in ray.util.list_named_actors() and time.time() < deadline:
        time.sleep(0.05)
    second = Counter.options(name="reusable").remote(7)
    assert ray.get(second.get.remote()) == 7


def test_actor_restarts_after_kill_minus_9_and_keeps_its_name(shared_cluster):
    counter = Counter.options(name="phoenix", max_restarts=2).remote(0)
    ray.get(counter.increment.remote())
    first_pid = ray.get(counter.pid.remote())
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.time() + 30
    while True:
        try:
            value = ray.get(counter.get.remote(), timeout=30)
            break
        except RayActorError:
            assert time.time() < deadline, "actor did not come back"
            time.sleep(0.1)
    assert value == 0  # the constructor ran again: state is rebuilt, not kept
    assert ray.get(ray.get_actor("phoenix").pid.remote()) != first_pid
    ray.kill(counter)


def test_actor_without_restarts_is_dead_after_its_process_dies(shared_cluster):
    counter = Counter.remote()
    os.kill(ray.get(counter.pid.remote()), signal.SIGKILL)
    with pytest.raises(RayActorError):
        for _ in range(100):
            ray.get(counter.get.remote(), timeout=30)
            time.sleep(0.05)


def test_calls_in_flight_are_retried_with_max_task_retries(shared_cluster):
    @ray.remote
    class Sleepy:
        def pid(self):
            return os.getpid()

        def nap(self, seconds):
            time.sleep(seconds)
            return "rested"

    sleepy = Sleepy.options(max_restarts=1, max_task_retries=1).remote()
    pid = ray.get(sleepy.pid.remote())
    in_flight = sleepy.nap.remote(1.5)
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    assert ray.get(in_flight, timeout=60) == "rested"


def test_max_concurrency_runs_that_many_calls_at_once_never_more(shared_cluster):
    @ray.remote
    class Gate:
        def __init__(self):
            self.lock = threading.Lock()
            self.running = 0
            self.peak = 0

        def work(self):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.2)
            with self.lock:
                self.running -= 1
            return True

        def peak_seen(self):
            return self.peak

    gate = Gate.options(max_concurrency=3).remote()
    assert all(ray.get([gate.work.remote() for _ in range(12)]))
    assert ray.get(gate.peak_seen.remote()) == 3
    serial = Gate.remote()
    ray.get([serial.work.remote() for _ in range(4)])
    assert ray.get(serial.peak_seen.remote()) == 1


def test_async_actor_runs_coroutines_concurrently_on_its_event_loop(shared_cluster):
    @ray.remote
    class AsyncWorker:
        def __init__(self):
            self.active = 0
            self.peak = 0

        async def wait_a_bit(self, value):
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.3)
            self.active -= 1
            return value

        async def peak_seen(self):
            return self.peak

    worker = AsyncWorker.remote()
    assert ray.get([worker.wait_a_bit.remote(i) for i in range(10)]) == list(range(10))
    assert ray.get(worker.peak_seen.remote()) > 1  # the sleeps overlapped


def test_detached_lifetime_and_actor_options_are_accepted(shared_cluster):
    counter = Counter.options(lifetime="detached", name="detached-one", num_cpus=0).remote()
    assert ray.get(counter.increment.remote()) == 1
    ray.kill(counter)


def _wait_for_available(name, amount):
    deadline = time.time() + 5
    while ray.available_resources().get(name, 0) != amount and time.time() < deadline:
        time.sleep(0.05)
    return ray.available_resources().get(name, 0)


def test_actor_holds_its_resources_for_its_lifetime(shared_cluster):
    holder = Counter.options(resources={"custom": 1}).remote()
    ray.get(holder.get.remote())
    assert _wait_for_available("custom", 0) == 0
    ray.kill(holder)
    assert _wait_for_available("custom", 1.0) == 1.0

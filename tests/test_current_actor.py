"""``get_runtime_context()``'s ``current_actor``, ``get_accelerator_ids``,
``get_placement_group_id`` (and its capture flag) and ``gcs_address``, as in Ray: an actor's
handle of itself works like its creator's, and each is refused or empty where Ray's is."""

from __future__ import annotations

import time

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.util.placement_group import placement_group, remove_placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

TIMEOUT = 60


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    info = ray.init(num_cpus=2, num_gpus=1, temp_dir=str(tmp_path_factory.mktemp("cluster"))).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def inc(self) -> int:
        self.n += 1
        return self.n

    def value(self) -> int:
        return self.n

    def me(self):
        return ray.get_runtime_context().current_actor

    def inc_later_through_own_handle(self, times: int) -> None:
        handle = ray.get_runtime_context().current_actor
        for _ in range(times):
            handle.inc.remote()  # queued behind this call: it must not wait for them


@ray.remote
def current_actor_in_a_task():
    return ray.get_runtime_context().current_actor


@ray.remote(num_gpus=1)
def accelerators():
    return ray.get_runtime_context().get_accelerator_ids()


@ray.remote
def placement_group_id():
    context = ray.get_runtime_context()
    return (
        context.get_placement_group_id(),
        context.current_placement_group_id,
        context.should_capture_child_tasks_in_placement_group,
    )


@ray.remote
def gcs_address():
    return ray.get_runtime_context().gcs_address


@ray.remote
class AddressReporter:
    def gcs_address(self):
        return ray.get_runtime_context().gcs_address


def test_an_actor_gets_its_own_handle(gpu_cluster):
    counter = Counter.options(name="counted").remote()
    me = ray.get(counter.me.remote(), timeout=TIMEOUT)
    assert me == counter and me == ray.get_actor("counted")
    assert ray.get(me.inc.remote(), timeout=TIMEOUT) == 1
    assert ray.get(counter.value.remote(), timeout=TIMEOUT) == 1


def test_an_actor_calls_itself_through_its_own_handle(gpu_cluster):
    counter = Counter.remote()
    ray.get(counter.inc_later_through_own_handle.remote(3), timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while ray.get(counter.value.remote(), timeout=TIMEOUT) < 3:
        assert time.monotonic() < deadline, "the calls made through the actor's own handle never ran"
        time.sleep(0.05)
    assert ray.get(counter.value.remote(), timeout=TIMEOUT) == 3


def test_current_actor_outside_an_actor_is_refused(gpu_cluster):
    with pytest.raises(RuntimeError, match="only available in an actor"):
        _ = ray.get_runtime_context().current_actor
    with pytest.raises(ray.exceptions.RayTaskError, match="only available in an actor"):
        ray.get(current_actor_in_a_task.remote(), timeout=TIMEOUT)


def test_accelerator_ids_name_the_gpus_held(gpu_cluster):
    assert ray.get(accelerators.remote(), timeout=TIMEOUT) == {"GPU": ["0"]}
    assert ray.get_runtime_context().get_accelerator_ids() == {"GPU": []}
    assert ray.get_runtime_context().get_resource_ids() == {"GPU": []}


def test_placement_group_id_inside_and_outside_a_group(gpu_cluster):
    group = placement_group([{"CPU": 1}])
    ray.get(group.ready(), timeout=TIMEOUT)
    try:
        inside = [
            placement_group_id.options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=group, placement_group_capture_child_tasks=capture
                )
            ).remote()
            for capture in (False, True)
        ]
        assert ray.get(inside, timeout=TIMEOUT) == [(group.id, group.id, False), (group.id, group.id, True)]
    finally:
        remove_placement_group(group)
    assert ray.get(placement_group_id.remote(), timeout=TIMEOUT) == (None, None, False)
    context = ray.get_runtime_context()
    assert context.get_placement_group_id() is None and context.current_placement_group_id is None
    assert context.should_capture_child_tasks_in_placement_group is True  # a driver's, per Ray's docs


def test_gcs_address_is_the_heads_in_drivers_tasks_and_actors(gpu_cluster):
    address = ray.get_runtime_context().gcs_address
    assert address == gpu_cluster["gcs_address"]
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert ray.get(gcs_address.remote(), timeout=TIMEOUT) == address
    reporter = AddressReporter.remote()
    assert ray.get(reporter.gcs_address.remote(), timeout=TIMEOUT) == address


@ray.remote
def task_name():
    return ray.get_runtime_context().get_task_name()


@ray.remote
class Named:
    def task_name(self):
        return ray.get_runtime_context().get_task_name()


@ray.remote
def task_function_name():
    return ray.get_runtime_context().get_task_function_name()


@ray.remote
class FunctionNames:
    def sync_name(self):
        return ray.get_runtime_context().get_task_function_name()

    async def async_name(self):
        return ray.get_runtime_context().get_task_function_name()


def test_task_function_name_is_module_qualified_whatever_the_options_name(gpu_cluster):
    """As Ray's get_task_function_name example prints: module.function, module.Class.method."""
    module = __name__
    assert ray.get(task_function_name.remote(), timeout=TIMEOUT) == f"{module}.task_function_name"
    assert (
        ray.get(task_function_name.options(name="given").remote(), timeout=TIMEOUT)
        == f"{module}.task_function_name"
    )
    actor = FunctionNames.remote()
    assert ray.get(actor.sync_name.remote(), timeout=TIMEOUT) == f"{module}.FunctionNames.sync_name"
    assert ray.get(actor.async_name.remote(), timeout=TIMEOUT) == f"{module}.FunctionNames.async_name"
    assert ray.get_runtime_context().get_task_function_name() is None


def test_task_name_is_the_options_name_else_the_function_s(gpu_cluster):
    assert ray.get(task_name.remote(), timeout=TIMEOUT) == "task_name"
    assert ray.get(task_name.options(name="given").remote(), timeout=TIMEOUT) == "given"
    actor = Named.remote()
    assert ray.get(actor.task_name.remote(), timeout=TIMEOUT) == "Named.task_name"
    assert ray.get(actor.task_name.options(name="call").remote(), timeout=TIMEOUT) == "call"
    assert ray.get_runtime_context().get_task_name() is None

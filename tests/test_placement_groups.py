"""Placement groups through the public API on one 4-CPU node, each test checking a behaviour
documented in Ray's "Placement Groups" guide or its ``ray.util.placement_group`` API reference
(quoted or paraphrased in the test's docstring). Every test removes the groups it makes, so
the node's 4 CPUs are free again for the next."""

from __future__ import annotations

import os
import time

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.exceptions import ActorDiedError, GetTimeoutError, RayError, TaskPlacementGroupRemoved
from babyray.procfs import is_running
from babyray.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from babyray.util.placement_group import PlacementGroup
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@pytest.fixture(scope="module")
def four_cpus(tmp_path_factory):
    info = ray.init(
        num_cpus=4, temp_dir=str(tmp_path_factory.mktemp("pg")), object_store_memory=128 * 1024 * 1024
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def _in(pg, index=-1, capture=None):
    return PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=index, placement_group_capture_child_tasks=capture
    )


def _cpus_free(expected: float, timeout: float = 20) -> float:
    """available_resources()["CPU"] once it equals ``expected`` (heartbeats lag a little)."""
    deadline = time.monotonic() + timeout
    while True:
        free = ray.available_resources().get("CPU", 0.0)
        if free == expected or time.monotonic() > deadline:
            return free
        time.sleep(0.1)


@ray.remote(num_cpus=1)
def where_and_group():
    pg = get_current_placement_group()
    return ray.get_runtime_context().get_node_id(), pg.id if pg else None


@ray.remote(num_cpus=1)
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def test_ready_resolves_once_placed_and_the_bundles_are_reserved_from_the_node(four_cpus):
    """Guide: "pg.ready() returns an object ref that resolves once the placement group is
    created"; placement_group_table(pg) shows state CREATED with its bundles and strategy;
    "the reserved resources can only be used by tasks or actors that use the
    PlacementGroupSchedulingStrategy", so available CPUs drop by the bundles' and come back
    when ``remove_placement_group`` frees them."""
    assert _cpus_free(4.0) == 4.0
    pg = placement_group([{"CPU": 1}, {"CPU": 2}], strategy="PACK")
    assert isinstance(pg, PlacementGroup) and pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 2.0}]
    assert pg.bundle_count == 2
    assert ray.get(pg.ready(), timeout=60) == pg
    assert pg.wait(30) is True
    table = placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "PACK"
    assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 2.0}}
    node_id = ray.get_runtime_context().get_node_id()
    assert table["bundles_to_node_id"] == {0: node_id, 1: node_id}
    assert pg.id in placement_group_table()
    assert _cpus_free(1.0) == 1.0
    remove_placement_group(pg)
    assert _cpus_free(4.0) == 4.0
    assert placement_group_table(pg)["state"] == "REMOVED"


def test_a_group_no_node_can_hold_stays_pending_and_is_never_ready(four_cpus):
    """Guide: "If a placement group cannot be scheduled... it stays pending"; ray.get on
    ready() with a timeout raises GetTimeoutError, pg.wait(timeout) is False, and
    placement_group_table shows PENDING. Removing a pending group is allowed."""
    pg = placement_group([{"CPU": 2}, {"CPU": 3}], strategy="STRICT_PACK")  # 5 CPUs on one node of 4
    with pytest.raises(GetTimeoutError):
        ray.get(pg.ready(), timeout=2)
    assert pg.wait(1) is False
    assert placement_group_table(pg)["state"] == "PENDING"
    assert placement_group_table(pg)["bundles_to_node_id"] == {}
    assert _cpus_free(4.0) == 4.0  # nothing was half-reserved: all or nothing
    remove_placement_group(pg)
    assert placement_group_table(pg)["state"] == "REMOVED"


def test_ready_of_a_group_removed_while_pending_raises_and_the_removal_is_clean(four_cpus):
    """Ray fails the ready() task of a removed group (TaskPlacementGroupRemoved, as
    ``ray.exceptions`` documents) instead of leaving it unresolved; pg.wait is False ("True if
    the placement group is created. False otherwise"). The group is REMOVED, and nothing of it
    is left reserved: a group that fits is placed right after."""
    pg = placement_group([{"CPU": 2}, {"CPU": 3}], strategy="STRICT_PACK")  # never fits one 4-CPU node
    before = pg.ready()
    with pytest.raises(GetTimeoutError):
        ray.get(before, timeout=1)
    remove_placement_group(pg)
    with pytest.raises(TaskPlacementGroupRemoved, match=pg.id):
        ray.get(before, timeout=30)
    with pytest.raises(TaskPlacementGroupRemoved, match=pg.id):
        ray.get(pg.ready(), timeout=30)  # asked after the removal
    assert pg.wait(10) is False
    assert placement_group_table(pg)["state"] == "REMOVED"
    assert placement_group_table()[pg.id]["state"] == "REMOVED"
    fits = placement_group([{"CPU": 4}], strategy="STRICT_PACK")
    assert ray.get(fits.ready(), timeout=60) == fits
    remove_placement_group(fits)
    assert _cpus_free(4.0) == 4.0


def test_tasks_and_actors_waiting_for_a_removed_group_fail_naming_it(four_cpus):
    """A task or actor scheduled into a group never ends up waiting forever once the group is
    removed: tasks waiting for it, and tasks submitted to it afterwards, raise
    TaskPlacementGroupRemoved; actors waiting for it, or created in it afterwards, are dead
    (ActorDiedError naming the group). The cluster keeps running tasks."""
    pg = placement_group([{"CPU": 2}, {"CPU": 3}], strategy="STRICT_PACK")  # stays PENDING

    @ray.remote(num_cpus=1)
    class Member:
        def ping(self):
            return "pong"

    waiting_task = sleep_then.options(scheduling_strategy=_in(pg, 0)).remote(0, "never")
    waiting_actor = Member.options(scheduling_strategy=_in(pg, 1)).remote()
    with pytest.raises(GetTimeoutError):
        ray.get(waiting_task, timeout=1)
    remove_placement_group(pg)
    with pytest.raises(TaskPlacementGroupRemoved, match=pg.id):
        ray.get(waiting_task, timeout=30)
    with pytest.raises(ActorDiedError, match=f"placement group {pg.id}"):
        ray.get(waiting_actor.ping.remote(), timeout=30)
    late_task = where_and_group.options(placement_group=pg).remote()
    late_actor = Member.options(scheduling_strategy=_in(pg)).remote()
    with pytest.raises(TaskPlacementGroupRemoved, match=pg.id):
        ray.get(late_task, timeout=30)
    with pytest.raises(ActorDiedError, match=f"placement group {pg.id}"):
        ray.get(late_actor.ping.remote(), timeout=30)
    assert ray.get(sleep_then.remote(0, "still running"), timeout=60) == "still running"
    assert _cpus_free(4.0) == 4.0


def test_reserved_cpus_are_not_used_by_tasks_outside_the_group_until_it_is_removed(four_cpus):
    """Guide: reserved resources "can only be used by tasks or actors that use the
    PlacementGroupSchedulingStrategy": with all 4 CPUs reserved a plain task waits, a task in
    the group runs; after removal the plain task runs."""
    pg = placement_group([{"CPU": 4}], strategy="STRICT_PACK")
    ray.get(pg.ready(), timeout=60)
    outside = sleep_then.remote(0, "outside")
    with pytest.raises(GetTimeoutError):
        ray.get(outside, timeout=2)
    inside = sleep_then.options(scheduling_strategy=_in(pg, 0)).remote(0, "inside")
    assert ray.get(inside, timeout=60) == "inside"
    remove_placement_group(pg)
    assert ray.get(outside, timeout=60) == "outside"


def test_tasks_in_a_bundle_share_only_its_resources(four_cpus, tmp_path):
    """Guide: tasks in a bundle use the bundle's reserved resources: two 1-CPU tasks in one
    1-CPU bundle run one after the other although the node has 3 CPUs free."""
    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=60)

    @ray.remote(num_cpus=1)
    def span(path):
        start = time.time()
        time.sleep(1.0)
        with open(path, "w") as f:
            f.write(f"{start} {time.time()}")

    paths = [str(tmp_path / f"span{i}") for i in range(2)]
    ray.get([span.options(scheduling_strategy=_in(pg, 0)).remote(p) for p in paths], timeout=60)
    (s0, e0), (s1, e1) = sorted(tuple(map(float, open(p).read().split())) for p in paths)
    assert s1 >= e0 - 0.05, "the second task started while the first held the bundle's only CPU"
    remove_placement_group(pg)


def test_a_request_larger_than_any_bundle_or_a_bad_index_is_refused_at_submission(four_cpus):
    """API reference: a task or actor whose resources cannot fit into the bundle (or any
    bundle, index -1) raises ValueError ("Cannot schedule ... cannot fit into any bundles");
    a bundle index outside the group's bundles raises ValueError. The cluster keeps running."""
    pg = placement_group([{"CPU": 1}, {"CPU": 2}])
    with pytest.raises(ValueError, match="cannot fit into any bundles"):
        sleep_then.options(num_cpus=3, scheduling_strategy=_in(pg)).remote(0, 0)
    with pytest.raises(ValueError, match="cannot fit"):
        sleep_then.options(num_cpus=2, scheduling_strategy=_in(pg, 0)).remote(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        sleep_then.options(scheduling_strategy=_in(pg, 2)).remote(0, 0)

    @ray.remote(num_cpus=2)
    class Big:
        pass

    with pytest.raises(ValueError, match="cannot fit"):
        Big.options(scheduling_strategy=_in(pg, 0)).remote()
    assert (
        ray.get(sleep_then.options(num_cpus=2, scheduling_strategy=_in(pg, 1)).remote(0, "ok"), timeout=60)
        == "ok"
    )
    remove_placement_group(pg)


def test_bad_bundles_strategy_or_lifetime_raise_value_error(four_cpus):
    """API reference: placement_group raises ValueError "if bundle type is not a list",
    "if empty bundle or empty resource bundles are given", or if the strategy or lifetime
    is invalid."""
    for bundles in ([], {"CPU": 1}, [{}], [{"CPU": 0}], [{"CPU": -1}], [{"CPU": "1"}]):
        with pytest.raises(ValueError):
            placement_group(bundles)
    with pytest.raises(ValueError, match="strategy"):
        placement_group([{"CPU": 1}], strategy="SOMEWHERE")
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")
    assert ray.get(sleep_then.remote(0, "alive"), timeout=60) == "alive"


def test_current_placement_group_in_tasks_actors_and_captured_children(four_cpus):
    """API reference: get_current_placement_group returns the group the task or actor runs
    in, None in the driver; with placement_group_capture_child_tasks=True the children of a
    task "implicitly use the same placement group as its parent", by default (False) they do
    not."""
    assert get_current_placement_group() is None
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    ray.get(pg.ready(), timeout=60)
    node_id = ray.get_runtime_context().get_node_id()
    assert ray.get(where_and_group.options(scheduling_strategy=_in(pg, 1)).remote(), timeout=60) == (
        node_id,
        pg.id,
    )
    assert ray.get(where_and_group.remote(), timeout=60) == (node_id, None)

    @ray.remote(num_cpus=0)
    def parent():
        return get_current_placement_group().id, ray.get(where_and_group.remote(), timeout=60)[1]

    assert ray.get(parent.options(scheduling_strategy=_in(pg, capture=True)).remote(), timeout=60) == (
        pg.id,
        pg.id,
    )
    assert ray.get(parent.options(scheduling_strategy=_in(pg)).remote(), timeout=60) == (pg.id, None)

    @ray.remote(num_cpus=1)
    class Member:
        def group(self):
            current = get_current_placement_group()
            return current.id if current else None

    member = Member.options(scheduling_strategy=_in(pg, 0)).remote()
    assert ray.get(member.group.remote(), timeout=60) == pg.id
    legacy = where_and_group.options(
        placement_group=pg, placement_group_bundle_index=1
    ).remote()  # 0 holds member
    assert ray.get(legacy, timeout=60) == (node_id, pg.id)
    remove_placement_group(pg)


def test_removing_a_group_kills_its_actors_and_tasks_and_frees_their_cpus(four_cpus):
    """Guide: "When you remove the placement group, actors or tasks that still use the
    reserved resources are forcefully killed", and the resources are freed."""
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=60)

    @ray.remote(num_cpus=1, max_restarts=3)
    class Worker:
        def pid(self):
            return os.getpid()

    actor = Worker.options(scheduling_strategy=_in(pg, 0)).remote()
    pid = ray.get(actor.pid.remote(), timeout=60)
    running = sleep_then.options(scheduling_strategy=_in(pg, 1)).remote(120, "never")
    queued = sleep_then.options(scheduling_strategy=_in(pg, 1)).remote(0, "never")  # waits for bundle 1
    time.sleep(1.0)  # let it start
    remove_placement_group(pg)
    with pytest.raises(RayError):
        ray.get(running, timeout=30)
    with pytest.raises(TaskPlacementGroupRemoved, match=pg.id):
        ray.get(queued, timeout=30)
    with pytest.raises(ActorDiedError, match="placement group"):
        ray.get(actor.pid.remote(), timeout=30)  # max_restarts does not bring it back
    deadline = time.monotonic() + 20
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(pid)
    assert _cpus_free(4.0) == 4.0


def test_named_groups_are_found_by_name_and_names_are_unique(four_cpus):
    """API reference: get_placement_group(name) returns the group with that global name;
    creating a second group with a name in use fails; an unknown name raises ValueError. A
    removed group's name is free again."""
    pg = placement_group([{"CPU": 1}], name="trainers")
    found = get_placement_group("trainers")
    assert found == pg and found.bundle_specs == [{"CPU": 1.0}]
    with pytest.raises(ValueError, match="already exists"):
        placement_group([{"CPU": 1}], name="trainers")
    with pytest.raises(ValueError, match="nobody"):
        get_placement_group("nobody")
    assert ray.get(found.ready(), timeout=60) == pg
    remove_placement_group(found)
    again = placement_group([{"CPU": 1}], name="trainers")
    assert again != pg and get_placement_group("trainers") == again
    remove_placement_group(again)


def test_the_state_api_lists_placement_groups(four_cpus):
    """``babyray list placement-groups`` (ray.util.state.list_placement_groups): id, name,
    state, strategy, bundles and their nodes."""
    from babyray.util.state import list_placement_groups

    pg = placement_group([{"CPU": 1}] * 2, strategy="STRICT_PACK", name="listed")
    ray.get(pg.ready(), timeout=60)
    rows = {r["placement_group_id"]: r for r in list_placement_groups(filters=[("name", "=", "listed")])}
    assert list(rows) == [pg.id]
    row = rows[pg.id]
    assert (row["state"], row["strategy"], row["bundles"]) == ("CREATED", "STRICT_PACK", [{"CPU": 1.0}] * 2)
    assert set(row["bundles_to_node_id"].values()) == {ray.get_runtime_context().get_node_id()}
    remove_placement_group(pg)
    assert list_placement_groups(filters={"name": "listed"})[0]["state"] == "REMOVED"

"""Placement policies of the global scheduler, without a cluster."""

from __future__ import annotations

import pytest

from babyray.actors.scheduling_policy import (
    LocalityAwarePolicy,
    NodeLoad,
    Placement,
    QueueOnlyPolicy,
    Unschedulable,
    wants_global_placement,
)
from babyray.protocol import values as vm
from babyray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def spec(args=(), resources=None, strategy=None):
    return vm.TaskSpec(
        "t1",
        "j",
        "f",
        "fn",
        list(args),
        {},
        1,
        ["o1"],
        resources or {"CPU": 1.0},
        None,
        "owner",
        scheduling_strategy=strategy,
    )


def nodes(**queues):
    return {name: NodeLoad(name, {"CPU": 2.0}, {"CPU": 2.0}, q, True) for name, q in queues.items()}


def stored_on(node_id, size):
    return vm.ValueArg("obj", vm.StoredValue(node_id, size))


def test_locality_aware_policy_runs_a_task_where_its_large_input_lives():
    placement = Placement(LocalityAwarePolicy())
    assert placement.choose_node(spec([stored_on("b", 100 << 20)]), nodes(a=0, b=0)).node_id == "b"


def test_locality_aware_policy_moves_a_small_input_to_an_idle_node():
    placement = Placement(LocalityAwarePolicy())
    assert placement.choose_node(spec([stored_on("b", 1000)]), nodes(a=0, b=50)).node_id == "a"


def test_queue_only_policy_ignores_where_inputs_live():
    placement = Placement(QueueOnlyPolicy())
    assert placement.choose_node(spec([stored_on("b", 100 << 20)]), nodes(a=0, b=3)).node_id == "a"


def test_spread_alternates_between_equally_loaded_nodes():
    placement = Placement(QueueOnlyPolicy())
    chosen = [placement.choose_node(spec(strategy="SPREAD"), nodes(a=0, b=0)).node_id for _ in range(4)]
    assert chosen == ["a", "b", "a", "b"]


def test_hard_node_affinity_to_a_dead_node_is_unschedulable_and_soft_falls_back():
    table = nodes(a=0, b=0)
    table["b"].alive = False
    placement = Placement(QueueOnlyPolicy())
    with pytest.raises(Unschedulable):
        placement.choose_node(spec(strategy=NodeAffinitySchedulingStrategy("b")), table)
    assert (
        placement.choose_node(spec(strategy=NodeAffinitySchedulingStrategy("b", soft=True)), table).node_id
        == "a"
    )


def test_a_task_no_node_fits_waits():
    assert Placement(QueueOnlyPolicy()).choose_node(spec(resources={"GPU": 1.0}), nodes(a=0)) is None


def test_local_scheduler_passes_up_tasks_with_large_remote_inputs_and_other_node_affinity():
    assert wants_global_placement(spec([stored_on("b", 10 << 20)]), "a")
    assert not wants_global_placement(spec([stored_on("a", 10 << 20)]), "a")
    assert not wants_global_placement(spec(), "a")
    assert wants_global_placement(spec(strategy=NodeAffinitySchedulingStrategy("b")), "a")
    assert not wants_global_placement(spec(strategy=NodeAffinitySchedulingStrategy("a")), "a")


def test_tasks_placed_one_after_another_keep_following_their_data():
    """A sequential job: each task is done before the next is placed, so placements made
    since the last heartbeat must not look like a queue on the node that holds the data."""
    policy = LocalityAwarePolicy()
    table = nodes(a=0, b=0)
    task = spec([stored_on("b", 1 << 20)])
    now = 1000.0
    for _ in range(40):
        costs = {name: node.queue_seconds(policy.task_seconds, now) for name, node in table.items()}
        assert costs["b"] < costs["a"] + policy.pull_seconds
        assert policy.cost(task, table["b"], now) < policy.cost(task, table["a"], now)
        table["b"].note_placed(policy.task_seconds, now)
        now += 0.01  # the task ran meanwhile
    assert table["b"].backlog(policy.task_seconds, now) <= 1.0


def test_a_burst_of_placements_spills_to_the_idle_node():
    placement = Placement(LocalityAwarePolicy())
    table = nodes(a=0, b=0)
    for _ in range(10):  # placed at once: a real backlog on b
        table["b"].note_placed(placement.policy.task_seconds, now=1000.0)
    assert table["b"].queue_seconds(placement.policy.task_seconds, now=1000.0) > 0.02
    assert table["b"].queue_seconds(placement.policy.task_seconds, now=1000.1) == 0.0  # drained since


def test_the_fixed_cost_of_a_pull_counts_for_a_small_remote_input():
    policy = LocalityAwarePolicy()
    table = nodes(a=0, b=0)
    assert policy.cost(spec([stored_on("b", 1 << 20)]), table["a"]) >= policy.pull_seconds
    assert policy.cost(spec([stored_on("b", 1 << 20)]), table["b"]) == 0.0

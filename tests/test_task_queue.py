"""The local scheduler's task queue (babyray.actors.task_queue), without a cluster: per
resource shape, the deepest nesting first, first in first out within a depth."""

from __future__ import annotations

from babyray.actors.task_queue import TaskQueue
from babyray.protocol import values as vm


def spec(task_id, depth=0, cpus=1.0):
    return vm.TaskSpec(
        task_id,
        "j",
        "f",
        "fn",
        [],
        {},
        1,
        [f"{task_id}-o"],
        {"CPU": cpus},
        None,
        "owner",
        nesting_depth=depth,
    )


def queued(*specs):
    queue = TaskQueue()
    for s in specs:
        queue.push(s)
    return queue


def drain(queue):
    order = []
    while shapes := queue.shapes():
        order.append(queue.popped(shapes[0]).task_id)
    assert len(queue) == 0
    return order


def test_the_deepest_task_comes_first_and_each_depth_keeps_its_order():
    queue = queued(spec("a"), spec("b"), spec("c1", 1), spec("d2", 2), spec("e1", 1), spec("f"))
    assert len(queue) == 6
    assert drain(queue) == ["d2", "c1", "e1", "a", "b", "f"]


def test_a_drivers_tasks_all_at_depth_zero_keep_their_order():
    assert drain(queued(*(spec(f"t{i}") for i in range(5)))) == ["t0", "t1", "t2", "t3", "t4"]


def test_tasks_handed_back_go_back_to_the_head_of_their_depth_in_order():
    queue = queued(spec("a1", 1), spec("b1", 1), spec("c"), spec("d2", 2))
    head = queue.shapes()[0]
    taken = [queue.popped(head), queue.popped(head)]
    assert [s.task_id for s in taken] == ["d2", "a1"]
    queue.push(spec("e2", 2))
    queue.push_front(taken)
    assert drain(queue) == ["d2", "e2", "a1", "b1", "c"]


def test_each_shape_has_its_own_head_and_the_deepest_head_comes_first():
    queue = queued(spec("small", cpus=1.0), spec("big", cpus=2.0), spec("big-nested", 3, cpus=2.0))
    heads = [shape.head().task_id for shape in queue.shapes()]
    assert heads == ["big-nested", "small"]
    assert not queue.shapes()[0].one_depth() and queue.shapes()[1].one_depth()


def test_removed_and_taken_tasks_leave_the_queue():
    queue = queued(spec("a"), spec("b1", 1), spec("c1", 1), spec("d2", 2))
    assert queue.remove("c1").task_id == "c1" and queue.remove("c1") is None
    taken = queue.take_all(lambda s: s.task_id in ("a", "d2"))
    assert sorted(s.task_id for s in taken) == ["a", "d2"]
    assert len(queue) == 1 and drain(queue) == ["b1"]

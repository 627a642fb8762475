"""The local scheduler's dispatch rule (babyray.actors.dispatch), without a cluster."""

from __future__ import annotations

import dataclasses

import pytest

from babyray.actors.dispatch import plan_dispatch, steal_requests
from babyray.actors.resources import ResourcePool
from babyray.actors.task_queue import TaskQueue
from babyray.actors.worker_table import WorkerRecord, WorkerState, WorkerTable
from babyray.protocol import values as vm
from babyray.runtime_env.validation import env_key


def spec(task_id, cpus=1.0, actor_id=None, runtime_env=None, depth=0):
    return vm.TaskSpec(
        task_id,
        "j",
        "f",
        "fn",
        [],
        {},
        1,
        [f"{task_id}-o"],
        {"CPU": cpus} if cpus else {},
        None,
        "owner",
        actor_id=actor_id,
        actor_creation=actor_id is not None,
        runtime_env=runtime_env or {},
        nesting_depth=depth,
    )


def node(cpus, ready_workers, env=""):
    table = WorkerTable(ResourcePool({"CPU": float(cpus)}))
    for i in range(ready_workers):
        table.add(WorkerRecord(f"w{i}", f"addr{i}", 100 + i, env_key=env))
        table.mark_ready(f"w{i}", f"addr{i}")
    return table


def queued(*specs):
    queue = TaskQueue()
    for s in specs:
        queue.push(s)
    return queue


def sent(plan):
    return {worker_id: [s.task_id for s in specs] for worker_id, (_, specs) in plan.batches.items()}


def test_tasks_go_to_idle_workers_while_cpus_are_free_and_the_rest_wait():
    workers, queue = node(2, 2), queued(spec("t1"), spec("t2"), spec("t3"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sorted(t for ts in sent(plan).values() for t in ts) == ["t1", "t2"]
    assert len(queue) == 1 and workers.pool.available["CPU"] == 0.0 and plan.wanted == []
    assert all(w.state is WorkerState.BUSY for w in workers)


def test_a_runnable_task_without_an_idle_worker_asks_for_one():
    workers, queue = node(2, 1), queued(spec("t1"), spec("t2"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w0": ["t1"]} and plan.wanted == [{}] and len(queue) == 1


def test_a_backlog_is_pipelined_behind_busy_workers_a_short_burst_is_not():
    workers = node(1, 1)
    plan = plan_dispatch(queued(spec("t1"), spec("t2")), workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w0": ["t1"]}  # 2 queued on 1 CPU: no backlog
    workers = node(1, 1)
    queue = queued(*(spec(f"t{i}") for i in range(6)))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w0": ["t0", "t1", "t2", "t3"]} and len(queue) == 2  # up to the pipeline depth
    assert workers.pool.available["CPU"] == 0.0  # queued tasks take no more CPU


def test_a_worker_runs_only_tasks_of_its_runtime_env():
    workers = node(2, 1, env="")
    plan = plan_dispatch(queued(spec("t1", runtime_env={"env_vars": {"A": "1"}})), workers, 4, 10)
    assert sent(plan) == {} and plan.wanted == [{"env_vars": {"A": "1"}}]


def test_actors_beyond_the_worker_limit_are_refused():
    workers = node(2, 2)
    queue = queued(spec("a1", cpus=0, actor_id="A1"), spec("a2", cpus=0, actor_id="A2"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=1)
    assert sent(plan) == {"w1": ["a1"]} and [s.task_id for s in plan.refused] == ["a2"]
    assert workers.actor_workers() == 1


def test_idle_workers_take_over_half_of_the_longest_backlogs():
    workers = node(3, 3)
    queue = queued(*(spec(f"t{i}") for i in range(10)))
    plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    busiest = max(workers, key=lambda w: len(w.assigned))
    for w in workers:
        if w is not busiest:
            workers.finish(w, {s.task_id for s in w.assigned})
    assert [(w.worker_id, n) for w, n in steal_requests(workers)] == [
        (busiest.worker_id, len(busiest.assigned) // 2)
    ]


def test_the_deepest_queued_task_runs_first():
    workers = node(2, 2)
    queue = queued(spec("d1"), spec("d2"), spec("nested", depth=1), spec("d3"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w1": ["nested"], "w0": ["d1"]} and len(queue) == 2


def test_a_backlog_of_one_nesting_depth_is_pipelined_one_of_several_is_not():
    workers = node(1, 1)
    queue = queued(*(spec(f"t{i}", depth=1) for i in range(6)))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w0": ["t0", "t1", "t2", "t3"]}  # a task's fan-out of subtasks
    workers = node(1, 1)
    queue = queued(*(spec(f"t{i}", depth=i % 2) for i in range(6)))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10)
    assert sent(plan) == {"w0": ["t1"]} and len(queue) == 5  # the next CPU goes to the deepest


def workers_for_recursion(n, cpus, nested):
    """How many workers remote recursion ``fib(n)`` starts on a node of ``cpus`` CPUs, driven
    through ``plan_dispatch`` as the local scheduler does (a worker starts for each runnable task
    without an idle one, none stops): an inner task submits its two subtasks and blocks in
    ``get``, handing back the tasks queued behind it; a leaf ends at once. ``nested=False``
    gives every task depth 0: the first-in first-out order of a queue without nesting depths."""
    workers, queue = node(cpus, cpus), TaskQueue()
    tasks: dict[str, tuple[int, str | None]] = {}  # task id -> (its n, its parent's task id)
    waiting: dict[str, list] = {}  # parent task id -> [subtasks left, their sum, its worker, its spec]
    ran: set[str] = set()
    result = []

    def submit(k, parent, depth):
        task_id = f"t{len(tasks)}"
        tasks[task_id] = (k, parent)
        queue.push(spec(task_id, depth=depth if nested else 0))

    def end(worker, task, value):
        workers.finish(worker, {task.task_id})
        parent = tasks[task.task_id][1]
        if parent is None:
            result.append(value)
            return
        entry = waiting[parent]
        entry[0], entry[1] = entry[0] - 1, entry[1] + value
        if entry[0] == 0:
            workers.unblock(entry[2])
            end(entry[2], entry[3], entry[1])

    def run(worker, task):
        ran.add(task.task_id)
        k = tasks[task.task_id][0]
        if k < 2:
            end(worker, task, k)
            return
        waiting[task.task_id] = [2, 0, worker, task]
        submit(k - 1, task.task_id, task.nesting_depth + 1)
        submit(k - 2, task.task_id, task.nesting_depth + 1)
        handed_back = worker.assigned[1:]
        workers.finish(worker, {s.task_id for s in handed_back})
        queue.push_front(handed_back)
        workers.block(worker)

    submit(n, None, 0)
    while True:
        while plan_dispatch(queue, workers, pipeline_depth=16, actor_limit=0).wanted:
            worker_id = f"w{len(workers)}"
            workers.add(WorkerRecord(worker_id, worker_id, len(workers) + 100))
            workers.mark_ready(worker_id, worker_id)
        leased = next(
            (w for w in workers if w.state is WorkerState.BUSY and w.assigned[0].task_id not in ran), None
        )
        if leased is None:
            break
        run(leased, leased.assigned[0])
    assert result == [fib(n)]
    return len(workers)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def test_remote_recursion_takes_a_few_workers_per_level_deepest_first_not_one_per_inner_task():
    inner_tasks = fib(13) - 1  # of fib(12)'s recursion
    assert workers_for_recursion(12, 2, nested=True) <= 2 * 2 * 12  # about two blocked per level
    assert workers_for_recursion(12, 2, nested=False) > inner_tasks // 2  # first in, first out


# ---- leases: which dispatches may end in a lease -----------------------------------------


def test_a_lone_task_to_an_idle_worker_with_nothing_left_queued_may_end_in_a_lease():
    workers, queue = node(2, 2), queued(spec("t1"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10, leases=True)
    assert sent(plan) == {"w1": ["t1"]} and plan.leasable == {"w1"}


def test_no_lease_while_tasks_stay_queued_or_when_leases_are_off():
    workers, queue = node(2, 2), queued(spec("t1"), spec("t2"), spec("t3"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10, leases=True)
    assert len(sent(plan)) == 2 and plan.leasable == set()  # a backlog is served here
    workers, queue = node(2, 2), queued(spec("t1"))
    assert plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10).leasable == set()


@pytest.mark.parametrize(
    "task",
    [
        spec("actor", actor_id="A", cpus=0),
        spec("env", runtime_env={"env_vars": {"X": "1"}}),
        dataclasses.replace(spec("gpu"), resources={"CPU": 1.0, "GPU": 1.0}),
        dataclasses.replace(spec("spread"), scheduling_strategy="SPREAD"),
        dataclasses.replace(spec("generator"), generator="streaming"),
    ],
)
def test_only_plain_tasks_may_end_in_a_lease(task):
    workers = node(2, 1, env=env_key(task.runtime_env))
    workers.pool.total["GPU"] = workers.pool.available["GPU"] = 1.0
    queue = queued(task)
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10, leases=True)
    assert sent(plan) == {"w0": [task.task_id]} and plan.leasable == set()


def test_a_leased_worker_gets_no_task():
    workers, queue = node(2, 2), queued(spec("t1"))
    plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10, leases=True)
    leased = next(w for w in workers if w.state is WorkerState.BUSY)
    workers.finish(leased, {"t1"}, lessee="owner", now=1.0)
    queue = queued(spec("t2"), spec("t3"))
    plan = plan_dispatch(queue, workers, pipeline_depth=4, actor_limit=10, leases=True)
    assert leased.worker_id not in sent(plan) and len(queue) == 1  # its CPU is charged: one fits
    assert workers.to_reclaim() == [leased]

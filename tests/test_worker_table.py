"""The local scheduler's worker table and task leases, without a cluster."""
from __future__ import annotations

from babyray.actors.worker_table import WorkerRecord, WorkerState, WorkerTable
from babyray.protocol import values as vm


def spec(task_id, actor_id=None, creation=False):
    return vm.TaskSpec(task_id, "j", "f", "fn", [], {}, 1, [f"{task_id}-o"], {"CPU": 1.0}, None, "owner",
                      actor_id=actor_id, actor_creation=creation)


def table_with(*pids):
    table = WorkerTable()
    for i, pid in enumerate(pids):
        table.add(WorkerRecord(f"w{i}", f"addr{i}", pid))
    return table


def test_a_started_worker_is_starting_until_ready_then_idle():
    table = table_with(100)
    worker = table.get("w0")
    assert worker.state is WorkerState.STARTING and table.idle() == []
    assert table.mark_ready("w0", "real-addr") is worker
    assert worker.state is WorkerState.IDLE and worker.address == "real-addr" and table.idle() == [worker]
    assert table.mark_ready("nobody", "x") is None


def test_workers_are_found_by_pid():
    table = table_with(100, 200)
    assert table.by_pid(200).worker_id == "w1" and table.by_pid(300) is None


def test_leases_run_in_order_and_finish_by_task_id():
    table = table_with(100)
    worker = table.mark_ready("w0", "a")
    for task_id in ("t1", "t2", "t3"):
        table.assign(worker, spec(task_id))
    assert worker.state is WorkerState.BUSY
    assert table.running_on("t1") is worker and table.running_on("t2") is None
    assert table.holder("t3") is worker and table.holder("t9") is None
    done = table.finish(worker, {"t1", "t3"})
    assert [s.task_id for s in done] == ["t1", "t3"]
    assert [s.task_id for s in worker.assigned] == ["t2"] and table.running_on("t2") is worker


def test_a_dead_worker_hands_back_its_running_task_and_its_queue():
    table = table_with(100, 200)
    worker = table.mark_ready("w0", "a")
    for task_id in ("t1", "t2", "t3"):
        table.assign(worker, spec(task_id))
    held = table.remove("w0")
    assert held.worker is worker and held.running.task_id == "t1"
    assert [s.task_id for s in held.unstarted] == ["t2", "t3"]
    assert table.get("w0") is None and table.by_pid(100) is None and table.holder("t2") is None
    assert table.remove("w0") is None  # a second notice of the same death is ignored
    assert len(table) == 1


def test_an_idle_dead_worker_held_nothing():
    table = table_with(100)
    held = table.remove("w0")
    assert held.running is None and held.unstarted == ()


def test_blocked_actor_and_exiting_workers_take_no_tasks():
    table = table_with(1, 2, 3, 4)
    workers = [table.mark_ready(f"w{i}", "a") for i in range(4)]
    workers[0].blocked = True
    workers[1].actor_id = "actor"
    workers[2].exiting = True
    assert [w.state for w in workers] == [WorkerState.BLOCKED, WorkerState.ACTOR, WorkerState.EXITING,
                                          WorkerState.IDLE]
    assert table.idle() == [workers[3]]
    assert table.actor_workers() == 1 and table.pool_size() == 2  # blocked and idle, not actor or exiting
    assert table.count(WorkerState.IDLE, WorkerState.BLOCKED) == 2

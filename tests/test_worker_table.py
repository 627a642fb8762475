"""The local scheduler's worker table: worker states, task leases and the resources they
take from the node's pool, without a cluster."""

from __future__ import annotations

import pytest

from babyray.actors.resources import ResourcePool
from babyray.actors.worker_table import TRANSITIONS, WorkerRecord, WorkerState, WorkerTable
from babyray.protocol import values as vm


def spec(task_id, actor_id=None, creation=False, resources=None):
    return vm.TaskSpec(
        task_id,
        "j",
        "f",
        "fn",
        [],
        {},
        1,
        [f"{task_id}-o"],
        {"CPU": 1.0} if resources is None else resources,
        None,
        "owner",
        actor_id=actor_id,
        actor_creation=creation,
    )


def table_with(*pids, cpus=2.0, gpus=0.0):
    table = WorkerTable(ResourcePool({"CPU": cpus, "GPU": gpus}))
    for i, pid in enumerate(pids):
        table.add(WorkerRecord(f"w{i}", f"addr{i}", pid))
    return table


def cpus_free(table):
    return table.pool.available["CPU"]


def test_a_started_worker_is_starting_until_ready_then_idle():
    table = table_with(100)
    worker = table.get("w0")
    assert worker.state is WorkerState.STARTING and table.idle() == [] and table.starting("") == 1
    assert table.mark_ready("w0", "real-addr") is worker
    assert worker.state is WorkerState.IDLE and worker.address == "real-addr" and table.idle() == [worker]
    assert table.starting("") == 0
    assert table.mark_ready("nobody", "x") is None


def test_workers_are_found_by_pid():
    table = table_with(100, 200)
    assert table.by_pid(200).worker_id == "w1" and table.by_pid(300) is None


def test_leases_run_in_order_and_finish_by_task_id():
    table = table_with(100)
    worker = table.mark_ready("w0", "a")
    table.assign(worker, spec("t1"))
    for task_id in ("t2", "t3"):
        table.queue_behind(worker, spec(task_id))
    assert worker.state is WorkerState.BUSY and cpus_free(table) == 1.0  # queued tasks take no more
    assert [s.task_id for s in worker.assigned] == ["t1", "t2", "t3"]
    assert table.holder("t3") is worker and table.holder("t9") is None
    done = table.finish(worker, {"t1", "t3"})
    assert [s.task_id for s in done] == ["t1", "t3"]
    assert [s.task_id for s in worker.assigned] == ["t2"] and table.holder("t2") is worker
    assert worker.state is WorkerState.BUSY and cpus_free(table) == 1.0


def test_a_dead_worker_hands_back_its_running_task_and_its_queue():
    table = table_with(100, 200)
    worker = table.mark_ready("w0", "a")
    table.assign(worker, spec("t1"))
    for task_id in ("t2", "t3"):
        table.queue_behind(worker, spec(task_id))
    held = table.remove("w0")
    assert held.worker is worker and held.running.task_id == "t1" and held.last_state is WorkerState.BUSY
    assert [s.task_id for s in held.unstarted] == ["t2", "t3"]
    assert table.get("w0") is None and table.by_pid(100) is None and table.holder("t2") is None
    assert worker.state is WorkerState.DEAD and cpus_free(table) == 2.0
    assert table.remove("w0") is None  # a second notice of the same death is ignored
    assert len(table) == 1 and cpus_free(table) == 2.0


def test_an_idle_dead_worker_held_nothing():
    table = table_with(100)
    held = table.remove("w0")
    assert held.running is None and held.unstarted == () and cpus_free(table) == 2.0


def test_blocked_actor_and_exiting_workers_take_no_tasks():
    table = table_with(1, 2, 3, 4, cpus=4.0)
    workers = [table.mark_ready(f"w{i}", "a") for i in range(4)]
    table.assign(workers[0], spec("t0"))
    table.block(workers[0])
    table.assign(workers[1], spec("a1", actor_id="actor", creation=True, resources={}))
    table.assign(workers[2], spec("a2", actor_id="actor2", creation=True, resources={}))
    table.mark_exiting(workers[2])
    assert [w.state for w in workers] == [
        WorkerState.BLOCKED,
        WorkerState.ACTOR,
        WorkerState.EXITING,
        WorkerState.IDLE,
    ]
    assert table.idle() == [workers[3]]
    assert table.actor_workers() == 2 and table.pool_size() == 2  # blocked and idle, not actor or exiting
    assert table.count(WorkerState.IDLE, WorkerState.BLOCKED) == 2


# ---- the pool: every path that ends a worker's lease gives its CPU back once -------------


def busy_worker(table, *task_ids):
    worker = table.mark_ready("w0", "a")
    table.assign(worker, spec(task_ids[0]))
    for task_id in task_ids[1:]:
        table.queue_behind(worker, spec(task_id))
    return worker


def test_a_worker_whose_last_task_is_done_gives_its_cpu_back():
    table = table_with(100)
    worker = busy_worker(table, "t1")
    assert cpus_free(table) == 1.0
    table.finish(worker, {"t1"})
    assert worker.state is WorkerState.IDLE and worker.held == {} and cpus_free(table) == 2.0
    table.finish(worker, {"t1"})  # a repeated report changes nothing
    assert cpus_free(table) == 2.0


def test_a_worker_whose_queued_tasks_come_back_after_its_running_one_finished_gives_its_cpu_back():
    """The worker reports its running task done, then hands back the tasks queued behind it
    (stolen, or sent while it was blocked): its lease ends with the hand-back. This order of
    messages left the CPU taken for good, and the idle worker's next lease took another."""
    table = table_with(100)
    worker = busy_worker(table, "t1", "t2", "t3")
    table.finish(worker, {"t1"})  # WorkerTasksDone
    assert worker.state is WorkerState.BUSY and cpus_free(table) == 1.0
    table.finish(worker, {"t2", "t3"})  # ReturnTasks
    assert worker.state is WorkerState.IDLE and cpus_free(table) == 2.0
    table.assign(worker, spec("t4"))
    table.finish(worker, {"t4"})
    assert cpus_free(table) == 2.0


def test_a_blocked_worker_lends_its_cpu_and_takes_it_back():
    table = table_with(100)
    worker = busy_worker(table, "t1")
    table.block(worker)
    assert worker.state is WorkerState.BLOCKED and cpus_free(table) == 2.0
    table.block(worker)  # a repeated notice lends nothing more
    assert cpus_free(table) == 2.0
    table.unblock(worker)
    assert worker.state is WorkerState.BUSY and cpus_free(table) == 1.0
    table.unblock(worker)
    assert cpus_free(table) == 1.0
    table.finish(worker, {"t1"})
    assert cpus_free(table) == 2.0


def test_a_task_that_ends_while_its_worker_is_blocked_leaves_nothing_to_take_back():
    table = table_with(100)
    worker = busy_worker(table, "t1", "t2")
    table.finish(worker, {"t2"})  # handed back with the block notice
    table.block(worker)
    table.finish(worker, {"t1"})  # its done report overtook the unblock notice
    assert worker.state is WorkerState.BLOCKED and worker.held == {} and cpus_free(table) == 2.0
    table.unblock(worker)
    assert worker.state is WorkerState.IDLE and cpus_free(table) == 2.0


@pytest.mark.parametrize("blocked", [False, True])
def test_a_worker_that_dies_gives_back_exactly_what_it_took(blocked):
    table = table_with(100, 200)
    worker = busy_worker(table, "t1", "t2")
    if blocked:
        table.block(worker)
    table.remove("w0")
    assert cpus_free(table) == 2.0
    assert table.remove("w0") is None and cpus_free(table) == 2.0  # its death noticed twice


def test_an_actor_keeps_its_resources_until_its_worker_dies():
    table = table_with(100)
    worker = table.mark_ready("w0", "a")
    table.assign(worker, spec("a1", actor_id="actor", creation=True))
    table.finish(worker, {"a1"})  # the constructor ran
    assert worker.state is WorkerState.ACTOR and cpus_free(table) == 1.0
    table.block(worker)  # actors never lend their CPU
    assert worker.state is WorkerState.ACTOR and cpus_free(table) == 1.0
    table.mark_exiting(worker)
    assert cpus_free(table) == 1.0
    held = table.remove("w0")
    assert held.last_state is WorkerState.EXITING and cpus_free(table) == 2.0


def test_gpus_are_leased_with_the_task_and_freed_with_its_end():
    table = table_with(100, gpus=1.0)
    worker = table.mark_ready("w0", "a")
    table.assign(worker, spec("t1", resources={"CPU": 1.0, "GPU": 1.0}))
    assert table.gpus.ids("w0") == (0,) and table.pool.available["GPU"] == 0.0
    table.finish(worker, {"t1"})
    assert table.gpus.ids("w0") == () and table.pool.available["GPU"] == 1.0


def test_only_listed_transitions_happen():
    table = table_with(100)
    worker = table.mark_ready("w0", "a")
    with pytest.raises(ValueError):
        table.queue_behind(worker, spec("t1"))  # nothing runs there to queue behind
    table.assign(worker, spec("a1", actor_id="actor", creation=True, resources={}))
    with pytest.raises(ValueError):
        table.assign(worker, spec("t2"))  # an actor's worker takes no task
    assert (
        WorkerState.IDLE not in TRANSITIONS[WorkerState.ACTOR]
        and TRANSITIONS[WorkerState.DEAD] == frozenset()
    )


def test_all_blocked_only_when_no_worker_can_take_or_end_a_task():
    table = table_with(100, 200, 300)
    assert not table.all_blocked()  # starting
    for worker_id in ("w0", "w1", "w2"):
        table.mark_ready(worker_id, worker_id)
    assert not table.all_blocked()  # idle
    w0, w1, w2 = table.get("w0"), table.get("w1"), table.get("w2")
    table.assign(w0, spec("t0"))
    table.assign(w1, spec("t1"))
    table.assign(w2, spec("actor", actor_id="A", creation=True, resources={}))
    table.block(w0)
    assert not table.all_blocked()  # w1 runs a task
    table.block(w1)
    assert table.all_blocked()  # two wait in get, one hosts an actor
    table.unblock(w1)
    assert not table.all_blocked()


# ---- leases: a worker LEASED to a task's owner keeps its resources until it returns it ----


def leased_worker(table, owner="owner"):
    worker = busy_worker(table, "t1")
    table.finish(worker, {"t1"}, lessee=owner, now=10.0)
    return worker


def test_a_worker_that_stays_leased_keeps_its_cpu_until_the_lease_is_returned():
    table = table_with(100, 200)
    worker = leased_worker(table)
    assert worker.state is WorkerState.LEASED and worker.lessee == "owner" and cpus_free(table) == 1.0
    assert table.idle() == [] and table.holder("t1") is None and worker.assigned == []
    assert table.end_lease(worker) and worker.state is WorkerState.IDLE and worker.lessee is None
    assert cpus_free(table) == 2.0 and table.idle() == [worker]
    assert not table.end_lease(worker) and cpus_free(table) == 2.0  # returned twice: nothing more


def test_a_worker_that_still_holds_tasks_takes_no_lease():
    table = table_with(100)
    worker = busy_worker(table, "t1", "t2")  # t2 was queued behind t1 after the worker chose a lease
    table.finish(worker, {"t1"}, lessee="owner", now=10.0)
    assert worker.state is WorkerState.BUSY and worker.lessee is None and cpus_free(table) == 1.0
    assert table.lease_contacts(worker, now=11.0, window=5.0) == ["owner"]  # it may think it is leased
    assert not table.end_lease(worker)  # the LeaseReturned that answers the refusal
    table.finish(worker, {"t2"})
    assert worker.state is WorkerState.IDLE and cpus_free(table) == 2.0


def test_a_pushed_task_blocked_in_get_lends_the_cpu_and_takes_it_back_leased():
    table = table_with(100)
    worker = leased_worker(table)
    table.block(worker)
    assert worker.state is WorkerState.BLOCKED and cpus_free(table) == 2.0
    assert table.all_blocked()  # its task waits in get: it frees nothing by itself
    table.unblock(worker)
    assert worker.state is WorkerState.LEASED and cpus_free(table) == 1.0
    assert not table.all_blocked()  # a leased worker gives its lease back when reclaimed


def test_a_lease_returned_while_blocked_leaves_nothing_to_take_back():
    table = table_with(100)
    worker = leased_worker(table)
    table.block(worker)
    assert table.end_lease(worker) and worker.state is WorkerState.BLOCKED and cpus_free(table) == 2.0
    table.unblock(worker)
    assert worker.state is WorkerState.IDLE and cpus_free(table) == 2.0


def test_a_leased_worker_is_reclaimed_once_per_lease():
    table = table_with(100, 200)
    worker = leased_worker(table)
    assert table.to_reclaim() == [worker] and table.to_reclaim() == []
    table.end_lease(worker)
    table.assign(worker, spec("t2"))
    table.finish(worker, {"t2"}, lessee="owner", now=12.0)
    assert table.to_reclaim() == [worker]


@pytest.mark.parametrize("blocked", [False, True])
def test_a_leased_worker_that_dies_gives_back_exactly_what_it_took(blocked):
    table = table_with(100, 200)
    worker = leased_worker(table)
    if blocked:
        table.block(worker)
    held = table.remove("w0")
    assert held.running is None and held.unstarted == () and cpus_free(table) == 2.0
    assert held.worker.lessee == "owner"  # told of the death


def test_the_owners_told_of_a_death_are_the_lessee_and_those_seen_lately():
    table = table_with(100)
    worker = leased_worker(table, owner="a")  # seen at 10.0
    table.end_lease(worker)
    table.note_lease_contact(worker, "b", 20.0)  # a dispatch that may end in a lease of b
    assert sorted(table.lease_contacts(worker, now=21.0, window=5.0)) == ["b"]
    assert sorted(table.lease_contacts(worker, now=14.0, window=5.0)) == ["a", "b"]
    table.assign(worker, spec("t2"))
    table.finish(worker, {"t2"}, lessee="c", now=0.0)  # long ago, but its lessee now
    assert sorted(table.lease_contacts(worker, now=100.0, window=5.0)) == ["c"]
    for i in range(100):
        table.note_lease_contact(worker, f"o{i}", 100.0)
    assert len(worker.lease_contacts) <= 32


def test_lease_transitions_are_listed():
    assert WorkerState.LEASED in TRANSITIONS[WorkerState.BUSY]
    assert TRANSITIONS[WorkerState.LEASED] == frozenset(
        {WorkerState.IDLE, WorkerState.BLOCKED, WorkerState.EXITING, WorkerState.DEAD}
    )
    assert WorkerState.LEASED in TRANSITIONS[WorkerState.BLOCKED]
    assert WorkerState.LEASED not in TRANSITIONS[WorkerState.IDLE]  # only a finished task leases

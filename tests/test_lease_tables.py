"""The two sides of a worker lease without a cluster: the worker's (babyray.actors.worker_lease)
and the owner's table (babyray.api.leases)."""

from __future__ import annotations

import dataclasses

from babyray.actors.worker_lease import WorkerLease
from babyray.api.leases import OwnerLeases, lease_key
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm


def spec(task_id, owner="owner", cpus=1.0):
    return vm.TaskSpec(task_id, "j", "f", "fn", [], {}, 1, [f"{task_id}-o"], {"CPU": cpus}, owner, "oid")


def leased(timeout=0.1, owner="owner"):
    """A worker leased to ``owner`` after task t0 (at time 0)."""
    lease = WorkerLease(timeout)
    lease.allow((spec("t0", owner),))
    after = lease.task_done(spec("t0", owner), nothing_queued=True, now=0.0)
    assert after.grant is lease.lease and after.new and not after.pushed
    return lease


# ---- the worker's side ---------------------------------------------------------------------


def test_a_worker_leases_itself_only_after_a_task_it_was_let_lease_on_with_nothing_queued():
    lease = WorkerLease(0.1)
    assert lease.task_done(spec("t0"), True, 0.0).grant is None  # not let
    lease.allow((spec("t1"),))
    assert lease.task_done(spec("t1"), False, 0.0).grant is None  # more queued behind it
    assert lease.lease is None
    off = WorkerLease(0.0)  # leases off
    off.allow((spec("t2"),))
    assert off.task_done(spec("t2"), True, 0.0).grant is None


def test_a_push_runs_only_under_its_owners_lease_with_nothing_else_to_do():
    lease = leased()
    lease_id = lease.lease.lease_id
    assert not lease.accept_push(spec("p", owner="other"), lease_id, idle=True)
    assert not lease.accept_push(spec("p", cpus=2.0), lease_id, idle=True)  # another shape
    assert not lease.accept_push(spec("p"), lease_id + 1, idle=True)  # an older lease
    assert not lease.accept_push(spec("p"), lease_id, idle=False)
    assert lease.accept_push(spec("p"), lease_id, idle=True) and lease.pushed("p").task_id == "p"
    assert not lease.accept_push(spec("q"), lease_id, idle=True)  # one in flight at a time
    after = lease.task_done(spec("p"), True, 0.05)
    assert after.pushed and after.grant is lease.lease and not after.new and lease.pushed("p") is None


def test_a_refused_push_ends_its_owners_lease():
    lease = leased()
    ended = lease.refuse_push(spec("p"))
    assert ended is not None and lease.lease is None
    assert lease.refuse_push(spec("p")) is None


def test_the_lease_ends_when_idle_for_the_timeout():
    lease = leased(timeout=0.1)
    ended, delay = lease.expire(0.04)
    assert ended is None and abs(delay - 0.06) < 1e-9
    ended, delay = lease.expire(0.1)
    assert ended is not None and delay is None and lease.lease is None


def test_a_reclaimed_lease_ends_now_or_after_its_pushed_task():
    lease = leased()
    assert lease.reclaim() is not None and lease.lease is None
    lease = leased()
    lease.accept_push(spec("p"), lease.lease.lease_id, idle=True)
    assert lease.reclaim() is None and lease.expire(10.0)[0] is None  # busy: neither ends it now
    after = lease.task_done(spec("p"), True, 1.0)
    assert after.pushed and after.grant is None and after.ended is not None and lease.lease is None


def test_a_pushed_task_handed_back_unrun_ends_the_lease():
    lease = leased()
    lease.accept_push(spec("p"), lease.lease.lease_id, idle=True)
    assert lease.handed_back([spec("x")]) is None
    assert lease.handed_back([spec("p")]) is not None and lease.lease is None


# ---- the owner's side ----------------------------------------------------------------------


def grant(worker="w1", lease_id=1, node="n1", key=(("CPU", 1.0),)):
    return tm.LeaseGrant(worker, f"addr-{worker}", key, lease_id, node, 0.1)


def test_only_plain_tasks_have_a_lease_key():
    assert lease_key(spec("t")) == (("CPU", 1.0),)
    for change in (
        {"actor_id": "A"},
        {"scheduling_strategy": "SPREAD"},
        {"resources": {"CPU": 1.0, "GPU": 1.0}},
        {"runtime_env": {"env_vars": {"A": "1"}}},
        {"generator": "streaming"},
    ):
        assert lease_key(dataclasses.replace(spec("t"), **change)) is None


def test_an_owner_pushes_one_task_at_a_time_to_a_granted_lease():
    leases = OwnerLeases()
    assert leases.take(spec("t1"), 0.0) is None
    leases.results_arrived(["t0"], grant(), "n1", now=0.0)
    lease = leases.take(spec("t1"), 0.01)
    assert lease is not None and lease.address == "addr-w1" and leases.holder("t1") is lease
    assert leases.take(spec("t2"), 0.01) is None  # in flight
    leases.results_arrived(["t1"], grant(), "n1", now=0.02)
    assert leases.holder("t1") is None and leases.take(spec("t2"), 0.03) is lease


def test_grants_of_other_nodes_and_results_without_one_leave_no_lease():
    leases = OwnerLeases()
    leases.results_arrived(["t0"], grant(node="n2"), "n1", now=0.0)
    assert not leases
    leases.results_arrived(["t0"], grant(), "n1", now=0.0)
    leases.take(spec("t1"), 0.0)
    leases.results_arrived(["t1"], None, "n1", now=0.01)  # its lease ended with it
    assert not leases and leases.take(spec("t2"), 0.01) is None


def test_a_lease_near_its_idle_timeout_is_not_pushed_to():
    leases = OwnerLeases()
    leases.results_arrived(["t0"], grant(), "n1", now=0.0)
    assert leases.take(spec("t1"), 0.09) is None and not leases


def test_an_ended_lease_is_forgotten_and_a_lost_one_returns_its_task_in_flight():
    leases = OwnerLeases()
    leases.results_arrived(["t0"], grant("w1"), "n1", now=0.0)
    leases.results_arrived(["t0"], grant("w2"), "n1", now=0.0)
    assert len(leases) == 2
    leases.ended("w1", lease_id=7)  # not that lease
    assert len(leases) == 2
    leases.ended("w1", lease_id=1)
    assert len(leases) == 1
    leases.take(spec("t1"), 0.0)
    assert [s.task_id for s in leases.lost("w2")] == ["t1"] and not leases and leases.holder("t1") is None


def test_a_grant_arriving_after_its_workers_death_is_ignored():
    leases = OwnerLeases()
    assert leases.lost("w1") == []
    leases.results_arrived(["t0"], grant("w1"), "n1", now=0.0)
    assert not leases


def test_a_task_pushed_to_a_lease_that_ended_is_followed_until_handed_back_or_lost():
    leases = OwnerLeases()
    leases.results_arrived(["t0"], grant("w1"), "n1", now=0.0)
    leases.take(spec("t1"), 0.0)
    leases.ended("w1", lease_id=1)  # ended (idle) before the push arrived
    assert not leases and leases.holder("t1") is not None
    handed_back, cancelled = leases.ended("w1", lease_id=1, refused="t1")  # the worker did not run it
    assert handed_back.task_id == "t1" and not cancelled and leases.holder("t1") is None
    assert leases.ended("w1", lease_id=1, refused="t1") == (None, False)  # told twice: nothing more
    leases.results_arrived(["t0"], grant("w2"), "n1", now=0.0)
    leases.take(spec("t2"), 0.0)
    leases.ended("w2", lease_id=1)
    assert [s.task_id for s in leases.lost("w2")] == ["t2"]  # the worker died with it


def test_a_cancelled_push_handed_back_says_so():
    leases = OwnerLeases()
    leases.results_arrived(["t0"], grant(), "n1", now=0.0)
    leases.take(spec("t1"), 0.0)
    leases.cancel_requested("t1")
    assert leases.ended("w1", lease_id=1, refused="t1")[1]

"""The GCS's state classes driven directly, without Thespian or a store: node liveness, the
actor directory (with recovery after a GCS restart), placement groups (rescheduled when a node
dies), drivers, functions, tasks and objects."""

from __future__ import annotations

from babyray.gcs.actor_directory import ActorDirectory
from babyray.gcs.drivers import DriverRegistry
from babyray.gcs.functions import FunctionRegistry
from babyray.gcs.node_liveness import NodeDeath, NodeLiveness
from babyray.gcs.object_directory import ObjectDirectory
from babyray.gcs.placement_groups import PlacementGroupDirectory
from babyray.gcs.tables import Table
from babyray.gcs.task_directory import TaskDirectory
from babyray.protocol import actors as am
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.protocol import placement as pm
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm

TIMEOUT = 10.0


def _register(nodes: NodeLiveness, node_id: str, now: float) -> None:
    nodes.register(
        cm.RegisterNode(node_id, f"{node_id}:1", f"sched-{node_id}", f"store-{node_id}", {"CPU": 2}),
        now,
        wall_time=1000.0,
    )


def _beat(node_id: str) -> cm.Heartbeat:
    return cm.Heartbeat(node_id, {"CPU": 1}, queue_length=3, num_workers=1)


# ---- node liveness ---------------------------------------------------------------------------


def test_a_node_silent_past_the_timeout_is_declared_dead_once() -> None:
    nodes = NodeLiveness(Table("nodes"), TIMEOUT)
    _register(nodes, "n1", now=0.0)
    _register(nodes, "n2", now=0.0)
    assert not nodes.heartbeat(_beat("n2"), now=8.0)
    assert nodes.expire(now=TIMEOUT) == []  # not longer than the timeout yet
    assert nodes.expire(now=TIMEOUT + 1) == [NodeDeath("n1", TIMEOUT + 1)]
    assert nodes.expire(now=TIMEOUT + 2) == []  # already dead
    assert [(i.node_id, i.alive) for i in nodes.infos()] == [("n1", False), ("n2", True)]
    assert nodes.known_dead("n1") and not nodes.known_dead("n2") and not nodes.known_dead("unknown")


def test_a_heartbeat_records_the_load_and_brings_a_dead_node_back() -> None:
    nodes = NodeLiveness(Table("nodes"), TIMEOUT)
    _register(nodes, "n1", now=0.0)
    nodes.expire(now=TIMEOUT + 1)
    assert nodes.heartbeat(cm.Heartbeat("n1", {"CPU": 0}, 5, 2, resources={"CPU": 2, "bundle": 1}), now=12.0)
    (info,) = nodes.infos()
    assert info.alive and info.available == {"CPU": 0} and info.queue_length == 5
    assert info.resources == {"CPU": 2, "bundle": 1}
    assert not nodes.heartbeat(_beat("n1"), now=13.0)  # alive already: no news
    assert not nodes.heartbeat(_beat("never-registered"), now=13.0) and len(nodes.table) == 1


def test_after_a_gcs_restart_a_node_alive_before_is_dead_until_it_registers_again() -> None:
    table = Table("nodes")
    before = NodeLiveness(table, TIMEOUT)
    _register(before, "back", now=0.0)
    _register(before, "gone", now=0.0)
    _register(before, "dead-already", now=0.0)
    table.put("dead-already", dict(table.get("dead-already") or {}, alive=False))

    nodes = NodeLiveness(table, TIMEOUT)  # the restarted GCS, over the recovered table
    nodes.recovered()
    assert not any(info.alive for info in nodes.infos())
    told = nodes.announce_restart(now=100.0)
    assert [node_id for node_id, _ in told] == ["back", "gone", "dead-already"]
    assert told[0][1]["scheduler"] == "sched-back"
    _register(nodes, "back", now=105.0)
    assert nodes.expire(now=100.0 + TIMEOUT) == []
    assert nodes.expire(now=101.0 + TIMEOUT) == [NodeDeath("gone", None)]
    assert nodes.expire(now=200.0) == [NodeDeath("back", 200.0 - 105.0)]  # silent since it registered


# ---- actors ----------------------------------------------------------------------------------


def _spec(actor_id: str) -> vm.TaskSpec:
    return vm.TaskSpec(
        f"create-{actor_id}",
        "job",
        "fn",
        "Counter",
        [],
        {},
        1,
        [],
        {"CPU": 1},
        "owner",
        "owner-id",
        actor_id=actor_id,
        actor_creation=True,
    )


def _register_actor(
    actors: ActorDirectory, actor_id: str, name: str | None = None, max_restarts: int = 0
) -> str | None:
    info = am.ActorInfo(actor_id, "Counter", {}, name=name)
    return actors.register(
        actor_id, am.RegisterActor("req", _spec(actor_id), info, max_restarts=max_restarts, namespace="ns")
    )


def _state(actors: ActorDirectory, actor_id: str) -> str:
    return (actors.table.get(actor_id) or {})["state"]


def test_an_actor_goes_pending_alive_restarting_alive_dead_and_subscribers_hear_each_change() -> None:
    actors = ActorDirectory(Table("actors"))
    assert _register_actor(actors, "a1", name="counter", max_restarts=1) is None
    assert _state(actors, "a1") == "PENDING"
    assert actors.subscribe("a1", "caller") == [("caller", am.ActorStateChanged("a1", "PENDING"))]

    news = actors.started(am.ActorStarted("a1", "addr-1", "n1", "w1", 11), scheduler="sched-n1")
    assert news == [("caller", am.ActorStateChanged("a1", "ALIVE", "addr-1"))]
    assert actors.actors_on("n1") == ["a1"]

    news, restart = actors.worker_died(am.ActorWorkerDied("a1", "n1", "killed"))
    assert news == [("caller", am.ActorStateChanged("a1", "RESTARTING", None, "", 1))]
    assert restart is not None and restart.attempt == 1 and restart.actor_id == "a1"
    actors.started(am.ActorStarted("a1", "addr-2", "n2", "w2", 12, attempt=1), scheduler="sched-n2")
    assert _state(actors, "a1") == "ALIVE"

    news, restart = actors.worker_died(am.ActorWorkerDied("a1", "n2", "killed"))
    assert restart is None and _state(actors, "a1") == "DEAD"
    assert "no restarts left (1/1)" in news[0][1].death_cause
    assert (
        actors.started(am.ActorStarted("a1", "addr-3", "n3", "w3", 13), "sched-n3") == []
    )  # dead stays dead
    assert actors.named("counter", "ns") is None and actors.actors_on("n2") == []


def test_news_of_a_killed_incarnation_arriving_after_its_restart_began_is_ignored() -> None:
    """Found by the soak test: the actor's first process was killed right after its
    constructor returned; its ActorStarted reached the GCS after the death notice. Taken, it
    made the actor ALIVE at the dead process's address, and the restarted process's news was
    then ignored as a repeat: every later call went to the dead address and hung."""
    actors = ActorDirectory(Table("actors"))
    _register_actor(actors, "a1", max_restarts=-1)
    actors.subscribe("a1", "caller")
    news, restart = actors.worker_died(am.ActorWorkerDied("a1", "n1", "killed"))
    assert restart is not None and restart.attempt == 1
    assert actors.started(am.ActorStarted("a1", "addr-dead", "n1", "w1", 11), "sched-n1") == []
    assert _state(actors, "a1") == "RESTARTING"
    news = actors.started(am.ActorStarted("a1", "addr-new", "n1", "w2", 12, attempt=1), "sched-n1")
    assert news == [("caller", am.ActorStateChanged("a1", "ALIVE", "addr-new", "", 1))]


def test_a_name_is_unique_among_actors_not_dead() -> None:
    actors = ActorDirectory(Table("actors"))
    assert _register_actor(actors, "a1", name="counter") is None
    assert "already taken" in (_register_actor(actors, "a2", name="counter") or "")
    assert actors.names("ns") == (("ns", "counter"),)
    actors.init_failed(am.ActorInitFailed("a1", "ZeroDivisionError"))
    assert _register_actor(actors, "a3", name="counter") is None


def test_killing_an_actor_before_it_started_makes_it_dead_and_after_asks_its_node() -> None:
    actors = ActorDirectory(Table("actors"))
    _register_actor(actors, "early")
    actors.kill(am.KillActor("early"))
    assert _state(actors, "early") == "DEAD"
    _register_actor(actors, "late", max_restarts=5)
    actors.started(am.ActorStarted("late", "addr", "n1", "w1", 1), scheduler="sched-n1")
    assert actors.kill(am.KillActor("late")) == [("sched-n1", am.KillActorWorker("late"))]
    _, restart = actors.worker_died(am.ActorWorkerDied("late", "n1", "SIGKILL"))
    assert restart is None and _state(actors, "late") == "DEAD"  # no restart after ray.kill


def test_after_a_gcs_restart_actors_pending_or_restarting_are_scheduled_again() -> None:
    table = Table("actors")
    before = ActorDirectory(table)
    for actor_id in ("pending", "restarting", "alive", "dead"):
        _register_actor(before, actor_id, max_restarts=3)
    for actor_id in ("restarting", "alive"):
        before.started(am.ActorStarted(actor_id, "addr", "n1", "w1", 1), scheduler="sched")
    before.worker_died(am.ActorWorkerDied("restarting", "n1", "crash"))
    before.worker_died(am.ActorWorkerDied("dead", "n1", "exit_actor", final=True))

    after = ActorDirectory(table)  # the restarted GCS, over the recovered table
    specs = after.unplaced()
    assert [(s.actor_id, s.attempt) for s in specs] == [("pending", 0), ("restarting", 1)]
    after.started(am.ActorStarted("pending", "addr", "n2", "w2", 2), scheduler="sched")
    assert [s.actor_id for s in after.unplaced()] == ["restarting"]


# ---- drivers, functions, tasks, objects --------------------------------------------------------


def test_a_driver_gone_without_unregistering_is_found_by_pid_here_and_by_silence_elsewhere() -> None:
    drivers = DriverRegistry(TIMEOUT)
    drivers.register("local", 100, "127.0.0.1", "inbox-l", now=0.0, wall_time=1.0, worker_id="driver-l")
    drivers.register("remote", 200, "10.0.0.2", "inbox-r", now=0.0, wall_time=1.0, worker_id="driver-r")
    alive_pids = {100}
    assert drivers.gone(TIMEOUT, {"127.0.0.1"}, alive_pids.__contains__) == []
    drivers.ping("remote", now=5.0)
    assert drivers.gone(TIMEOUT + 1, {"127.0.0.1"}, alive_pids.__contains__) == []
    alive_pids.clear()
    gone = drivers.gone(TIMEOUT + 6, {"127.0.0.1"}, alive_pids.__contains__)
    assert [(d["job_id"], d["worker_id"]) for d in gone] == [("local", "driver-l"), ("remote", "driver-r")]
    assert drivers.records() == () and drivers.unregister("local") is None


def test_a_function_asked_for_before_its_registration_is_sent_when_it_comes() -> None:
    functions = FunctionRegistry(Table("functions"))
    assert functions.get("f1", "worker", "r1") is None
    assert functions.answer_waiters() == []  # still unknown
    new, answers = functions.register("f1", "square", b"blob")
    assert new and answers == [("worker", gm.FunctionBlob("r1", "f1", b"blob"))]
    assert functions.register("f1", "square", b"blob") == (False, [])
    assert functions.get("f1", "worker", "r2") == b"blob"


def test_tasks_placed_on_a_node_are_lost_with_it_unless_finished() -> None:
    tasks = TaskDirectory(Table("tasks"))
    dead = {"n-dead"}
    lost = tasks.record(
        [
            ("t1", "placed", {"placed_node": "n1", "owner_address": "owner-a"}),
            ("t2", "placed", {"placed_node": "n1", "owner_address": "owner-b"}),
            ("t3", "placed", {"placed_node": "n1", "owner_address": "owner-a"}),
            ("t4", "placed", {"placed_node": "n-dead", "owner_address": "owner-a"}),
            ("t3", "finished", {"attempt": 0}),
        ],
        dead.__contains__,
    )
    assert lost == [("owner-a", tm.TasksLost("n-dead", ("t4",)))]
    assert (tasks.table.get("t3") or {})["state"] == "finished"
    assert tasks.lost_with("n1") == [
        ("owner-a", tm.TasksLost("n1", ("t1",))),
        ("owner-b", tm.TasksLost("n1", ("t2",))),
    ]
    assert tasks.lost_with("n1") == []  # told once


def test_an_object_with_no_copy_left_is_kept_as_freed() -> None:
    objects = ObjectDirectory(Table("objects"))
    objects.update("n1", [("o1", 10)], [])
    objects.update("n2", [("o1", 10)], [])
    objects.update("n1", [], ["o1", "never-stored"])
    assert objects.table.get("o1") == {"locations": {"n2"}, "size": 10, "state": "stored"}
    objects.update("n2", [], ["o1"])
    assert objects.table.get("o1") == {"locations": set(), "size": 10, "state": "freed"}
    assert objects.table.get("never-stored") is None


# ---- placement groups ----------------------------------------------------------------------


def _group(groups: PlacementGroupDirectory, pg_id: str, strategy: str, nodes: tuple) -> None:
    bundles = tuple({"CPU": 1} for _ in nodes)
    groups.create(pm.CreatePlacementGroup("r", pg_id, bundles, strategy, "", None, "job"))
    assert groups.placed(pm.PlacementGroupPlaced(pg_id, nodes))


def test_a_node_death_reschedules_only_the_groups_and_bundles_it_held() -> None:
    groups = PlacementGroupDirectory(Table("placement_groups"))
    _group(groups, "spread", "STRICT_SPREAD", ("n1", "n2", "n3"))
    _group(groups, "elsewhere", "PACK", ("n3", "n3"))
    groups.create(pm.CreatePlacementGroup("r", "waiting", ({"CPU": 9},), "PACK", "", None, "job"))
    requests = groups.node_died("n2")
    kept = ("n1", "", "n3")
    assert requests == [pm.PlacePlacementGroup("spread", ({"CPU": 1},) * 3, "STRICT_SPREAD", kept)]
    spread = groups.get("spread") or {}
    assert spread["state"] == "RESCHEDULING" and spread["bundles_to_node_id"] == {0: "n1", 2: "n3"}
    assert (groups.get("elsewhere") or {})["state"] == "CREATED"
    # sent again to a new global scheduler (after a head restart)
    assert [r.pg_id for r in groups.to_place()] == ["spread", "waiting"]
    assert groups.to_place()[1].kept == ()  # a PENDING group places every bundle
    # n2, if it heartbeats again, gives back what it holds of the groups placed (elsewhere) now
    assert groups.not_on("n2") == ["spread", "elsewhere"]
    assert groups.not_on("n3") == []


def test_a_rescheduled_group_is_created_again_on_its_new_nodes_or_removed() -> None:
    groups = PlacementGroupDirectory(Table("placement_groups"))
    _group(groups, "g", "SPREAD", ("n1", "n2"))
    groups.node_died("n1")
    [again] = groups.node_died("n2")  # a second node of the group dies while it is rescheduling
    assert again.kept == ("", "") and (groups.get("g") or {})["state"] == "RESCHEDULING"
    assert groups.node_died("n2") == []  # told once
    assert groups.placed(pm.PlacementGroupPlaced("g", ("n3", "n4")))
    record = groups.get("g") or {}
    assert record["state"] == "CREATED" and record["bundles_to_node_id"] == {0: "n3", 1: "n4"}
    groups.node_died("n4")
    assert groups.remove("g") is not None and (groups.get("g") or {})["state"] == "REMOVED"
    assert groups.node_died("n3") == [] and not groups.placed(pm.PlacementGroupPlaced("g", ("n3", "n5")))

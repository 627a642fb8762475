"""The state API (babyray.util.state), babyray.timeline and task errors on a live cluster.

One private 2-CPU cluster per module with fast GCS flushing, so finished tasks leave the
GCS's memory within a fraction of a second and the API must read them back from the store.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import assert_session_clean
from test_gcs_cluster import Gcs, wait_until

import babyray as ray
from babyray.exceptions import RayTaskError
from babyray.util import state


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def explode(x: int) -> None:
    raise ValueError(f"bad input {x}")


@ray.remote
def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@ray.remote(resources={"unobtainium": 1})
def never() -> int:
    return 1


@ray.remote(max_retries=1, retry_exceptions=True)
def always_fails() -> None:
    raise KeyError("again")


@pytest.fixture(scope="module")
def flushing_cluster(tmp_path_factory):
    info = ray.init(
        num_cpus=2,
        temp_dir=str(tmp_path_factory.mktemp("state")),
        object_store_memory=64 * 1024 * 1024,
        gcs_flush_period=0.2,
    ).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def _task(task_id: str, predicate, timeout: float = 15.0) -> dict:
    found: dict = {}

    def ready() -> bool:
        found["row"] = state.get_task(task_id)
        return found["row"] is not None and predicate(found["row"])

    wait_until(ready, timeout, f"task {task_id} state")
    return found["row"]


def test_a_task_error_names_task_function_node_and_worker_with_the_remote_traceback(flushing_cluster):
    ref = explode.remote(7)
    with pytest.raises(ValueError) as info:
        ray.get(ref)
    error = info.value
    assert isinstance(error, RayTaskError)
    task_id = ref.id[:-4]
    assert error.task_id == task_id and error.function_name == "explode"
    assert error.node_id == flushing_cluster["node_id"] and error.worker_id
    text = str(error)
    assert f"task {task_id}" in text and error.node_id in text and error.worker_id in text
    assert 'raise ValueError(f"bad input {x}")' in text and "ValueError: bad input 7" in text


def test_get_task_shows_a_failure_with_its_error_traceback_node_and_worker(flushing_cluster):
    ref = explode.remote(3)
    with pytest.raises(ValueError) as info:
        ray.get(ref)
    row = _task(
        ref.id[:-4], lambda r: r["state"] == "FAILED" and r["started_at"]
    )  # the worker's event may lag
    assert (
        row["name"] == "explode"
        and row["error_type"] == "ValueError"
        and row["error_message"] == "bad input 3"
    )
    assert "ValueError: bad input 3" in row["traceback"]
    assert row["node_id"] == info.value.node_id and row["worker_id"] == info.value.worker_id
    assert row["started_at"] <= row["finished_at"] and row["duration_s"] >= 0


def test_list_tasks_shows_finished_running_and_pending_tasks_and_filters_them(flushing_cluster):
    done = [square.remote(i) for i in range(4)]
    assert ray.get(done) == [0, 1, 4, 9]
    running = sleeper.remote(30)
    pending = never.remote()
    try:
        _task(running.id[:-4], lambda r: r["state"] == "RUNNING")
        _task(pending.id[:-4], lambda r: r["state"] == "PENDING")
        for ref in done:
            _task(ref.id[:-4], lambda r: r["state"] == "FINISHED")
        finished = state.list_tasks(filters=[("state", "=", "FINISHED"), ("name", "=", "square")], limit=None)
        assert {r["task_id"] for r in finished} >= {ref.id[:-4] for ref in done}
        assert all(r["state"] == "FINISHED" and r["name"] == "square" for r in finished)
        not_square = state.list_tasks(filters=[("name", "!=", "square")], limit=None)
        assert "square" not in {r["name"] for r in not_square}
        assert len(state.list_tasks(filters={"name": "square"}, limit=2)) == 2
        summary = state.summarize_tasks()["summary"]
        assert summary["sleeper"]["state_counts"].get("RUNNING") == 1
        assert summary["never"]["state_counts"].get("PENDING") == 1
        assert summary["square"]["state_counts"]["FINISHED"] >= 4
    finally:
        ray.cancel(running, force=True)
        ray.cancel(pending)


def test_a_task_retried_on_exceptions_reports_its_last_attempt(flushing_cluster):
    ref = always_fails.remote()
    with pytest.raises(KeyError):
        ray.get(ref)
    row = _task(ref.id[:-4], lambda r: r["state"] == "FAILED")
    assert row["attempt"] == 1 and row["error_type"] == "KeyError"


def test_an_old_task_is_still_listed_and_read_after_the_gcs_flushed_it_to_its_store(flushing_cluster):
    gcs = Gcs()
    evicted_before = gcs.stats().evicted["tasks"]  # before: flush passes run every 0.2 s
    refs = [square.remote(i) for i in range(10)]
    ray.get(refs)
    ids = {ref.id[:-4] for ref in refs}
    for task_id in ids:
        _task(task_id, lambda r: r["state"] == "FINISHED" and r["worker_id"])
    gcs.flush()
    wait_until(lambda: gcs.stats().evicted["tasks"] >= evicted_before + len(ids), 10, "tasks evicted")
    listed = {r["task_id"]: r for r in state.list_tasks(filters={"name": "square"}, limit=None)}
    assert ids <= set(listed), "flushed tasks are missing from list_tasks"
    assert all(listed[t]["state"] == "FINISHED" and listed[t]["node_id"] for t in ids)
    faults = gcs.stats().faults["tasks"]
    row = state.get_task(sorted(ids)[0])
    assert row["state"] == "FINISHED" and row["name"] == "square"
    assert gcs.stats().faults["tasks"] >= faults


def test_actors_nodes_objects_and_workers_are_listed(flushing_cluster):
    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def inc(self) -> int:
            self.n += 1
            return self.n

    counter = Counter.options(name="state-counter").remote()
    assert ray.get(counter.inc.remote()) == 1
    big = ray.put(b"x" * (2 * 1024 * 1024))
    actors = state.list_actors(filters={"name": "state-counter"})
    assert len(actors) == 1 and actors[0]["state"] == "ALIVE" and actors[0]["class_name"] == "Counter"
    assert state.get_actor(actors[0]["actor_id"])["pid"] == actors[0]["pid"]
    nodes = state.list_nodes()
    assert [n["node_id"] for n in nodes] == [flushing_cluster["node_id"]] and nodes[0]["state"] == "ALIVE"
    wait_until(lambda: state.get_object(big.id) is not None, 10, "object in the GCS")
    obj = state.get_object(big.id)
    assert obj["size_bytes"] >= 2 * 1024 * 1024 and obj["made_by"] == "put"
    assert obj["locations"] == [flushing_cluster["node_id"]]
    workers = state.list_workers(limit=None)
    assert any(w["actor_id"] == actors[0]["actor_id"] for w in workers)
    assert all(w["node_id"] == flushing_cluster["node_id"] and w["pid"] for w in workers)
    ray.kill(counter)


def test_actor_calls_are_listed_with_their_method_actor_and_worker_running_and_finished(flushing_cluster):
    @ray.remote
    class Napper:
        def nap(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

    napper = Napper.remote()
    quick = [napper.nap.remote(0) for _ in range(5)]
    assert ray.get(quick) == [0] * 5
    actor_id = state.list_actors(filters={"class_name": "Napper"})[0]["actor_id"]
    for ref in quick:  # its worker's progress events were dropped: the caller's final one says it all
        row = _task(ref.id[:-4], lambda r: r["state"] == "FINISHED")
        assert row["name"].endswith("nap") and row["actor_id"] == actor_id
        assert row["worker_id"] and row["node_id"] == flushing_cluster["node_id"]
        assert row["started_at"] <= row["finished_at"]
    slow = napper.nap.remote(30)
    try:
        row = _task(slow.id[:-4], lambda r: r["state"] == "RUNNING")
        assert row["name"].endswith("nap") and row["actor_id"] == actor_id and row["worker_id"]
    finally:
        ray.kill(napper)


def test_timeline_writes_one_complete_event_per_executed_task(flushing_cluster, tmp_path):
    refs = [square.remote(i) for i in range(6)]
    ray.get(refs)
    ids = {ref.id[:-4] for ref in refs}
    path = tmp_path / "timeline.json"

    def complete_events() -> list[dict]:
        ray.timeline(str(path))
        return [e for e in json.loads(path.read_text()) if e["ph"] == "X"]

    wait_until(lambda: ids <= {e["args"]["task_id"] for e in complete_events()}, 10, "executions in the logs")
    events = complete_events()
    ours = [e for e in events if e["args"]["task_id"] in ids]
    assert len(ours) == len(ids) and all(e["name"] == "square" and e["dur"] >= 0 for e in ours)
    names = {e["pid"]: e["args"]["name"] for e in json.loads(path.read_text()) if e["name"] == "process_name"}
    assert all(isinstance(e["pid"], int) and isinstance(e["tid"], int) for e in events)
    assert names[ours[0]["pid"]] == f"node {flushing_cluster['node_id']}"
    assert len(ray.timeline()) == len(json.loads(path.read_text()))


@ray.remote
class Echo:
    def echo(self, x: int) -> int:
        return x


def test_a_name_given_in_options_names_the_task_and_the_call(flushing_cluster):
    task = square.options(name="named_square").remote(3)
    actor = Echo.remote()
    call = actor.echo.options(name="named_echo").remote(4)
    plain = actor.echo.remote(5)
    assert ray.get([task, call, plain], timeout=60) == [9, 4, 5]
    assert _task(task.id[:-4], lambda r: r["state"] == "FINISHED")["name"] == "named_square"
    assert _task(call.id[:-4], lambda r: r["state"] == "FINISHED")["name"] == "named_echo"
    assert _task(plain.id[:-4], lambda r: r["state"] == "FINISHED")["name"] == "Echo.echo"
    with pytest.raises(TypeError, match="name"):
        actor.echo.options(name=3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        actor.echo.options(no_such_option=1)


@ray.remote
class Quiet:
    @ray.method(enable_task_events=False)
    def hush(self) -> str:
        return "hush"

    def talk(self) -> str:
        return "talk"


def test_enable_task_events_false_keeps_tasks_and_calls_out_of_the_state_api(flushing_cluster):
    actor, quiet_actor = Quiet.remote(), Quiet.options(enable_task_events=False).remote()
    hidden = [
        square.options(enable_task_events=False, name="hidden_square").remote(2),
        actor.hush.remote(),
        actor.talk.options(enable_task_events=False).remote(),
        quiet_actor.talk.remote(),
    ]
    shown = [square.options(name="shown_square").remote(2), actor.talk.remote()]
    assert ray.get(hidden + shown, timeout=60) == [4, "hush", "talk", "talk", 4, "talk"]
    for ref in shown:
        _task(ref.id[:-4], lambda r: r["state"] == "FINISHED")
    time.sleep(0.5)  # past two flushes of every process's task events
    assert [state.get_task(ref.id[:-4]) for ref in hidden] == [None] * len(hidden)
    names = {r["name"] for r in state.list_tasks(limit=None)}
    assert "hidden_square" not in names and "shown_square" in names
    with pytest.raises(TypeError, match="enable_task_events"):
        square.options(enable_task_events="no")

"""The observability commands through the CLI (subprocesses) against a head started with
``babyray start --head`` on 127.0.0.1, while a driver holds finished, failed, retried,
pending (infeasible) and running tasks, an actor, and stored objects: one it holds, one
captured in another object, one a pending task waits for, and one it drops on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from cli_cluster import ROOT, cli, stop_all

from babyray.cluster import free_port

WORKLOAD = """
import os, sys, time, babyray as ray
ray.init(address=sys.argv[1])

@ray.remote
def square(x):
    return x * x

@ray.remote
def explode(x):
    raise ValueError(f"bad input {x}")

@ray.remote
def sleeper(seconds):
    time.sleep(seconds)
    return seconds

@ray.remote(resources={"unobtainium": 1})
def never(x=None):
    return 1

@ray.remote
class Counter:
    def __init__(self):
        self.n = 0
    def inc(self):
        self.n += 1
        return self.n

assert ray.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]
bad = explode.remote(7)
try:
    ray.get(bad)
except ValueError:
    pass
counter = Counter.remote()
assert ray.get([counter.inc.remote() for _ in range(3)])[-1] == 3
big = ray.put(b"x" * 3_000_000)
inner = ray.put(b"i" * 2_000_000)
outer = ray.put([inner])
inner_id = inner.id
del inner
arg = ray.put(b"a" * 2_000_000)
pending = never.remote(arg)
held = {"drop": ray.put(b"d" * 2_000_000)}
running = sleeper.remote(600)
while (ray.util.state.get_task(running.id[:-4]) or {}).get("state") != "RUNNING":
    time.sleep(0.05)
time.sleep(0.5)  # the workers' and this driver's task events reach the GCS
print("READY", bad.id[:-4], running.id[:-4], pending.id[:-4], big.id, inner_id, outer.id, arg.id,
      held["drop"].id, os.getpid(), flush=True)
for line in sys.stdin:  # until the test closes stdin
    if line.strip() == "drop":
        held.pop("drop", None)
        print("DROPPED", flush=True)
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(env, address, ids) of a head with the workload's driver connected and waiting."""
    tmp = tmp_path_factory.mktemp("statecli")
    env = dict(os.environ, BABYRAY_TEMP_DIR=str(tmp), PYTHONPATH=str(ROOT))
    env.pop("BABYRAY_ADDRESS", None)
    env.pop("BABYRAY_STATE_DIR", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    driver = None
    try:
        head = cli(env, "start", "--head", "--port", str(port), "--node-ip", "127.0.0.1", "--num-cpus", "2")
        assert head.returncode == 0, head.stdout + head.stderr
        idle_workers = _idle_workers(env)  # before any driver ran a task
        script = tmp / "workload.py"
        script.write_text("import babyray.util.state\n" + WORKLOAD)
        driver = subprocess.Popen(
            [sys.executable, str(script), address],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = driver.stdout.readline()
        assert line.startswith("READY"), line + driver.stderr.read()
        _, failed, running, pending, obj, inner, outer, arg, dropped, pid = line.split()
        yield (
            env,
            address,
            {
                "failed": failed,
                "running": running,
                "pending": pending,
                "object": obj,
                "inner": inner,
                "outer": outer,
                "arg": arg,
                "dropped": dropped,
                "driver_pid": pid,
                "driver": driver,
                "idle_workers": idle_workers,
            },
        )
    finally:
        if driver is not None:  # end of stdin: the driver shuts down (its admin too) and exits
            driver.stdin.close()
            try:
                driver.wait(30)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.wait(10)
        stop_all(env, tmp)


def _ok(env, *args) -> str:
    run = cli(env, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _idle_workers(env) -> list[dict]:
    """``babyray list workers`` rows once the head's two workers are up and idle."""
    deadline = time.monotonic() + 30
    while True:
        workers = json.loads(_ok(env, "list", "workers", "--format", "json"))
        if len(workers) == 2 and all(w["state"] == "IDLE" for w in workers) or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


def test_list_tasks_shows_finished_failed_pending_and_running_tasks(live):
    env, _, ids = live
    out = _ok(env, "list", "tasks")  # the head recorded on this host, no --address
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip() and " " in line}
    assert rows[ids["failed"]][1:3] == ["explode", "FAILED"] and "ValueError" in rows[ids["failed"]]
    assert rows[ids["running"]][1:3] == ["sleeper", "RUNNING"]
    assert rows[ids["pending"]][1:3] == ["never", "PENDING"]
    assert sum(1 for r in rows.values() if r[1:3] == ["square", "FINISHED"]) == 8
    assert any(r[1:3] == ["Counter.inc", "FINISHED"] for r in rows.values())


def test_list_tasks_filters_limits_and_prints_json(live):
    env, address, ids = live
    failed = json.loads(
        _ok(env, "list", "tasks", "--filter", "state=failed", "--format", "json", "--address", address)
    )
    assert [t["task_id"] for t in failed] == [ids["failed"]]
    assert failed[0]["error_message"] == "bad input 7" and failed[0]["node_id"] and failed[0]["worker_id"]
    squares = json.loads(
        _ok(env, "list", "tasks", "--filter", "name=square", "--limit", "3", "--format", "json")
    )
    assert len(squares) == 3 and {t["state"] for t in squares} == {"FINISHED"}


def test_get_task_prints_the_error_and_remote_traceback(live):
    env, _, ids = live
    out = _ok(env, "get", "task", ids["failed"])
    assert "state               FAILED" in out and "error_message       bad input 7" in out
    assert "remote traceback:" in out and 'raise ValueError(f"bad input {x}")' in out
    missing = cli(env, "get", "task", "0" * 16)
    assert missing.returncode == 1 and "no task" in missing.stderr


def test_summary_tasks_counts_by_function_and_state(live):
    env, _, _ = live
    summary = json.loads(_ok(env, "summary", "tasks", "--format", "json"))["summary"]
    assert summary["square"]["state_counts"] == {"FINISHED": 8}
    assert summary["explode"]["state_counts"] == {"FAILED": 1}
    assert summary["never"]["state_counts"] == {"PENDING": 1}
    assert summary["sleeper"]["state_counts"] == {"RUNNING": 1}
    table = _ok(env, "summary", "tasks")
    assert table.splitlines()[0].split()[:2] == ["FUNCTION", "TYPE"] and "square" in table


def test_list_actors_objects_nodes_and_workers(live):
    env, _, ids = live
    actors = json.loads(_ok(env, "list", "actors", "--format", "json"))
    assert len(actors) == 1 and actors[0]["class_name"] == "Counter" and actors[0]["state"] == "ALIVE"
    objects = _ok(env, "list", "objects")
    assert ids["object"] in objects and "STORED" in objects
    nodes = json.loads(_ok(env, "list", "nodes", "--format", "json"))
    assert len(nodes) == 1 and nodes[0]["state"] == "ALIVE" and nodes[0]["resources_total"] == {"CPU": 2.0}
    workers = json.loads(_ok(env, "list", "workers", "--format", "json"))
    assert any(w["actor_id"] == actors[0]["actor_id"] for w in workers)
    assert any(w["task_states"].get("RUNNING") for w in workers) and all(w["pid"] for w in workers)
    assert _ok(env, "get", "actor", actors[0]["actor_id"]).count("ALIVE") == 1
    assert "size_bytes" in _ok(env, "get", "object", ids["object"])


def test_list_workers_shows_idle_workers_that_never_ran_a_task(live):
    env, _, ids = live
    before = ids["idle_workers"]  # listed by the schedulers, not found in task events
    assert len(before) == 2 and all(w["state"] == "IDLE" and w["num_tasks"] == 0 and w["pid"] for w in before)
    table = _ok(env, "list", "workers")
    assert table.splitlines()[0].split()[:6] == ["WORKER", "ID", "NODE", "PID", "STATE", "TASKS"]
    states = {line.split()[0]: line.split()[3] for line in table.splitlines()[1:] if len(line.split()) > 4}
    assert {w["worker_id"] for w in before} <= set(states)
    assert "ACTOR" in states.values() and "BUSY" in states.values()  # the Counter's worker, the sleeper's


def _reference_rows(out: str, pid: str) -> dict[str, list[str]]:
    """object id -> the cells of its row held by process ``pid`` in ``babyray memory``'s table."""
    rows = [line.split() for line in out.splitlines()]
    return {cells[3]: cells for cells in rows if len(cells) > 6 and cells[0] == pid}


def test_memory_shows_store_totals_and_who_holds_each_reference(live):
    env, _, ids = live
    out = _ok(env, "memory")
    assert out.startswith("object stores: 1 node(s)") and "pinned" in out
    held = _reference_rows(out, ids["driver_pid"])
    _, kind, worker, _, size, reference, in_store, made_by = held[ids["object"]][:8]
    assert (kind, reference, in_store, made_by) == ("driver", "LOCAL_REFERENCE", "IN_MEMORY", "put")
    assert worker.startswith("driver-") and int(size) >= 3_000_000
    assert held[ids["inner"]][5] == "CAPTURED_IN_OBJECT" and f"in {ids['outer']}" in " ".join(
        held[ids["inner"]]
    )
    assert held[ids["arg"]][5] == "USED_BY_PENDING_TASK"
    assert f"arg of task {ids['pending']} (never)" in " ".join(held[ids["arg"]])
    report = json.loads(_ok(env, "memory", "--format", "json"))
    node = report["stores"][0]["node_id"]
    stored = {o["object_id"] for o in report["objects_by_node"][node]}
    assert {ids["object"], ids["inner"], ids["arg"]} <= stored
    mine = {r["object_id"]: r for r in report["references"] if r["pid"] == int(ids["driver_pid"])}
    assert mine[ids["object"]]["type"] == "driver" and mine[ids["object"]]["node_id"] == node
    assert mine[ids["inner"]]["captured_in"] == [ids["outer"]]
    assert list(mine[ids["arg"]]["pending_tasks"]) == [ids["pending"]] and not report["unreachable"]


def test_memory_forgets_an_object_once_its_last_ref_is_dropped(live):
    env, _, ids = live
    assert ids["dropped"] in _reference_rows(_ok(env, "memory"), ids["driver_pid"])
    ids["driver"].stdin.write("drop\n")
    ids["driver"].stdin.flush()
    assert ids["driver"].stdout.readline().strip() == "DROPPED"
    deadline = time.monotonic() + 20
    while ids["dropped"] in _ok(env, "memory"):  # neither a reference nor a copy in the store
        assert time.monotonic() < deadline, "the dropped object is still reported"
        time.sleep(0.2)


def test_timeline_writes_chrome_trace_with_one_complete_event_per_execution_and_a_plot(live, tmp_path):
    env, _, ids = live
    trace, picture = tmp_path / "trace.json", tmp_path / "trace.png"
    out = _ok(env, "timeline", "--output", str(trace), "--plot", str(picture))
    assert "task executions" in out and picture.stat().st_size > 1000
    events = json.loads(trace.read_text())
    complete = [e for e in events if e["ph"] == "X"]
    by_task = {}
    for e in complete:
        by_task.setdefault(e["args"]["task_id"], []).append(e)
    assert all(len(v) == 1 for v in by_task.values())
    assert [e["name"] for e in complete].count("square") == 8 and len(by_task[ids["failed"]]) == 1
    assert ids["running"] not in by_task and ids["pending"] not in by_task  # not executed (yet)
    assert all({"name", "ts", "dur", "pid", "tid"} <= set(e) for e in complete)
    # Given the temp dir on the command line, not in the environment: the same sessions' logs.
    elsewhere = {k: v for k, v in env.items() if k != "BABYRAY_TEMP_DIR"}
    again = tmp_path / "again.json"
    out = _ok(elsewhere, "timeline", "--temp-dir", env["BABYRAY_TEMP_DIR"], "--output", str(again))
    assert "(from session logs)" in out
    nodes = json.loads(
        _ok(elsewhere, "list", "nodes", "--temp-dir", env["BABYRAY_TEMP_DIR"], "--format", "json")
    )
    assert [n["state"] for n in nodes] == ["ALIVE"]  # joined with the token found under that temp dir
    assert sorted(e["args"]["task_id"] for e in json.loads(again.read_text()) if e["ph"] == "X") == sorted(
        by_task
    )


def test_logs_filter_by_task_render_readably_or_as_json_and_follow(live):
    env, _, ids = live
    out = _ok(env, "logs", "--task", ids["failed"], "--event", "task_executed")
    assert len(out.splitlines()) == 1 and "task_executed" in out and "function=explode" in out
    raw = [json.loads(line) for line in _ok(env, "logs", "--component", "gcs", "--json").splitlines()]
    assert raw and all(e["component"] == "gcs" for e in raw)
    follow = subprocess.Popen(
        [sys.executable, "-m", "babyray.cli", "logs", "--follow", "--tail", "1", "--component", "gcs"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert "gcs" in follow.stdout.readline()
    finally:
        follow.terminate()
        follow.wait(10)

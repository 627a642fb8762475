"""A head restarted with the same GCS store and port: the member that kept running registers
again with the new GCS (which announces itself to the nodes it recovered from the store), and
drivers, new or already connected, run tasks on it. On 127.0.0.1 with the babyray command,
the GCS store an SQLite file outside the head's session, or the real PostgreSQL.

A driver connected before the restart notices it (its head watch), finds the new head at the
same address and goes on: results it holds refs to are read from the member that kept them
or rebuilt from the lineage in the store, and what it sent while the head was down is sent
again."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cli_cluster import cli, cli_env, processes_mentioning, run_driver, start, start_args, stop_all
from test_gcs_store import PG_URL, drop_tables

from babyray import log_reader
from babyray.cluster import free_port
from babyray.gcs.store import GcsStore
from babyray.ids import task_id_of
from babyray.session import kill_session_processes

DRIVER = """
import sys, time, babyray as ray
ray.init(address=sys.argv[1])
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.monotonic() < deadline, ray.nodes()
    time.sleep(0.2)
@ray.remote(resources={"special": 1})
def on_member(x):
    return x * 3, ray.get_runtime_context().get_node_id()
value, node = ray.get(on_member.remote(int(sys.argv[2])), timeout=60)
print("RESULT", value, node)
ray.shutdown()
"""


def _head_record(temp_dir: Path) -> tuple[str, dict]:
    for path in glob.glob(str(temp_dir / "nodes" / "*.json")):
        with open(path) as f:
            record = json.load(f)
        if record.get("head"):
            return path, record
    raise AssertionError("no head record")


def _kill_head(temp_dir: Path) -> None:
    """kill -9 the head's admin process group and every process of its session."""
    path, record = _head_record(temp_dir)
    os.killpg(int(record["pgid"]), signal.SIGKILL)
    kill_session_processes(record["session_dir"])
    os.unlink(path)


LIVE_DRIVER = """
import json, os, sys, time, babyray as ray
info = ray.init(address=sys.argv[1])
markers = sys.argv[2]
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.monotonic() < deadline, ray.nodes()
    time.sleep(0.2)

@ray.remote
def small(x):
    return x + 1

@ray.remote(resources={"special": 1})
def on_member(n):
    return b"m" * n

@ray.remote(resources={"head_only": 1})
def on_head(n):
    return b"h" * n

@ray.remote(num_cpus=0, resources={"head_only": 1}, max_restarts=1, max_task_retries=-1)
class Counter:  # lives on the head node: restarted on the new head's node, its state rebuilt
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n

refs = {"small": small.remote(1), "member": on_member.remote(300_000), "head": on_head.remote(200_000)}
assert ray.get(list(refs.values()), timeout=60) == [2, b"m" * 300_000, b"h" * 200_000]
counter = Counter.remote()
assert ray.get([counter.inc.remote() for _ in range(3)], timeout=60) == [1, 2, 3]
with open(os.path.join(markers, "ready.tmp"), "w") as f:
    json.dump({"objects": {k: r.hex() for k, r in refs.items()}, "job_id": info.address_info["job_id"],
               "session_dir": info.address_info["session_dir"]}, f)
os.replace(os.path.join(markers, "ready.tmp"), os.path.join(markers, "ready.json"))
while not os.path.exists(os.path.join(markers, "killed")):
    time.sleep(0.05)

@ray.remote
def fresh(x):  # registered while the head is down
    return x * 2

new = [small.remote(10), on_member.remote(10), on_head.remote(10), fresh.remote(21)]  # the head is down
nodes = ray.nodes()
values = ray.get(list(refs.values()), timeout=90)
result = {"small": values[0], "member": values[1] == b"m" * 300_000, "head": values[2] == b"h" * 200_000,
          "new": [repr(v) for v in ray.get(new, timeout=90)], "alive": sum(n["Alive"] for n in nodes),
          "dead": sum(not n["Alive"] for n in nodes), "after": ray.get(small.remote(41), timeout=60),
          "actor": ray.get(counter.inc.remote(), timeout=90)}
print("RESULT", json.dumps(result), flush=True)
ray.shutdown()
"""


def _driver(env: dict, tmp_path: Path, address: str, x: int) -> tuple[int, str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run = run_driver(script, address, str(x), env=env, expect="RESULT")
    value, node = run.stdout.split("RESULT", 1)[1].split()
    return int(value), node


def _env(tmp_path: Path, prefix: str = "babyray_") -> dict:
    return cli_env(tmp_path, BABYRAY_NODE_TIMEOUT="3", BABYRAY_GCS_TABLE_PREFIX=prefix)


def _start_cluster(env: dict, store: str) -> tuple[str, tuple]:
    """A head (1 CPU, 2 of resource head_only) on the GCS store ``store`` and a member (1 CPU,
    resource special) on 127.0.0.1; returns the head's address and the arguments that start it
    again."""
    head_port = free_port()
    address = f"127.0.0.1:{head_port}"
    head_args = start_args(head_port, 1, "--resources", '{"head_only": 2}', "--gcs-url", store)
    head = cli(env, *head_args)
    assert head.returncode == 0, head.stdout + head.stderr
    start(env, free_port(), 1, "--resources", '{"special": 1}', head=address)
    return address, head_args


def test_a_member_reregisters_with_a_restarted_head_and_runs_tasks_again(tmp_path):
    env = _env(tmp_path)
    try:
        address, head_args = _start_cluster(env, f"sqlite:///{tmp_path / 'gcs.sqlite'}")
        value, member_node = _driver(env, tmp_path, address, 5)
        assert value == 15

        _kill_head(tmp_path)
        time.sleep(1.0)
        head = cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr

        value, node = _driver(env, tmp_path, address, 7)
        assert (value, node) == (21, member_node)  # the same member, under its old node id
        status = cli(env, "status", "--address", address)
        assert status.returncode == 0 and "2 alive node(s), 1 dead" in status.stdout, (
            status.stdout + status.stderr
        )
    finally:
        stop_all(env, tmp_path)


def _kill_driver(driver: subprocess.Popen, script: Path) -> None:
    """SIGKILL a driver that did not finish, and the Thespian admin it started (its own session)."""
    driver.kill()
    driver.wait()
    for line in processes_mentioning(str(script)):
        os.kill(int(line.split()[0]), signal.SIGKILL)


def _wait_until_durable(store: str, prefix: str, task_ids: list[str], timeout: float = 30) -> None:
    """Until the store holds every task as finished: results acknowledged as durable."""
    gcs_store = GcsStore(store, prefix=prefix)
    try:
        deadline = time.monotonic() + timeout
        while any((gcs_store.get("tasks", t) or {}).get("state") != "finished" for t in task_ids):
            assert time.monotonic() < deadline, f"tasks {task_ids} never reached the GCS store"
            time.sleep(0.1)
    finally:
        gcs_store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_driver_connected_before_a_head_restart_keeps_its_results_and_runs_new_tasks(tmp_path, backend):
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    store = f"sqlite:///{tmp_path / 'gcs.sqlite'}" if backend == "sqlite" else PG_URL
    env = _env(tmp_path, prefix)
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "live_driver.py"
    script.write_text(LIVE_DRIVER)
    driver = None
    try:
        address, head_args = _start_cluster(env, store)
        with open(tmp_path / "driver.log", "w") as out:
            driver = subprocess.Popen(
                [sys.executable, str(script), address, str(markers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while not (markers / "ready.json").exists():
            assert driver.poll() is None and time.monotonic() < deadline, (
                tmp_path / "driver.log"
            ).read_text()
            time.sleep(0.1)
        ready = json.loads((markers / "ready.json").read_text())
        _wait_until_durable(store, prefix, [task_id_of(oid) for oid in ready["objects"].values()])

        _kill_head(tmp_path)
        (markers / "killed").touch()  # the driver submits, asks and gets while the head is down
        time.sleep(1.0)
        head = cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr
        driver.wait(timeout=150)
        output = (tmp_path / "driver.log").read_text()
        assert driver.returncode == 0 and "RESULT" in output, output
        result = json.loads(output.split("RESULT", 1)[1].splitlines()[0])
        assert result == {
            "small": 2,
            "member": True,
            "head": True,
            "alive": 2,
            "dead": 1,
            "after": 42,
            "new": ["11", repr(b"m" * 10), repr(b"h" * 10), "42"],
            "actor": 1,
        }, result

        events = log_reader.load(ready["session_dir"], component="driver")
        reconnected = [e for e in events if e["event"] == "driver_reconnected"]
        assert len(reconnected) == 1 and reconnected[0]["job_id"] == ready["job_id"], reconnected
        assert reconnected[0]["tasks_resubmitted"] == 4, reconnected  # those sent to the dead head
        rebuilt = [e for e in events if e["event"] == "object_reconstructing"]
        assert [e["object_id"] for e in rebuilt] == [ready["objects"]["head"]], rebuilt  # its node died
    finally:
        if driver is not None and driver.poll() is None:
            _kill_driver(driver, script)
        stop_all(env, tmp_path)
        if backend == "postgresql":
            drop_tables(PG_URL, prefix)


LATE_ACTOR = """
import sys, babyray as ray
ray.init(address=sys.argv[1], namespace="late")  # both drivers: a name is found only in its namespace

@ray.remote(num_cpus=0, resources={"late": 1})
class Late:  # no node has the resource yet: the actor stays PENDING
    def ping(self):
        return "pong"

if sys.argv[2] == "create":
    Late.options(name="late", lifetime="detached").remote()
    ray.get_actor("late")  # the GCS registered it
else:
    print("RESULT", ray.get(ray.get_actor("late").ping.remote(), timeout=60), flush=True)
ray.shutdown()
"""


def test_an_actor_pending_when_the_head_died_is_scheduled_by_the_restarted_head(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    store = f"sqlite:///{tmp_path / 'gcs.sqlite'}"
    env = _env(tmp_path, prefix)
    script = tmp_path / "late_actor.py"
    script.write_text(LATE_ACTOR)
    port = free_port()
    head_args = start_args(port, 1, "--gcs-url", store)
    try:
        head = cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr
        address = f"127.0.0.1:{port}"
        create = run_driver(script, address, "create", env=env)
        assert create.returncode == 0, create.stdout + create.stderr
        gcs_store = GcsStore(store, prefix=prefix)
        try:
            deadline = time.monotonic() + 30
            while not gcs_store.scan_items("actors", {"name": "late", "state": "PENDING"}):
                assert time.monotonic() < deadline, "the actor never reached the GCS store"
                time.sleep(0.1)
        finally:
            gcs_store.close()

        _kill_head(tmp_path)  # the global scheduler that held the actor's creation dies with it
        head = cli(env, *head_args, "--resources", '{"late": 1}')
        assert head.returncode == 0, head.stdout + head.stderr
        run_driver(script, address, "call", env=env, expect="RESULT pong")
    finally:
        stop_all(env, tmp_path)

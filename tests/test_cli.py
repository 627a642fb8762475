"""The babyray command on one host: a head and a member on 127.0.0.1 (different admin
and data-plane ports), status, a driver joining by address, and stop leaving nothing."""

from __future__ import annotations

import json
import os

from cli_cluster import assert_gone, cli, cli_env, run_driver, start

from babyray.cluster import free_port

DRIVER = """
import sys, babyray as ray
ray.init(address=sys.argv[1])
assert len([n for n in ray.nodes() if n["Alive"]]) == 2, ray.nodes()
@ray.remote
def f(x):
    return x * 2
assert ray.get([f.remote(i) for i in range(6)], timeout=60) == [0, 2, 4, 6, 8, 10]
@ray.remote(resources={"special": 1})
def where():
    return ray.get_runtime_context().get_node_id()
special = [n["NodeID"] for n in ray.nodes() if "special" in n["Resources"]]
assert ray.get(where.remote(), timeout=60) == special[0]
import numpy as np
a = np.arange(3_000_000)
assert (ray.get(ray.put(a)) == a).all()
ray.shutdown()
print("DRIVER OK")
"""


def test_start_status_driver_and_stop_on_localhost_leave_no_process(tmp_path):
    env = cli_env(tmp_path)
    head_port, member_port = free_port(), free_port()
    address = f"127.0.0.1:{head_port}"
    try:
        head = start(env, head_port, 2)
        assert head.stdout.strip().splitlines()[-1] == address
        start(env, member_port, 1, "--resources", '{"special": 1}', head=address)
        status = cli(env, "status", "--address", address)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "2 alive node(s)" in status.stdout and "special 1/1" in status.stdout, status.stdout
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        run_driver(driver, address, env=env, expect="DRIVER OK")
    finally:
        stop = cli(env, "stop")
    assert stop.returncode == 0 and "stopped head" in stop.stdout and "stopped member" in stop.stdout, (
        stop.stdout
    )
    assert_gone(tmp_path)
    assert not list((tmp_path / "nodes").glob("*.json"))
    tags = [p.name[-6:] for p in tmp_path.glob("session_*")]
    assert not [s for s in os.listdir("/dev/shm") if any(t in s for t in tags)]


def test_logs_temp_dir_reads_the_sessions_of_the_nodes_started_there(tmp_path):
    elsewhere = tmp_path / "elsewhere"  # the environment's temp dir knows no node
    env, nodes_dir = cli_env(elsewhere), tmp_path / "nodes_here"
    try:
        start(env, free_port(), 1, "--temp-dir", str(nodes_dir))
        assert cli(env, "logs", "--component", "gcs").returncode == 1  # no session under `elsewhere`
        logs = cli(env, "logs", "--temp-dir", str(nodes_dir), "--component", "gcs", "--json")
        assert logs.returncode == 0, logs.stdout + logs.stderr
        events = [json.loads(line) for line in logs.stdout.splitlines()]
        assert events and all(e["component"] == "gcs" for e in events)
    finally:
        stop = cli(env, "stop", "--temp-dir", str(nodes_dir))
    assert stop.returncode == 0 and "stopped head" in stop.stdout, stop.stdout + stop.stderr
    assert_gone(nodes_dir)


PRIVATE_DRIVER = """
import os, sys, babyray as ray
with ray.init(num_cpus=1, temp_dir=sys.argv[1]) as ctx:
    assert ray.get(ray.put("x"), timeout=60) == "x"
    print("PID", os.getpid())
"""


def test_logs_temp_dir_without_node_records_reads_its_newest_session(tmp_path):
    env = cli_env(tmp_path / "elsewhere")
    driver = tmp_path / "driver.py"
    driver.write_text(PRIVATE_DRIVER)
    runs = tmp_path / "runs"
    first, second = (run_driver(driver, str(runs), env=env, expect="PID") for _ in range(2))
    logs = cli(env, "logs", "--temp-dir", str(runs), "--component", "driver", "--json")
    assert logs.returncode == 0, logs.stdout + logs.stderr
    pids = {json.loads(line)["pid"] for line in logs.stdout.splitlines()}
    assert pids == {int(second.stdout.split()[-1])} != {int(first.stdout.split()[-1])}

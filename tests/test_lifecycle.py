"""init/shutdown and cluster information through the public API."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray import cluster
from babyray.util.placement_group import placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


def test_init_twice_raises_and_ignore_reinit_error_allows_it(cluster):
    with pytest.raises(RuntimeError, match="init"):
        ray.init()
    assert ray.init(ignore_reinit_error=True).address_info["session_dir"] == cluster["session_dir"]


def test_shutdown_leaves_nothing_and_a_second_init_works(tmp_path):
    first = ray.init(num_cpus=1, temp_dir=str(tmp_path)).address_info
    assert ray.is_initialized()

    @ray.remote
    def f(x):
        return x + 1

    assert ray.get(f.remote(1)) == 2
    ray.shutdown()
    assert not ray.is_initialized()
    assert_session_clean(first["session_dir"])
    second = ray.init(num_cpus=1, temp_dir=str(tmp_path)).address_info
    try:
        assert second["session_dir"] != first["session_dir"]
        assert ray.get(f.remote(2)) == 3
    finally:
        ray.shutdown()
    assert_session_clean(second["session_dir"])


def test_a_ref_kept_across_shutdown_and_init_fails_at_once_with_owner_died(tmp_path):
    """Its owner, the earlier session's driver, has ended: get, wait, and passing it to a task
    say so at once instead of waiting for an answer no process will give."""
    ray.init(num_cpus=1, temp_dir=str(tmp_path))

    @ray.remote
    def echo(x):
        return x

    kept_put, kept_result = ray.put("before"), echo.remote("before")
    assert ray.get([kept_put, kept_result], timeout=60) == ["before", "before"]
    ray.shutdown()
    ray.init(num_cpus=1, temp_dir=str(tmp_path))
    try:
        for kept in (kept_put, kept_result):
            with pytest.raises(ray.exceptions.OwnerDiedError, match="before this process's babyray.shutdown"):
                ray.get(kept, timeout=60)
        assert ray.wait([kept_put], timeout=60)[0] == [kept_put]  # an error is a value
        with pytest.raises(ray.exceptions.RayTaskError) as raised:
            ray.get(echo.remote(kept_put), timeout=60)  # an argument that is an error fails the task
        assert isinstance(raised.value, ray.exceptions.OwnerDiedError)
        with pytest.raises(TypeError, match="before this process's babyray.shutdown"):
            echo.remote([kept_put])  # nested: it cannot travel
        with pytest.raises(TypeError, match="before this process's babyray.shutdown"):
            ray.put({"ref": kept_result})
        assert ray.get(echo.remote("after"), timeout=60) == "after"
    finally:
        ray.shutdown()


def test_a_placement_group_or_actor_kept_across_shutdown_and_init_is_refused_by_name(tmp_path):
    """The new cluster never had them: a task in the group would wait forever, so using it is
    refused; a call of the actor fails, saying why."""
    ray.init(num_cpus=1, temp_dir=str(tmp_path))

    @ray.remote(num_cpus=0)
    def echo(x):
        return x

    @ray.remote(num_cpus=0)
    class Echo:
        def echo(self, x):
            return x

    kept = placement_group([{"CPU": 1}])
    ray.get(kept.ready(), timeout=60)
    kept_actor = Echo.remote()
    assert ray.get(kept_actor.echo.remote(1), timeout=60) == 1
    ray.shutdown()
    ray.init(num_cpus=1, temp_dir=str(tmp_path))
    try:
        with pytest.raises(ValueError, match=f"placement group {kept.id} does not exist in this cluster"):
            kept.ready()
        in_kept = PlacementGroupSchedulingStrategy(kept)
        with pytest.raises(ValueError, match="earlier session"):
            echo.options(scheduling_strategy=in_kept).remote(1)
        with pytest.raises(ray.exceptions.RayActorError, match="earlier session"):
            ray.get(kept_actor.echo.remote(2), timeout=60)
        fresh = placement_group([{"CPU": 1}])
        assert ray.get(fresh.ready(), timeout=60) == fresh
        in_fresh = PlacementGroupSchedulingStrategy(fresh)
        assert ray.get(echo.options(scheduling_strategy=in_fresh).remote(2), timeout=60) == 2
    finally:
        ray.shutdown()


def test_nodes_lists_the_local_node_with_ray_keys(cluster):
    nodes = ray.nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node["Alive"] is True and node["NodeManagerAddress"] == "127.0.0.1"
    assert node["Resources"]["CPU"] == 2.0 and node["NodeID"] == cluster["node_id"]


def test_cluster_resources_reflect_init_arguments(tmp_path):
    ray.init(num_cpus=3, resources={"accelerator": 2}, temp_dir=str(tmp_path))
    try:
        assert ray.cluster_resources() == {"CPU": 3.0, "accelerator": 2.0}
    finally:
        ray.shutdown()


def test_available_resources_drop_while_a_task_runs(cluster):
    @ray.remote
    def hold(seconds):
        time.sleep(seconds)
        return True

    ref = hold.remote(3)
    deadline = time.time() + 5
    while ray.available_resources().get("CPU", 0) != 1.0 and time.time() < deadline:
        time.sleep(0.05)
    assert ray.available_resources().get("CPU") == 1.0
    assert ray.get(ref)
    deadline = time.time() + 5
    while ray.available_resources().get("CPU", 0) != 2.0 and time.time() < deadline:
        time.sleep(0.05)
    assert ray.available_resources()["CPU"] == 2.0


def test_logs_are_structlog_json_lines_in_the_session(cluster):
    import glob
    import json

    @ray.remote
    def f():
        return 1

    ray.get(f.remote())
    files = glob.glob(cluster["session_dir"] + "/logs/*.jsonl")
    components = set()
    for path in files:
        with open(path) as fh:
            for line in fh:
                event = json.loads(line)
                assert {"event", "ts", "level", "component", "pid"} <= set(event)
                components.add(event["component"])
    assert {"driver", "gcs", "global_scheduler", "local_scheduler", "object_store", "worker"} <= components


def test_a_private_cluster_dies_with_its_driver_even_after_kill_minus_9(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "driver.py"
    script.write_text(
        "import os\nimport babyray as ray\n"
        f"ray.init(num_cpus=1, temp_dir={str(tmp_path)!r})\n"
        "@ray.remote\ndef f():\n    return 1\n"
        "assert ray.get(f.remote()) == 1\nprint('READY', flush=True)\nos.kill(os.getpid(), 9)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        [sys.executable, str(script)], env={**os.environ, "PYTHONPATH": root}, timeout=60, capture_output=True
    )
    marker = str(script)
    deadline = time.time() + 10
    while time.time() < deadline:
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"processes of the killed driver's cluster are still running: {left}"


def test_a_local_cluster_listens_on_a_port_no_outgoing_connection_can_take(tmp_path):
    """Its admin's port is below the kernel's range for outgoing connections' ports: a port
    from that range could be taken by any connection before the admin binds it (init then
    failed after 11 s, "not a valid or useable ActorSystem Admin")."""
    first_ephemeral = int(open(cluster.EPHEMERAL_PORTS_FILE).read().split()[0])
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path)).address_info
    try:
        port = int(info["address"].rsplit(":", 1)[1])
        assert cluster.FREE_PORT_FLOOR <= port < first_ephemeral
        with socket.socket() as taken:  # it is the admin's: nobody else can bind it now
            with pytest.raises(OSError):
                taken.bind(("127.0.0.1", port))
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def test_free_port_takes_the_kernels_choice_where_no_range_is_known(tmp_path, monkeypatch):
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text("10005\t60999\n")
    monkeypatch.setattr(cluster, "EPHEMERAL_PORTS_FILE", str(narrow))
    ports = {cluster.free_port() for _ in range(20)}
    assert ports <= set(range(10000, 10005)), "random ports below the range, each free"
    monkeypatch.setattr(cluster, "EPHEMERAL_PORTS_FILE", str(tmp_path / "absent"))
    kernel_port = cluster.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", kernel_port))  # free when returned

"""Placement groups on a cluster started with the ``babyray`` command on 127.0.0.1: a group
waits for a node that fits it, groups go with the driver that made them unless detached,
``babyray list placement-groups`` and ``babyray status`` show them, and the GCS keeps them
across a head restart (its store)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cli_cluster import cli, stop_all
from test_head_restart import _env, _kill_head

from babyray.cluster import free_port

PRELUDE = """
import json, sys, time, babyray as ray
from babyray.util import get_placement_group, placement_group, placement_group_table, remove_placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
ray.init(address=sys.argv[1])

def wait_nodes(n):
    deadline = time.monotonic() + 60
    while sum(x["Alive"] for x in ray.nodes()) < n:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.2)

@ray.remote(num_cpus=0)
def node():
    return ray.get_runtime_context().get_node_id()
"""


def _run(env: dict, tmp_path: Path, address: str, body: str) -> str:
    script = tmp_path / f"driver_{time.monotonic_ns()}.py"
    script.write_text(PRELUDE + body + "\nray.shutdown()\nprint('DRIVER OK')\n")
    run = subprocess.run(
        [sys.executable, str(script), address], env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0 and "DRIVER OK" in run.stdout, run.stdout + run.stderr
    return run.stdout


def _groups(env: dict, address: str) -> dict:
    listed = cli(env, "list", "placement-groups", "--format", "json", "--address", address)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return {g["name"]: g for g in json.loads(listed.stdout)}


def _start_head(env: dict, cpus: int, store: str = "") -> tuple[str, tuple]:
    port = free_port()
    args = (
        "start",
        "--head",
        "--port",
        str(port),
        "--node-ip",
        "127.0.0.1",
        "--num-cpus",
        str(cpus),
        *(("--gcs-url", store) if store else ()),
    )
    head = cli(env, *args)
    assert head.returncode == 0, head.stdout + head.stderr
    return f"127.0.0.1:{port}", args


def _start_member(env: dict, address: str, cpus: int, resources: str = "{}") -> None:
    member = cli(
        env,
        "start",
        "--address",
        address,
        "--port",
        str(free_port()),
        "--node-ip",
        "127.0.0.1",
        "--num-cpus",
        str(cpus),
        "--resources",
        resources,
    )
    assert member.returncode == 0, member.stdout + member.stderr


def test_a_pending_group_is_placed_when_a_node_that_fits_joins_and_groups_fate_share_with_their_driver(
    tmp_path,
):
    """Guide: an infeasible group stays pending "until the cluster has the resources" (here
    a node joins); API reference: lifetime=None "fate shares with its creator and will be
    deleted once its creator is dead", "detached" lives on. The CLI lists both, and status
    shows the group still pending."""
    env = _env(tmp_path)
    try:
        address, _ = _start_head(env, cpus=1)
        _run(
            env,
            tmp_path,
            address,
            """
wait_nodes(1)
mine = placement_group([{"CPU": 1}], name="mine")
ray.get(mine.ready(), timeout=60)
later = placement_group([{"CPU": 2}], strategy="STRICT_PACK", name="later", lifetime="detached")
assert not later.wait(2)
""",
        )
        groups = _groups(env, address)
        assert groups["mine"]["state"] == "REMOVED"  # its driver ended
        assert groups["later"]["state"] == "PENDING" and groups["later"]["is_detached"]
        status = cli(env, "status", "--address", address)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "placement groups: 1, 1 PENDING" in status.stdout and "later" in status.stdout, status.stdout

        _start_member(env, address, cpus=2)
        out = _run(
            env,
            tmp_path,
            address,
            """
wait_nodes(2)
later = get_placement_group("later")
assert ray.get(later.ready(), timeout=60) == later
where = ray.get(node.options(scheduling_strategy=PlacementGroupSchedulingStrategy(later, 0)).remote(), timeout=60)
head = [n["NodeID"] for n in ray.nodes() if n["Resources"].get("CPU") == 1.0]
table = placement_group_table(later)
assert table["bundles_to_node_id"] == {0: where} and [where] != head, (table, head)
print("PLACED", table["state"])
remove_placement_group(later)
""",
        )
        assert "PLACED CREATED" in out
        assert _groups(env, address)["later"]["state"] == "REMOVED"
    finally:
        stop_all(env, tmp_path)


def test_the_gcs_keeps_placement_groups_across_a_head_restart(tmp_path):
    """The placement group table is written to the GCS store and recovered like the other
    tables: after the head is killed and restarted, a created group (bundle on the member
    that kept running) is still CREATED on the same node, usable and removable, a pending
    one is still PENDING, and a task sent to a group removed before the restart fails
    (TaskPlacementGroupRemoved) instead of waiting forever."""
    env = _env(tmp_path)
    try:
        address, head_args = _start_head(env, cpus=1, store=f"sqlite:///{tmp_path / 'gcs.sqlite'}")
        _start_member(env, address, cpus=1, resources='{"special": 1}')
        before = _run(
            env,
            tmp_path,
            address,
            """
wait_nodes(2)
kept = placement_group([{"CPU": 1, "special": 1}], name="kept", lifetime="detached")
ray.get(kept.ready(), timeout=60)
waiting = placement_group([{"CPU": 4}], name="waiting", lifetime="detached")
gone = placement_group([{"CPU": 4}], lifetime="detached")
remove_placement_group(gone)
print("KEPT", placement_group_table(kept)["bundles_to_node_id"][0], "GONE", gone.id)
""",
        )
        member, gone = before.split("KEPT", 1)[1].split()[0], before.split("GONE", 1)[1].split()[0]
        time.sleep(1.5)  # the store writer is behind the GCS by a moment
        _kill_head(tmp_path)
        time.sleep(1.0)
        head = cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr
        out = _run(
            env,
            tmp_path,
            address,
            f'''
wait_nodes(2)
kept = get_placement_group("kept")
table = placement_group_table(kept)
assert table["state"] == "CREATED" and table["bundles_to_node_id"] == {{0: "{member}"}}, table
assert placement_group_table(get_placement_group("waiting"))["state"] == "PENDING"
from babyray.exceptions import TaskPlacementGroupRemoved
from babyray.util.placement_group import PlacementGroup
gone = PlacementGroup("{gone}", [{{"CPU": 4}}])
try:
    ray.get(node.options(scheduling_strategy=PlacementGroupSchedulingStrategy(gone)).remote(), timeout=30)
    raise AssertionError("a task ran in a removed group")
except TaskPlacementGroupRemoved as exc:
    assert "{gone}" in str(exc), exc
inside = node.options(scheduling_strategy=PlacementGroupSchedulingStrategy(kept, 0)).remote()
assert ray.get(inside, timeout=60) == "{member}"
remove_placement_group(kept)
deadline = time.monotonic() + 30
while ray.available_resources().get("special") != 1.0:
    assert time.monotonic() < deadline, ray.available_resources()
    time.sleep(0.2)
print("RECOVERED")
''',
        )
        assert "RECOVERED" in out
    finally:
        stop_all(env, tmp_path)

"""Token authentication between hosts, in network namespaces (deploy/netns.py): a head and
a member that share a token file, and an outsider host (the driver namespace).

Without the token the outsider sends a pickle whose ``__reduce__`` creates a marker file
(tests/auth_outsider.py) to the head admin, the member admin and the head's data plane:
nothing runs, each attempt is logged as ``auth_rejected`` with the outsider's address, and
the cluster keeps running tasks. With the token the same host joins as a driver and as a
member node and runs tasks. Needs root and iproute2; skipped otherwise.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from netns_cluster import babyray_cluster, needs_netns

ROOT = Path(__file__).resolve().parents[1]
pytestmark = needs_netns

OUTSIDER = ROOT / "tests" / "auth_outsider.py"
MEMBER_IP = "192.0.2.11"
WITHOUT_TOKEN = {"BABYRAY_AUTH_TOKEN_PATH": ""}

# Runs on the head's host: puts a victim object in the head's store, lets the outsider
# attack (its argv and environment in the config file), then reads the object in a task.
VICTIM = textwrap.dedent("""
    import json, subprocess, sys
    import numpy as np
    import babyray as ray
    from babyray.protocol import objects as om
    from babyray.api import context

    config = json.load(open(sys.argv[1]))
    ray.init(address="auto")
    victim = ray.put(np.ones(1 << 20, dtype=np.uint8))
    core = context.runtime().core
    pinned = core.request(core.store, lambda r: om.PinObjects(r, (victim.hex(),), "auth-test"))
    core.transport.send(core.store, om.UnpinObjects((victim.hex(),), "auth-test"))
    where = core.request(core.store, lambda r: om.GetTransferAddress(r))
    offset = pinned.slots[victim.hex()][0]
    attack = config["argv"] + ["--data-plane", f"{where.host}:{where.port}:{offset}"]
    done = subprocess.run(attack, env=config["env"], capture_output=True, text=True, timeout=60)
    print("OUTSIDER", done.returncode, done.stdout, done.stderr)

    @ray.remote
    def kind_and_sum(value):
        return type(value).__name__, int(np.asarray(value).sum()) if isinstance(value, np.ndarray) else None

    print("RESULT", json.dumps(ray.get(kind_and_sum.remote(victim), timeout=60)))
    ray.shutdown()
""")

TASKS = textwrap.dedent("""
    import os, sys
    import babyray as ray
    ray.init(address="auto")

    @ray.remote
    def where():
        return os.environ["BABYRAY_NETNS_HOST"]

    need = sys.argv[1:]
    for host in need:
        placed = ray.get([where.options(resources={f"on_{host}": 1}).remote() for _ in range(3)], timeout=90)
        assert placed == [host] * 3, placed
    assert sorted(set(ray.get([where.remote() for _ in range(20)], timeout=90))) <= sorted(need + ["head"])
    ray.shutdown()
    print("TASKS OK")
""")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    temp_dir = tmp_path_factory.mktemp("authhost")
    with babyray_cluster(
        "au", temp_dir, members=1, node_timeout=5, object_store_memory=256 * 1024 * 1024
    ) as c:
        c.temp_dir = temp_dir
        _run_tasks(c, "m1")
        yield c


def _run_tasks(cluster, *hosts: str, env: dict | None = None) -> None:
    result = cluster.run(
        [sys.executable, "-c", TASKS, *hosts], env=env, capture_output=True, text=True, timeout=240
    )
    assert "TASKS OK" in result.stdout, result.stdout + result.stderr + cluster.log_tail("head")


def _rejections(temp_dir: Path) -> list[tuple[str, dict]]:
    """(node ip, event) of every auth_rejected event logged by a node's session."""
    sessions = {}
    for record in (temp_dir / "nodes").glob("*.json"):
        data = json.loads(record.read_text())
        sessions[data["session_dir"]] = data["node_ip"]
    found = []
    for session, ip in sessions.items():
        for log in Path(session, "logs").glob("*.jsonl"):
            events = map(json.loads, log.read_text().splitlines())
            found += [(ip, e) for e in events if e.get("event") == "auth_rejected"]
    return found


def test_an_outsider_without_the_token_runs_nothing_on_any_host(cluster, tmp_path):
    marker = tmp_path / "outsider-was-here"
    argv = cluster.argv_in(
        "driver",
        [
            sys.executable,
            str(OUTSIDER),
            "--marker",
            str(marker),
            "--thespian",
            cluster.head_address,
            "--thespian",
            f"{MEMBER_IP}:1900",
        ],
    )
    config = tmp_path / "attack.json"
    config.write_text(json.dumps({"argv": argv, "env": cluster.host_env("driver", WITHOUT_TOKEN)}))
    script = tmp_path / "victim.py"
    script.write_text(VICTIM)
    result = cluster.run(
        [sys.executable, str(script), str(config)], host="head", capture_output=True, text=True, timeout=240
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "OUTSIDER 0" in output, output + cluster.log_tail("head")
    assert 'RESULT ["ndarray", 1048576]' in result.stdout, output
    assert not marker.exists(), output

    rejected = _rejections(cluster.temp_dir)
    seen = {(ip, event["channel"]) for ip, event in rejected if event["peer"].startswith("192.0.2.100:")}
    assert {("192.0.2.1", "thespian"), (MEMBER_IP, "thespian"), ("192.0.2.1", "data_plane")} <= seen, rejected
    _run_tasks(cluster, "m1")
    assert not marker.exists()


def test_the_outsider_with_the_token_joins_as_driver_and_member(cluster, tmp_path):
    cli = [sys.executable, "-m", "babyray.cli"]
    refused = cluster.run(
        cli + ["start", "--address", cluster.head_address, "--num-cpus", "1"],
        env=WITHOUT_TOKEN,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "no auth token" in refused.stderr, refused.stdout + refused.stderr

    token_file = cluster.env["BABYRAY_AUTH_TOKEN_PATH"]
    joined = cluster.run(
        cli
        + [
            "start",
            "--address",
            cluster.head_address,
            "--num-cpus",
            "1",
            "--token-file",
            token_file,
            "--resources",
            '{"on_driver": 1}',
        ],
        env=WITHOUT_TOKEN,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert joined.returncode == 0, joined.stdout + joined.stderr + cluster.log_tail("head")
    try:
        _run_tasks(cluster, "m1", "driver")
    finally:
        stopped = cluster.run(cli + ["stop"], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr

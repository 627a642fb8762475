"""A head restarted with the same GCS store and port: the member that kept running registers
again with the new GCS (which announces itself to the nodes it recovered from the store), and
drivers, new or already connected, run tasks on it. On 127.0.0.1 with the babyray command,
the GCS store an SQLite file outside the head's session."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from babyray.cluster import free_port
from babyray.session import kill_session_processes

from test_cli import _cli, _processes_mentioning

ROOT = Path(__file__).resolve().parents[1]

DRIVER = '''
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
'''


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


def _driver(env: dict, tmp_path: Path, address: str, x: int) -> tuple[int, str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run = subprocess.run([sys.executable, str(script), address, str(x)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "RESULT" in run.stdout, run.stdout + run.stderr
    value, node = run.stdout.split("RESULT", 1)[1].split()
    return int(value), node


def test_a_member_reregisters_with_a_restarted_head_and_runs_tasks_again(tmp_path):
    env = dict(os.environ, BABYRAY_TEMP_DIR=str(tmp_path), PYTHONPATH=str(ROOT), BABYRAY_NODE_TIMEOUT="3")
    env.pop("BABYRAY_ADDRESS", None)
    head_port, member_port = free_port(), free_port()
    address = f"127.0.0.1:{head_port}"
    store = f"sqlite:///{tmp_path / 'gcs.sqlite'}"
    head_args = ("start", "--head", "--port", str(head_port), "--node-ip", "127.0.0.1", "--num-cpus", "1",
                 "--gcs-url", store)
    try:
        head = _cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr
        member = _cli(env, "start", "--address", address, "--port", str(member_port), "--node-ip", "127.0.0.1",
                      "--num-cpus", "1", "--resources", '{"special": 1}')
        assert member.returncode == 0, member.stdout + member.stderr
        value, member_node = _driver(env, tmp_path, address, 5)
        assert value == 15

        _kill_head(tmp_path)
        time.sleep(1.0)
        head = _cli(env, *head_args)
        assert head.returncode == 0, head.stdout + head.stderr

        value, node = _driver(env, tmp_path, address, 7)
        assert (value, node) == (21, member_node)  # the same member, under its old node id
        status = _cli(env, "status", "--address", address)
        assert status.returncode == 0 and "2 alive node(s), 1 dead" in status.stdout, status.stdout + status.stderr
    finally:
        stop = _cli(env, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_mentioning(str(tmp_path))

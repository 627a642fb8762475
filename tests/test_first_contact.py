"""A newcomer's first run: Ray programs that never call init(), Ray's module layout, running
from any directory with the default session directory."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from cli_cluster import cli, stop_all
from conftest import assert_session_clean

import babyray as ray
from babyray import config, procfs
from babyray.cluster import free_port
from babyray.procfs import is_running

AUTO_STARTED = "Started a local babyray cluster"

# A Ray program as found in docs and tutorials: no init(), no shutdown(); only the import
# line differs from Ray's.
RAY_PROGRAM = """
import babyray as ray
from babyray.actor import ActorHandle


@ray.remote
def square(x):
    return x * x


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n


def count_to(counter: ActorHandle, n: int) -> int:
    return ray.get([counter.incr.remote() for _ in range(n)])[-1]


print("squares", ray.get([square.remote(i) for i in range(5)]))
counter = Counter.remote()
print("counted", count_to(counter, 3), isinstance(counter, ActorHandle))
ready, _ = ray.wait([ray.put("stored")], timeout=60)
print("put", ray.get(ready[0]))
print("session", ray.get_runtime_context().get_job_id() != "")
"""


def _env(**extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BABYRAY_ADDRESS", "RAY_ADDRESS", "BABYRAY_TEMP_DIR", "PYTHONPATH")
    }
    return {**env, **extra}


def _wait_gone(session_dir: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while [pid for pid in _session_pids(session_dir) if is_running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_session_clean(session_dir)


def _session_pids(session_dir: str) -> list[int]:
    return [int(os.path.basename(p)) for p in glob.glob(os.path.join(session_dir, "pids", "*"))]


def test_a_ray_program_that_never_calls_init_runs_on_a_cluster_it_starts_and_stops(tmp_path):
    script = tmp_path / "ray_program.py"
    script.write_text(RAY_PROGRAM)
    run = subprocess.run(
        [sys.executable, str(script)],
        env=_env(BABYRAY_TEMP_DIR=str(tmp_path)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "squares [0, 1, 4, 9, 16]",
        "counted 3 True",
        "put stored",
        "session True",
    ], run.stdout
    notices = [line for line in run.stderr.splitlines() if "babyray" in line]
    assert len(notices) == 1 and AUTO_STARTED in notices[0], run.stderr
    sessions = glob.glob(str(tmp_path / "session_*"))
    assert len(sessions) == 1 and sessions[0] in notices[0]
    _wait_gone(sessions[0])
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the auto-started cluster still run: {left}"


@ray.remote
def one() -> int:
    return 1


@ray.remote
class Box:
    def get(self) -> int:
        return 2


FIRST_CALLS = {
    "put": lambda: ray.get(ray.put(3)) == 3,
    "remote function": lambda: ray.get(one.remote(), timeout=60) == 1,
    "actor class": lambda: ray.get(Box.remote().get.remote(), timeout=60) == 2,
    "get_runtime_context": lambda: ray.get_runtime_context().get_job_id() != "",
    "get_actor": lambda: pytest.raises(ValueError, ray.get_actor, "nobody") is not None,
}


@pytest.mark.parametrize("first_call", list(FIRST_CALLS))
def test_each_api_that_needs_a_cluster_starts_one_and_shutdown_stops_it(first_call, tmp_path, monkeypatch):
    monkeypatch.setenv("BABYRAY_TEMP_DIR", str(tmp_path))
    for name in ("BABYRAY_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    assert not ray.is_initialized()
    try:
        assert FIRST_CALLS[first_call]()
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert not ray.is_initialized()
    sessions = glob.glob(str(tmp_path / "session_*"))
    assert len(sessions) == 1
    _wait_gone(sessions[0])


def test_cluster_queries_and_a_disabled_auto_init_raise_instead_of_starting_a_cluster(tmp_path, monkeypatch):
    """As in Ray: nodes()/cluster_resources() do not start a cluster, and
    RAY_ENABLE_AUTO_CONNECT=0 turns the start on first use off."""
    monkeypatch.setenv("BABYRAY_TEMP_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="call babyray.init"):
        ray.cluster_resources()
    with pytest.raises(RuntimeError, match="call babyray.init"):
        ray.nodes()
    monkeypatch.setenv("RAY_ENABLE_AUTO_CONNECT", "0")
    with pytest.raises(RuntimeError, match="RAY_ENABLE_AUTO_CONNECT"):
        ray.put(1)
    assert not ray.is_initialized() and not glob.glob(str(tmp_path / "session_*"))


@pytest.mark.parametrize("variable", ["BABYRAY_ADDRESS", "RAY_ADDRESS"])
def test_a_program_without_init_joins_the_cluster_the_environment_names(variable, tmp_path):
    env = _env(BABYRAY_TEMP_DIR=str(tmp_path))
    port = free_port()
    address = f"127.0.0.1:{port}"
    script = tmp_path / "ray_program.py"
    script.write_text(RAY_PROGRAM + "print('nodes', len(ray.nodes()))\n")
    try:
        head = cli(env, "start", "--head", "--port", str(port), "--node-ip", "127.0.0.1", "--num-cpus", "2")
        assert head.returncode == 0, head.stdout + head.stderr
        run = subprocess.run(
            [sys.executable, str(script)],
            env={**env, variable: address},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "counted 3 True" in run.stdout and "nodes 1" in run.stdout, run.stdout
        notices = [line for line in run.stderr.splitlines() if "babyray" in line]
        assert len(notices) == 1 and f"Connected to the babyray cluster at {address}" in notices[0], (
            run.stderr
        )
        status = cli(env, "status", "--address", address)  # the program's exit left the cluster running
        assert status.returncode == 0 and "alive" in status.stdout.lower(), status.stdout + status.stderr
    finally:
        stop_all(env, tmp_path)


def test_ray_module_layout_actor_and_remote_function(cluster):
    import babyray.actor
    import babyray.remote_function
    from babyray.actor import ActorClass, ActorHandle
    from babyray.remote_function import RemoteFunction

    assert ray.actor is babyray.actor and ray.remote_function is babyray.remote_function
    assert isinstance(Box, ActorClass) and isinstance(one, RemoteFunction)
    handle = Box.remote()
    assert isinstance(handle, ActorHandle) and isinstance(handle, ray.actor.ActorHandle)
    assert ray.get(handle.get.remote(), timeout=60) == 2
    assert not isinstance(one, ActorClass) and not isinstance(Box, RemoteFunction)


def test_a_script_run_from_the_temp_root_with_the_default_session_directory(tmp_path):
    """The default session root lies in the system temp directory; a script run from there
    must still import the installed babyray, not that directory as a namespace package."""
    default_root = config.DEFAULTS["temp_dir"]
    root = os.path.dirname(default_root)
    made_root = not os.path.exists(default_root)
    script = Path(root) / f"first_contact_{uuid.uuid4().hex[:8]}.py"
    script.write_text(
        textwrap.dedent("""
        import babyray as ray
        info = ray.init(num_cpus=1).address_info
        print("SESSION", info["session_dir"])
        print("VALUE", ray.get(ray.put(41)) + 1)
    """)
    )
    session = None
    try:
        for _ in range(2):  # the first run makes the default root if it was missing
            run = subprocess.run(
                [sys.executable, script.name],
                env=_env(),
                cwd=root,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stdout + run.stderr
            assert "VALUE 42" in run.stdout
            session = run.stdout.split("SESSION ", 1)[1].split()[0]
            assert os.path.dirname(session) == default_root
            _wait_gone(session)
            shutil.rmtree(session)
    finally:
        script.unlink()
        if made_root and os.path.isdir(default_root) and not os.listdir(default_root):
            os.rmdir(default_root)


def _process_resources() -> dict:
    """This process's children (and zombies among them), open fds, sockets and threads."""
    me = os.getpid()
    children = procfs.children(me)
    links = []
    for fd in os.listdir(f"/proc/{me}/fd"):
        try:
            links.append(os.readlink(f"/proc/{me}/fd/{fd}"))
        except OSError:  # the fd of the listing itself, closed since
            pass
    return {
        "children": len(children),
        "zombies": sum(child.zombie for child in children),
        "fds": len(links),
        "sockets": sum(link.startswith("socket:") for link in links),
        "threads": sorted(t.name for t in threading.enumerate()),
    }


def test_twenty_init_shutdown_cycles_leave_no_zombie_socket_fd_or_thread(tmp_path):
    def cycle() -> None:
        ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=32 * 1024 * 1024)
        try:
            assert ray.get(one.remote(), timeout=60) == 1
            assert ray.get(ray.put(b"x" * 200_000)) == b"x" * 200_000  # through the store's channel
        finally:
            ray.shutdown()

    cycle()  # imports and one-time set-up
    before = _process_resources()
    for _ in range(20):
        cycle()
    after = _process_resources()
    assert after == before
    assert after["zombies"] == 0 and not [t for t in after["threads"] if t.startswith("babyray")], after


JOIN_SCRIPT = """
import sys
from babyray import cluster

try:
    cluster.join_as_driver(sys.argv[1], sys.argv[2], timeout=float(sys.argv[3]), token="a" * 64)
except cluster.ClusterStartError as exc:
    print("FAILED", exc)
"""


def _another_service(port_holder: list[int], stop: threading.Event) -> None:
    """A TCP server that is not a babyray head: it answers whatever comes with a line of its
    own, as a database or a cache on that port would, and keeps the connection open."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        port_holder.append(server.getsockname()[1])
        connections = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"-ERR unknown command\r\n")
            connections.append(conn)
        for conn in connections:
            conn.close()


@pytest.mark.parametrize("listening", [True, False], ids=["another_service", "nothing"])
def test_an_address_where_no_babyray_head_answers_fails_saying_so(listening, tmp_path):
    stop, ports = threading.Event(), []
    if listening:
        threading.Thread(target=_another_service, args=(ports, stop), daemon=True).start()
        while not ports:
            time.sleep(0.01)
    port = ports[0] if listening else free_port()
    session_dir = tmp_path / "session"
    (session_dir / "logs").mkdir(parents=True)
    script = tmp_path / "join.py"
    script.write_text(JOIN_SCRIPT)
    try:
        run = subprocess.run(
            [sys.executable, str(script), str(session_dir), f"127.0.0.1:{port}", "4"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"FAILED no babyray head answered at 127.0.0.1:{port} within 4s" in run.stdout, run.stdout
    assert f"no Thespian admin answered at 127.0.0.1:{port}" in run.stdout, run.stdout
    _wait_gone(str(session_dir))  # the admin it started for the lookup is gone

"""Node failures on a real multi-host cluster (network namespaces): lineage reconstruction of
objects lost with a killed member, ObjectLostError for lost puts, actors restarted elsewhere.

The member ``m1`` is killed with kill -9 of every process in its namespace while a driver
waits; the driver then checks what survives and what is rebuilt.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from netns_cluster import babyray_cluster, needs_netns
from test_multihost import PRELUDE

pytestmark = needs_netns

NODE_TIMEOUT = 3.0

KILL_SYNC = textwrap.dedent("""
    def wait_for_kill(marker_dir):
        open(os.path.join(marker_dir, "READY"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(marker_dir, "KILLED")):
            assert time.monotonic() < deadline, "m1 was never killed"
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while sum(n["Alive"] for n in ray.nodes()) > 2:  # the heartbeat timeout marks m1 dead
            assert time.monotonic() < deadline, ray.nodes()
            time.sleep(0.2)

    m1 = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerAddress"] == "192.0.2.11")
    from babyray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    on_m1 = NodeAffinitySchedulingStrategy(m1, soft=True)
""")


@pytest.fixture
def cluster(tmp_path):
    with babyray_cluster(
        "ft",
        tmp_path / "sessions",
        members=2,
        node_timeout=NODE_TIMEOUT,
        object_store_memory=256 * 1024 * 1024,
    ) as c:
        yield c


def run_with_kill(cluster, tmp_path: Path, body: str, timeout: float = 240) -> str:
    """Run a driver that calls wait_for_kill(MARKERS); kill m1 when it says READY."""
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(
        PRELUDE
        + KILL_SYNC
        + f"MARKERS = {str(markers)!r}\n"
        + textwrap.dedent(body)
        + "\nray.shutdown()\nprint('DRIVER OK')\n"
    )
    proc = cluster.popen_in("driver", [sys.executable, str(script)], log=str(tmp_path / "driver.log"))
    deadline = time.monotonic() + timeout
    while not (markers / "READY").exists():
        assert proc.poll() is None, (tmp_path / "driver.log").read_text()
        assert time.monotonic() < deadline, "driver never got ready"
        time.sleep(0.1)
    cluster.kill_host("m1")
    (markers / "KILLED").touch()
    try:
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
    output = (tmp_path / "driver.log").read_text()
    assert proc.returncode == 0 and "DRIVER OK" in output, output + "\n" + cluster.log_tail("head")
    return output


def test_chain_of_20_tasks_whose_objects_lived_on_a_killed_node_is_rebuilt(cluster, tmp_path):
    output = run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        def step(previous, i):
            out = np.array(previous, copy=True)
            out[i] = i + 1
            return out  # 1 MB: lives in the store of the node that ran the step

        start = ray.put(np.zeros(131072))  # 1 MB on the head (a put cannot be rebuilt: keep it)
        ref = start
        refs = []
        for i in range(20):
            ref = step.options(scheduling_strategy=on_m1).remote(ref, i)
            refs.append(ref)
        ray.wait(refs, num_returns=20, timeout=120)
        where = ray.get(host.options(scheduling_strategy=on_m1).remote())
        assert where[0] == "m1", where
        wait_for_kill(MARKERS)
        final = ray.get(refs[-1], timeout=180)
        assert list(final[:20]) == list(range(1, 21)) and final[20:].sum() == 0
        print("REBUILT", int(final[:20].sum()))
    """,
    )
    assert "REBUILT 210" in output


def test_a_lost_put_object_raises_object_lost_error(cluster, tmp_path):
    run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        def put_here():
            return [ray.put(np.ones(262144))]  # the put happens on m1, in m1's store

        [inner] = ray.get(put_here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(m1)).remote())
        assert ray.get(inner).sum() == 262144
        wait_for_kill(MARKERS)
        try:
            ray.get(inner, timeout=60)
        except ray.exceptions.ObjectLostError as exc:
            print("LOST", type(exc).__name__)
        else:
            raise AssertionError("a put object on a dead node was read")
    """,
    )


def test_an_actor_on_a_dead_node_restarts_elsewhere(cluster, tmp_path):
    run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        class Where:
            def __init__(self):
                self.calls = 0

            def node(self):
                self.calls += 1
                return ray.get_runtime_context().get_node_id(), self.calls

        actor = Where.options(max_restarts=1, scheduling_strategy=on_m1).remote()
        assert ray.get(actor.node.remote()) == (m1, 1)
        wait_for_kill(MARKERS)
        deadline = time.monotonic() + 60
        while True:
            try:
                node, calls = ray.get(actor.node.remote(), timeout=30)
                break
            except ray.exceptions.RayActorError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert node != m1 and calls == 1, (node, calls)  # a new process, state rebuilt
        print("RESTARTED on", node)
    """,
    )


def test_a_task_whose_input_was_lost_with_a_killed_node_gets_it_rebuilt(cluster, tmp_path):
    output = run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        def make(i):
            return np.full(131072, float(i))  # 1 MB, in m1's store

        @ray.remote
        def total(a):
            return float(a.sum())

        made = make.options(scheduling_strategy=on_m1).remote(3)
        ray.wait([made], timeout=60)
        wait_for_kill(MARKERS)
        assert ray.get(total.remote(made), timeout=120) == 3.0 * 131072
        print("INPUT REBUILT")
    """,
    )
    assert "INPUT REBUILT" in output


def test_a_get_with_a_timeout_stops_waiting_for_a_rebuild_at_its_deadline(cluster, tmp_path):
    output = run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        def made_slowly_again(marker):
            if os.path.exists(marker):  # the re-execution that rebuilds the object: slow
                time.sleep(6.0)
            return np.ones(131072)  # 1 MB, in m1's store

        marker = os.path.join(MARKERS, "rebuilding")
        made = made_slowly_again.options(scheduling_strategy=on_m1).remote(marker)
        ray.wait([made], timeout=60)
        open(marker, "w").close()
        wait_for_kill(MARKERS)
        started = time.monotonic()
        try:
            ray.get(made, timeout=1.5)
            raise AssertionError("get waited for the whole rebuild")
        except ray.exceptions.GetTimeoutError:
            waited = time.monotonic() - started
        assert waited < 4.0, waited
        assert ray.get(made, timeout=60).sum() == 131072  # the rebuild went on
        print("GAVE UP AFTER", round(waited, 1))
    """,
    )
    assert "GAVE UP AFTER" in output


def test_tasks_running_or_queued_on_a_killed_node_are_resubmitted(cluster, tmp_path):
    output = run_with_kill(
        cluster,
        tmp_path,
        """
        @ray.remote
        def slow(i):
            time.sleep(2.0)
            return i

        refs = [slow.options(scheduling_strategy=on_m1).remote(i) for i in range(8)]  # 2 run, 6 queue on m1
        time.sleep(1.0)
        wait_for_kill(MARKERS)
        assert ray.get(refs, timeout=120) == list(range(8))
        print("RESUBMITTED")
    """,
    )
    assert "RESUBMITTED" in output
    from babyray import log_reader

    events = log_reader.load([str(d) for d in (tmp_path / "sessions").glob("session_*")])
    dead = [e for e in events if e["event"] == "node_dead"]
    assert dead and dead[0]["node"], "the node's death is logged, naming it"
    lost = [e for e in events if e["event"] == "tasks_lost_with_node"]
    assert lost and lost[0]["node"] == dead[0]["node"] and lost[0]["task_ids"]
    resubmitted = [e for e in events if e["event"] == "task_resubmitted_node_died"]
    assert resubmitted and all(e["task_id"] and e["node"] == dead[0]["node"] for e in resubmitted)

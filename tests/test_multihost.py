"""A real multi-host cluster: a head and two members, each in its own network namespace,
and drivers in a fourth (deploy/netns.py). Needs root and iproute2; skipped otherwise.

Every member gets a custom resource named after its host (``on_m1``, ``on_m2``) so tasks
can be pinned to it. The driver scripts assert; the tests check their exit codes.
"""

from __future__ import annotations

import glob
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from netns_cluster import babyray_cluster, needs_netns

from babyray import log_reader

pytestmark = needs_netns

NODE_TIMEOUT = 3.0

PRELUDE = textwrap.dedent("""
    import hashlib, os, sys, time
    import numpy as np
    import babyray as ray

    ray.init(address="auto")
    deadline = time.monotonic() + 60
    while sum(n["Alive"] for n in ray.nodes()) < 3:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.2)

    @ray.remote
    def host():
        return os.environ["BABYRAY_NETNS_HOST"], ray.get_runtime_context().get_node_id()
""")


def run_driver(cluster, tmp_path: Path, body: str, timeout: float = 180) -> str:
    script = tmp_path / f"driver_{time.monotonic_ns()}.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\nray.shutdown()\nprint('DRIVER OK')\n")
    result = cluster.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "DRIVER OK" in result.stdout, "\n".join(
        (output, cluster.log_tail("head"), node_liveness_story(cluster))
    )
    return result.stdout


def node_liveness_story(cluster) -> str:
    """What the head's GCS logged about nodes joining, dying and coming back, and the members'
    last heartbeat troubles: why a check of three alive nodes failed."""
    sessions = glob.glob(os.path.join(cluster.env["BABYRAY_TEMP_DIR"], "session_*"))
    wanted = ("node_registered", "node_dead", "node_alive_again", "driver_gone", "local_scheduler_started")
    lines = [
        f"{event.get('ts')} {event.get('source')} {event.get('event')} "
        f"{event.get('node', event.get('node_id', ''))} {event.get('silent_for', '')}"
        for event in log_reader.load(sessions, events=wanted)
    ]
    return "--- node liveness events ---\n" + "\n".join(lines[-40:])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with babyray_cluster(
        "mh",
        tmp_path_factory.mktemp("multihost"),
        members=2,
        node_timeout=NODE_TIMEOUT,
        object_store_memory=512 * 1024 * 1024,
    ) as c:
        yield c


def test_nodes_lists_three_alive_nodes_with_distinct_addresses(cluster, tmp_path):
    run_driver(
        cluster,
        tmp_path,
        """
        nodes = ray.nodes()
        alive = [n for n in nodes if n["Alive"]]
        assert len(alive) == 3, nodes
        addresses = {n["NodeManagerAddress"] for n in alive}
        assert addresses == {"192.0.2.1", "192.0.2.11", "192.0.2.12"}, addresses
        assert all({"NodeID", "Alive", "NodeManagerAddress", "Resources"} <= set(n) for n in nodes)
        assert ray.cluster_resources()["CPU"] == 6.0
        assert ray.cluster_resources()["on_m1"] == 1.0
    """,
    )


def test_tasks_with_a_custom_resource_run_on_the_node_that_has_it(cluster, tmp_path):
    run_driver(
        cluster,
        tmp_path,
        """
        ids = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
        for name, ip in (("m1", "192.0.2.11"), ("m2", "192.0.2.12")):
            placed = ray.get([host.options(resources={f"on_{name}": 1}).remote() for _ in range(4)], timeout=60)
            assert placed == [(name, ids[ip])] * 4, placed
        # every process names the head's address as the cluster's (Ray's gcs_address)
        @ray.remote
        def gcs_address():
            return ray.get_runtime_context().gcs_address

        address = ray.get_runtime_context().gcs_address
        assert address.startswith("192.0.2.1:"), address
        assert ray.get([gcs_address.options(resources={f"on_{name}": 1}).remote()
                        for name in ("m1", "m2")], timeout=60) == [address, address]
    """,
    )


def test_a_100mb_object_made_on_one_node_is_read_intact_on_another(cluster, tmp_path):
    run_driver(
        cluster,
        tmp_path,
        """
        @ray.remote(resources={"on_m1": 1})
        def make():
            return np.random.default_rng(7).integers(0, 255, 100 * 1024 * 1024, dtype=np.uint8)

        @ray.remote(resources={"on_m2": 1})
        def digest(array):
            return os.environ["BABYRAY_NETNS_HOST"], hashlib.sha256(array).hexdigest(), array.nbytes

        expected = hashlib.sha256(np.random.default_rng(7).integers(0, 255, 100 * 1024 * 1024,
                                                                   dtype=np.uint8)).hexdigest()
        ref = make.remote()
        where, seen, size = ray.get(digest.remote(ref), timeout=120)
        assert (where, seen, size) == ("m2", expected, 100 * 1024 * 1024)
        # the driver (no node on its host) reads it over the data plane too
        assert hashlib.sha256(ray.get(ref, timeout=120)).hexdigest() == expected
        # and a large object the driver puts is read intact on a member
        data = np.arange(5 * 1024 * 1024, dtype=np.int64)
        put_ref = ray.put(data)
        where, seen, size = ray.get(digest.remote(put_ref), timeout=120)
        assert where == "m2" and seen == hashlib.sha256(data).hexdigest()
        # the holders pinned each object while a puller read it, and unpinned it after
        from babyray.api.memory import memory_stats
        deadline = time.monotonic() + 30
        while True:
            pins = {oid: o["pins"] for node in memory_stats(objects=True)
                    for oid, o in node["objects"].items() if oid in (ref.hex(), put_ref.hex())}
            if set(pins.values()) == {0}:
                break
            assert time.monotonic() < deadline, pins
            time.sleep(0.2)
    """,
    )


def test_a_task_goes_straight_to_the_node_that_holds_its_large_input(cluster, tmp_path):
    """The owner sends it to that node's scheduler itself: the global scheduler never sees it."""
    out = run_driver(
        cluster,
        tmp_path,
        """
        @ray.remote(resources={"on_m2": 1})
        def make():
            return np.ones(8 << 20, dtype=np.uint8)

        @ray.remote
        def where(array):
            return os.environ["BABYRAY_NETNS_HOST"], array.nbytes

        obj = make.remote()
        ray.wait([obj])
        refs = [where.remote(obj) for _ in range(5)]
        assert [ray.get(r, timeout=60) for r in refs] == [("m2", 8 << 20)] * 5
        print("TASKS", " ".join(r.task_id() for r in refs))
    """,
    )
    task_ids = out.split("TASKS", 1)[1].split("\n", 1)[0].split()
    logs = list(Path(cluster.env["BABYRAY_TEMP_DIR"]).glob("session_*/logs/global_scheduler-*.jsonl"))
    assert logs
    placed_by_global = [t for t in task_ids for log in logs if t in log.read_text()]
    assert len(task_ids) == 5 and not placed_by_global


def test_a_remote_driver_killed_with_kill_9_leaves_the_gcs_list_of_drivers(cluster, tmp_path):
    """The GCS cannot check a remote driver's pid: it drops one whose pings stop."""
    run_driver(
        cluster,
        tmp_path,
        f"""
        import signal, subprocess
        from babyray.api import cluster_processes, context

        victim = subprocess.Popen([sys.executable, "-c", "import time, babyray as ray; ray.init(address='auto'); "
                                   "print(ray.get_runtime_context().get_job_id(), flush=True); time.sleep(600)"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  start_new_session=True)  # its admin must not hold this driver's pipes
        job = victim.stdout.readline().strip()
        victim.stdout.close()
        core = context.runtime().core

        def listed():
            return job in [d["job_id"] for d in cluster_processes.drivers(core, 10)]
        assert job and listed()
        os.killpg(victim.pid, signal.SIGKILL)  # the driver and the admin it started
        victim.wait()
        killed = time.monotonic()
        while listed():
            assert time.monotonic() - killed < {NODE_TIMEOUT} + 5, "the killed driver is still listed"
            time.sleep(0.2)
        assert job != ray.get_runtime_context().get_job_id() and not listed()
    """,
    )


def test_a_jobs_working_dir_and_py_modules_reach_member_nodes(cluster, tmp_path):
    """Ray's runtime_env (docs, "Environment Dependencies"): a job's local working_dir and
    py_modules are uploaded to the cluster and unpacked on every node that runs the job's
    workers, which start in their node's copy: a module only in the driver's working_dir
    imports in tasks on members, even after the driver's directory is gone."""
    source = tmp_path / "job_source"
    (source / "wd" / "data").mkdir(parents=True)
    (source / "wd" / "rtenv_mh_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    (source / "wd" / "data" / "note.txt").write_text("shipped")
    (source / "lib" / "rtenv_mh_pkg").mkdir(parents=True)
    (source / "lib" / "rtenv_mh_pkg" / "__init__.py").write_text("WHERE = 'py_modules'\n")
    run_driver(
        cluster,
        tmp_path,
        f'''
        import shutil
        ray.shutdown()
        ray.init(address="auto", runtime_env={{"working_dir": "{source}/wd", "env_vars": {{"RTENV_MH": "on"}},
                                               "py_modules": ["{source}/lib/rtenv_mh_pkg"]}})
        shutil.rmtree("{source}")  # members cannot read it from a shared disk: only the packages

        @ray.remote
        def use():
            import rtenv_mh_mod, rtenv_mh_pkg
            with open("data/note.txt") as f:
                note = f.read()
            return (os.environ["BABYRAY_NETNS_HOST"], os.getcwd(), rtenv_mh_mod.triple(5), note,
                    rtenv_mh_pkg.WHERE, os.environ.get("RTENV_MH"))
        results = ray.get([use.options(resources={{f"on_{{m}}": 1}}).remote() for m in ("m1", "m2")], timeout=120)
        assert [r[0] for r in results] == ["m1", "m2"], results
        assert all(r[2:] == (15, "shipped", "py_modules", "on") for r in results), results
        cwds = [r[1] for r in results]
        assert cwds[0] != cwds[1] and all("runtime_resources/working_dir_files/_ray_pkg_" in c for c in cwds), cwds
    ''',
    )


JOB_WITH_ENV = textwrap.dedent("""
    import os, sys, babyray as ray
    ray.init(address="auto", runtime_env={"working_dir": sys.argv[1], "env_vars": {"RTENV_JOB": sys.argv[2]}})

    @ray.remote
    def which():
        import rtenv_job_mod
        return rtenv_job_mod.NAME, os.environ["RTENV_JOB"], os.environ["BABYRAY_NETNS_HOST"]
    refs = [which.options(resources={f"on_m{1 + i % 2}": 0.01}).remote() for i in range(16)]
    got = ray.get(refs, timeout=120)
    assert {(name, var) for name, var, _ in got} == {(sys.argv[2], sys.argv[2])}, got
    assert {host for _, _, host in got} == {"m1", "m2"}, got
    ray.shutdown()
    print("JOB OK", sys.argv[2])
""")


def test_two_jobs_with_different_runtime_envs_run_side_by_side(cluster, tmp_path):
    """Ray's runtime_env (docs): several jobs with different runtime environments run on one
    cluster at the same time; each job's workers have its own files and variables (here two
    working_dirs holding a module of the same name with different contents)."""
    job = tmp_path / "job_with_env.py"
    job.write_text(JOB_WITH_ENV)
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "rtenv_job_mod.py").write_text(f"NAME = {name!r}\n")
    run_driver(
        cluster,
        tmp_path,
        f'''
        import subprocess
        jobs = [subprocess.Popen([sys.executable, "{job}", "{tmp_path}/" + name, name], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for name in ("A", "B")]
        outputs = [j.communicate(timeout=180)[0] for j in jobs]
        assert all(j.returncode == 0 for j in jobs), outputs
        assert "JOB OK A" in outputs[0] and "JOB OK B" in outputs[1], outputs
    ''',
    )


def _store_pid(cluster, host: str) -> int:
    """The pid of ``host``'s object store (from the sessions' pid records), once it runs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        in_host = set(cluster.pids(host))
        for record in Path(cluster.env["BABYRAY_TEMP_DIR"]).glob("session_*/pids/*"):
            if int(record.name) in in_host and record.read_text() == "object_store":
                return int(record.name)
        time.sleep(0.2)
    raise AssertionError(f"no object store process in {host}")


def test_a_get_from_a_host_without_a_node_stops_at_its_timeout_when_the_store_is_silent(cluster, tmp_path):
    """The driver (no node on its host) reads a member's store directly; a frozen store must
    not hold a get(timeout=) past its deadline."""
    run_driver(
        cluster,
        tmp_path,
        f"""
        import signal
        from babyray.exceptions import GetTimeoutError

        @ray.remote(resources={{"on_m1": 1}})
        def make():
            return np.ones(1 << 20, dtype=np.uint8)

        ref = make.remote()
        ray.wait([ref])
        store = {_store_pid(cluster, "m1")}
        os.kill(store, signal.SIGSTOP)
        try:
            started = time.monotonic()
            try:
                ray.get(ref, timeout=2)
                raise AssertionError("get returned from a frozen store")
            except GetTimeoutError:
                pass
            assert time.monotonic() - started < 6, time.monotonic() - started
        finally:
            os.kill(store, signal.SIGCONT)
        assert ray.get(ref, timeout=60).nbytes == 1 << 20
    """,
    )


PLACEMENT_PRELUDE = '''
    from babyray.util import placement_group, placement_group_table, remove_placement_group
    from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    def hosts_of_bundles(pg):
        """Run a task in every bundle: the host each ran on, by bundle index."""
        return ray.get([host.options(num_cpus=1, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
                        for i in range(pg.bundle_count)], timeout=60)
'''


def test_placement_group_strategies_across_hosts(cluster, tmp_path):
    """Ray's placement_group reference: SPREAD "places bundles across distinct nodes as even
    as possible" (3 one-CPU bundles on 3 hosts); STRICT_PACK "packs bundles into one node";
    STRICT_SPREAD with more bundles than nodes stays PENDING; the table's bundles_to_node_id
    is where the bundles' tasks run; removal frees the CPUs."""
    run_driver(
        cluster,
        tmp_path,
        PLACEMENT_PRELUDE
        + """
        spread = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
        assert ray.get(spread.ready(), timeout=60) == spread
        placed = hosts_of_bundles(spread)
        assert len({h for h, _ in placed}) == 3, placed
        assert [n for _, n in placed] == [placement_group_table(spread)["bundles_to_node_id"][i] for i in range(3)]

        pack = placement_group([{"CPU": 1}] * 2, strategy="STRICT_PACK")
        assert pack.wait(60)
        placed = hosts_of_bundles(pack)
        assert len(set(placed)) == 1, placed
        assert len(set(placement_group_table(pack)["bundles_to_node_id"].values())) == 1

        too_spread = placement_group([{"CPU": 0.5}] * 4, strategy="STRICT_SPREAD")
        assert not too_spread.wait(3)
        assert placement_group_table(too_spread)["state"] == "PENDING"
        for pg in (spread, pack, too_spread):
            remove_placement_group(pg)
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU") != 6.0:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.2)
    """,
    )


def test_a_group_larger_than_any_host_is_pending_and_reserves_nothing(cluster, tmp_path):
    """Guide: "A bundle must be able to fit on a single node"; a group that cannot be placed
    stays pending (ready() not ready within a timeout, placement_group_table PENDING), and,
    all or nothing, reserves no CPU anywhere meanwhile; a feasible group placed after it
    still gets its bundles, and removal returns everything."""
    run_driver(
        cluster,
        tmp_path,
        PLACEMENT_PRELUDE
        + """
        big = placement_group([{"CPU": 3}], strategy="PACK")  # 6 CPUs in the cluster, 2 per host
        try:
            ray.get(big.ready(), timeout=3)
            raise AssertionError("a 3-CPU bundle was placed on 2-CPU hosts")
        except ray.exceptions.GetTimeoutError:
            pass
        assert placement_group_table(big)["state"] == "PENDING"
        half = placement_group([{"CPU": 2}] * 2, strategy="STRICT_SPREAD")
        assert half.wait(60)
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU") != 2.0:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.2)
        assert placement_group_table(big)["state"] == "PENDING"
        remove_placement_group(half)
        remove_placement_group(big)
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU") != 6.0:
            assert time.monotonic() < deadline, ray.available_resources()
            time.sleep(0.2)
        assert placement_group_table(big)["state"] == "REMOVED"
    """,
    )


def test_a_killed_member_is_marked_dead_within_the_timeout_and_tasks_go_elsewhere(cluster, tmp_path):
    killed_at = time.time()
    cluster.kill_host("m2")
    script_body = f"""
        killed_at = {killed_at!r}
        deadline = killed_at + 60
        while True:
            m2 = [n for n in ray.nodes() if n["NodeManagerAddress"] == "192.0.2.12"]
            if m2 and not m2[0]["Alive"]:
                break
            assert time.time() < deadline, ray.nodes()
            time.sleep(0.1)
        print("DEAD_AFTER", time.time() - killed_at)
        assert "on_m2" not in ray.cluster_resources()
        placed = ray.get([host.remote() for _ in range(12)], timeout=60)
        assert all(name != "m2" for name, _ in placed), placed
    """
    out = _run_without_waiting_for_three(cluster, tmp_path, script_body)
    dead_after = float(out.split("DEAD_AFTER")[1].split()[0])
    assert dead_after <= NODE_TIMEOUT + 2.0, dead_after


def _run_without_waiting_for_three(cluster, tmp_path: Path, body: str) -> str:
    prelude = PRELUDE.replace('while sum(n["Alive"] for n in ray.nodes()) < 3:', "while False:")
    script = tmp_path / "driver_after_kill.py"
    script.write_text(prelude + textwrap.dedent(body) + "\nray.shutdown()\nprint('DRIVER OK')\n")
    result = cluster.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "DRIVER OK" in result.stdout, result.stdout + result.stderr
    return result.stdout

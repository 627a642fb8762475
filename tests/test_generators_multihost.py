"""Generator tasks on a real multi-host cluster (network namespaces, see deploy/netns.py):
values streamed from another node, a task on one node iterating a generator on another, and
values lost with a killed node rebuilt by re-running the generator task (Ray docs, "Ray
Generators": generators work with fault tolerance features such as lineage reconstruction).
"""

from __future__ import annotations

from netns_cluster import needs_netns
from test_fault_tolerance_multihost import cluster, run_with_kill  # noqa: F401 (a fixture)

pytestmark = needs_netns


def test_values_stream_from_a_generator_on_another_node_and_a_task_there_iterates_one(cluster, tmp_path):
    """Docs: the caller gets each value's ref as soon as it is yielded, before the task ends,
    wherever the task runs; a task (here on m1) can iterate a generator task (on m2)."""
    gate = tmp_path / "gate"
    output = run_with_kill(
        cluster,
        tmp_path,
        f"""
        GATE = {str(gate)!r}

        @ray.remote(resources={{"on_m2": 1}})
        def blocks(n, gate):
            for i in range(n):
                if i == 1 and gate:
                    deadline = time.monotonic() + 60
                    while not os.path.exists(gate):
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                yield os.environ["BABYRAY_NETNS_HOST"], np.full(131072, i, dtype=np.float64)  # 1 MB

        @ray.remote(resources={{"on_m1": 1}})
        def consume(n):
            gen = blocks.remote(n, None)
            return os.environ["BABYRAY_NETNS_HOST"], [float(ray.get(r)[1].sum()) for r in gen]

        gen = blocks.remote(3, GATE)
        where, first = ray.get(next(gen), timeout=60)
        assert where == "m2" and first.shape == (131072,) and first[0] == 0, where
        ready, _ = ray.wait([gen.completed()], timeout=0.5)
        assert not ready, "the generator waits for the gate"
        open(GATE, "w").close()
        assert [int(ray.get(r, timeout=60)[1][0]) for r in gen] == [1, 2]
        consumer, sums = ray.get(consume.remote(3), timeout=120)
        assert consumer == "m1" and sums == [0.0, 131072.0, 262144.0], (consumer, sums)
        print("STREAMED ACROSS NODES")
        wait_for_kill(MARKERS)
    """,
    )
    assert "STREAMED ACROSS NODES" in output


def test_values_lost_with_a_killed_node_are_rebuilt_by_rerunning_the_generator(cluster, tmp_path):
    """Docs: an item whose only copy was on a node that died is rebuilt by lineage
    reconstruction: the generator task runs again (elsewhere) and the lost values come back."""
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    output = run_with_kill(
        cluster,
        tmp_path,
        f"""
        ATTEMPTS = {str(attempts)!r}

        @ray.remote
        def blocks(n):
            open(os.path.join(ATTEMPTS, os.environ["BABYRAY_NETNS_HOST"] + "-" + str(time.monotonic_ns())),
                 "w").close()
            for i in range(n):
                yield np.full(131072, i, dtype=np.float64)  # 1 MB: in the store of the node that ran it

        gen = blocks.options(scheduling_strategy=on_m1).remote(3)
        refs = list(gen)
        assert ray.get(refs[0], timeout=60)[0] == 0
        assert [name.split("-")[0] for name in os.listdir(ATTEMPTS)] == ["m1"]
        wait_for_kill(MARKERS)
        values = [ray.get(r, timeout=180) for r in refs]
        assert [int(v[0]) for v in values] == [0, 1, 2] and all(v.shape == (131072,) for v in values)
        runs = sorted(name.split("-")[0] for name in os.listdir(ATTEMPTS))
        assert len(runs) == 2 and "m1" in runs and runs != ["m1", "m1"], runs
        print("REBUILT", runs)
    """,
    )
    assert "REBUILT" in output


def test_a_generator_running_on_a_killed_node_is_resubmitted_and_the_stream_goes_on(cluster, tmp_path):
    """Docs: generator tasks keep the task fault tolerance features (max_retries): a generator
    whose node dies mid-stream runs again elsewhere; the caller's stream goes on and the values
    it already had, lost with the node, come from the new run (not from a third one)."""
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    output = run_with_kill(
        cluster,
        tmp_path,
        f"""
        ATTEMPTS = {str(attempts)!r}

        @ray.remote
        def blocks(n):
            open(os.path.join(ATTEMPTS, os.environ["BABYRAY_NETNS_HOST"] + "-" + str(time.monotonic_ns())),
                 "w").close()
            for i in range(n):
                if i == 2:  # the first run waits here until its node is killed
                    deadline = time.monotonic() + 120
                    while not os.path.exists(os.path.join(MARKERS, "KILLED")):
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                yield np.full(131072, i, dtype=np.float64)  # 1 MB: in the store of the node that ran it

        gen = blocks.options(scheduling_strategy=on_m1).remote(4)
        first = [next(gen), next(gen)]
        assert os.listdir(ATTEMPTS)[0].startswith("m1")
        wait_for_kill(MARKERS)
        rest = list(gen)  # ends once the new run ended
        values = [ray.get(r, timeout=180) for r in first + rest]
        assert [int(v[0]) for v in values] == [0, 1, 2, 3]
        runs = sorted(name.split("-")[0] for name in os.listdir(ATTEMPTS))
        assert len(runs) == 2 and runs[0] != runs[1], runs
        print("RESUBMITTED", runs)
    """,
    )
    assert "RESUBMITTED" in output

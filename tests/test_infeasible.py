"""A task or actor that no alive node could ever run waits, as in Ray, and its owner warns on
stderr that it cannot be scheduled right now (once per resource shape); a task that only
waits for busy resources, or for its placement group, is not warned about."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from cli_cluster import cli_env, run_driver, start, stop_all

from babyray.cluster import free_port

TIMEOUT = 120

DRIVER = textwrap.dedent("""
    import time
    import babyray as ray
    from babyray.util.placement_group import placement_group, remove_placement_group

    ray.init(num_cpus=2)

    @ray.remote
    def one():
        return 1

    @ray.remote
    def nap():
        time.sleep(3)
        return "rested"

    @ray.remote(num_gpus=1)
    class NeedsGpu:
        def ping(self):
            return "pong"

    # busy, not infeasible: four 1-CPU naps on two CPUs, and a group that waits for them. The
    # workers are up first: a task queued while its node's first workers start holds no CPU
    # yet, and a group placed in that window takes both CPUs before the naps (README, Known limits)
    ray.get([one.remote(), one.remote()], timeout=60)
    naps = [nap.remote() for _ in range(4)]
    group = placement_group([{"CPU": 2}])
    needs_gpu = NeedsGpu.remote()
    too_big = [one.options(num_cpus=64).remote() for _ in range(20)]
    custom = one.options(resources={"tpu_pod": 1}).remote()
    print("NAPS", ray.get(naps, timeout=60), flush=True)
    print("GROUP", ray.get(group.ready(), timeout=60) is not None, flush=True)
    remove_placement_group(group)  # it holds both CPUs
    ready, _ = ray.wait(too_big + [custom], timeout=1)
    print("NONE READY", ready == [], flush=True)
    ray.cancel(too_big[0])
    try:
        ray.get(too_big[0], timeout=30)
    except ray.exceptions.TaskCancelledError:
        print("CANCELLED", flush=True)
    ray.kill(needs_gpu)
    print("STILL RUNS", ray.get(one.remote(), timeout=30), flush=True)
    ray.shutdown()
""")


def test_an_infeasible_task_or_actor_is_warned_about_once_per_shape_and_waits(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    for line in (
        "NAPS ['rested', 'rested', 'rested', 'rested']",
        "GROUP True",
        "NONE READY True",
        "CANCELLED",
        "STILL RUNS 1",
    ):
        assert line in run.stdout, run.stdout + run.stderr[-4000:]
    warnings = [line for line in run.stderr.splitlines() if "cannot be scheduled right now" in line]
    assert len(warnings) == 3, warnings  # one per shape: {CPU: 64} x20, {GPU: 1}, {tpu_pod: 1}
    (cpu,) = [w for w in warnings if "{CPU: 64}" in w]
    assert "the task one (" in cpu and "alive nodes: {CPU: 2}" in cpu and "ray.cancel()" in cpu
    (gpu,) = [w for w in warnings if "{GPU: 1}" in w]
    assert "the actor NeedsGpu (" in gpu and "ray.kill()" in gpu
    assert any("{CPU: 1, tpu_pod: 1}" in w for w in warnings), warnings
    assert not [w for w in warnings if "nap" in w or "{CPU: 2}" in w.split("requires")[1].split("which")[0]]


JOINING_DRIVER = textwrap.dedent("""
    import os, subprocess, sys, time
    import babyray as ray

    address, member_port = sys.argv[1], sys.argv[2]
    ray.init(address=address)

    @ray.remote(resources={"special": 1})
    def where():
        return ray.get_runtime_context().get_node_id()

    ref = where.remote()
    time.sleep(3)  # warned meanwhile; then a node that has the resource joins
    started = subprocess.run(
        [sys.executable, "-m", "babyray.cli", "start", "--address", address, "--port", member_port,
         "--node-ip", "127.0.0.1", "--num-cpus", "1", "--resources", '{"special": 1}'],
        capture_output=True, text=True, timeout=90,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    node = ray.get(ref, timeout=60)
    print("RAN ON THE NEW NODE", node != ray.get_runtime_context().get_node_id(), flush=True)
    ray.shutdown()
""")


def test_an_infeasible_task_runs_once_a_node_with_its_resources_joins(tmp_path):
    env = cli_env(tmp_path)
    port = free_port()
    script = tmp_path / "joining_driver.py"
    script.write_text(JOINING_DRIVER)
    try:
        start(env, port, 1)
        run = run_driver(
            script,
            f"127.0.0.1:{port}",
            str(free_port()),
            env=env,
            timeout=TIMEOUT,
            expect="RAN ON THE NEW NODE True",
        )
    finally:
        stop_all(env, tmp_path)
    warnings = [line for line in run.stderr.splitlines() if "cannot be scheduled right now" in line]
    assert len(warnings) == 1 and "requires {CPU: 1, special: 1}" in warnings[0], run.stderr[-3000:]

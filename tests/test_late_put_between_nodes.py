"""A value read from another node's store before that store learned of the put that wrote it:
the pull waits for the put (a task's return written into a spare slot tells its store one-way,
and its owner at once), and fails ObjectLostError only if the put never comes.

A head and a member on 127.0.0.1 (``babyray start``); the task runs on the member, the driver
on the head's node pulls its return."""

from __future__ import annotations

import textwrap

from cli_cluster import run_driver, running_head, start

from babyray.cluster import free_port

DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    import babyray as ray
    from tests.late_put import late_value, returned_late

    ray.init(address=sys.argv[1])
    far = returned_late.options(resources={"far": 1})
    value = ray.get(far.remote(1.0), timeout=60)
    print("PULLED", np.array_equal(value, late_value()), flush=True)
    try:
        ray.get(far.remote(None), timeout=60)
    except ray.exceptions.ObjectLostError as exc:
        print("NEVER STORED:", exc, flush=True)
    ray.shutdown()
""")


def test_a_pull_that_reaches_the_store_before_the_put_waits_for_it(tmp_path):
    script = tmp_path / "late_put_driver.py"
    script.write_text(DRIVER)
    with running_head(tmp_path, num_cpus=1) as (address, env):
        start(env, free_port(), 1, "--resources", '{"far": 1}', head=address)
        run = run_driver(script, address, env=env, timeout=120, expect="PULLED True")
    assert "NEVER STORED:" in run.stdout and "is not in the store of node" in run.stdout, (
        run.stdout + run.stderr[-3000:]
    )

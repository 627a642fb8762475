"""ray.cancel of a task the global scheduler placed on another node reaches it there (the
global scheduler used to drop a cancel for any task no longer pending with it, so the task ran
on and its get waited for it).

A head and a member on 127.0.0.1 (``babyray start``); the task needs a resource only the
member has, so the head's scheduler forwards it and the global scheduler places it."""

from __future__ import annotations

import textwrap

import pytest
from cli_cluster import run_driver, running_head, start

from babyray.cluster import free_port

DRIVER = textwrap.dedent("""
    import os
    import sys
    import time
    import babyray as ray

    @ray.remote(resources={"far": 1}, max_retries=0)
    def spin(marker):
        open(marker, "w").close()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return "ran to its end"

    ray.init(address=sys.argv[1])
    marker, force = sys.argv[2], sys.argv[3] == "force"
    ref = spin.remote(marker)
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    ray.cancel(ref, force=force)
    try:
        print("GOT", ray.get(ref, timeout=30), flush=True)
    except ray.exceptions.TaskCancelledError:
        print("CANCELLED", flush=True)
    ray.shutdown()
""")


@pytest.mark.parametrize("force", ["interrupt", "force"])
def test_a_cancel_reaches_a_task_placed_on_another_node(tmp_path, force):
    script = tmp_path / "cancel_far_driver.py"
    script.write_text(DRIVER)
    with running_head(tmp_path, num_cpus=1) as (address, env):
        start(env, free_port(), 1, "--resources", '{"far": 1}', head=address)
        run_driver(
            script, address, str(tmp_path / "started"), force, env=env, timeout=120, expect="CANCELLED"
        )

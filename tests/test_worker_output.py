"""What tasks print reaches the driver's stdout at once and in whole lines, whether or not
``PYTHONUNBUFFERED`` is set (drivers run as subprocesses, their stdout a pipe)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 60.0

DRIVER = textwrap.dedent("""
    import os, sys, time
    import babyray as ray

    ray.init(num_cpus=2, temp_dir=sys.argv[1], object_store_memory=64 * 1024 * 1024)

    @ray.remote
    def announce_then_wait(path):
        print("announced")
        while not os.path.exists(path):
            time.sleep(0.01)
        return 1

    @ray.remote
    def shout(i):
        for _ in range(200):
            print(f"line-{i}-" + "x" * 60)
        return i

    assert ray.get(announce_then_wait.remote(sys.argv[2]), timeout=60) == 1
    assert ray.get([shout.remote(i) for i in range(4)], timeout=60) == [0, 1, 2, 3]
    ray.shutdown()
    print("driver done")
""")


@pytest.mark.parametrize("unbuffered", [None, "1"], ids=["default", "PYTHONUNBUFFERED"])
def test_task_prints_reach_the_driver_at_once_and_in_whole_lines(tmp_path, unbuffered):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    release = tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = ROOT
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    driver = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "session"), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        seen = b""
        deadline = time.monotonic() + DEADLINE
        while b"announced\n" not in seen:  # printed while the task still runs
            assert time.monotonic() < deadline, f"the task's print did not arrive: {seen!r}"
            if select.select([driver.stdout], [], [], 0.5)[0]:
                chunk = os.read(driver.stdout.fileno(), 65536)
                assert chunk, "the driver ended before its task's print arrived"
                seen += chunk
        release.touch()
        rest, err = driver.communicate(timeout=DEADLINE)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, err.decode()[-3000:]
    lines = (seen + rest).decode().splitlines()
    shouted = [line for line in lines if line.startswith("line-")]
    assert len(shouted) == 800 and all(
        line in {f"line-{i}-" + "x" * 60 for i in range(4)} for line in shouted
    )
    assert lines[-1] == "driver done"

"""The README's example and the programs in examples/ run as written and print their results."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile

from conftest import assert_session_clean

from babyray.procfs import processes_with_environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 180


def _run(example: str, tmp_path, env: dict | None = None, cwd: str | None = None) -> str:
    """Run an example with its output captured through pipes and return its stdout.

    The pipes reach end-of-file only once every process holding them has exited, so a
    process the example leaves behind with its stdout (a leaked admin) makes this time out;
    either way no process of the example's session may be left when it returns."""
    base = env if env is not None else {**os.environ, "PYTHONPATH": ROOT}
    env = {**base, "BABYRAY_TEMP_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "examples", example)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        exited = proc.poll() is not None
        proc.kill()
        proc.wait()
        out, err = "", f"{example} {'exited, but its output stayed open' if exited else 'did not exit'}"
    left = processes_with_environment("BABYRAY_TEMP_DIR", str(tmp_path))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the example left running: {left}; {err}"
    assert proc.returncode == 0, err
    for session_dir in glob.glob(str(tmp_path / "session_*")):
        assert_session_clean(session_dir)
    return out


def test_quickstart_example_runs_and_prints_its_results(tmp_path):
    """As the README runs it, after its install: from another directory (the system's temp
    directory, where other programs' directories live), with nothing added to sys.path."""
    out = _run(
        "quickstart.py",
        tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=tempfile.gettempdir(),
    )
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49]" in out
    assert "fib(10) by remote recursion: 55" in out
    assert "actor total: 30000000.0" in out


def test_placement_group_example_gang_schedules_its_actors_and_prints_its_results(tmp_path):
    out = _run("placement_groups.py", tmp_path)
    assert "placement group training: CREATED, 4 bundles" in out
    assert "CPUs left outside the group: 0" in out
    assert "trainers in the group: True" in out
    assert "weights converged to the trainers' mean target: True" in out
    assert "after removal: REMOVED" in out


def test_actor_pool_example(tmp_path):
    out = _run("actor_pool.py", tmp_path)
    assert "words per line: [4, 2, 3, 0, 4]" in out
    assert "total words: 13" in out
    assert "lines per actor: [2, 3]" in out
    assert "first two again: [2, 4]" in out


def test_queue_example(tmp_path):
    out = _run("queue_pipeline.py", tmp_path)
    assert "produced: 20" in out
    assert f"consumed: 20 sum: {sum(range(10)) + sum(range(100, 110))}" in out
    assert "batch: ['a', 'b', 'c'] left: 0" in out


def test_multiprocessing_pool_example(tmp_path):
    out = _run("multiprocessing_pool.py", tmp_path)
    assert "longest chain below 31 starts at 27 with 111 steps" in out
    assert "imap: [8, 16, 3]" in out
    assert "apply_async: 111" in out


def test_async_example(tmp_path):
    out = _run("async_refs.py", tmp_path)
    assert "ping while it works: pong" in out
    assert "sum of squares: 55" in out
    assert "future: 144" in out


def test_generators_example_streams_primes_words_and_chunks(tmp_path):
    out = _run("generators.py", tmp_path)
    assert "primes in [0, 2500): 367" in out
    assert "primes in [7500, 10000): 279" in out
    assert "primes below 10000: 1229" in out
    assert "most common words: [('the', 3), ('quick', 1)]" in out
    assert "chunk sums: [6, 22, 17]" in out

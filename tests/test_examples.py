"""The README's example and the programs in examples/ run as written and print their results."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(example: str, tmp_path) -> str:
    """Run an example; its output goes to files, so the test waits for the example's process
    only, not for whatever inherited its stdout."""
    env = {**os.environ, "BABYRAY_TEMP_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    stdout, stderr = tmp_path / f"{example}.out", tmp_path / f"{example}.err"
    with open(stdout, "w") as out, open(stderr, "w") as err:
        done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", example)], env=env,
                              stdout=out, stderr=err, text=True, timeout=180)
    assert done.returncode == 0, stderr.read_text()
    return stdout.read_text()


def test_quickstart_example_runs_and_prints_its_results(tmp_path):
    """As the README runs it, after its install: from another directory (the system's temp
    directory, where other programs' directories live), with nothing added to sys.path."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "BABYRAY_TEMP_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "quickstart.py")], env=env,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49]" in out.stdout
    assert "fib(10) by remote recursion: 55" in out.stdout
    assert "actor total: 30000000.0" in out.stdout


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

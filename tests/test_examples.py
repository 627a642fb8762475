"""The README's example runs as written."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_generators_example_streams_primes_words_and_chunks(tmp_path):
    env = {**os.environ, "BABYRAY_TEMP_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "generators.py")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "primes in [0, 2500): 367" in out.stdout
    assert "primes in [7500, 10000): 279" in out.stdout
    assert "primes below 10000: 1229" in out.stdout
    assert "most common words: [('the', 3), ('quick', 1)]" in out.stdout
    assert "chunk sums: [6, 22, 17]" in out.stdout

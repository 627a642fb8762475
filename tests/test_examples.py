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

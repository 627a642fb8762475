"""What ``init()`` returns, as in Ray: a RayContext with ``address_info`` (also read as a
mapping, deprecated) and ``dashboard_url``; ``with init():`` shuts down at the end."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
from conftest import assert_session_clean

import babyray as ray


def test_init_returns_a_context_with_address_info_and_works_as_a_mapping(tmp_path):
    ctx = ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024)
    try:
        info = ctx.address_info
        assert info["session_dir"].startswith(str(tmp_path)) and info["address"] == info["gcs_address"]
        assert info["job_id"] == ray.get_runtime_context().get_job_id()
        assert info["node_id"] == ray.get_runtime_context().get_node_id()
        assert info["node_ip_address"] == info["address"].rsplit(":", 1)[0]
        assert ctx.dashboard_url is None and info["webui_url"] is None  # no dashboard
        assert ctx.ray_version == ray.__version__ and ctx.python_version.count(".") == 2
        with warnings.catch_warnings():  # deprecated, warned of once per process (see below)
            warnings.simplefilter("ignore", DeprecationWarning)
            assert ctx["session_dir"] == info["session_dir"]
            assert dict(ctx) == info and len(ctx) == len(info) and "address" in ctx
        again = ray.init(ignore_reinit_error=True)
        assert again.address_info == info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


def test_with_init_shuts_down_at_the_end_of_the_block(tmp_path):
    with ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024) as ctx:
        assert ray.is_initialized()
        assert ray.get(ray.put(1), timeout=60) == 1
    assert not ray.is_initialized()
    assert_session_clean(ctx.address_info["session_dir"])


MAPPING_USE = """
import sys, babyray as ray
ctx = ray.init(num_cpus=1, temp_dir=sys.argv[1], object_store_memory=64 * 1024 * 1024)
try:
    ctx["session_dir"]
finally:
    ray.shutdown()
"""


def test_reading_the_context_as_a_mapping_is_deprecated(tmp_path):
    run = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", MAPPING_USE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0, run.stdout + run.stderr
    assert 'DeprecationWarning: Accessing values through ctx["session_dir"] is deprecated: use ' in run.stderr
    assert 'ctx.address_info["session_dir"]' in run.stderr


RAY_ONLY_ARGUMENTS = """
import logging, sys
import babyray as ray
level = {"info": logging.INFO, "error": logging.ERROR}[sys.argv[2]]
ray.init(num_cpus=1, _temp_dir=sys.argv[1], object_store_memory=64 * 1024 * 1024,
         include_dashboard=True, dashboard_port=8265, local_mode=True, log_to_driver=False,
         logging_level=level)
assert ray.get_runtime_context().get_job_id()
assert ray.init(ignore_reinit_error=True).address_info["session_dir"].startswith(sys.argv[1])

@ray.remote
def shout():
    print("printed-by-a-task", flush=True)
    print("warned-by-a-task", file=sys.stderr, flush=True)
    return 42

print("value", ray.get(shout.remote(), timeout=60), flush=True)
ray.shutdown()
"""


def test_ray_init_arguments_babyray_has_no_part_for_are_taken_and_their_output_kept(tmp_path):
    notices = ["babyray has no dashboard", "babyray has no local mode"]
    for level, shown in (("info", True), ("error", False)):
        temp_dir = tmp_path / level
        temp_dir.mkdir()
        run = subprocess.run(
            [sys.executable, "-c", RAY_ONLY_ARGUMENTS, str(temp_dir), level],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "value 42" in run.stdout
        assert [notice in run.stderr for notice in notices] == [shown] * 2, run.stderr  # logging_level
        # log_to_driver=False: what the task printed is in the session's logs, not the driver's
        assert "by-a-task" not in run.stdout + run.stderr
        (session,) = temp_dir.glob("session_*")  # _temp_dir is where the session went
        kept = (session / "logs" / "node.out").read_text()
        assert "printed-by-a-task" in kept and "warned-by-a-task" in kept


def test_an_unknown_init_argument_is_still_refused_by_name():
    with pytest.raises(ValueError, match="Unknown init\\(\\) argument\\(s\\): dashbord"):
        ray.init(dashbord=False)
    assert not ray.is_initialized()

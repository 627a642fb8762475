"""The arena's shared-memory segment: named after the session and node, gone after shutdown."""

from __future__ import annotations

import os

import babyray as ray
from babyray.api import context
from tests.conftest import assert_session_clean


def test_shutdown_removes_a_segment_left_under_the_arena_name(tmp_path):
    """The store unlinks its segment right after it maps it; should it die before that, the
    segment stays in /dev/shm under the name the head's handle holds, and shutdown removes it."""
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024).address_info
    try:
        name = context.runtime().head.arena_name
        tag = os.path.basename(info["session_dir"])[-6:]
        assert name == f"babyray_{tag}_{info['node_id']}"
        assert not os.path.exists(f"/dev/shm/{name}")  # the running store's segment has no name
        with open(f"/dev/shm/{name}", "wb") as left:  # what a store killed before unlinking leaves
            left.truncate(4096)
    finally:
        ray.shutdown()
    assert not os.path.exists(f"/dev/shm/{name}")
    assert_session_clean(info["session_dir"])

"""The memory report labels INLINE the objects whose holders keep the value themselves (not in
a store), whatever ``init(inline_threshold=...)`` made inline."""

from __future__ import annotations

from conftest import assert_session_clean

import babyray as ray


def _row_of(summary: str, object_id: str) -> str:
    return next(line for line in summary.splitlines() if object_id in line)


def test_inline_follows_the_threshold_init_was_given(tmp_path):
    threshold = 512 * 1024
    info = ray.init(
        num_cpus=1, temp_dir=str(tmp_path), object_store_memory=64 * 1024 * 1024, inline_threshold=threshold
    ).address_info
    try:
        inline = ray.put(b"i" * (200 * 1024))  # over the default threshold, under this one
        stored = ray.put(b"s" * (2 * threshold))
        summary = ray.memory_summary()
        assert "INLINE" in _row_of(summary, inline.hex()), summary
        assert "INLINE" not in _row_of(summary, stored.hex()), summary
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])

"""The object store's default size (Ray's rule: 30% of the machine's memory, capped by the
free space of /dev/shm) and what a large default costs: only the arena's first pages are
pre-faulted, the rest is allocated as objects fill it."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

import babyray as ray
from babyray import config
from babyray.cluster import object_store_size
from babyray.store import arena as arena_module
from babyray.store.arena import Arena

GiB = 1 << 30


def test_the_default_is_30_percent_of_memory_capped_by_free_shared_memory() -> None:
    assert config.object_store_default(mem_total=24 * GiB, shm_free=22 * GiB) == int(0.3 * 24 * GiB)
    assert config.object_store_default(mem_total=24 * GiB, shm_free=2 * GiB) == 2 * GiB  # a small /dev/shm
    assert config.object_store_default(mem_total=4 * GiB, shm_free=64 * GiB) == int(0.3 * 4 * GiB)


def test_an_explicit_size_or_the_setting_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BABYRAY_OBJECT_STORE_MEMORY", raising=False)
    assert object_store_size(123 * 1024 * 1024) == 123 * 1024 * 1024
    monkeypatch.setenv("BABYRAY_OBJECT_STORE_MEMORY", str(77 * 1024 * 1024))
    assert object_store_size(None) == 77 * 1024 * 1024
    monkeypatch.delenv("BABYRAY_OBJECT_STORE_MEMORY")
    assert object_store_size(None) == config.machine_object_store_default() > 0


def test_a_large_arena_allocates_only_its_prefaulted_start_until_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(arena_module, "PREFAULT_MAX", 4 << 20)
    created = Arena.create(f"babyray-test-{uuid.uuid4().hex[:12]}", 64 << 20)
    try:

        def allocated() -> int:
            return os.fstat(created.fileno()).st_blocks * 512

        assert allocated() == 4 << 20
        attached = Arena.attach(created.name)  # maps the allocated start only: allocates nothing more
        assert allocated() == 4 << 20
        attached.view(60 << 20, 5)[:] = b"hello"  # past it, a page is allocated on first use
        assert bytes(created.view(60 << 20, 5)) == b"hello" and allocated() <= (4 << 20) + (1 << 20)
        attached.close()
    finally:
        created.close()
        created.unlink()


def test_a_default_cluster_holds_an_800_mb_object(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BABYRAY_OBJECT_STORE_MEMORY", raising=False)
    ray.init(num_cpus=1, temp_dir=str(tmp_path))
    try:
        assert [s["capacity_bytes"] for s in ray.memory_stats()][0] > 800 * 1000 * 1000
        ref = ray.put(np.ones((10000, 10000)))
        assert float(ray.get(ray.remote(np.sum).remote(ref), timeout=120)) == 1e8
        del ref
    finally:
        ray.shutdown()

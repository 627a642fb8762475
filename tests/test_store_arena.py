from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from babyray.serialization import serialize
from babyray.store import arena as arena_module
from babyray.store.allocator import Allocator
from babyray.store.arena import SHM_DIR, Arena, read_object, write_object
from babyray.store.spill import SpillDir

PREFIX = f"babyray_test_{os.getpid()}_"


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def segments() -> set[str]:
    return {name for name in os.listdir(SHM_DIR) if name.startswith(PREFIX)}


@pytest.fixture(autouse=True)
def no_leaked_segments() -> Iterator[None]:
    yield
    gc.collect()
    assert segments() == set()


@pytest.fixture
def arena() -> Iterator[Arena]:
    arena = Arena.create(PREFIX + os.urandom(4).hex(), 64 << 20)
    yield arena
    arena.close()
    arena.unlink()


def put(arena: Arena, allocator: Allocator, value: Any, copy_threads: int = 1) -> tuple[int, int]:
    obj = serialize(value)
    offset = allocator.alloc(obj.total_size)
    assert offset is not None
    write_object(arena, offset, obj, copy_threads)
    return offset, obj.total_size


def in_arena(array: np.ndarray, arena: Arena) -> bool:
    return np.shares_memory(array, np.frombuffer(arena.view(0, arena.size), np.uint8))


def random_array(dtype: Any, shape: tuple[int, ...] = (4, 6)) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        return np.array([{"k": i} for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
    count = int(np.prod(shape))
    return np.frombuffer(os.urandom(count * dtype.itemsize), dtype).reshape(shape).copy()


DTYPES = [
    *np.typecodes["AllInteger"],
    *np.typecodes["AllFloat"],
    "?",
    ">i4",
    ">f8",
    "S7",
    "U5",
    "V12",
    "M8[ns]",
    "m8[us]",
    "O",
    [("x", "<i2"), ("y", ">f8", (2,))],
]


def assert_same_array(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.hasobject:
        assert got.tolist() == want.tolist()
    else:
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_numpy_dtype_round_trips_intact(arena: Arena, dtype: Any) -> None:
    allocator = Allocator(arena.size)
    want = random_array(dtype)
    got = read_object(arena, *put(arena, allocator, want), Counter())
    assert_same_array(got, want)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.asfortranarray(random_array("f8", (5, 7))),
        lambda: random_array("i4", (10, 10))[::2, 1::3],
        lambda: random_array("u2", ()),
        lambda: random_array("f4", (0, 3)),
        lambda: random_array("c8", (2, 3, 4, 5)),
    ],
    ids=["fortran", "strided", "0d", "empty", "4d"],
)
def test_every_array_layout_round_trips_intact(arena: Arena, make: Any) -> None:
    allocator = Allocator(arena.size)
    want = make()
    got = read_object(arena, *put(arena, allocator, want), Counter())
    assert_same_array(got, want)


def test_arrays_read_back_are_read_only_views_into_the_arena(arena: Arena) -> None:
    allocator = Allocator(arena.size)
    value = {"a": np.arange(1000.0), "b": [np.ones((3, 3), "i8")], "n": 7}
    got = read_object(arena, *put(arena, allocator, value), Counter())
    assert got["n"] == 7
    for array in (got["a"], got["b"][0]):
        assert not array.flags.writeable
        assert in_arena(array, arena)
        with pytest.raises(ValueError):
            array[0] = 1


def test_release_callback_waits_until_the_last_derived_view_is_dropped(arena: Arena) -> None:
    allocator = Allocator(arena.size)
    released = Counter()
    array = read_object(arena, *put(arena, allocator, np.arange(100)), released)
    tail = array[50:]
    del array
    gc.collect()
    assert released.calls == 0
    assert tail[0] == 50
    del tail
    gc.collect()
    assert released.calls == 1


def test_release_callback_fires_once_a_value_without_buffers_is_built(arena: Arena) -> None:
    allocator = Allocator(arena.size)
    released = Counter()
    value = read_object(arena, *put(arena, allocator, {i: i * i for i in range(100)}), released)
    gc.collect()
    assert value[9] == 81
    assert released.calls == 1


def test_release_callback_fires_when_the_slot_is_corrupt(arena: Arena) -> None:
    released = Counter()
    with pytest.raises(ValueError):
        read_object(arena, 0, 4096, released)
    gc.collect()
    assert released.calls == 1


def test_parallel_write_lays_out_the_same_bytes_as_a_single_threaded_write(
    arena: Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arena_module, "PARALLEL_COPY_MIN", 100_000)
    big = random_array("u1", (1_000_003,))
    obj = serialize([np.arange(3), big, b"x" * 10, random_array("f8", (300_001,))])
    serial = bytearray(obj.total_size)
    obj.write_to(memoryview(serial))
    for threads in (2, 3):
        arena.view(0, obj.total_size)[:] = bytes(obj.total_size)  # padding stays zero, as in ``serial``
        write_object(arena, 0, obj, copy_threads=threads)
        assert arena.view(0, obj.total_size) == serial
    got = read_object(arena, 0, obj.total_size, Counter())
    assert_same_array(got[1], big)


def test_view_outside_the_arena_raises_value_error(arena: Arena) -> None:
    with pytest.raises(ValueError):
        arena.view(arena.size - 10, 11)
    with pytest.raises(ValueError):
        arena.view(-1, 1)


def test_create_with_an_existing_name_raises_file_exists_error(arena: Arena) -> None:
    with pytest.raises(FileExistsError):
        Arena.create(arena.name, 1 << 20)


def test_an_attached_arena_sees_the_creators_writes_and_cannot_unlink(arena: Arena) -> None:
    other = Arena.attach(arena.name)
    try:
        arena.view(4096, 5)[:] = b"hello"
        assert other.size == arena.size
        assert bytes(other.view(4096, 5)) == b"hello"
        with pytest.raises(PermissionError):
            other.unlink()
    finally:
        other.close()


def test_an_attaching_process_exits_without_warnings_or_unlinking(arena: Arena) -> None:
    allocator = Allocator(arena.size)
    offset, size = put(arena, allocator, np.arange(10_000))
    child = textwrap.dedent(
        f"""
        import numpy as np
        from babyray.store.arena import Arena, read_object
        arena = Arena.attach({arena.name!r})
        value = read_object(arena, {offset}, {size}, lambda: None)
        assert (value == np.arange(10_000)).all()
        arena.view(0, 2)[:] = b"ok"
        """
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert os.path.exists(os.path.join(SHM_DIR, arena.name))
    assert bytes(arena.view(0, 2)) == b"ok"


def test_background_prefault_finishes_while_the_arena_is_in_use() -> None:
    arena = Arena.create(PREFIX + "bg", 256 << 20, background=True)
    try:
        arena.view(arena.size - 3, 3)[:] = b"abc"  # most likely before its chunk is pre-faulted
        assert arena.wait_prefaulted(timeout=60)
        assert arena.prefault_seconds is not None
        assert bytes(arena.view(arena.size - 3, 3)) == b"abc"
    finally:
        arena.close()
        arena.unlink()


def test_closing_during_a_background_prefault_stops_it() -> None:
    arena = Arena.create(PREFIX + "stop", 1 << 30, background=True)
    arena.close()
    arena.unlink()
    assert arena.wait_prefaulted(timeout=0)
    assert arena.prefault_seconds is None


def test_prefault_touches_pages_when_populate_write_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arena_module, "MADV_POPULATE_WRITE", 1_000_000)  # EINVAL like an old kernel
    arena = Arena.create(PREFIX + "touch", 8 << 20, background=True)
    try:
        assert arena.wait_prefaulted(timeout=0)  # the fallback ran in the caller's thread
        assert arena.prefault_seconds is not None
    finally:
        arena.close()
        arena.unlink()


def test_closing_the_arena_leaves_arrays_read_from_it_valid() -> None:
    arena = Arena.create(PREFIX + "close", 1 << 20)
    allocator = Allocator(arena.size)
    released = Counter()
    array = read_object(arena, *put(arena, allocator, np.arange(1000)), released)
    arena.close()
    arena.unlink()
    assert array.sum() == 999 * 1000 // 2
    del array
    gc.collect()
    assert released.calls == 1


def test_close_is_idempotent_and_unlink_removes_the_segment() -> None:
    arena = Arena.create(PREFIX + "gone", 1 << 20, prefault=False)
    assert segments() == {arena.name}
    arena.close()
    arena.close()
    arena.unlink()
    assert segments() == set()


@pytest.fixture
def spill(tmp_path: Path) -> Iterator[SpillDir]:
    spill = SpillDir(tmp_path / "spill")
    yield spill
    spill.cleanup()
    assert not (tmp_path / "spill").exists()


def test_a_spilled_object_restores_intact_into_a_new_arena_slot(arena: Arena, spill: SpillDir) -> None:
    allocator = Allocator(arena.size)
    array = random_array("f8", (1000, 1000))
    offset, size = put(arena, allocator, {"a": array, "s": "text"})
    spill.spill("ab12", arena.view(offset, size))
    allocator.free(offset)
    arena.view(offset, size)[:] = bytes(size)
    new = allocator.alloc(spill.size("ab12"))
    assert new is not None
    assert spill.restore("ab12", arena.view(new, size)) == size
    got = read_object(arena, new, size, Counter())
    assert got["s"] == "text"
    assert_same_array(got["a"], array)
    assert in_arena(got["a"], arena)


def test_a_spilled_object_restores_into_a_bytearray(spill: SpillDir) -> None:
    data = os.urandom(1 << 20)
    spill.spill("cd34", memoryview(data))
    dest = bytearray(len(data) + 100)
    assert spill.restore("cd34", dest) == len(data)
    assert dest[: len(data)] == data


def test_restore_into_a_smaller_region_raises_value_error(spill: SpillDir) -> None:
    spill.spill("ef56", memoryview(b"x" * 100))
    with pytest.raises(ValueError):
        spill.restore("ef56", bytearray(99))


def test_restore_of_a_truncated_file_raises_eof_error(spill: SpillDir) -> None:
    spill.spill("ab78", memoryview(b"x" * 100))
    os.truncate(spill.path("ab78"), 50)
    with pytest.raises(EOFError):
        spill.restore("ab78", bytearray(100))


def test_delete_removes_the_spill_file(spill: SpillDir) -> None:
    spill.spill("ab90", memoryview(b"data"))
    assert spill.path("ab90").exists() and "ab90" in spill
    spill.delete("ab90")
    spill.delete("ab90")
    assert not spill.path("ab90").exists() and "ab90" not in spill


def test_cleanup_removes_every_file_and_the_directory(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path / "a" / "b")
    for i in range(5):
        spill.spill(f"obj{i}", memoryview(b"z" * i))
    spill.cleanup()
    assert not (tmp_path / "a" / "b").exists()


def test_cleanup_keeps_a_directory_it_did_not_create(tmp_path: Path) -> None:
    spill = SpillDir(tmp_path)
    spill.spill("ab", memoryview(b"z"))
    spill.cleanup()
    assert tmp_path.exists() and list(tmp_path.iterdir()) == []


def test_an_object_id_that_is_not_a_plain_name_is_rejected(spill: SpillDir) -> None:
    with pytest.raises(ValueError):
        spill.spill("../etc", memoryview(b"x"))

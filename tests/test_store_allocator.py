from __future__ import annotations

import random
import time
from itertools import pairwise

import pytest

from babyray.store.allocator import Allocator


def check_invariants(allocator: Allocator, live: dict[int, int]) -> None:
    """Holes and live ranges tile the capacity exactly, and no two holes touch."""
    holes = allocator.holes()
    ranges = sorted(
        [(off, size, "used") for off, size in live.items()] + [(off, size, "free") for off, size in holes]
    )
    pos = 0
    for off, size, kind in ranges:
        assert off == pos, f"gap or overlap at {pos}: next range {kind} at {off}"
        assert off % allocator.alignment == 0 and size > 0
        pos = off + size
    assert pos == allocator.capacity
    for (a, a_size), (b, _) in pairwise(holes):
        assert a + a_size < b, f"holes at {a} and {b} were not coalesced"
    assert allocator.used == sum(live.values())
    assert allocator.used + allocator.free_bytes == allocator.capacity
    assert allocator.free_bytes == sum(size for _, size in holes)
    assert allocator.largest_free == max((size for _, size in holes), default=0)


def rounded(size: int, alignment: int = 64) -> int:
    return max(-(-size // alignment) * alignment, alignment)


def take(allocator: Allocator, size: int) -> int:
    offset = allocator.alloc(size)
    assert offset is not None
    return offset


def test_offsets_are_aligned_and_sizes_rounded_up() -> None:
    allocator = Allocator(1 << 20)
    offsets = [allocator.alloc(n) for n in (1, 65, 0, 64, 1000)]
    assert offsets == [0, 64, 192, 256, 320]
    assert allocator.used == 64 + 128 + 64 + 64 + 1024


def test_capacity_is_rounded_down_to_the_alignment() -> None:
    assert Allocator(1000, alignment=64).capacity == 960


def test_alloc_returns_none_when_no_hole_fits() -> None:
    allocator = Allocator(1024)
    assert allocator.alloc(1024) == 0
    assert allocator.alloc(1) is None
    assert allocator.largest_free == 0


def test_fragmented_free_space_does_not_satisfy_a_larger_request() -> None:
    allocator = Allocator(640)
    offsets = [take(allocator, 64) for _ in range(10)]
    for off in offsets[::2]:
        allocator.free(off)
    assert allocator.free_bytes == 320
    assert allocator.largest_free == 64
    assert allocator.alloc(128) is None


def test_free_coalesces_with_both_neighbours() -> None:
    allocator = Allocator(64 * 4)
    a, b, c, d = (take(allocator, 64) for _ in range(4))
    allocator.free(a)
    allocator.free(c)
    allocator.free(b)
    assert allocator.holes() == [(0, 192)]
    allocator.free(d)
    assert allocator.holes() == [(0, 256)]
    assert allocator.alloc(256) == 0


def test_alloc_picks_the_smallest_hole_that_fits() -> None:
    allocator = Allocator(64 * 10)
    offsets = [take(allocator, n) for n in (192, 64, 64, 64, 128, 64)]
    allocator.free(offsets[0])  # hole of 192 at 0
    allocator.free(offsets[4])  # hole of 128 at 384
    assert allocator.alloc(100) == 384


def test_double_free_raises_key_error() -> None:
    allocator = Allocator(1024)
    off = take(allocator, 10)
    allocator.free(off)
    with pytest.raises(KeyError):
        allocator.free(off)


def test_non_power_of_two_alignment_is_rejected() -> None:
    with pytest.raises(ValueError):
        Allocator(1024, alignment=48)


@pytest.mark.parametrize("seed", range(5))
def test_random_alloc_and_free_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    allocator = Allocator(1 << 24, alignment=rng.choice([8, 64, 4096]))
    live: dict[int, int] = {}
    for step in range(4000):
        if live and rng.random() < 0.45:
            off = rng.choice(list(live))
            allocator.free(off)
            del live[off]
        else:
            size = int(rng.paretovariate(1.2) * 512)
            before = allocator.largest_free
            got = allocator.alloc(size)
            need = rounded(size, allocator.alignment)
            assert (got is None) == (need > before)
            if got is not None:
                assert got not in live
                live[got] = need
        if step % 50 == 0:
            check_invariants(allocator, live)
    for off in list(live):
        allocator.free(off)
        del live[off]
    check_invariants(allocator, live)
    assert allocator.holes() == [(0, allocator.capacity)]


def test_alloc_and_free_take_microseconds_with_many_live_ranges() -> None:
    allocator = Allocator(1 << 34)
    rng = random.Random(0)
    offsets = [take(allocator, rng.randrange(1, 1 << 16)) for _ in range(20_000)]
    for off in offsets[::2]:
        allocator.free(off)  # 10,000 holes
    start = time.perf_counter()
    for _ in range(10_000):
        allocator.free(take(allocator, rng.randrange(1, 1 << 16)))
    per_pair = (time.perf_counter() - start) / 10_000
    assert per_pair < 50e-6, f"alloc+free took {per_pair * 1e6:.1f} us"

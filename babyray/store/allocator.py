"""Offset allocator for an arena: best-fit over free holes, neighbours coalesced on free.

Pure bookkeeping (no memory is touched), run by the object store actor on every put. Free
holes are indexed three ways: by start and by end (dicts, O(1) neighbour lookup when
coalescing) and by ``(size, start)`` in one sorted list (bisect, for best fit and
``largest_free``). Sizes are rounded up to ``alignment``, so every offset is aligned.
"""

from __future__ import annotations

from bisect import bisect_left, insort

__all__ = ["Allocator"]


class Allocator:
    """Hand out aligned ``[offset, offset + size)`` ranges of ``[0, capacity)``.

    Not thread-safe: one owner (the store actor) calls it.
    """

    __slots__ = (
        "_by_key",
        "_hole_at",
        "_hole_ending",
        "_shift",
        "_used",
        "_used_at",
        "alignment",
        "capacity",
    )

    def __init__(self, capacity: int, alignment: int = 64) -> None:
        if alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"alignment must be a power of two, got {alignment}")
        self.alignment = alignment
        self.capacity = capacity - capacity % alignment
        self._shift = max(self.capacity.bit_length(), 1)
        self._by_key: list[int] = []  # (size << _shift) | start, sorted: best fit = first >= size
        self._hole_at: dict[int, int] = {}  # start -> size
        self._hole_ending: dict[int, int] = {}  # end -> start
        self._used_at: dict[int, int] = {}  # offset -> rounded size
        self._used = 0
        if self.capacity > 0:
            self._add_hole(0, self.capacity)

    def __repr__(self) -> str:
        return f"Allocator(used={self._used}, free={self.free_bytes}, holes={len(self._hole_at)})"

    @property
    def used(self) -> int:
        """Bytes handed out (sizes rounded up to the alignment)."""
        return self._used

    @property
    def free_bytes(self) -> int:
        return self.capacity - self._used

    @property
    def largest_free(self) -> int:
        """Size of the largest hole: the largest ``alloc`` that can succeed now."""
        return self._by_key[-1] >> self._shift if self._by_key else 0

    def holes(self) -> list[tuple[int, int]]:
        """The free holes as sorted ``(offset, size)`` pairs (for stats and checks)."""
        return sorted(self._hole_at.items())

    def alloc(self, size: int) -> int | None:
        """Reserve ``size`` bytes (at least one alignment unit); None when no hole fits.

        Picks the smallest hole that fits, the lowest such hole on ties, and carves the
        range from its start.
        """
        size = max(-(-size // self.alignment) * self.alignment, self.alignment)
        i = bisect_left(self._by_key, size << self._shift)
        if i == len(self._by_key):
            return None
        key = self._by_key[i]
        start, hole = key & ((1 << self._shift) - 1), key >> self._shift
        self._remove_hole(start, hole, i)
        if hole > size:
            self._add_hole(start + size, hole - size)
        self._used_at[start] = size
        self._used += size
        return start

    def free(self, offset: int) -> None:
        """Return the range at ``offset`` and merge it with free neighbours.

        Raises:
            KeyError: if ``offset`` is not currently allocated (double or bad free).
        """
        size = self._used_at.pop(offset)
        self._used -= size
        end = offset + size
        right = self._hole_at.get(end)
        if right is not None:
            self._remove_hole(end, right)
            size += right
        left = self._hole_ending.get(offset)
        if left is not None:
            self._remove_hole(left, offset - left)
            offset, size = left, size + offset - left
        self._add_hole(offset, size)

    def _add_hole(self, start: int, size: int) -> None:
        self._hole_at[start] = size
        self._hole_ending[start + size] = start
        insort(self._by_key, (size << self._shift) | start)

    def _remove_hole(self, start: int, size: int, index: int | None = None) -> None:
        del self._hole_at[start]
        del self._hole_ending[start + size]
        if index is None:
            index = bisect_left(self._by_key, (size << self._shift) | start)
        del self._by_key[index]

"""``babyray.util.multiprocessing``: ``multiprocessing.Pool``'s API on actors, as in Ray."""

from __future__ import annotations

from multiprocessing import TimeoutError

from babyray.util.multiprocessing.pool import AsyncResult, Pool

__all__ = ["AsyncResult", "Pool", "TimeoutError"]

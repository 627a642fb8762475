"""``as_completed`` and ``map_unordered``: results in the order tasks finish, as Ray's
``ray.util`` gives them (``ray.wait`` in chunks, with a bound on the tasks in flight)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import babyray
from babyray.api.object_ref import ObjectRef

__all__ = ["as_completed", "map_unordered"]

DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _ready_chunk(
    refs: list[ObjectRef], chunk_size: int, yield_obj_refs: bool, wait_options: dict
) -> tuple[list[Any], list[ObjectRef]]:
    """Wait for up to ``chunk_size`` of ``refs``: (their values, or the refs, and the refs left)."""
    ready, left = babyray.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_options)
    return (ready if yield_obj_refs else babyray.get(ready)), left


def as_completed(
    refs: Sequence[ObjectRef],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """Yield the values of ``refs`` (the refs themselves with ``yield_obj_refs``) as they
    become ready, ``chunk_size`` at a time (``wait``'s ``num_returns``; ``kwargs`` go to
    ``wait`` too, e.g. ``timeout``: a chunk then holds whatever is ready by then).

    Raises:
        ValueError: ``chunk_size`` is below 1.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}")
    left = list(refs)
    while left:
        done, left = _ready_chunk(left, chunk_size, yield_obj_refs, kwargs)
        yield from done


def map_unordered(
    fn: Any,
    items: Iterable[Any],
    *,
    backpressure_size: int | None = DEFAULT_BACKPRESSURE_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """Run the remote function ``fn`` on each of ``items`` and yield the results as they finish,
    with at most ``backpressure_size`` tasks in flight (None: no bound); ``chunk_size``,
    ``yield_obj_refs`` and ``kwargs`` as in ``as_completed``.

    Raises:
        ValueError: ``chunk_size`` or ``backpressure_size`` is below 1.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}")
    if backpressure_size is not None and backpressure_size < 1:
        raise ValueError(f"backpressure_size must be at least 1 or None, got {backpressure_size!r}")
    in_flight: list[ObjectRef] = []
    for item in items:
        if backpressure_size is not None and len(in_flight) >= backpressure_size:
            done, in_flight = _ready_chunk(in_flight, chunk_size, yield_obj_refs, kwargs)
            yield from done
        in_flight.append(fn.remote(item))
    yield from as_completed(in_flight, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs, **kwargs)

"""Probe the object store's data layer: pre-fault cost, write speed, the inline threshold.

    python -m benchmarks.arena_probe [--max-mb 1024] [--no-thespian]   (from the repo root)

Prints three tables (medians over repeated runs):

1. Pre-faulting a 1 GB arena (foreground, background) and attaching to it.
2. GB/s of ``serialize`` + ``write_object`` of a numpy array into a pre-faulted arena slot
   (1 and 2 copy threads), into a fresh segment, through a second mapping (``attach``
   with and without ``MAP_POPULATE``), against a plain ``np.copyto`` into touched memory.
3. Inline vs arena for 1 KB .. 1 MB: pickling and unpickling the value inline against
   writing and reading it through the arena plus one extra ~0.5 ms round trip, and, unless
   ``--no-thespian``, the measured extra cost of carrying the payload in a Thespian
   message (ask() to an echo actor with the payload minus without it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pickle
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import structlog
from thespian.actors import Actor, ActorSystem

from babyray.serialization import serialize
from babyray.store import arena as arena_module
from babyray.store.allocator import Allocator
from babyray.store.arena import Arena, read_object, write_object

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30
EXTRA_ROUND_TRIP = 0.5e-3  # the arena path asks the store for a slot: one more round trip
THREADS_FROM = 1 * MB  # 2-thread copies are measured from this size (default threshold: 64 MB)


class Payload:
    """Probe message carrying ``data``; cheap repr (Thespian formats every message)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Payload({len(self.data)} bytes)"


class Echo(Actor):  # type: ignore[misc]
    """Answers each Payload with an empty one."""

    def receiveMessage(self, message: Any, sender: Any) -> None:  # noqa: N802 (Thespian API)
        if isinstance(message, Payload):
            self.send(sender, Payload(b""))


def median_time(
    run: Callable[[], object],
    setup: Callable[[], None] | None = None,
    teardown: Callable[[], None] | None = None,
    budget: float = 1.0,
) -> float:
    """Median seconds of ``run``: at least 3 runs, more while within ``budget`` (max 500)."""
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget and len(times) < 500):
        if setup:
            setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if teardown:
            teardown()
    return statistics.median(times)


def fmt_size(n: int) -> str:
    return f"{n // GB} GB" if n >= GB else f"{n // MB} MB" if n >= MB else f"{n // KB} KB"


def probe_prefault(name: str) -> None:
    print("\n1. Pre-faulting a 1 GB arena (3 runs each)")
    fg, bg_return, bg_done, attach = [], [], [], []
    for i in range(3):
        start = time.perf_counter()
        arena = Arena.create(f"{name}_pf{i}", GB)
        fg.append(time.perf_counter() - start)
        start = time.perf_counter()
        other = Arena.attach(arena.name)
        attach.append(time.perf_counter() - start)
        for a in (other, arena):
            a.close()
        arena.unlink()
        start = time.perf_counter()
        arena = Arena.create(f"{name}_bg{i}", GB, background=True)
        bg_return.append(time.perf_counter() - start)
        arena.wait_prefaulted()
        bg_done.append(time.perf_counter() - start)
        arena.close()
        arena.unlink()
    rows = [
        ("create, pre-fault in caller", fg),
        ("create, background: returns after", bg_return),
        ("create, background: pre-faulted after", bg_done),
        ("attach with MAP_POPULATE", attach),
    ]
    for label, times in rows:
        low, mid, high = min(times), statistics.median(times), max(times)
        print(f"  {label:40s} median {mid:6.3f} s   min {low:6.3f} s   max {high:6.3f} s")


def put(value: np.ndarray, target: Arena, allocator: Allocator, threads: int = 1) -> None:
    """One put as the store does it: serialize, take a slot, write, (here) free the slot."""
    obj = serialize(value)
    offset = allocator.alloc(obj.total_size)
    assert offset is not None
    write_object(target, offset, obj, threads)
    allocator.free(offset)


def write_row(
    name: str, size: int, arena: Arena, attached: Arena, allocator: Allocator
) -> list[float | None]:
    """Median seconds per put of a ``size``-byte array, one per column of table 2."""
    src = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    dst = np.empty_like(src)
    dst.fill(1)  # touched: a memcpy baseline without page faults
    fresh: list[Arena] = []  # a new segment per run, not pre-faulted
    unpopulated: list[Arena] = []  # a new mapping per run, without MAP_POPULATE

    def drop_fresh() -> None:
        fresh[-1].close()
        fresh.pop().unlink()

    return [
        median_time(lambda: put(src, arena, allocator)),
        median_time(lambda: put(src, arena, allocator, 2)) if size >= THREADS_FROM else None,
        median_time(
            lambda: put(src, fresh[-1], allocator),
            lambda: fresh.append(Arena.create(f"{name}_f", size + MB, prefault=False)),
            drop_fresh,
        ),
        median_time(lambda: put(src, attached, allocator)),
        median_time(
            lambda: put(src, unpopulated[-1], allocator),
            lambda: unpopulated.append(Arena.attach(arena.name, prefault=False)),
            lambda: unpopulated.pop().close(),
        ),
        median_time(lambda: np.copyto(dst, src)),
    ]


def probe_writes(name: str, sizes: list[int]) -> None:
    print("\n2. serialize + write_object of a uint8 array, GB/s (median)")
    header = ["size", "prefaulted", "+2 threads", "fresh seg", "attached", "attach nopop", "np.copyto"]
    print("  " + "".join(f"{h:>13s}" for h in header))
    arena = Arena.create(f"{name}_w", max(sizes) + 16 * MB)
    attached = Arena.attach(arena.name)
    try:
        for size in sizes:
            times = write_row(name, size, arena, attached, Allocator(arena.size))
            cells = "".join("            -" if t is None else f"{size / t / 1e9:13.2f}" for t in times)
            print(f"  {fmt_size(size):>13s}{cells}", flush=True)
    finally:
        attached.close()
        arena.close()
        arena.unlink()


def thespian_payload_costs(sizes: list[int]) -> dict[int, float]:
    """Median extra ask() round trip for carrying ``size`` bytes, per size."""
    # Thespian loads actor and message classes by module path, never from __main__.
    probe = importlib.import_module("benchmarks.arena_probe")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    system = ActorSystem("multiprocTCPBase", {"Admin Port": port}, logDefs={"version": 1})
    try:
        echo = system.createActor(probe.Echo)
        payloads = {n: probe.Payload(os.urandom(n)) for n in [0, *sizes]}
        times: dict[int, list[float]] = {n: [] for n in payloads}
        for _ in range(200):  # interleaved so drift hits every size alike
            for n, payload in payloads.items():
                start = time.perf_counter()
                if system.ask(echo, payload, 30) is None:
                    raise RuntimeError("echo actor did not answer")
                times[n].append(time.perf_counter() - start)
    finally:
        system.shutdown()
    base = statistics.median(times[0])
    print(f"  (Thespian ask() round trip without payload: {base * 1e3:.2f} ms)")
    return {n: statistics.median(times[n]) - base for n in sizes}


def inline_row(size: int, arena: Arena, allocator: Allocator) -> list[float]:
    """Median seconds of: dumps, loads, arena write, arena read (zero-copy)."""
    value = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    blob = cloudpickle.dumps(value, protocol=5)
    obj = serialize(value)
    offset = allocator.alloc(obj.total_size)
    assert offset is not None
    write_object(arena, offset, obj)
    try:
        return [
            median_time(lambda: cloudpickle.dumps(value, protocol=5)),
            median_time(lambda: pickle.loads(blob)),
            median_time(lambda: put(value, arena, allocator)),
            median_time(lambda: read_object(arena, offset, obj.total_size, lambda: None)),
        ]
    finally:
        allocator.free(offset)


def probe_inline(name: str, sizes: list[int], thespian: bool) -> None:
    print("\n3. Inline vs arena, ms (median); arena total = write + read + 0.5 ms round trip")
    transport = thespian_payload_costs(sizes) if thespian else {}
    header = [
        "size",
        "dumps",
        "loads",
        "arena write",
        "arena read",
        "in message",
        "inline total",
        "arena total",
    ]
    print("  " + "".join(f"{h:>13s}" for h in header) + "   cheaper")
    arena = Arena.create(f"{name}_i", 16 * MB)
    allocator = Allocator(arena.size)
    try:
        for size in sizes:
            dumps, loads, arena_write, arena_read = inline_row(size, arena, allocator)
            carry = transport.get(size)
            inline = dumps + loads + (carry or 0.0)
            via_arena = arena_write + arena_read + EXTRA_ROUND_TRIP
            cells = [dumps, loads, arena_write, arena_read, carry, inline, via_arena]
            text = "".join("            -" if c is None else f"{c * 1e3:13.3f}" for c in cells)
            print(
                f"  {fmt_size(size):>13s}{text}   {'inline' if inline < via_arena else 'arena'}", flush=True
            )
    finally:
        arena.close()
        arena.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=int, default=1024, help="largest array in table 2")
    parser.add_argument("--no-thespian", action="store_true", help="skip the Thespian payload cost")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    name = f"babyray_probe_{os.getpid()}"
    print(
        f"arena probe: {os.cpu_count()} cores, numpy {np.__version__}, PARALLEL_COPY_MIN "
        f"{fmt_size(arena_module.PARALLEL_COPY_MIN)} (table 2 forces 2 threads from {fmt_size(THREADS_FROM)})"
    )
    arena_module.PARALLEL_COPY_MIN = THREADS_FROM
    probe_prefault(name)
    sizes = [
        s
        for s in (KB, 16 * KB, 256 * KB, MB, 4 * MB, 16 * MB, 64 * MB, 256 * MB, GB)
        if s <= args.max_mb * MB
    ]
    probe_writes(name, sizes)
    inline_sizes = [KB, 16 * KB, 64 * KB, 128 * KB, 256 * KB, 384 * KB, 512 * KB, 768 * KB, MB]
    probe_inline(name, inline_sizes, not args.no_thespian)


if __name__ == "__main__":
    main()

"""The node's shared-memory arena: one /dev/shm segment that every process on the node maps.

The object store actor creates it (``Arena.create``) and pre-faults it once, so writes later
run at memcpy speed instead of paying a page fault per fresh 4 KB page; workers and drivers
on the node map it with ``Arena.attach``. Slots inside it are handed out by
``babyray.store.allocator.Allocator``; ``write_object`` and ``read_object`` move values in
and out of a slot, reading zero-copy.

The segment is a plain file under /dev/shm opened with ``os.open``, not
``multiprocessing.shared_memory``, so no resource tracker ever warns about it or unlinks it
(see docs/design.md, "Shared memory: attach without the resource tracker"): it lives until
its creator calls ``unlink``.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import structlog

from babyray.serialization import _ENTRY, _HEAD, MAGIC, SerializedObject, deserialize

__all__ = ["PARALLEL_COPY_MIN", "Arena", "read_object", "write_object"]

SHM_DIR = "/dev/shm"
MADV_POPULATE_WRITE = 23  # Linux >= 5.14: fault pages in writable without touching them
PREFAULT_CHUNK = 16 << 20  # madvise holds the GIL: pre-fault in steps so other threads run
# Most bytes ``create`` pre-faults: pages past it are allocated on first use, so a large arena
# costs no more memory, nor time to attach, than this until it fills.
PREFAULT_MAX = 512 << 20
PARALLEL_COPY_MIN = 64 << 20  # buffers this large are split over ``copy_threads``
_PAGE = mmap.PAGESIZE

_log = structlog.get_logger(__name__)


class Arena:
    """One mapping of a node's shared-memory segment; made by ``create`` or ``attach``.

    Not thread-safe, except that pre-faulting may run in its own thread.
    """

    def __init__(self, name: str, fd: int, mm: mmap.mmap, creator: bool) -> None:
        self.name = name
        self.size = len(mm)
        self.creator = creator
        self.prefault_seconds: float | None = None
        self._fd = fd
        self._mm = mm
        self._buf = memoryview(mm)
        self._prefaulted = threading.Event()
        self._prefault_error: OSError | None = None
        self._prefault_thread: threading.Thread | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"Arena({self.name!r}, {self.size} bytes, creator={self.creator})"

    @staticmethod
    def path_of(name: str) -> str:
        if name.startswith("/proc/"):  # an unlinked segment, opened through its creator's descriptor
            return name
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad arena name {name!r}")
        return os.path.join(SHM_DIR, name)

    @classmethod
    def create(cls, name: str, size: int, prefault: bool = True, background: bool = False) -> Arena:
        """Create the segment ``/dev/shm/<name>`` of ``size`` bytes (rounded up to a page).

        With ``prefault``, every page up to ``PREFAULT_MAX`` is allocated (``posix_fallocate``, so
        a full /dev/shm fails here with ENOSPC instead of a SIGBUS later) and mapped writable with
        ``MADV_POPULATE_WRITE``, or by writing a byte per page on kernels without it. With
        ``background`` too, that runs in a daemon thread: the arena is usable at once
        (early writes are only slower); ``wait_prefaulted`` waits for it. Touching pages by
        hand would race with writers, so that fallback always runs in the caller's thread.

        Raises:
            FileExistsError: if the segment exists (a name must not be reused).
            OSError: if memory runs out while pre-faulting in the foreground.
        """
        size = max(-(-size // _PAGE) * _PAGE, _PAGE)
        fd = os.open(cls.path_of(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            arena = cls(name, fd, mmap.mmap(fd, size), creator=True)
        except BaseException:
            os.close(fd)
            os.unlink(cls.path_of(name))
            raise
        _log.info("arena_created", arena=name, size=size, prefault=prefault, background=background)
        if not prefault:
            arena._prefaulted.set()
            return arena
        try:
            madvise_ok = arena._populate_write_supported()
            if background and madvise_ok:
                arena._prefault_thread = threading.Thread(
                    target=arena._prefault, args=(True,), name=f"prefault-{name}", daemon=True
                )
                arena._prefault_thread.start()
                return arena
            arena._prefault(madvise_ok)
            if arena._prefault_error is not None:
                raise arena._prefault_error
        except BaseException:
            arena.close()
            arena.unlink()
            raise
        return arena

    @classmethod
    def attach(cls, name: str, prefault: bool = True) -> Arena:
        """Map an existing segment (another process on the node created it).

        With ``prefault`` the pages the creator allocated (the segment's start, up to its first
        hole) are mapped at once: ~0.03-0.08 s per GB, after which this process writes at memcpy
        speed there too (without it, its first write to each page costs a minor fault: ~3 GB/s).
        The pages past that are left to be faulted on first use: populating them would
        allocate them.
        The mapping is never registered with a resource tracker.

        Raises:
            FileNotFoundError: if no such segment exists.
        """
        fd = os.open(cls.path_of(name), os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            allocated = os.lseek(fd, 0, os.SEEK_HOLE) if prefault else 0
            flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if prefault and allocated == size else 0)
            arena = cls(name, fd, mmap.mmap(fd, size, flags=flags), creator=False)
        except BaseException:
            os.close(fd)
            raise
        if 0 < allocated < size:
            try:
                arena._mm.madvise(MADV_POPULATE_WRITE, 0, allocated - allocated % _PAGE)
            except OSError:  # a kernel without it: those pages fault on first use
                pass
        arena._prefaulted.set()
        _log.debug("arena_attached", arena=name, size=size, prefault=prefault)
        return arena

    def view(self, offset: int, size: int) -> memoryview:
        """A writable, zero-copy view of ``[offset, offset + size)``.

        Raises:
            ValueError: if the range is outside the arena, or the arena is closed.
        """
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ValueError(f"range [{offset}, {offset + size}) is outside the arena of {self.size} bytes")
        return self._buf[offset : offset + size]

    def wait_prefaulted(self, timeout: float | None = None) -> bool:
        """Wait for pre-faulting to finish; False on timeout. None waits forever.

        Raises:
            OSError: the error that stopped a background pre-fault (e.g. ENOSPC).
        """
        if not self._prefaulted.wait(timeout):
            return False
        if self._prefault_error is not None:
            raise self._prefault_error
        return True

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Unmap this process's mapping; idempotent.

        Views still alive (values read with ``read_object``) keep the memory mapped until
        they are garbage collected, so closing never invalidates them.
        """
        if self._closing:
            return
        self._closing = True
        if self._prefault_thread is not None:
            self._prefault_thread.join()
        self._buf.release()
        try:
            self._mm.close()
        except BufferError:
            _log.debug("arena_unmap_deferred", arena=self.name)
        os.close(self._fd)

    def unlink(self) -> None:
        """Remove the segment; processes that mapped it keep their mappings until closed.

        Raises:
            PermissionError: if this process only attached.
        """
        if not self.creator:
            raise PermissionError(f"arena {self.name!r} is unlinked by its creator only")
        try:
            os.unlink(self.path_of(self.name))
        except FileNotFoundError:
            return
        _log.info("arena_unlinked", arena=self.name)

    def _populate_write_supported(self) -> bool:
        try:
            self._mm.madvise(MADV_POPULATE_WRITE, 0, _PAGE)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _log.warning("arena_populate_write_unsupported", arena=self.name)
            return False
        return True

    def _prefault(self, madvise: bool) -> None:
        start = time.perf_counter()
        try:
            limit = min(self.size, PREFAULT_MAX)
            for off in range(0, limit, PREFAULT_CHUNK):
                if self._closing:
                    return
                n = min(PREFAULT_CHUNK, limit - off)
                os.posix_fallocate(self._fd, off, n)
                if madvise:
                    self._mm.madvise(MADV_POPULATE_WRITE, off, n)
                else:
                    self._mm[off : off + n : _PAGE] = bytes(n // _PAGE)
        except OSError as exc:
            self._prefault_error = exc
            _log.error("arena_prefault_failed", arena=self.name, error=repr(exc))
        else:
            self.prefault_seconds = time.perf_counter() - start
            _log.info(
                "arena_prefaulted",
                arena=self.name,
                seconds=round(self.prefault_seconds, 4),
                gb_per_s=round(self.size / self.prefault_seconds / 1e9, 2),
            )
        finally:
            self._prefaulted.set()


def write_object(arena: Arena, offset: int, obj: SerializedObject, copy_threads: int = 1) -> None:
    """Write ``obj`` into the slot at ``offset`` (the slot holds ``obj.total_size`` bytes).

    With ``copy_threads`` > 1, each buffer of ``PARALLEL_COPY_MIN`` bytes or more is split
    into that many chunks copied by a thread pool (numpy copies release the GIL); the
    calling thread writes the rest meanwhile.
    """
    dest = arena.view(offset, obj.total_size)
    if copy_threads <= 1 or all(buf.nbytes < PARALLEL_COPY_MIN for buf in obj.buffers):
        obj.write_to(dest)
        return
    # The layout is serialization.py's; SerializedObject.write_to copies in one thread only.
    offsets: list[int] = obj._offsets
    with ThreadPoolExecutor(copy_threads, thread_name_prefix="arena-copy") as pool:
        copies = []
        for off, buf in zip(offsets, obj.buffers, strict=True):
            if buf.nbytes < PARALLEL_COPY_MIN:
                dest[off : off + buf.nbytes] = buf
                continue
            src = np.frombuffer(buf, np.uint8)
            dst = np.frombuffer(dest[off : off + buf.nbytes], np.uint8)
            step = -(-buf.nbytes // copy_threads // _PAGE) * _PAGE
            copies += [
                pool.submit(np.copyto, dst[a : a + step], src[a : a + step])
                for a in range(0, buf.nbytes, step)
            ]
        _HEAD.pack_into(dest, 0, MAGIC, len(obj.buffers), len(obj.meta))
        for i, (off, buf) in enumerate(zip(offsets, obj.buffers, strict=True)):
            _ENTRY.pack_into(dest, _HEAD.size + i * _ENTRY.size, off, buf.nbytes)
        meta_at = _HEAD.size + len(obj.buffers) * _ENTRY.size
        dest[meta_at : meta_at + len(obj.meta)] = obj.meta
        for copy in copies:
            copy.result()


def read_object(arena: Arena, offset: int, size: int, on_release: Callable[[], None]) -> Any:
    """Rebuild the value in the slot without copying its buffers.

    numpy arrays in the value are read-only views into the arena. ``on_release()`` is
    called once, when the value and every view derived from it have been garbage
    collected: at once for values that hold no buffer (a dict of ints), or if
    deserializing fails. It runs in whichever thread drops the last reference, so it must
    be quick and thread-safe (e.g. queue an unpin message); it is not run at interpreter
    exit. If deserializing fails it runs before the error propagates: the error's traceback
    would keep the region alive until a garbage collection.
    """
    region = np.frombuffer(arena.view(offset, size), np.uint8)
    release = weakref.finalize(region, on_release)
    release.atexit = False
    try:
        return deserialize(region.data)
    except BaseException:
        release()
        raise

"""ObjectRefs as futures: ``ref.future()``, ``await ref``, ``asyncio.gather(*refs)``.

A ref's future is completed without any thread waiting on it: the core calls back when the
object's value record is known (it runs under the core lock, so it only queues the work),
and one daemon thread per process turns records into values (reading stored objects,
raising task errors) and completes the futures; it ends after a second without work (so
none is left after ``shutdown``) and starts again with the next. An event loop awaiting a
ref therefore keeps running: an async actor awaiting one keeps serving its other calls.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from babyray.api.core import CoreClient
    from babyray.api.object_ref import ObjectRef

IDLE_EXIT = 1.0  # seconds without work after which the resolver thread ends

_pending: queue.SimpleQueue = queue.SimpleQueue()  # (core, ref, value record, future)
_resolver: threading.Thread | None = None
_resolver_lock = threading.Lock()


def future_of(core: "CoreClient", ref: "ObjectRef") -> concurrent.futures.Future:
    """A Future completed with ``ref``'s value, or with its task's error."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def known(value: Any) -> None:  # under the core lock: hand over, never block
        _pending.put((core, ref, value, future))
        _ensure_resolver()

    with core.lock:
        core.objects.lookup(ref, known)
    return future


def _ensure_resolver() -> None:
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = threading.Thread(target=_resolve, name="babyray-ref-futures", daemon=True)
            _resolver.start()


def _resolve() -> None:
    global _resolver
    while True:
        try:
            core, ref, value, future = _pending.get(timeout=IDLE_EXIT)
        except queue.Empty:
            with (
                _resolver_lock
            ):  # work queued before this check is done by this thread, later work by a new one
                if _pending.empty():
                    _resolver = None
                    return
            continue
        if not future.set_running_or_notify_cancel():
            continue  # the caller cancelled it
        try:
            result = core.materialize(ref.id, value)
        except BaseException as exc:  # the task's error (or a lost object) goes to the awaiter
            future.set_exception(exc)
        else:
            future.set_result(result)
        core = ref = value = future = result = None  # hold no object past its future

"""Object serialization: cloudpickle with pickle protocol 5 out-of-band buffers.

A serialized object is a small pickled "meta" part plus the raw buffers of numpy arrays and
bytes-like values, which are never copied into the pickle stream. ``write_to`` lays them out
in one flat region (an arena slot or a spill file) with each buffer 64-byte aligned, and
``deserialize`` rebuilds the value from such a region without copying the buffers, so numpy
arrays come back as read-only views of that region.

Layout: ``MAGIC | n_buffers:u32 | meta_len:u64 | (offset:u64, len:u64) * n | meta | buffers``.

``register_serializer`` (``ray.util.register_serializer``) gives a class a custom pair of
functions in this process only: a value of that class is pickled as its deserializer applied
to what its serializer returned; the deserializer is pickled with it, so the reading process
needs no registration.
"""

from __future__ import annotations

import io
import marshal
import pickle
import struct
import threading
import types
from collections import ChainMap
from typing import Any, Callable

import cloudpickle

MAGIC = b"BRO1"
ALIGN = 64
_HEAD = struct.Struct("<4sIQ")
_ENTRY = struct.Struct("<QQ")

_ref_hooks = threading.local()
# Values the standard pickle writes exactly as cloudpickle does, without building a cloudpickle
# Pickler (most of the cost of serializing a small return value such as an int).
_PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, bytes})


# Reducers of the classes given to register_serializer, consulted before any other reducer.
_custom_reducers: dict[type, Callable[[Any], tuple]] = {}


def _rebuild_code(marshalled: bytes) -> types.CodeType:
    return marshal.loads(marshalled)


def _reduce_code(code: types.CodeType) -> tuple:
    return _rebuild_code, (marshal.dumps(code),)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, except that a pickled function's code keeps its file name and that the
    classes given to ``register_serializer`` are written by their reducers.

    cloudpickle 3 renames every pickled code object's file to ``<dynamic-code>``, so a remote
    traceback would lose the user's file name and source lines. A code object is marshalled
    whole instead (every process of a cluster runs the same Python).
    """

    dispatch_table = ChainMap(
        _custom_reducers, {types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table
    )


def _cloudpickle_dumps(value: Any, buffer_callback: Callable | None = None) -> bytes:
    with io.BytesIO() as out:
        _Pickler(out, protocol=5, buffer_callback=buffer_callback).dump(value)
        return out.getvalue()


def register_serializer(
    cls: type, *, serializer: Callable[[Any], Any], deserializer: Callable[[Any], Any]
) -> None:
    """Pickle instances of exactly ``cls`` as ``deserializer(serializer(instance))`` from now
    on, in this process; replaces an earlier registration for ``cls``. As in Ray, a
    registration for a type pickle writes itself (int, str, list, dict, ...) has no effect.

    Raises:
        TypeError: if ``cls`` is not a class or a function is not callable.
    """
    _check_class(cls, "register_serializer")
    for name, function in (("serializer", serializer), ("deserializer", deserializer)):
        if not callable(function):
            raise TypeError(
                f"register_serializer: {name} must be callable, not {type(function).__name__} {function!r}"
            )

    def reduce(value: Any) -> tuple:
        return deserializer, (serializer(value),)

    _custom_reducers[cls] = reduce


def deregister_serializer(cls: type) -> None:
    """Forget the serializer registered for ``cls`` in this process (none: nothing happens).

    Raises:
        TypeError: if ``cls`` is not a class.
    """
    _check_class(cls, "deregister_serializer")
    _custom_reducers.pop(cls, None)


def forget_custom_serializers() -> None:
    """Drop every registration: a process forked from a driver starts without the driver's."""
    _custom_reducers.clear()


def _check_class(cls: Any, caller: str) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"{caller}: cls must be a class, not {type(cls).__name__} {cls!r}")


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


class SerializedObject:
    """A value ready to be written: meta pickle, out-of-band buffers and contained refs."""

    __slots__ = ("meta", "buffers", "contained_refs", "total_size", "_offsets")

    def __init__(self, meta: bytes, buffers: list[memoryview], contained_refs: list) -> None:
        self.meta = meta
        self.buffers = buffers
        self.contained_refs = contained_refs
        header = _HEAD.size + _ENTRY.size * len(buffers)
        pos = header + len(meta)
        offsets = []
        for buf in buffers:
            pos = _align(pos)
            offsets.append(pos)
            pos += buf.nbytes
        self._offsets = offsets
        self.total_size = pos

    def __repr__(self) -> str:
        return f"SerializedObject({self.total_size} bytes, {len(self.buffers)} buffers)"

    def write_to(self, dest: memoryview) -> None:
        """Write the flat layout into ``dest`` (at least ``total_size`` bytes)."""
        _HEAD.pack_into(dest, 0, MAGIC, len(self.buffers), len(self.meta))
        pos = _HEAD.size
        for off, buf in zip(self._offsets, self.buffers, strict=True):
            _ENTRY.pack_into(dest, pos, off, buf.nbytes)
            pos += _ENTRY.size
        dest[pos : pos + len(self.meta)] = self.meta
        for off, buf in zip(self._offsets, self.buffers, strict=True):
            dest[off : off + buf.nbytes] = buf

    def to_bytes(self) -> bytes:
        if not self.buffers:  # the common small case: no copy through a bytearray
            return _HEAD.pack(MAGIC, 0, len(self.meta)) + self.meta
        out = bytearray(self.total_size)
        self.write_to(memoryview(out))
        return bytes(out)


def serialize(value: Any) -> SerializedObject:
    """Pickle ``value``; ObjectRefs met on the way are collected in ``contained_refs``.

    Raises:
        TypeError: if the value cannot be pickled (the message names the cause).
    """
    if type(value) in _PLAIN_TYPES:
        return SerializedObject(pickle.dumps(value, protocol=5), [], [])
    buffers: list[memoryview] = []
    refs: list = []
    outer = getattr(_ref_hooks, "refs", None)
    _ref_hooks.refs = refs
    try:
        meta = _cloudpickle_dumps(value, buffer_callback=lambda b: buffers.append(b.raw()))
    except Exception as exc:  # pickling raises many types; name the cause for the user
        raise TypeError(f"Could not serialize {type(value).__name__!s} value: {exc!r}") from exc
    finally:
        _ref_hooks.refs = outer
    return SerializedObject(meta, buffers, refs)


def note_ref_serialized(ref: Any) -> None:
    """Called by ObjectRef.__reduce__ so the serializer learns which refs a value holds."""
    refs = getattr(_ref_hooks, "refs", None)
    if refs is not None:
        refs.append(ref)


def deserialize(region: memoryview | bytes) -> Any:
    """Rebuild a value from a flat region written by ``write_to`` (buffers are not copied)."""
    view = memoryview(region)
    magic, nbuf, meta_len = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise ValueError("corrupt object: bad magic")
    pos = _HEAD.size
    buffers = []
    for _ in range(nbuf):
        off, length = _ENTRY.unpack_from(view, pos)
        pos += _ENTRY.size
        buffers.append(view[off : off + length].toreadonly())
    meta = view[pos : pos + meta_len]
    return pickle.loads(meta, buffers=buffers)


def dumps(value: Any) -> bytes:
    """Serialize to one bytes object (for inline values and messages)."""
    return serialize(value).to_bytes()


def dumps_function(function: Callable | type) -> bytes:
    """Pickle a remote function or actor class by value (its code keeps its file name)."""
    return _cloudpickle_dumps(function)


def loads_function(blob: bytes) -> Callable:
    return pickle.loads(blob)

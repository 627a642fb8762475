"""The messages babyray's Thespian actors, drivers and workers send each other.

One module per conversation: ``values`` (values and task specs, carried by all of them),
``tasks``, ``objects``, ``gcs``, ``cluster``, ``actors``, ``state`` and ``placement``. Import a
module under its alias, ``from babyray.protocol import tasks as tm`` (``vm``, ``tm``, ``om``,
``gm``, ``cm``, ``am``, ``sm``, ``pm``), and name messages through it (``tm.SubmitTasks``).

The rules every message follows:

- A frozen, slotted dataclass, defined at module level in this package so that the receiving
  process can unpickle it by module path (see docs/design.md, "Thespian: message classes must
  be importable"). Frozen: a changed message is a new one (``dataclasses.replace``).
- A request that is answered carries a ``req_id``; its reply is a ``Reply`` that repeats it, and
  the request names its reply type in ``reply``. A driver's CoreClient completes the waiting
  request of every ``Reply`` it receives (no list of reply types to keep).
- Pickled as its class and the values of its fields, unpickled through ``__init__``: each
  module ends with ``pickle_through_init(globals())``.
- A message that may carry a payload (bytes, many items) has a cheap ``__repr__`` built with
  ``short_repr``: Thespian formats every message with ``str()`` when sending it (see
  docs/design.md, "Thespian: every message is formatted with str()").
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from operator import attrgetter
from typing import Any, Callable


def short_repr(cls_name: str, **fields: Any) -> str:
    """``Name(k=v, ...)``: a message's repr that leaves out its payload."""
    return cls_name + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


def pickle_through_init(namespace: dict[str, Any]) -> None:
    """Give every dataclass defined in ``namespace`` (a protocol module's ``globals()``) a
    ``__reduce__`` that pickles its fields' values read in one C call, and unpickles through
    ``__init__``. A frozen, slotted dataclass's own ``__getstate__`` and ``__setstate__`` walk
    ``fields()`` in Python, field by field, for every message sent and received."""
    for value in list(namespace.values()):
        if (
            isinstance(value, type)
            and is_dataclass(value)
            and value.__module__ == namespace["__name__"]
            and "__reduce__" not in vars(value)
        ):
            value.__reduce__ = _reduce_through_init(value)  # type: ignore[method-assign, assignment]


def _reduce_through_init(cls: type) -> Callable[[Any], tuple]:
    names = [f.name for f in fields(cls)]
    if not names:
        return lambda message: (cls, ())
    if len(names) == 1:
        read_one = attrgetter(names[0])
        return lambda message: (cls, (read_one(message),))
    read = attrgetter(*names)  # two or more names: a tuple
    return lambda message: (cls, read(message))


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request: ``req_id`` repeats the request's."""

    req_id: str


pickle_through_init(globals())

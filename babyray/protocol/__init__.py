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
- A message that may carry a payload (bytes, many items) has a cheap ``__repr__`` built with
  ``short_repr``: Thespian formats every message with ``str()`` when sending it (see
  docs/design.md, "Thespian: every message is formatted with str()").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def short_repr(cls_name: str, **fields: Any) -> str:
    """``Name(k=v, ...)``: a message's repr that leaves out its payload."""
    return cls_name + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request: ``req_id`` repeats the request's."""

    req_id: str

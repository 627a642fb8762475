"""How the GCS merges task events from several senders into one task record.

A task's owner reports ``submitted``, ``retried`` and the final state (``finished``,
``failed``, ``cancelled``); the worker running it reports ``scheduled`` (queued in the
worker) and ``running``. Each sender buffers its events, so they reach the GCS out of
order: a worker's ``running`` may arrive after the owner's ``finished``. The rule: a final
state is never replaced by a non-final one; otherwise the event of the later attempt wins,
and within one attempt the later stage (pending < scheduled < running) wins. Fields are
always merged, so a late event still adds its node, worker and timing.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FINAL", "STAGE", "merge_task_event"]

FINAL = frozenset({"finished", "failed", "cancelled"})
STAGE = {"submitted": 0, "retried": 0, "scheduled": 1, "running": 2}


def _supersedes(state: str, attempt: int, record: dict) -> bool:
    """Whether an event (``state``, ``attempt``) sets the state of ``record``."""
    current = record.get("state")
    if current is None or state in FINAL:
        return True
    if current in FINAL:
        return False
    current_attempt = int(record.get("attempt") or 0)
    if attempt != current_attempt:
        return attempt > current_attempt
    return STAGE.get(state, 0) >= STAGE.get(current, 0)


def merge_task_event(record: dict | None, state: str, fields: dict[str, Any]) -> dict:
    """Return ``record`` (a new dict if None) with the event's fields merged in.

    ``fields["attempt"]`` (default: the record's) orders events of retried tasks. The
    record's ``state`` and ``attempt`` change only if the event supersedes them.
    """
    merged = dict(record or {})
    given = fields.get("attempt")
    attempt = int(given if given is not None else merged.get("attempt") or 0)
    wins = _supersedes(state, attempt, merged)
    for key, value in fields.items():
        if key == "attempt":
            continue
        if value is None and key in merged:
            continue  # a sender that does not know a field does not erase it
        merged[key] = value
    if wins:
        merged["state"] = state
        merged["attempt"] = attempt
    return merged

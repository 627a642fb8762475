"""The GCS flushing policy: which durable entries leave the GCS's memory, and when.

With flushing on (the default) a pass runs every ``period`` seconds and evicts, among the
entries whose latest write is durable, those of finished work: tasks in a final state,
every object and function entry (objects are stable once their latest change is durable;
functions are immutable), dead actors and removed placement groups. Nodes stay. With ``max_entries`` set, a pass also
evicts the oldest durable entries of a table beyond that many, whatever their state. With
flushing off, entries stay in memory (the paper's baseline); they are still written to the
store. A read of an evicted entry faults it back from the store (``StoredTable``).
"""

from __future__ import annotations

from dataclasses import dataclass

from babyray import config
from babyray.gcs.states import ActorState, PlacementGroupState
from babyray.gcs.task_states import FINAL

__all__ = ["FlushPolicy"]

NEVER_EVICTED = frozenset({"nodes"})  # few, hot, and iterated by the liveness check


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When the GCS evicts durable entries from memory."""

    enabled: bool = True
    """Evict entries of finished work once durable; False keeps every entry in memory."""
    period: float = 1.0
    """Seconds between two flush passes."""
    max_entries: int = 0
    """Most entries one table keeps in memory (0: no bound); nodes are never evicted."""

    @classmethod
    def from_settings(cls, settings: config.Settings) -> "FlushPolicy":
        """The policy of the ``gcs_flush*`` settings."""
        return cls(
            enabled=settings.gcs_flushing,
            period=settings.gcs_flush_period,
            max_entries=settings.gcs_flush_max_entries,
        )

    def evictable(self, table: str, record: dict) -> bool:
        """Whether a durable ``record`` of ``table`` is finished work that may leave memory."""
        if not self.enabled or table in NEVER_EVICTED:
            return False
        if table == "tasks":
            return record.get("state") in FINAL
        if table == "actors":
            return record.get("state") == ActorState.DEAD
        if table == "placement_groups":
            return record.get("state") == PlacementGroupState.REMOVED
        return True  # objects (stable once durable) and functions (immutable)

    def bound(self, table: str) -> int:
        """The most entries ``table`` keeps in memory; 0 means no bound."""
        if not self.enabled or table in NEVER_EVICTED:
            return 0
        return self.max_entries

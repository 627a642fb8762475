"""Scheduling strategies, as in ``ray.util.scheduling_strategies``.

``scheduling_strategy`` accepts ``"DEFAULT"``, ``"SPREAD"``, a
``NodeAffinitySchedulingStrategy(node_id, soft=False)`` or a
``PlacementGroupSchedulingStrategy(placement_group, placement_group_bundle_index=-1)``.
Instances travel inside task specs, so they live in the package and pickle by module path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from babyray.ids import NodeID

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on node ``node_id``; if it is dead or lacks the resources, fail unless ``soft``
    (then any other node will do)."""

    node_id: NodeID
    soft: bool = False
    _spill_on_unavailable: bool = False
    _fail_on_unavailable: bool = False


@dataclass(frozen=True)
class PlacementGroupSchedulingStrategy:
    """Run in a bundle of ``placement_group`` (any bundle for index -1), on its reserved
    resources; None: in no placement group. With ``placement_group_capture_child_tasks``, the
    tasks and actors this one starts without a scheduling strategy run in the same placement group."""

    placement_group: Any  # a PlacementGroup, or None
    placement_group_bundle_index: int = -1
    placement_group_capture_child_tasks: bool | None = None


def placement_group_id(strategy: Any) -> str | None:
    """The id of the placement group ``strategy`` runs in; None for any other strategy."""
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return getattr(strategy.placement_group, "id", None)
    return None

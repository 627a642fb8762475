"""Scheduling strategies, as in ``ray.util.scheduling_strategies``.

``scheduling_strategy`` accepts ``"DEFAULT"``, ``"SPREAD"`` or a
``NodeAffinitySchedulingStrategy(node_id, soft=False)``. Instances travel inside task specs,
so they live in the package (DESIGN trap 4) and pickle by module path.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeAffinitySchedulingStrategy"]


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on node ``node_id``; if it is dead or lacks the resources, fail unless ``soft``
    (then any other node will do)."""

    node_id: str
    soft: bool = False
    _spill_on_unavailable: bool = False
    _fail_on_unavailable: bool = False

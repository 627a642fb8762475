"""Placement policies of the global scheduler: pure code, no actor, testable alone.

A policy ranks the alive nodes that can ever fit a task by estimated waiting time and
picks the lowest. ``QueueOnlyPolicy`` counts queueing only (locality-unaware);
``LocalityAwarePolicy`` adds the time to move the task's inputs the node lacks (the paper's
policy, Figure 8a). ``choose_node`` applies the scheduling strategy first ("SPREAD", node
affinity) and falls back to the policy.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from babyray.actors.locality import LOCALITY_SPILL_BYTES, stored_inputs
from babyray.actors.resources import fits
from babyray.ids import NodeID
from babyray.protocol import cluster as cm
from babyray.protocol import values as vm
from babyray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

DEFAULT_BANDWIDTH = 1e9  # bytes/s between nodes (fig8a measures 1.5-2 GB/s pulls between namespaces)
DEFAULT_PULL_SECONDS = 0.005  # fixed cost of one pull: two store messages, a connection (fig8a: 4-8 ms)
DEFAULT_TASK_SECONDS = 0.005  # estimated run time of a queued task


class Unschedulable(Exception):
    """A hard node affinity names a node that is dead or can never fit the task."""


@dataclass(slots=True)
class NodeLoad:
    """What the global scheduler knows of a node: heartbeat figures plus its own placements."""

    node_id: NodeID
    resources: dict
    available: dict
    queue_length: int
    alive: bool
    scheduler: Any = None
    # Tasks placed here since the last heartbeat figures, less those the node has likely run
    # since: a backlog that drains at ``cpus / task_seconds`` (else a sequential job, each task
    # done before the next, would look like a growing queue until the next figures).
    placed: float = 0.0
    placed_at: float = 0.0

    @classmethod
    def from_info(cls, info: cm.NodeInfo) -> "NodeLoad":
        return cls(
            info.node_id,
            dict(info.resources),
            dict(info.available),
            info.queue_length,
            info.alive,
            info.scheduler,
        )

    @property
    def cpus(self) -> float:
        return max(self.resources.get("CPU", 1.0), 1.0)

    def backlog(self, task_seconds: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(self.placed - (now - self.placed_at) * self.cpus / task_seconds, 0.0)

    def note_placed(self, task_seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.placed = self.backlog(task_seconds, now) + 1.0
        self.placed_at = now

    def queue_seconds(self, task_seconds: float, now: float | None = None) -> float:
        busy = max(self.cpus - self.available.get("CPU", 0.0), 0.0)
        waiting = self.queue_length + self.backlog(task_seconds, now) + max(busy - self.cpus + 1.0, 0.0)
        return waiting * task_seconds / self.cpus


@dataclass
class SchedulingPolicy:
    """Base: rank by queueing time; subclasses add costs. Ties are broken at random."""

    name = "queue"
    task_seconds: float = DEFAULT_TASK_SECONDS
    bandwidth: float = DEFAULT_BANDWIDTH
    pull_seconds: float = DEFAULT_PULL_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def cost(self, spec: vm.TaskSpec, node: NodeLoad, now: float | None = None) -> float:
        """Estimated seconds until ``spec`` would start on ``node`` (``now``: time.monotonic())."""
        return node.queue_seconds(self.task_seconds, now)

    def choose(self, spec: vm.TaskSpec, candidates: list[NodeLoad]) -> NodeLoad | None:
        if not candidates:
            return None
        costs = [(self.cost(spec, n), self.rng.random(), n) for n in candidates]
        return min(costs, key=lambda c: (c[0], c[1]))[2]


class QueueOnlyPolicy(SchedulingPolicy):
    """Locality-unaware: estimated queueing time only."""

    name = "queue"


class LocalityAwarePolicy(SchedulingPolicy):
    """Estimated waiting time = queueing time + time to fetch the inputs the node lacks."""

    name = "locality"

    def cost(self, spec: vm.TaskSpec, node: NodeLoad, now: float | None = None) -> float:
        missing = [size for node_id, size in stored_inputs(spec) if node_id != node.node_id]
        fetch = len(missing) * self.pull_seconds + sum(missing) / self.bandwidth
        return node.queue_seconds(self.task_seconds, now) + fetch


POLICIES = {"queue": QueueOnlyPolicy, "locality": LocalityAwarePolicy}


def make_policy(name: str) -> SchedulingPolicy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown scheduling policy {name!r}; choose from {sorted(POLICIES)}") from None


@dataclass
class Placement:
    """Strategy handling around a policy; keeps SPREAD's round-robin position."""

    policy: SchedulingPolicy
    spread_next: int = 0

    def choose_node(self, spec: vm.TaskSpec, nodes: dict[str, NodeLoad]) -> NodeLoad | None:
        """The node for ``spec``; None if no alive node can fit it yet.

        Raises:
            Unschedulable: a hard node affinity to a dead or unfitting node.
        """
        strategy = spec.scheduling_strategy
        candidates = [n for n in nodes.values() if n.alive and fits(n.resources, spec.resources)]
        if isinstance(strategy, NodeAffinitySchedulingStrategy):
            target = nodes.get(strategy.node_id)
            if target is not None and target.alive and fits(target.resources, spec.resources):
                return target
            if not strategy.soft:
                raise Unschedulable(
                    f"task {spec.task_id} ({spec.function_name}) has a hard affinity to node "
                    f"{strategy.node_id}, which is {'dead' if target else 'unknown'} or cannot "
                    f"fit {spec.resources}"
                )
            return self.policy.choose(spec, candidates)
        if strategy == "SPREAD" and candidates:
            candidates.sort(key=lambda n: n.node_id)
            ranked = sorted(candidates, key=lambda n: n.queue_seconds(self.policy.task_seconds))
            least = ranked[0].queue_seconds(self.policy.task_seconds)
            level = [n for n in candidates if n.queue_seconds(self.policy.task_seconds) <= least + 1e-9]
            choice = level[self.spread_next % len(level)]
            self.spread_next += 1
            return choice
        return self.policy.choose(spec, candidates)


def wants_global_placement(
    spec: vm.TaskSpec, node_id: NodeID, locality: bool = True, spill_bytes: int = LOCALITY_SPILL_BYTES
) -> bool:
    """Whether a local scheduler should pass ``spec`` up instead of running it on ``node_id``.

    True for SPREAD, for an affinity to another node, and, with ``locality`` (the
    locality-aware policy), when the task's stored inputs on other nodes outweigh those here
    by at least ``spill_bytes`` (the global scheduler then weighs moving the inputs against
    moving the task).
    """
    strategy = spec.scheduling_strategy
    if strategy == "SPREAD":
        return True
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return strategy.node_id != node_id
    if not locality:
        return False
    inputs = stored_inputs(spec)
    if not inputs:
        return False
    remote = sum(size for where, size in inputs if where != node_id)
    local = sum(size for where, size in inputs if where == node_id)
    return remote - local >= spill_bytes
